/* forward_dump: writes seeded weights, a seeded input batch and the C
 * engine's eval-mode forward outputs (tests/test_forward.py compares them
 * with the PyTorch port interop/fopm.py).
 *
 *   forward_dump CONFIG SEED WEIGHTS_OUT INPUT_OUT OUTPUT_OUT
 *
 * Weights: model_params_init_weights(SEED), then BN running_mean ~ U(-0.1,0.1)
 * and running_var ~ U(0.5,1.5) (so eval BN is non-trivial); written with
 * safetensors_write. Input: N=2 x 3 x S x S, U(-1,1), raw float32 LE.
 * Output: logits [N,7], occ [N,1,G,G], heat [N,68,G,G] concatenated, raw
 * float32 LE. Exit 0, or 2 with a message on stderr. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../engine/net.h"
#include "../engine/model.h"
#include "../engine/safetensors.h"

enum { N = 2 };

static int write_raw(const char *path, const float *a, size_t n, const float *b, size_t nb, const float *c,
                     size_t nc)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(a, sizeof(float), n, f) == n;
    if (b) ok = ok && fwrite(b, sizeof(float), nb, f) == nb;
    if (c) ok = ok && fwrite(c, sizeof(float), nc, f) == nc;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: forward_dump CONFIG SEED WEIGHTS_OUT INPUT_OUT OUTPUT_OUT\n");
        return 2;
    }
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(argv[2], &end, 10);
    if (errno || end == argv[2] || *end || argv[2][0] == '-') {
        fprintf(stderr, "forward_dump: bad seed \"%s\"\n", argv[2]);
        return 2;
    }
    model_config cfg;
    model_params p;
    if (model_config_named(argv[1], &cfg) != 0 || model_params_init(&p, &cfg) != 0) {
        fprintf(stderr, "forward_dump: unknown config \"%s\" (fopm, fopm-tiny)\n", argv[1]);
        return 2;
    }
    model_params_init_weights(&p, (uint64_t)seed);
    rng_t r;
    rng_seed(&r, (uint64_t)seed, 1000003u);
    for (int i = 0; i < p.n; i++) {
        const param_entry *e = &p.entries[i];
        float *d = p.data + e->offset;
        if (e->kind == PK_BN_RUNNING_MEAN)
            for (size_t j = 0; j < e->numel; j++) d[j] = (float)(rng_uniform(&r) * 0.2 - 0.1);
        else if (e->kind == PK_BN_RUNNING_VAR)
            for (size_t j = 0; j < e->numel; j++) d[j] = (float)(0.5 + rng_uniform(&r));
    }
    char err[1024];
    if (safetensors_write(argv[3], &p, err, sizeof err) != 0) {
        fprintf(stderr, "forward_dump: %s\n", err);
        model_params_free(&p);
        return 2;
    }
    const int S = cfg.size, G = model_grid(&cfg);
    size_t nx = (size_t)N * 3 * S * S, nl = (size_t)N * MODEL_CLASSES, no = (size_t)N * G * G,
           nh = (size_t)N * MODEL_LANDMARKS * G * G;
    float *x = malloc(nx * sizeof(float)), *lg = malloc(nl * sizeof(float)), *oc = malloc(no * sizeof(float)),
          *ht = malloc(nh * sizeof(float));
    int rc = 2;
    if (!x || !lg || !oc || !ht) {
        fprintf(stderr, "forward_dump: out of memory\n");
        goto out;
    }
    rng_seed(&r, (uint64_t)seed, 1000004u);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(rng_uniform(&r) * 2.0 - 1.0);
    if (write_raw(argv[4], x, nx, NULL, 0, NULL, 0) != 0) {
        fprintf(stderr, "forward_dump: cannot write %s: %s\n", argv[4], strerror(errno));
        goto out;
    }
    if (model_forward_eval(&p, x, N, lg, oc, ht) != 0) {
        fprintf(stderr, "forward_dump: model_forward_eval failed\n");
        goto out;
    }
    if (write_raw(argv[5], lg, nl, oc, no, ht, nh) != 0) {
        fprintf(stderr, "forward_dump: cannot write %s: %s\n", argv[5], strerror(errno));
        goto out;
    }
    printf("forward_dump %s: N=%d S=%d G=%d logits[0] %.6g %.6g\n", argv[1], N, S, G, lg[0], lg[1]);
    rc = 0;
out:
    free(x);
    free(lg);
    free(oc);
    free(ht);
    model_params_free(&p);
    return rc;
}
