/* train.c: `ferbench train`, MODEL.md's training protocol on the CPU engine.
 *
 * Per epoch: the training split in the seeded order with seeded flips (drop
 * the last partial batch), one AdamW step per batch at lr * gamma^(epoch /
 * lr_step), then validation accuracy in eval mode. After each epoch, in this
 * order: best.safetensors + best.ckpt.safetensors when validation improved,
 * last.ckpt.safetensors (weights, AdamW moments, state), the epoch's row in
 * train_epochs, and log.csv. Every file is written to a temporary name and
 * renamed, so a killed run leaves the previous epoch's checkpoint, and
 * `--resume` continues from it with the same results as an uninterrupted run
 * (batches and flips are functions of the seed and epoch only). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../common/numfmt.h"
#include "../common/util.h"
#include "../db/db.h"
#include "../engine/data.h"
#include "../engine/net.h"
#include "../engine/optim.h"
#include "../engine/safetensors.h"
#include "ferbench.h"


typedef struct {
    model_config cfg;
    char config_name[32];
    long epochs, batch, lr_step, patience, seed;
    double lr, gamma, wd;
    const char *db, *dataset, *mode, *out;
    int resume, threads;
    backend *be;
} train_opts;

static int parse_opts(const cli_args *a, train_opts *o)
{
    memset(o, 0, sizeof *o);
    const char *model = cli_get(a, "model");
    if (model && strcmp(model, "ours") != 0) {
        log_error("--model: only 'ours' (MODEL.md's network) can be trained here; baselines are imported with "
                  "`ferbench run --predictions`");
        return -1;
    }
    if (model_options(a, "fopm", &o->cfg, o->config_name, sizeof o->config_name)) return -1;
    if (cli_get_long(a, "epochs", 300, 1, 100000, &o->epochs) || cli_get_long(a, "batch", 16, 1, 4096, &o->batch) ||
        cli_get_long(a, "lr-step", 6, 1, 100000, &o->lr_step) ||
        cli_get_long(a, "patience", 20, 1, 100000, &o->patience) ||
        cli_get_long(a, "seed", 42, 0, 4294967295L, &o->seed) || cli_get_double(a, "lr", 0.002, 1e-12, 10, &o->lr) ||
        cli_get_double(a, "lr-gamma", 0.2, 1e-6, 1, &o->gamma) ||
        cli_get_double(a, "weight-decay", 1e-4, 0, 1, &o->wd) || !(o->be = device_option(a)))
        return -1;
    o->threads = o->be->opt.threads;
    o->db = cli_get(a, "db") ? cli_get(a, "db") : "db/ferbench.sqlite";
    o->dataset = cli_get(a, "dataset");
    o->mode = cli_get(a, "mode");
    o->out = cli_get(a, "out");
    o->resume = cli_flag(a, "resume");
    if (!o->out) {
        log_error("--out DIR is required (checkpoints and log.csv go there)");
        return -1;
    }
    return 0;
}

/* The options a resumed run must repeat (epochs and patience may change,
 * and so may --device, --precision and --threads: a run interrupted on a GPU
 * can finish on the CPU; it is then the same protocol but not the same
 * floating-point trajectory as an uninterrupted run). */
static void fingerprint(const train_opts *o, const data_split *tr, char *buf, size_t len)
{
    snprintf(buf, len,
             "{\"config\":\"%s\",\"size\":%d,\"width\":%.17g,\"batch\":%ld,\"lr\":%.17g,\"lr_step\":%ld,"
             "\"lr_gamma\":%.17g,\"weight_decay\":%.17g,\"seed\":%ld,\"dataset\":\"%s\",\"mode\":\"%s:%lld\"}",
             o->config_name, o->cfg.size, o->cfg.width, o->batch, o->lr, o->lr_step, o->gamma, o->wd, o->seed,
             tr->dataset, tr->mode, tr->mode_seed);
}

