/* bench_ops: timing harness of the CPU ops (not part of the test suite).
 *
 *   bench_ops [layers|fopm-layers|tiny-layers|model|fopm|tiny|all] [THREADS...]     (default: all 1 2)
 *
 * layers: conv2d forward and forward+backward (dW, and dx except for the
 * 3-channel first layers, as in training) at the fopm shapes (batch 16) and
 * at every conv shape of fopm-tiny (batch 16), GFLOPS at each thread count.
 * A "fopm-tiny conv total" row sums the fopm-tiny layers weighted by how often
 * each shape occurs in the network.
 * model: the whole network: fopm eval forward at batch 16 (s/image) ("fopm"
 * alone), fopm-tiny training step (forward + losses + backward) at batch 16
 * ("tiny" alone).
 * Each number is the best of several runs (the machine is shared and noisy).
 * BENCH_NO_WINOGRAD=1 in the environment: ops_set_winograd(0) (im2col only);
 * BENCH_WINOGRAD=MODE: ops_set_winograd(MODE) (2: F(2x2,3x3) only, 3: F(4x4,3x3) only).
 * Built with -DBENCH_BASELINE it drives the single-threaded ops of the first
 * commit, where only OpenBLAS threads (openblas_set_num_threads). */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/rng.h"
#include "../engine/model.h"
#include "../engine/net.h"
#include "../engine/ops.h"

