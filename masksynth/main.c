/* masksynth: dataset ingestion, splits, pattern assignment and mask rendering.
 * This build carries the command-line surface only; the commands arrive with
 * the masksynth issues (ingestion, rendering). */
#include <stdio.h>

#include "../common/cli.h"
#include "../common/log.h"
#include "../common/util.h"

static int not_yet(const cli_args *a)
{
    log_error("'%s' is not available in this build yet", a->cmd->name);
    return EXIT_BAD_INPUT;
}

static const cli_opt no_opts[] = {{0}};
static const cli_command commands[] = {
    {"init", "", "ingest RAF-DB, FER+ or a CSV list; seeded splits; identity groups (not yet built)", no_opts, 0, -1, not_yet},
    {"patterns", "", "list or preview the mask pattern bank (not yet built)", no_opts, 0, -1, not_yet},
    {"audit", "", "list near-duplicate groups that span training and test (not yet built)", no_opts, 0, -1, not_yet},
    {"verify", "", "check identity-disjoint pattern assignment (not yet built)", no_opts, 0, -1, not_yet},
    {"manifest", "", "write the split and assignment manifest (not yet built)", no_opts, 0, -1, not_yet},
    {"fixture", "", "write a synthetic dataset in official layouts (not yet built)", no_opts, 0, -1, not_yet},
    {0},
};

int main(int argc, char **argv)
{
    return cli_main("masksynth", "Synthesises face masks on RAF-DB and FER+ without leaking mask patterns between "
                    "training and test.", commands, argc, argv);
}