/* The training log on stdout, one line at a time (people and CI logs follow it). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static double epoch_lr(const train_opts *o, int epoch) { return o->lr * pow(o->gamma, (double)(epoch / o->lr_step)); }

static int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Accuracy of the current weights on split s (eval mode). */
static int validate(net *t, const data_split *s, const train_opts *o, double *acc, char *err, size_t errlen)
{
    data_loader_opts lo = {.S = o->cfg.size, .G = model_grid(&o->cfg), .batch = (int)o->batch,
                           .seed = (uint64_t)o->seed, .nthreads = o->threads, /* split order, no flips, no targets */
                           .host_alloc = backend_host_alloc, .host_free = backend_host_free, .host_ctx = o->be};
    data_loader *l = data_loader_start(s, &lo, err, errlen);
    if (!l) return -1;
    long correct = 0, seen = 0;
    data_batch *b;
    int r = next_batch_prefetched(l, t, 0, &b);
    while (r == 1) {
        data_batch *next;
        const float *lg = eval_step_prefetching(t, l, b, &next, &r);
        if (!lg) {
            snprintf(err, errlen, "validation forward: %s", net_error(t));
            data_loader_release(l, b);
            data_loader_release(l, next);
            r = -1;
            break;
        }
        for (int i = 0; i < b->n; i++) correct += net_argmax(lg + (size_t)i * MODEL_CLASSES) == b->labels[i];
        seen += b->n;
        data_loader_release(l, b);
        b = next;
    }
    if (r < 0 && !err[0]) snprintf(err, errlen, "%s", data_loader_error(l));
    data_loader_stop(l);
    if (r < 0) return -1;
    *acc = seen ? (double)correct / (double)seen : 0.0;
    return 0;
}

/* log.csv from the database rows of this run (written whole, then renamed). */
static int write_log_csv(sqlite3 *db, long long run_id, const train_opts *o, char *err, size_t errlen)
{
    char path[4096], nb[32];
    snprintf(path, sizeof path, "%s/log.csv", o->out);
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT epoch, lp, lm, ld, total, val_accuracy, seconds FROM train_epochs "
                       "WHERE train_run_id = ? ORDER BY epoch", &st, err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    atomic_file af;
    if (atomic_open(&af, path, err, errlen) != 0) {
        sqlite3_finalize(st);
        return -1;
    }
    fprintf(af.f, "epoch,lr,lp,lm,ld,total,val_accuracy,seconds\n");
    while (sqlite3_step(st) == SQLITE_ROW) {
        int e = sqlite3_column_int(st, 0);
        fprintf(af.f, "%d,", e);
        fputs(fmt_double(nb, epoch_lr(o, e)), af.f);
        for (int c = 1; c <= 6; c++) {
            fputc(',', af.f);
            fputs(fmt_double(nb, sqlite3_column_double(st, c)), af.f);
        }
        fputc('\n', af.f);
    }
    sqlite3_finalize(st);
    return atomic_commit(&af, err, errlen);
}

static int record_epoch(sqlite3 *db, long long run_id, int epoch, const net_losses *L, double acc, double secs,
                        int best_epoch, char *err, size_t errlen)
{
    if (db_begin(db, err, errlen)) return -1;
    sqlite3_stmt *st;
    if (db_prepare(db, "INSERT OR REPLACE INTO train_epochs(train_run_id, epoch, lp, lm, ld, total, val_accuracy, "
                       "seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &st, err, errlen)) {
        db_rollback(db);
        return -1;
    }
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, epoch);
    sqlite3_bind_double(st, 3, L->lp);
    sqlite3_bind_double(st, 4, L->lm);
    sqlite3_bind_double(st, 5, L->ld);
    sqlite3_bind_double(st, 6, L->total);
    sqlite3_bind_double(st, 7, acc);
    sqlite3_bind_double(st, 8, secs);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE && best_epoch >= 0) {
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE train_runs SET best_epoch = %d WHERE id = %lld", best_epoch, run_id);
        if (db_exec(db, sql, err, errlen)) rc = SQLITE_ERROR;
    } else if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
    }
    if (rc != SQLITE_DONE || db_commit(db, err, errlen)) {
        db_rollback(db);
        return -1;
    }
    return 0;
}

static int new_train_run(sqlite3 *db, long long tool_run, const train_opts *o, const data_split *tr,
                         const data_split *va, long long *run_id, char *err, size_t errlen)
{
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\"model\":\"ours\",\"config\":\"%s\",\"size\":%d,\"width\":%.17g,\"epochs\":%ld,\"batch\":%ld,"
             "\"optimizer\":\"adamw\",\"lr\":%.17g,\"betas\":[0.9,0.99],\"eps\":1e-08,\"weight_decay\":%.17g,"
             "\"lr_step\":%ld,\"lr_gamma\":%.17g,\"patience\":%ld,\"seed\":%ld,\"dataset\":\"%s\",\"mode\":\"%s\","
             "\"mode_seed\":%lld,\"train_images\":%d,\"val_images\":%d,\"loss\":\"lp + 0.6 lm + 0.4 ld\","
             "\"device\":\"%s\",\"precision\":\"%s\",\"deterministic\":%s}",
             o->config_name, o->cfg.size, o->cfg.width, o->epochs, o->batch, o->lr, o->wd, o->lr_step, o->gamma,
             o->patience, o->seed, tr->dataset, tr->mode, tr->mode_seed, tr->n, va->n, o->be->name,
             precision_name(o->be->opt.prec), o->be->opt.deterministic ? "true" : "false");
    sqlite3_stmt *st;
    if (db_prepare(db, "INSERT INTO train_runs(tool_run_id, config) VALUES (?, ?)", &st, err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, tool_run);
    sqlite3_bind_text(st, 2, cfg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
        return -1;
    }
    *run_id = sqlite3_last_insert_rowid(db);
    return 0;
}