static void set_threads(int n)
{
#ifdef BENCH_BASELINE
    openblas_set_num_threads(n);
#else
    ops_set_threads(n);
    if (getenv("BENCH_WINOGRAD"))
        ops_set_winograd(atoi(getenv("BENCH_WINOGRAD")));
    if (getenv("BENCH_NO_WINOGRAD"))
        ops_set_winograd(0);
#endif
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *randv(rng_t *r, size_t n, double lo, double hi)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    if (!v) {
        fprintf(stderr, "bench_ops: out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * rng_uniform(r));
    return v;
}

typedef struct {
    const char *name;
    int c, oc, h, k, s, count; /* count: occurrences in the network (fopm-tiny total) */
} conv_shape;

/* fopm (224, width 1): the shapes named in the engine issue, and the heaviest stem layer */
static const conv_shape FOPM[] = {
    {"3->64 s2 @224", 3, 64, 224, 3, 2, 1},      {"64->64 @112", 64, 64, 112, 3, 1, 1},
    {"64->128 @112", 64, 128, 112, 3, 1, 1},     {"128->128 @112", 128, 128, 112, 3, 1, 1},
    {"128->256 @56", 128, 256, 56, 3, 1, 1},     {"256->256 @56", 256, 256, 56, 3, 1, 1},
    {"256->512 1x1 @56", 256, 512, 56, 1, 1, 1}, {"512->64 1x1 @56", 512, 64, 56, 1, 1, 1},
    {"256->128 s2 @56", 256, 128, 56, 3, 2, 1},  {"224->224 @14", 224, 224, 14, 3, 1, 1},
};

/* fopm-tiny (64, width 0.125): every conv of MODEL.md, with its multiplicity */
static const conv_shape TINY[] = {
    {"3->8 s2 @64", 3, 8, 64, 3, 2, 1},          {"8->8 @32", 8, 8, 32, 3, 1, 1},
    {"8->16 @32", 8, 16, 32, 3, 1, 1},           {"16->16 @32", 16, 16, 32, 3, 1, 1},
    {"16->32 @16", 16, 32, 16, 3, 1, 1},         {"32->32 @16", 32, 32, 16, 3, 1, 1},
    {"32->64 1x1 @16", 32, 64, 16, 1, 1, 1},     {"64->8 1x1 @16", 64, 8, 16, 1, 1, 1},
    {"8->8 @16", 8, 8, 16, 3, 1, 3},             {"8->16 @8", 8, 16, 8, 3, 1, 1},
    {"16->16 @8", 16, 16, 8, 3, 1, 3},           {"16->32 @4", 16, 32, 4, 3, 1, 1},
    {"32->32 @4", 32, 32, 4, 3, 1, 2},           {"48->16 @8", 48, 16, 8, 3, 1, 1},
    {"24->8 @16", 24, 8, 16, 3, 1, 1},           {"8->1 1x1 @16", 8, 1, 16, 1, 1, 1},
    {"8->68 1x1 @16", 8, 68, 16, 1, 1, 1},       {"64->32 1x1 @16", 64, 32, 16, 1, 1, 1},
    {"32->16 @8 (quadrant)", 32, 16, 8, 3, 1, 4}, {"17->1 1x1 @8", 17, 1, 8, 1, 1, 4},
    {"32->16 1x1 @16", 32, 16, 16, 1, 1, 1},     {"32->16 s2 @16", 32, 16, 16, 3, 2, 1},
    {"16->28 s2 @8", 16, 28, 8, 3, 2, 1},        {"28->28 @4", 28, 28, 4, 3, 1, 6},
    {"28->32 @4", 28, 32, 4, 3, 1, 1},           {"32->64 1x1 @4", 32, 64, 4, 1, 1, 1},
};

enum { BATCH = 16, MAXT = 8 };
/* Multiply-adds x 2 of fopm's convolutions per 224x224 image (what PyTorch's ~123 GFLOPS refers to) */
#define FOPM_GFLOP_PER_IMAGE 21.35

/* Best time of `reps` runs after one warm-up. */
static double time_conv(const conv_shape *cs, int bwd, int reps, rng_t *r)
{
    shape4 xs = {BATCH, cs->c, cs->h, cs->h};
    shape4 ys = conv2d_out_shape(xs, cs->oc, cs->k, cs->s);
    size_t nx = shape4_numel(xs), ny = shape4_numel(ys), nw = (size_t)cs->oc * cs->c * cs->k * cs->k;
    size_t ns = conv2d_scratch_floats(xs, cs->k, cs->s);
    float *x = randv(r, nx, -1, 1), *w = randv(r, nw, -0.1, 0.1), *y = randv(r, ny, -1, 1);
    float *dy = randv(r, ny, -1, 1), *dx = malloc(nx * sizeof(float)), *dw = calloc(nw, sizeof(float));
    float *scratch = malloc((ns ? ns : 1) * sizeof(float));
    int want_dx = cs->c != 3;
    double best = 1e30;
    for (int i = 0; i <= reps; i++) {
        double t0 = now();
        conv2d_fwd(x, xs, w, NULL, cs->oc, cs->k, cs->s, y, scratch);
        if (bwd)
            conv2d_bwd(x, xs, w, cs->oc, cs->k, cs->s, dy, want_dx ? dx : NULL, dw, NULL, scratch);
        double t = now() - t0;
        if (i > 0 && t < best)
            best = t;
    }
    free(x), free(w), free(y), free(dy), free(dx), free(dw), free(scratch);
    return best;
}

static double conv_flops(const conv_shape *cs, int bwd)
{
    shape4 xs = {BATCH, cs->c, cs->h, cs->h};
    shape4 ys = conv2d_out_shape(xs, cs->oc, cs->k, cs->s);
    double f = 2.0 * BATCH * cs->oc * (double)cs->c * cs->k * cs->k * ys.h * ys.w;
    if (!bwd)
        return f;
    return f * (cs->c != 3 ? 3.0 : 2.0);
}

static void bench_layers(const char *title, const conv_shape *tab, int n, const int *th, int nth, int tiny_total)
{
    rng_t r;
    rng_seed(&r, 7, 1);
    printf("\n%s, batch %d: GFLOPS (ms)\n%-22s", title, BATCH, "layer");
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < nth; t++) {
            char h[32];
            snprintf(h, sizeof h, "%s %dT", b ? "fwd+bwd" : "fwd", th[t]);
            printf(" %16s", h);
        }
    printf("\n");
    double tot_t[2][MAXT] = {{0}}, tot_f[2] = {0};
    for (int i = 0; i < n; i++) {
        const conv_shape *cs = &tab[i];
        printf("%-22s", cs->name);
        for (int b = 0; b < 2; b++) {
            double f = conv_flops(cs, b);
            int reps = f > 20e9 ? 2 : f > 2e9 ? 3 : f > 1e8 ? 8 : 30;
            tot_f[b] += f * cs->count;
            for (int t = 0; t < nth; t++) {
                set_threads(th[t]);
                double s = time_conv(cs, b, reps, &r);
                tot_t[b][t] += s * cs->count;
                printf(" %7.1f (%6.2f)", f / s * 1e-9, s * 1e3);
            }
        }
        printf("\n");
        fflush(stdout);
    }
    if (tiny_total) {
        printf("%-22s", "fopm-tiny conv total");
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < nth; t++)
                printf(" %7.1f (%6.2f)", tot_f[b] / tot_t[b][t] * 1e-9, tot_t[b][t] * 1e3);
        printf("\n");
    }
}

static int init_model(model_params *p, const char *cfgname)
{
    model_config cfg;
    if (model_config_named(cfgname, &cfg) != 0 || model_params_init(p, &cfg) != 0)
        return -1;
    model_params_init_weights(p, 11);
    return 0;
}

