/* train_dump: drives the C engine through training steps on seeded data so
 * tests/test_train.py can replay them in the PyTorch port.
 *
 *   train_dump CONFIG SEED N STEPS DIR
 *
 * Writes into DIR:
 *   weights0.safetensors  the initial weights (model_params_init_weights(SEED))
 *   data.bin              x [N,3,S,S], occ_t [N,1,G,G] (U(0,1)), heat_t
 *                         [N,68,G,G] (U(0,1)) as float32 LE, then labels [N] int32 LE
 *   step0.bin             training-mode logits, occ, heat of the first forward
 *                         (float32), then lp, lm, ld, total (float32)
 *   gradK.safetensors     d(total)/d(parameters) of step K = 0..STEPS-1 (BN
 *                         running statistics entries hold 0)
 *   losses.bin            total loss of each of the STEPS steps (float32)
 *   weightsK.safetensors  the weights (with running statistics) after STEPS
 *                         AdamW steps (MODEL.md's settings) on the same batch
 * Exit 0, or 2 with a message. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../engine/model.h"
#include "../engine/net.h"
#include "../engine/optim.h"
#include "../engine/safetensors.h"

static int put(FILE *f, const void *a, size_t size, size_t n) { return fwrite(a, size, n, f) == n ? 0 : -1; }

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long seed, n, steps;
    model_config cfg;
    if (argc != 6 || model_config_named(argv[1], &cfg) || parse_long(argv[2], 0, 1L << 30, &seed) ||
        parse_long(argv[3], 1, 256, &n) || parse_long(argv[4], 1, 100, &steps)) {
        fprintf(stderr, "usage: train_dump fopm|fopm-tiny SEED N STEPS DIR\n");
        return 2;
    }
    const char *dir = argv[5];
    model_params p, gp;
    if (model_params_init(&p, &cfg) || model_params_init(&gp, &cfg)) return 2;
    model_params_init_weights(&p, (uint64_t)seed);
    const int S = cfg.size, G = model_grid(&cfg);
    size_t nx = (size_t)n * 3 * S * S, no = (size_t)n * G * G, nh = (size_t)n * MODEL_LANDMARKS * G * G;
    float *x = malloc(nx * sizeof *x), *ot = malloc(no * sizeof *ot), *ht = malloc(nh * sizeof *ht);
    float *m = calloc(p.total, sizeof *m), *v = calloc(p.total, sizeof *v);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    int *labi = malloc((size_t)n * sizeof *labi);
    net *t = net_create(&p);
    char path[4096], err[1024];
    int rc = 2;
    FILE *f = NULL;
    if (!x || !ot || !ht || !m || !v || !lab || !labi || !t) goto out;
    rng_t r;
    rng_seed(&r, (uint64_t)seed, 2000001u);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(rng_uniform(&r) * 4.0 - 2.0);
    for (size_t i = 0; i < no; i++) ot[i] = (float)rng_uniform(&r);
    for (size_t i = 0; i < nh; i++) ht[i] = (float)rng_uniform(&r);
    for (long i = 0; i < n; i++) labi[i] = lab[i] = (int32_t)rng_below(&r, MODEL_CLASSES);

    snprintf(path, sizeof path, "%s/weights0.safetensors", dir);
    if (safetensors_write(path, &p, err, sizeof err)) { fprintf(stderr, "train_dump: %s\n", err); goto out; }
    snprintf(path, sizeof path, "%s/data.bin", dir);
    if (!(f = fopen(path, "wb")) || put(f, x, 4, nx) || put(f, ot, 4, no) || put(f, ht, 4, nh) ||
        put(f, lab, 4, (size_t)n) || fclose(f)) { f = NULL; fprintf(stderr, "train_dump: cannot write %s\n", path); goto out; }
    f = NULL;

    adamw_config ac = adamw_paper();
    float *losses = malloc((size_t)steps * sizeof *losses);
    if (!losses) goto out;
    for (long s = 1; s <= steps; s++) {
        net_losses L;
        if (net_forward(t, x, (int)n, 1) || net_loss(t, ot, ht, labi, &L) || net_backward(t, gp.data)) {
            fprintf(stderr, "train_dump: step %ld: %s\n", s, net_error(t));
            free(losses);
            goto out;
        }
        losses[s - 1] = L.total;
        if (s == 1) {
            snprintf(path, sizeof path, "%s/step0.bin", dir);
            float l4[4] = {L.lp, L.lm, L.ld, L.total};
            if (!(f = fopen(path, "wb")) || put(f, net_logits(t), 4, (size_t)n * MODEL_CLASSES) ||
                put(f, net_occ(t), 4, no) || put(f, net_heat(t), 4, nh) || put(f, l4, 4, 4) || fclose(f)) {
                f = NULL;
                fprintf(stderr, "train_dump: cannot write %s\n", path);
                free(losses);
                goto out;
            }
            f = NULL;
        }
        snprintf(path, sizeof path, "%s/grad%ld.safetensors", dir, s - 1);
        if (safetensors_write(path, &gp, err, sizeof err)) { fprintf(stderr, "train_dump: %s\n", err); free(losses); goto out; }
        adamw_step(&p, gp.data, m, v, s, ac.lr, &ac);
    }
    snprintf(path, sizeof path, "%s/losses.bin", dir);
    if (!(f = fopen(path, "wb")) || put(f, losses, 4, (size_t)steps) || fclose(f)) {
        f = NULL;
        fprintf(stderr, "train_dump: cannot write %s\n", path);
        free(losses);
        goto out;
    }
    f = NULL;
    free(losses);
    snprintf(path, sizeof path, "%s/weightsK.safetensors", dir);
    if (safetensors_write(path, &p, err, sizeof err)) { fprintf(stderr, "train_dump: %s\n", err); goto out; }
    rc = 0;
out:
    if (f) fclose(f);
    net_free(t);
    free(x), free(ot), free(ht), free(m), free(v), free(lab), free(labi);
    model_params_free(&p);
    model_params_free(&gp);
    return rc;
}
