#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "numfmt.h"
#include "util.h"

static void print_command_help(FILE *f, const char *prog, const cli_command *c)
{
    fprintf(f, "usage: %s %s [options] %s\n\n%s\n", prog, c->name, c->usage ? c->usage : "", c->summary);
    if (c->opts && c->opts[0].name) fprintf(f, "\noptions:\n");
    for (const cli_opt *o = c->opts; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(f, "  %-28s %s\n", left, o->help);
    }
    fprintf(f, "  %-28s %s\n", "--help", "show this help");
}

static void print_help(FILE *f, const char *prog, const char *about, const cli_command *cmds)
{
    fprintf(f, "usage: %s COMMAND [options] [args]\n\n%s\n\ncommands:\n", prog, about);
    for (const cli_command *c = cmds; c->name; c++) fprintf(f, "  %-12s %s\n", c->name, c->summary);
    fprintf(f, "\n%s COMMAND --help shows a command's options; %s --version its version.\n", prog, prog);
}

static int opt_index(const cli_command *c, const char *name, size_t len)
{
    for (int i = 0; c->opts && c->opts[i].name; i++)
        if (strlen(c->opts[i].name) == len && strncmp(c->opts[i].name, name, len) == 0) return i;
    return -1;
}

int cli_main(const char *prog, const char *about, const cli_command *cmds, int argc, char **argv)
{
    log_set_program(prog);
    if (argc < 2) {
        print_help(stderr, prog, about, cmds);
        return EXIT_BAD_INPUT;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        if (!strcmp(name, "help") && argc > 2) {
            for (const cli_command *c = cmds; c->name; c++)
                if (!strcmp(c->name, argv[2])) {
                    print_command_help(stdout, prog, c);
                    return EXIT_OK;
                }
        }
        print_help(stdout, prog, about, cmds);
        return EXIT_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("%s %s\n", prog, FB_VERSION);
        return EXIT_OK;
    }
    const cli_command *cmd = NULL;
    for (const cli_command *c = cmds; c->name; c++)
        if (!strcmp(c->name, name)) cmd = c;
    if (!cmd) {
        log_error("unknown command '%s' (see %s --help)", name, prog);
        return EXIT_BAD_INPUT;
    }

    cli_args a;
    memset(&a, 0, sizeof a);
    a.prog = prog;
    a.cmd = cmd;
    int only_pos = 0;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_pos && !strcmp(arg, "--")) { only_pos = 1; continue; }
        if (!only_pos && (!strcmp(arg, "--help") || !strcmp(arg, "-h"))) {
            print_command_help(stdout, prog, cmd);
            return EXIT_OK;
        }
        if (!only_pos && arg[0] == '-' && arg[1] == '-') {
            const char *nm = arg + 2, *eq = strchr(nm, '=');
            size_t len = eq ? (size_t)(eq - nm) : strlen(nm);
            int k = opt_index(cmd, nm, len);
            if (k < 0) {
                log_error("%s: unknown option --%.*s (see %s %s --help)", cmd->name, (int)len, nm, prog, cmd->name);
                return EXIT_BAD_INPUT;
            }
            if (a.set[k]) {
                log_error("%s: option --%s given twice", cmd->name, cmd->opts[k].name);
                return EXIT_BAD_INPUT;
            }
            a.set[k] = 1;
            if (cmd->opts[k].metavar) {
                if (eq) a.value[k] = eq + 1;
                else if (i + 1 < argc) a.value[k] = argv[++i];
                else {
                    log_error("%s: option --%s needs a value (%s)", cmd->name, cmd->opts[k].name, cmd->opts[k].metavar);
                    return EXIT_BAD_INPUT;
                }
            } else if (eq) {
                log_error("%s: option --%s takes no value", cmd->name, cmd->opts[k].name);
                return EXIT_BAD_INPUT;
            }
            continue;
        }
        if (!only_pos && arg[0] == '-' && arg[1] != '\0') {
            log_error("%s: unknown option %s (see %s %s --help)", cmd->name, arg, prog, cmd->name);
            return EXIT_BAD_INPUT;
        }
        if (a.npos == CLI_MAX_POS) {
            log_error("%s: too many arguments (at most %d)", cmd->name, CLI_MAX_POS);
            return EXIT_BAD_INPUT;
        }
        a.pos[a.npos++] = arg;
    }
    if (a.npos < cmd->min_pos || (cmd->max_pos >= 0 && a.npos > cmd->max_pos)) {
        log_error("%s: expected %s (see %s %s --help)", cmd->name, cmd->usage, prog, cmd->name);
        return EXIT_BAD_INPUT;
    }
    return cmd->run(&a);
}

static int find(const cli_args *a, const char *name)
{
    int k = opt_index(a->cmd, name, strlen(name));
    if (k < 0) {
        log_error("internal error: option --%s is not declared for %s", name, a->cmd->name);
        abort();
    }
    return k;
}

const char *cli_get(const cli_args *a, const char *name)
{
    int k = find(a, name);
    return a->set[k] ? a->value[k] : NULL;
}

int cli_flag(const cli_args *a, const char *name) { return a->set[find(a, name)]; }

int cli_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(x) || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

int cli_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

int cli_choice_index(const char *choices, const char *s)
{
    int idx = 0;
    for (const char *p = choices;; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (strlen(s) == len && !strncmp(s, p, len)) return idx;
        if (!bar) return -1;
        p = bar + 1;
    }
}

int cli_get_double(const cli_args *a, const char *name, double def, double lo, double hi, double *out)
{
    const char *v = cli_get(a, name);
    if (!v) { *out = def; return 0; }
    if (cli_parse_double(v, lo, hi, out)) {
        log_error("%s: --%s expects a number in [%g, %g], got '%s'", a->cmd->name, name, lo, hi, v);
        return -1;
    }
    return 0;
}

int cli_get_long(const cli_args *a, const char *name, long def, long lo, long hi, long *out)
{
    const char *v = cli_get(a, name);
    if (!v) { *out = def; return 0; }
    if (cli_parse_long(v, lo, hi, out)) {
        log_error("%s: --%s expects an integer in [%ld, %ld], got '%s'", a->cmd->name, name, lo, hi, v);
        return -1;
    }
    return 0;
}

int cli_get_choice(const cli_args *a, const char *name, const char *choices, int def)
{
    const char *v = cli_get(a, name);
    if (!v) return def;
    int idx = cli_choice_index(choices, v);
    if (idx < 0) log_error("%s: --%s must be one of %s, got '%s'", a->cmd->name, name, choices, v);
    return idx;
}

char *cli_argv_json(int argc, char **argv)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputc('[', f);
    for (int i = 0, first = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--threads=", 10)) continue;
        if (!strcmp(argv[i], "--threads")) {
            i++;
            continue;
        }
        if (!first) fputs(", ", f);
        first = 0;
        json_string(f, argv[i]);
    }
    fputc(']', f);
    fclose(f);
    return buf;
}