static void bench_fopm(const int *th, int nth)
{
    rng_t r;
    rng_seed(&r, 7, 2);
    model_params p;
    if (init_model(&p, "fopm") != 0) {
        fprintf(stderr, "bench_ops: fopm config\n");
        exit(2);
    }
    int S = p.cfg.size, G = model_grid(&p.cfg);
    float *x = randv(&r, (size_t)BATCH * 3 * S * S, -1, 1);
    float *lg = malloc((size_t)BATCH * MODEL_CLASSES * sizeof(float));
    float *occ = malloc((size_t)BATCH * G * G * sizeof(float));
    float *heat = malloc((size_t)BATCH * MODEL_LANDMARKS * G * G * sizeof(float));
    printf("\nfopm eval forward, batch %d: one-shot model_forward_eval (allocates its activations each call), "
           "and net_forward(train=0) on a kept net (best of 3 after a warm-up):\n",
           BATCH);
    net *nt = net_create(&p);
    if (!nt) {
        fprintf(stderr, "bench_ops: net_create failed\n");
        exit(2);
    }
    for (int t = 0; t < nth; t++) {
        set_threads(th[t]);
        double t0 = now();
        if (model_forward_eval(&p, x, BATCH, lg, occ, heat) != 0) {
            fprintf(stderr, "bench_ops: fopm forward failed\n");
            exit(2);
        }
        double one = now() - t0, best = 1e30;
        for (int i = 0; i < 4; i++) {
            t0 = now();
            if (net_forward(nt, x, BATCH, 0) != 0) {
                fprintf(stderr, "bench_ops: fopm forward failed: %s\n", net_error(nt));
                exit(2);
            }
            double s = now() - t0;
            if (i > 0 && s < best)
                best = s;
        }
        printf("  %d thread(s): one-shot %.3f s/batch (%.4f s/image); kept net %.3f s/batch, %.4f s/image, %.1f GFLOPS\n",
               th[t], one, one / BATCH, best, best / BATCH, FOPM_GFLOP_PER_IMAGE * BATCH / best);
        fflush(stdout);
    }
    net_free(nt);
    free(x), free(lg), free(occ), free(heat);
    model_params_free(&p);
}

static void bench_tiny(const int *th, int nth)
{
    rng_t r;
    rng_seed(&r, 7, 3);
    model_params p;
    if (init_model(&p, "fopm-tiny") != 0) {
        fprintf(stderr, "bench_ops: fopm-tiny config\n");
        exit(2);
    }
    int S = p.cfg.size, G = model_grid(&p.cfg);
    float *x = randv(&r, (size_t)BATCH * 3 * S * S, -1, 1);
    float *occ_t = randv(&r, (size_t)BATCH * G * G, 0, 1);
    float *heat_t = randv(&r, (size_t)BATCH * MODEL_LANDMARKS * G * G, 0, 1);
    int labels[BATCH];
    for (int i = 0; i < BATCH; i++)
        labels[i] = i % MODEL_CLASSES;
    float *grad = malloc(p.total * sizeof(float));
    net *nt = net_create(&p);
    if (!nt || !grad) {
        fprintf(stderr, "bench_ops: net_create failed\n");
        exit(2);
    }
    printf("\nfopm-tiny training step (forward + losses + backward), batch %d (net.c):\n", BATCH);
    for (int t = 0; t < nth; t++) {
        set_threads(th[t]);
        double best = 1e30, fsum = 0.0;
        int reps = 20;
        for (int i = 0; i <= reps; i++) {
            double t0 = now();
            net_losses L;
            if (net_forward(nt, x, BATCH, 1) != 0 || net_loss(nt, occ_t, heat_t, labels, &L) != 0) {
                fprintf(stderr, "bench_ops: tiny forward failed: %s\n", net_error(nt));
                exit(2);
            }
            double t1 = now();
            if (net_backward(nt, grad) != 0) {
                fprintf(stderr, "bench_ops: tiny backward failed: %s\n", net_error(nt));
                exit(2);
            }
            double s = now() - t0;
            if (i > 0 && s < best)
                best = s, fsum = t1 - t0;
        }
        printf("  %d thread(s): %.2f ms/step (forward+loss %.2f ms)\n", th[t], best * 1e3, fsum * 1e3);
        fflush(stdout);
    }
    net_free(nt);
    free(x), free(occ_t), free(heat_t), free(grad);
    model_params_free(&p);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    int th[MAXT] = {1, 2}, nth = 2;
    if (argc > 2) {
        nth = 0;
        for (int i = 2; i < argc && nth < MAXT; i++)
            th[nth++] = atoi(argv[i]);
    }
    static const char *modes[] = {"layers", "fopm-layers", "tiny-layers", "model", "fopm", "tiny", "all"};
    int ok = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        ok |= !strcmp(what, modes[i]);
    if (!ok) {
        fprintf(stderr, "usage: bench_ops [layers|fopm-layers|tiny-layers|model|fopm|tiny|all] [THREADS...]\n");
        return 2;
    }
    if (!strcmp(what, "layers") || !strcmp(what, "all") || !strcmp(what, "fopm-layers"))
        bench_layers("fopm conv shapes", FOPM, (int)(sizeof FOPM / sizeof FOPM[0]), th, nth, 0);
    if (!strcmp(what, "layers") || !strcmp(what, "all") || !strcmp(what, "tiny-layers"))
        bench_layers("fopm-tiny conv shapes", TINY, (int)(sizeof TINY / sizeof TINY[0]), th, nth, 1);
    if (!strcmp(what, "model") || !strcmp(what, "all") || !strcmp(what, "fopm"))
        bench_fopm(th, nth);
    if (!strcmp(what, "model") || !strcmp(what, "all") || !strcmp(what, "tiny"))
        bench_tiny(th, nth);
    return 0;
}
