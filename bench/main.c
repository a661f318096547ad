/* ferbench: train and run the FOPM model, import baseline predictions, report.
 * This build carries the command-line surface only; the commands arrive with
 * the engine and report issues. */
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
    {"train", "", "train the FOPM + EFFM + FERM model (not yet built)", no_opts, 0, -1, not_yet},
    {"run", "", "predict a split, or import a baseline's predictions (not yet built)", no_opts, 0, -1, not_yet},
    {"bench", "", "inference and training speed (not yet built)", no_opts, 0, -1, not_yet},
    {"report", "", "paper-style tables and an HTML page (not yet built)", no_opts, 0, -1, not_yet},
    {0},
};

int main(int argc, char **argv)
{
    return cli_main("ferbench", "Trains and runs the occlusion-aware FER model and reports benchmarks.", commands,
                    argc, argv);
}
