/* run.c: `ferbench run --model ours`: predictions of a split with trained
 * weights, as the canonical predictions CSV (ARCHITECTURE.md "Formats"), the
 * model_runs / predictions / timings rows (predout.c), and the speed it ran
 * at. With --predictions it imports a baseline's instead (import.c).
 *
 * Timing: ms/image is forward-pass time only (the network's cost); images/s
 * is the whole run's throughput (decoding overlaps compute); peak memory is
 * the process's maximum resident set size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/numfmt.h"
#include "../common/sha256.h"
#include "../common/util.h"
#include "../db/db.h"
#include "../engine/data.h"
#include "../engine/net.h"
#include "ferbench.h"


/* softmax of 7 logits in double; probabilities sum to 1 within rounding. */
static void softmax7(const float *lg, double *p)
{
    double mx = lg[0], s = 0;
    for (int k = 1; k < MODEL_CLASSES; k++)
        if (lg[k] > mx) mx = lg[k];
    for (int k = 0; k < MODEL_CLASSES; k++) s += (p[k] = exp((double)lg[k] - mx));
    for (int k = 0; k < MODEL_CLASSES; k++) p[k] /= s;
}

int cmd_run(const cli_args *a)
{
    static const char *const import_opts[] = {"image-col", "label-col", "pred-col", "score-cols", "score-kind",
                                              "classes", "index-base", "no-header"};
    if (cli_get(a, "predictions")) return cmd_import(a);
    for (size_t i = 0; i < sizeof import_opts / sizeof import_opts[0]; i++)
        if (cli_get(a, import_opts[i]) || cli_flag(a, import_opts[i])) {
            log_error("--%s describes an imported file: it needs --predictions F", import_opts[i]);
            return EXIT_BAD_INPUT;
        }
    const char *model = cli_get(a, "model") ? cli_get(a, "model") : "ours";
    if (strcmp(model, "ours") != 0) {
        log_error("--model %s: only 'ours' runs here; import a baseline's predictions with --predictions F", model);
        return EXIT_BAD_INPUT;
    }
    const char *weights = cli_get(a, "weights"), *out = cli_get(a, "out");
    const char *dbp = cli_get(a, "db") ? cli_get(a, "db") : "db/ferbench.sqlite";
    const char *split = cli_get(a, "split") ? cli_get(a, "split") : "test";
    if (!weights || !out) {
        log_error("--weights W and --out P.csv are required");
        return EXIT_BAD_INPUT;
    }
    model_config cfg;
    char cname[32];
    long batch;
    int cfg_given = cli_get(a, "config") || cli_get(a, "size") || cli_get(a, "width");
    if (model_options(a, "fopm", &cfg, cname, sizeof cname) || cli_get_long(a, "batch", 16, 1, 4096, &batch))
        return EXIT_BAD_INPUT;
    backend *be = device_option(a);
    if (!be) return EXIT_BAD_INPUT;
    const int threads = be->opt.threads;

    char err[2048] = "";
    int rc = EXIT_BAD_INPUT;
    model_params p = {0};
    data_split sp = {0};
    net *t = NULL;
    sqlite3 *db = NULL;
    int *pred = NULL;
    double *prob = NULL;
    char whash[65];
    if (weights_load(weights, &cfg, cfg_given, &p, err, sizeof err)) goto out;
    if (sha256_file(weights, whash)) {
        snprintf(err, sizeof err, "%s: cannot read", weights);
        goto out;
    }
    if (data_open_split(dbp, cli_get(a, "dataset"), split, cli_get(a, "mode"), &sp, err, sizeof err)) goto out;
    if (sp.nclasses > MODEL_CLASSES) {
        snprintf(err, sizeof err, "%s: dataset '%s' has %d classes; the model predicts 7", dbp, sp.dataset,
                 sp.nclasses);
        goto out;
    }
    t = net_create_on(&p, be);
    pred = malloc((size_t)sp.n * sizeof *pred);
    prob = malloc((size_t)sp.n * MODEL_CLASSES * sizeof *prob);
    if (!t || !pred || !prob) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    data_loader_opts lo = {.S = p.cfg.size, .G = model_grid(&p.cfg), .batch = (int)batch, .nthreads = threads,
                           .host_alloc = backend_host_alloc, .host_free = backend_host_free, .host_ctx = be};
    data_loader *l = data_loader_start(&sp, &lo, err, sizeof err);
    if (!l) goto out;
    progress pr;
    progress_start(&pr, "predict", sp.n);
    double t0 = now_seconds(), fwd = 0;
    long done = 0;
    data_batch *b;
    int r = next_batch_prefetched(l, t, 0, &b);
    while (r == 1) {
        double f0 = now_seconds();
        data_batch *next;
        /* (on a device, which computes meanwhile, a wait for the loader's next batch counts in the forward's
         * time only where the loader is the slower) */
        const float *lg = eval_step_prefetching(t, l, b, &next, &r);
        if (!lg) {
            snprintf(err, sizeof err, "forward: %s", net_error(t));
            data_loader_release(l, b);
            data_loader_release(l, next);
            data_loader_stop(l);
            goto out;
        }
        fwd += now_seconds() - f0;
        for (int i = 0; i < b->n; i++) {
            int it = b->items[i];
            double *pp = prob + (size_t)it * MODEL_CLASSES;
            softmax7(lg + (size_t)i * MODEL_CLASSES, pp);
            pred[it] = net_argmax(lg + (size_t)i * MODEL_CLASSES);
        }
        done += b->n;
        data_loader_release(l, b);
        progress_update(&pr, done);
        b = next;
    }
    progress_finish(&pr);
    if (r < 0) {
        snprintf(err, sizeof err, "%s", data_loader_error(l));
        data_loader_stop(l);
        goto out;
    }
    data_loader_stop(l);
    double wall = now_seconds() - t0;
    double ms = 1000.0 * fwd / (double)sp.n, ips = (double)sp.n / wall;
    long peak = (long)be->peak_bytes(be);
    split_predictions res = {.model = "ours", .weights_path = weights, .weights_hash = whash, .pred = pred,
                             .prob = prob, .has_timing = 1, .batch = (int)batch, .ms_per_image = ms,
                             .images_per_s = ips, .peak_bytes = peak, .device = be->desc};
    if (predictions_write_csv(out, &sp, &res, err, sizeof err)) goto out;
    if (db_open(dbp, &db, err, sizeof err) || predictions_record(db, &sp, &res, out, err, sizeof err)) goto out;
    long correct = 0;
    for (int i = 0; i < sp.n; i++) correct += pred[i] == sp.items[i].label;
    char g[96];
    printf("run model=ours dataset=%s split=%s images=%d accuracy=%.6f ms_per_image=%.3f images_per_s=%.2f "
           "peak_bytes=%ld device=%s %s out=%s\n",
           sp.dataset, sp.split, sp.n, (double)correct / sp.n, ms, ips, peak, be->desc, device_summary(t, g, sizeof g),
           out);
    rc = EXIT_OK;
out:
    if (rc != EXIT_OK) log_error("%s", err[0] ? err : "run failed");
    db_close(db);
    net_free(t);
    backend_close(be);
    free(pred);
    free(prob);
    data_split_free(&sp);
    model_params_free(&p);
    return rc;
}
