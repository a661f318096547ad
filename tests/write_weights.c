/* write_weights: writes or reads a weights file with the engine's parameter
 * table (tests/test_interop.py drives it against the PyTorch port).
 *
 *   write_weights CONFIG SEED OUT.safetensors
 *       model_params_init + model_params_init_weights(SEED) + safetensors_write
 *   write_weights --read CONFIG FILE [OUT.safetensors]
 *       model_params_init + safetensors_read; prints "ok N tensors"; with OUT,
 *       writes what was read back out (round-trip checks).
 * CONFIG is "fopm" or "fopm-tiny". Exit 0, or 2 with a message on stderr. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/model.h"
#include "../engine/safetensors.h"

static int usage(void)
{
    fprintf(stderr, "usage: write_weights CONFIG SEED OUT.safetensors\n"
                    "       write_weights --read CONFIG FILE [OUT.safetensors]\n");
    return 2;
}

static int config(const char *name, model_params *p)
{
    model_config c;
    if (model_config_named(name, &c) != 0) {
        fprintf(stderr, "write_weights: unknown config \"%s\" (fopm, fopm-tiny)\n", name);
        return -1;
    }
    if (model_params_init(p, &c) != 0) {
        fprintf(stderr, "write_weights: config \"%s\" rejected\n", name);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[1024];
    model_params p;
    if (argc >= 2 && !strcmp(argv[1], "--read")) {
        if (argc != 4 && argc != 5) return usage();
        if (config(argv[2], &p) != 0) return 2;
        if (safetensors_read(argv[3], &p, err, sizeof err) != 0) {
            fprintf(stderr, "write_weights: %s\n", err);
            model_params_free(&p);
            return 2;
        }
        if (argc == 5 && safetensors_write(argv[4], &p, err, sizeof err) != 0) {
            fprintf(stderr, "write_weights: %s\n", err);
            model_params_free(&p);
            return 2;
        }
        printf("ok %d tensors\n", p.n);
        model_params_free(&p);
        return 0;
    }
    if (argc != 4) return usage();
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(argv[2], &end, 10);
    if (errno || end == argv[2] || *end || argv[2][0] == '-') {
        fprintf(stderr, "write_weights: bad seed \"%s\"\n", argv[2]);
        return 2;
    }
    if (config(argv[1], &p) != 0) return 2;
    model_params_init_weights(&p, (uint64_t)seed);
    if (safetensors_write(argv[3], &p, err, sizeof err) != 0) {
        fprintf(stderr, "write_weights: %s\n", err);
        model_params_free(&p);
        return 2;
    }
    printf("wrote %s: %d tensors, %zu parameters\n", argv[3], p.n, model_count_params(&p, NULL));
    model_params_free(&p);
    return 0;
}
