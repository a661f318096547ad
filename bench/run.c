/* run.c: `ferbench run --model ours`: predictions of a split with trained
 * weights, as the canonical predictions CSV (ARCHITECTURE.md "Formats"), the
 * model_runs / predictions / timings rows, and the speed it ran at.
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

static int record(sqlite3 *db, const data_split *sp, const char *weights, const char *whash, const char *out,
                  const int *pred, const double *prob, int batch, double ms, double ips, long peak,
                  const char *device, char *err, size_t errlen)
{
    long long tool_run, run_id;
    sqlite3_stmt *st = NULL;
    char *abs_w = realpath(weights, NULL), *abs_o = realpath(out, NULL);
    int ok = 0;
    if (db_begin(db, err, errlen)) goto done;
    if (db_tool_run_begin(db, "ferbench", FB_VERSION, ferbench_argv_json, &tool_run, err, errlen)) goto done;
    if (db_prepare(db, "INSERT INTO model_runs(tool_run_id, dataset_id, model, weights_path, weights_hash, split, "
                       "predictions_path) SELECT ?, id, 'ours', ?, ?, ?, ? FROM datasets WHERE name = ?", &st, err,
                   errlen))
        goto done;
    sqlite3_bind_int64(st, 1, tool_run);
    sqlite3_bind_text(st, 2, abs_w ? abs_w : weights, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, whash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, sp->split, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, abs_o ? abs_o : out, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, sp->dataset, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(db) != 1) goto sqlfail;
    sqlite3_finalize(st);
    st = NULL;
    run_id = sqlite3_last_insert_rowid(db);
    if (db_prepare(db, "INSERT INTO predictions(model_run_id, image_id, pred, probabilities) VALUES (?, ?, ?, ?)", &st,
                   err, errlen))
        goto done;
    for (int i = 0; i < sp->n; i++) {
        char js[512];
        size_t o = 0;
        js[o++] = '[';
        for (int k = 0; k < MODEL_CLASSES; k++)
            o += (size_t)snprintf(js + o, sizeof js - o, "%s%.17g", k ? "," : "", prob[(size_t)i * MODEL_CLASSES + k]);
        snprintf(js + o, sizeof js - o, "]");
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, sp->items[i].image_id);
        sqlite3_bind_int(st, 3, pred[i]);
        sqlite3_bind_text(st, 4, js, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) goto sqlfail;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (db_prepare(db, "INSERT INTO timings(model_run_id, device, batch, ms_per_image, images_per_s, peak_bytes) "
                       "VALUES (?, ?, ?, ?, ?, ?)", &st, err, errlen))
        goto done;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, device, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, batch);
    sqlite3_bind_double(st, 4, ms > 0 ? ms : 1e-9);
    sqlite3_bind_double(st, 5, ips > 0 ? ips : 1e-9);
    sqlite3_bind_int64(st, 6, peak);
    if (sqlite3_step(st) != SQLITE_DONE) goto sqlfail;
    sqlite3_finalize(st);
    st = NULL;
    if (db_tool_run_end(db, tool_run, 0, err, errlen) || db_commit(db, err, errlen)) goto done;
    ok = 1;
    goto done;
sqlfail:
    snprintf(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
done:
    if (st) sqlite3_finalize(st);
    if (!ok) db_rollback(db);
    free(abs_w);
    free(abs_o);
    return ok ? 0 : -1;
}

static int write_csv(const char *path, const data_split *sp, const int *pred, const double *prob, char *err,
                     size_t errlen)
{
    atomic_file af;
    char nb[32];
    if (atomic_open(&af, path, err, errlen) != 0) return -1;
    FILE *f = af.f;
    fprintf(f, "# ferbench-predictions v1 dataset=%s split=%s model=ours labels=", sp->dataset, sp->split);
    for (int k = 0; k < MODEL_CLASSES; k++) fprintf(f, "%s%s", k ? "," : "", sp->labels[k]);
    fprintf(f, "\nimage,label,pred");
    for (int k = 0; k < MODEL_CLASSES; k++) fprintf(f, ",prob_%s", sp->labels[k]);
    fputc('\n', f);
    for (int i = 0; i < sp->n; i++) {
        csv_string(f, sp->items[i].name);
        fprintf(f, ",%s,%s", sp->labels[sp->items[i].label], sp->labels[pred[i]]);
        for (int k = 0; k < MODEL_CLASSES; k++) {
            fputc(',', f);
            fputs(fmt_double(nb, prob[(size_t)i * MODEL_CLASSES + k]), f);
        }
        fputc('\n', f);
    }
    return atomic_commit(&af, err, errlen);
}

int cmd_run(const cli_args *a)
{
    const char *model = cli_get(a, "model") ? cli_get(a, "model") : "ours";
    if (strcmp(model, "ours") != 0) {
        log_error("--model %s: importing baselines' predictions (--predictions) is not built yet; only 'ours' runs",
                  model);
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
    data_loader_opts lo = {.S = p.cfg.size, .G = model_grid(&p.cfg), .batch = (int)batch, .nthreads = threads};
    data_loader *l = data_loader_start(&sp, &lo, err, sizeof err);
    if (!l) goto out;
    progress pr;
    progress_start(&pr, "predict", sp.n);
    double t0 = now_seconds(), fwd = 0;
    long done = 0;
    data_batch *b;
    int r;
    while ((r = data_loader_next(l, &b)) == 1) {
        double f0 = now_seconds();
        const float *lg = net_forward(t, b->x, b->n, 0) == 0 ? net_logits(t) : NULL; /* waits for a device */
        if (!lg) {
            snprintf(err, sizeof err, "forward: %s", net_error(t));
            data_loader_release(l, b);
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
    if (write_csv(out, &sp, pred, prob, err, sizeof err)) goto out;
    if (db_open(dbp, &db, err, sizeof err) ||
        record(db, &sp, weights, whash, out, pred, prob, (int)batch, ms, ips, peak, be->desc, err, sizeof err))
        goto out;
    long correct = 0;
    for (int i = 0; i < sp.n; i++) correct += pred[i] == sp.items[i].label;
    printf("run model=ours dataset=%s split=%s images=%d accuracy=%.6f ms_per_image=%.3f images_per_s=%.2f "
           "peak_bytes=%ld device=%s out=%s\n",
           sp.dataset, sp.split, sp.n, (double)correct / sp.n, ms, ips, peak, be->desc, out);
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
