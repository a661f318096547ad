/* cli.h: subcommand parsing shared by the three tools.
 *
 *   tool [--help|--version] COMMAND [options] [positional...]
 *
 * Options are "--name value", "--name=value" or plain flags. Unknown options,
 * missing values and wrong positional counts exit 2 with a message that
 * points to "tool COMMAND --help". */
#ifndef FB_CLI_H
#define FB_CLI_H

#define CLI_MAX_OPTS 32
#define CLI_MAX_POS 256

typedef struct {
    const char *name;     /* without the leading "--" */
    const char *metavar;  /* NULL for a flag */
    const char *help;
} cli_opt;

struct cli_args;

typedef struct {
    const char *name;
    const char *usage;    /* positional part, e.g. "P.csv [B.csv]" */
    const char *summary;
    const cli_opt *opts;  /* terminated by {0} */
    int min_pos, max_pos; /* max_pos < 0: unbounded */
    int (*run)(const struct cli_args *a);
} cli_command;

typedef struct cli_args {
    const char *prog;
    const cli_command *cmd;
    const char *value[CLI_MAX_OPTS];
    int set[CLI_MAX_OPTS];
    const char *pos[CLI_MAX_POS];
    int npos;
} cli_args;

/* Parses argv, runs the command and returns the exit code. */
int cli_main(const char *prog, const char *about, const cli_command *cmds, int argc, char **argv);

/* Option accessors by name (the name must be declared by the command). */
const char *cli_get(const cli_args *a, const char *name);
int cli_flag(const cli_args *a, const char *name);
/* Parse a number option; on a malformed value print a message and return -1.
 * lo/hi bound the accepted range (inclusive). */
int cli_get_double(const cli_args *a, const char *name, double def, double lo, double hi, double *out);
int cli_get_long(const cli_args *a, const char *name, long def, long lo, long hi, long *out);
/* Returns the index of value in the '|'-separated list choices, or -1 with a message. */
int cli_get_choice(const cli_args *a, const char *name, const char *choices, int def);

/* The value parsers behind the accessors, for values that come from files
 * (a manifest's header): the same rules, no message. 0, or -1 when s is not
 * a number in [lo, hi]; cli_choice_index: s's index in choices, or -1. */
int cli_parse_double(const char *s, double lo, double hi, double *out);
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_choice_index(const char *choices, const char *s);

/* argv as a JSON array (malloc'ed) for the tool_runs table. --threads and
 * its value are left out: they never change results, and recording them
 * would make databases from different thread counts differ. */
char *cli_argv_json(int argc, char **argv);

#endif
