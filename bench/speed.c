/* speed.c: `ferbench bench`: the engine's inference and training-step speed
 * on seeded synthetic inputs, one line per (mode, batch), so scripts can set
 * it beside PyTorch (bench/perf/engine.sh). Median over --iters timed
 * repetitions after --warmup untimed ones; --profile adds a per-op table
 * (net_profile) from --iters further repetitions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/rng.h"
#include "../common/util.h"
#include "../engine/net.h"
#include "../engine/optim.h"
#include "ferbench.h"


static double median_of(double *ts, int n)
{
    qsort(ts, (size_t)n, sizeof *ts, cmp_double);
    return n % 2 ? ts[n / 2] : 0.5 * (ts[n / 2 - 1] + ts[n / 2]);
}

/* One line per (pass, op kind) of the profiled repetitions, largest first:
 * time per repetition and share of the profiled total. */
static void print_profile(net *t, int train, int n, int iters)
{
    net_prof_row rows[64];
    int nr = net_profile_rows(t, rows, 64);
    double sum = 0;
    for (int i = 0; i < nr; i++) sum += rows[i].seconds;
    for (int i = 0; i < nr; i++) /* selection sort by time: a few dozen rows */
        for (int j = i + 1; j < nr; j++)
            if (rows[j].seconds > rows[i].seconds) {
                net_prof_row r = rows[i];
                rows[i] = rows[j], rows[j] = r;
            }
    for (int i = 0; i < nr; i++)
        printf("profile mode=%s batch=%d pass=%s op=\"%s\" calls=%ld ms=%.3f share=%.1f%%\n", train ? "train" : "infer",
               n, rows[i].pass, rows[i].op, rows[i].calls / iters, 1000.0 * rows[i].seconds / iters,
               sum > 0 ? 100.0 * rows[i].seconds / sum : 0.0);
    printf("profile mode=%s batch=%d pass=all op=\"total\" ms=%.3f (each op synchronised: compare with median_s)\n",
           train ? "train" : "infer", n, 1000.0 * sum / iters);
}

/* Median seconds of one inference (train=0) or training step (train=1) at
 * batch n on be, and the peak memory: on a GPU, the most the backend had
 * allocated during this measurement (weights, activations, gradients,
 * optimizer state, workspaces; as PyTorch's max_memory_allocated), on the
 * CPU the process's peak RSS so far. A timed step ends
 * when its results are back on the host (logits; the losses for training),
 * so a device's asynchronous work is inside the time. */
static void print_bench(backend *be, net *t, const char *cname, int train, int n, double med, long peak)
{
    const char *gs = net_graphs_state(t);
    if (!strncmp(gs, "failed", 6)) printf("# graphs %s\n", gs);
    char g[96];
    printf("bench device=%s threads=%d precision=%s deterministic=%d config=%s mode=%s batch=%d "
           "median_s=%.6f ms_per_image=%.3f images_per_s=%.3f peak_bytes=%ld %s desc=\"%s\"\n",
           be->name, be->opt.threads, precision_name(be->opt.prec), be->opt.deterministic, cname,
           train ? "train" : "infer", n, med, 1000.0 * med / n, n / med, peak, device_summary(t, g, sizeof g),
           be->desc);
    fflush(stdout);
}