int cmd_train(const cli_args *a)
{
    train_opts o;
    if (parse_opts(a, &o)) {
        backend_close(o.be);
        return EXIT_BAD_INPUT;
    }
    char err[8192] = "";
    int rc = EXIT_BAD_INPUT;
    data_split tr = {0}, va = {0};
    model_params p = {0};
    float *m = NULL, *v = NULL;
    net *t = NULL;
    sqlite3 *db = NULL;
    long long tool_run = 0;
    train_state s = {0, 0, -1, -1.0, 0, 0, ""};

    if (data_open_split(o.db, o.dataset, "train", o.mode, &tr, err, sizeof err) ||
        data_open_split(o.db, o.dataset, "val", o.mode, &va, err, sizeof err))
        goto out;
    if (tr.nclasses > MODEL_CLASSES) {
        snprintf(err, sizeof err, "%s: dataset '%s' has %d classes (contempt kept); the model has 7: re-run "
                 "`masksynth init` without contempt", o.db, tr.dataset, tr.nclasses);
        goto out;
    }
    if (tr.n < o.batch) {
        snprintf(err, sizeof err, "%s: the training split has %d images, fewer than one batch of %ld", o.db, tr.n,
                 o.batch);
        goto out;
    }
    if (strlen(o.out) > 900) {
        snprintf(err, sizeof err, "--out: path too long");
        goto out;
    }
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {
        snprintf(err, sizeof err, "%s: cannot create: %s", o.out, strerror(errno));
        goto out;
    }
    char last[1024], best_w[1024], best_c[1024], fp[2048];
    snprintf(last, sizeof last, "%s/last.ckpt.safetensors", o.out);
    snprintf(best_w, sizeof best_w, "%s/best.safetensors", o.out);
    snprintf(best_c, sizeof best_c, "%s/best.ckpt.safetensors", o.out);
    fingerprint(&o, &tr, fp, sizeof fp);

    if (model_params_init(&p, &o.cfg)) goto out;
    m = calloc(p.total, sizeof *m); /* the moments on the host, for checkpoints */
    v = calloc(p.total, sizeof *v);
    if (!m || !v) {
        snprintf(err, sizeof err, "out of memory for %zu parameters", p.total);
        goto out;
    }
    if (db_open(o.db, &db, err, sizeof err)) goto out;
    /* This invocation in tool_runs (a resumed run gets its own row; its
     * train_runs row stays the first invocation's). */
    if (db_tool_run_begin(db, "ferbench", FB_VERSION, ferbench_argv_json, &tool_run, err, sizeof err)) goto out;
    if (o.resume) {
        if (!path_exists(last)) {
            snprintf(err, sizeof err, "%s: no checkpoint to resume from (train without --resume)", last);
            goto out;
        }
        if (ckpt_read(last, &p, m, v, &s, err, sizeof err)) goto out;
        if (strcmp(s.fingerprint, fp) != 0) {
            snprintf(err, sizeof err, "%s: --resume with different options: the checkpoint has %s, this run %s", last,
                     s.fingerprint, fp);
            goto out;
        }
        say("resuming %s after epoch %d (step %ld, best epoch %d)", last, s.next_epoch, s.step, s.best_epoch + 1);
    } else {
        if (path_exists(last)) {
            snprintf(err, sizeof err, "%s exists: pass --resume to continue it, or choose another --out", last);
            goto out;
        }
        model_params_init_weights(&p, (uint64_t)o.seed);
        snprintf(s.fingerprint, sizeof s.fingerprint, "%s", fp);
        if (new_train_run(db, tool_run, &o, &tr, &va, &s.train_run_id, err, sizeof err)) goto out;
    }
    if (!(t = net_create_on(&p, o.be)) || (o.resume && net_opt_set(t, m, v))) {
        snprintf(err, sizeof err, "%s", t ? net_error(t) : "out of memory for the network");
        goto out;
    }

    adamw_config ac = adamw_paper();
    ac.lr = o.lr;
    ac.weight_decay = o.wd;
    const int G = model_grid(&o.cfg);
    say("training %s (size %d, width %g, %zu parameters) on %s: %d train / %d val images, batch %ld, %s",
             o.config_name, o.cfg.size, o.cfg.width, model_count_params(&p, NULL), tr.dataset, tr.n, va.n, o.batch,
             o.be->desc); /* desc names the precision on a device */
    for (int epoch = s.next_epoch; epoch < o.epochs; epoch++) {
        if (s.bad_epochs >= o.patience) break;
        double t0 = now_seconds(), lr = epoch_lr(&o, epoch);
        data_loader_opts lo = {.S = o.cfg.size, .G = G, .batch = (int)o.batch, .seed = (uint64_t)o.seed, .epoch = epoch,
                               .shuffle = 1, .augment = 1, .drop_last = 1, .with_targets = 1, .nthreads = o.threads,
                               .host_alloc = backend_host_alloc, .host_free = backend_host_free, .host_ctx = o.be};
        data_loader *l = data_loader_start(&tr, &lo, err, sizeof err);
        if (!l) goto out;
        int nb = data_loader_nbatches(l);
        progress pr;
        char label[64];
        snprintf(label, sizeof label, "epoch %d", epoch);
        progress_start(&pr, label, nb);
        double sum[4] = {0, 0, 0, 0};
        int done = 0;
        data_batch *b, *next;
        int r = next_batch_prefetched(l, t, 1, &b);
        while (r == 1) {
            net_losses L;
            if (net_forward(t, b->x, b->n, 1) || net_loss(t, b->occ_t, b->heat_t, b->labels, &L) ||
                net_backward(t, NULL) || net_step(t, ++s.step, lr, &ac)) {
                snprintf(err, sizeof err, "epoch %d batch %d: %s", epoch, b->index, net_error(t));
                data_loader_release(l, b);
                data_loader_stop(l);
                goto out;
            }
            /* the next batch's copy overlaps this step's backward pass and AdamW, queued above; this
             * batch's buffers were copied before net_loss downloaded the losses, so it may go back */
            r = next_batch_prefetched(l, t, 1, &next);
            data_loader_release(l, b);
            sum[0] += L.lp, sum[1] += L.lm, sum[2] += L.ld, sum[3] += L.total;
            progress_update(&pr, ++done);
            b = next;
        }
        progress_finish(&pr);
        if (r < 0) {
            snprintf(err, sizeof err, "%s", data_loader_error(l));
            data_loader_stop(l);
            goto out;
        }
        data_loader_stop(l);
        net_losses mean = {(float)(sum[0] / done), (float)(sum[1] / done), (float)(sum[2] / done),
                           (float)(sum[3] / done)};
        double acc;
        if (validate(t, &va, &o, &acc, err, sizeof err)) goto out;
        double secs = now_seconds() - t0;
        if (net_params_get(t) || net_opt_get(t, m, v)) { /* p.data, m, v: this epoch's, for the files */
            snprintf(err, sizeof err, "%s", net_error(t));
            goto out;
        }
        int improved = acc > s.best_acc;
        s.next_epoch = epoch + 1;
        if (improved) {
            s.best_acc = acc, s.best_epoch = epoch, s.bad_epochs = 0;
            if (safetensors_write(best_w, &p, err, sizeof err) || ckpt_write(best_c, &p, m, v, &s, err, sizeof err))
                goto out;
        } else {
            s.bad_epochs++;
        }
        if (ckpt_write(last, &p, m, v, &s, err, sizeof err) ||
            record_epoch(db, s.train_run_id, epoch, &mean, acc, secs, s.best_epoch, err, sizeof err) ||
            write_log_csv(db, s.train_run_id, &o, err, sizeof err))
            goto out;
        say("epoch %d/%ld  lr %.3g  Lp %.5f  Lm %.5f  Ld %.5f  Lt %.5f  val acc %.4f%s  %.1f s", epoch + 1,
                 o.epochs, lr, mean.lp, mean.lm, mean.ld, mean.total, acc, improved ? " (best)" : "", secs);
    }
    if (s.bad_epochs >= o.patience)
        say("early stop: no validation improvement for %d epochs", s.bad_epochs);
    char g[96];
    printf("best_epoch=%d val_accuracy=%.6f weights=%s %s\n", s.best_epoch + 1, s.best_acc, best_w,
           device_summary(t, g, sizeof g));
    rc = EXIT_OK;
out:
    if (rc != EXIT_OK) log_error("%s", err[0] ? err : "training failed");
    if (tool_run > 0) db_tool_run_end(db, tool_run, rc, NULL, 0);
    db_close(db);
    net_free(t);
    backend_close(o.be);
    free(m), free(v);
    model_params_free(&p);
    data_split_free(&tr);
    data_split_free(&va);
    return rc;
}
