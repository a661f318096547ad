/* ferbench: train and run the FOPM model, import baseline predictions, report. */
#include <stdlib.h>

#include "../common/cli.h"
#include "ferbench.h"

int main(int argc, char **argv)
{
    cpu_pin_blas_kernels(argv); /* same bits on every AVX2 machine (backend.h) */
    char *args = cli_argv_json(argc, argv);
    ferbench_argv_json = args;
    int rc = cli_main("ferbench", "Trains and runs the occlusion-aware FER model and reports benchmarks.",
                      ferbench_commands, argc, argv);
    free(args);
    return rc;
}