static int time_mode(model_params *p, const char *cname, backend *be, int n, int train, int warmup, int iters,
                     int profile, char *err, size_t errlen)
{
    const int S = p->cfg.size, G = model_grid(&p->cfg);
    size_t nx = (size_t)n * 3 * S * S, no = (size_t)n * G * G, nh = no * MODEL_LANDMARKS;
    /* the inputs in the backend's upload memory, as the data loader's batches */
    float *x = be->host_alloc(be, nx * sizeof *x), *ot = be->host_alloc(be, no * sizeof *ot);
    float *ht = be->host_alloc(be, nh * sizeof *ht);
    int *lab = be->host_alloc(be, (size_t)n * sizeof *lab);
    double *ts = malloc((size_t)iters * sizeof *ts);
    be->reset_peak(be);
    net *t = net_create_on(p, be);
    int rc = -1;
    if (!x || !ot || !ht || !lab || !ts || !t) {
        snprintf(err, errlen, "out of memory at batch %d", n);
        goto out;
    }
    rng_t r;
    rng_seed(&r, 1, 0);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(rng_uniform(&r) * 4 - 2);
    for (size_t i = 0; i < no; i++) ot[i] = (float)rng_uniform(&r);
    for (size_t i = 0; i < nh; i++) ht[i] = (float)rng_uniform(&r);
    for (int i = 0; i < n; i++) lab[i] = (int)rng_below(&r, MODEL_CLASSES);
    adamw_config ac = adamw_paper();
    const int total = profile ? 2 * iters : iters;
    for (int it = -warmup; it < total; it++) {
        if (it == iters) { /* the measurement is done: profiled repetitions follow */
            print_bench(be, t, cname, train, n, median_of(ts, iters), (long)be->peak_bytes(be));
            net_profile(t, 1);
        }
        double t0 = now_seconds();
        net_losses L;
        /* the next step's inputs (here the same buffers) move to the device while this one computes, as
         * `ferbench train` and `run` overlap a loader batch's copy with the step before it */
        int bad = net_forward(t, x, n, train) != 0 || (train && net_loss(t, ot, ht, lab, &L) != 0);
        if (!bad) {
            net_prefetch(t, x, train ? ot : NULL, train ? ht : NULL, train ? lab : NULL, n);
            bad = train ? net_backward(t, NULL) != 0 || net_step(t, it + warmup + 1, ac.lr, &ac) != 0
                        : !net_logits(t);
        }
        if (bad) {
            snprintf(err, errlen, "batch %d: %s", n, net_error(t));
            goto out;
        }
        if (train) be->sync(be); /* the step's AdamW */
        if (it >= 0 && it < iters) ts[it] = now_seconds() - t0;
    }
    if (!profile) print_bench(be, t, cname, train, n, median_of(ts, iters), (long)be->peak_bytes(be));
    else print_profile(t, train, n, iters);
    rc = 0;
out:
    net_free(t);
    backend_host_free(be, x), backend_host_free(be, ot), backend_host_free(be, ht), backend_host_free(be, lab);
    free(ts);
    return rc;
}

int cmd_bench(const cli_args *a)
{
    model_config cfg;
    char cname[32];
    long warmup, iters;
    int mode = cli_get_choice(a, "mode", "infer|train|both", 2);
    if (mode < 0 || model_options(a, "fopm", &cfg, cname, sizeof cname) ||
        cli_get_long(a, "warmup", 1, 0, 1000, &warmup) || cli_get_long(a, "iters", 5, 1, 10000, &iters))
        return EXIT_BAD_INPUT;
    const char *bl = cli_get(a, "batch") ? cli_get(a, "batch") : "16";
    int batches[16], nbatch = 0;
    for (const char *s = bl; *s;) {
        char *end;
        long b = strtol(s, &end, 10);
        if (end == s || b < 1 || b > 4096 || nbatch == 16 || (*end && *end != ',')) {
            log_error("--batch: expected a comma-separated list of batch sizes (1..4096), got '%s'", bl);
            return EXIT_BAD_INPUT;
        }
        batches[nbatch++] = (int)b;
        s = *end ? end + 1 : end;
    }
    const int profile = cli_flag(a, "profile");
    backend *be = device_option(a);
    if (!be) return EXIT_BAD_INPUT;
    model_params p;
    if (model_params_init(&p, &cfg) != 0) {
        backend_close(be);
        return EXIT_BAD_INPUT;
    }
    model_params_init_weights(&p, 1);
    char err[512];
    for (int bi = 0; bi < nbatch; bi++)
        for (int tr = 0; tr < 2; tr++) {
            if ((tr == 0 && mode == 1) || (tr == 1 && mode == 0)) continue;
            if (time_mode(&p, cname, be, batches[bi], tr, (int)warmup, (int)iters, profile, err, sizeof err) != 0) {
                log_error("%s", err);
                model_params_free(&p);
                backend_close(be);
                return EXIT_BAD_INPUT;
            }
        }
    model_params_free(&p);
    backend_close(be);
    return EXIT_OK;
}
