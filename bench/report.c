/* report.c: `ferbench report`: every model evaluated on a split, read from
 * the database, as a paper would print it: report.md (Markdown), index.html
 * (one static page, the confusion matrices inline), one SVG heatmap per
 * (dataset, model) and report.json (every number, round-trip digits).
 *
 * Each (dataset, split, model) is represented by its latest model run (the
 * highest id). Every statistic comes from the stats library, so the report
 * agrees with ferstats on the same predictions exported as CSVs. The output
 * depends only on the database and the options (no clock; the bootstrap is
 * seeded and independent of --threads), so reruns are byte-identical. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/numfmt.h"
#include "../common/sha256.h"
#include "../common/util.h"
#include "../db/db.h"
#include "../engine/data.h"
#include "../stats/bootstrap.h"
#include "../stats/hypothesis.h"
#include "../stats/metrics.h"
#include "../stats/svg.h"
#include "ferbench.h"

#define ERRLEN 2048

static const char *const adjust_name[] = {"holm", "bonferroni", "none"};

typedef struct {
    char *device;
    int batch;
    double ms, ips;
    int has_peak;
    long long peak;
} timing;

/* The latest run of one model on one dataset, and its statistics. */
typedef struct {
    const char *model;       /* points into report.models */
    long long run_id, tool_run_id; /* tool_run_id 0: not recorded */
    char *started, *weights_path, *weights_hash, *source_path, *source_hash, *predictions_path; /* NULL: not recorded */
    char *masks;             /* "MODE:SEED" of the renders evaluated, NULL: not recorded (schema version 1) */
    int *yhat;               /* aligned with the dataset's images */
    long *cm;
    metrics m;
    boot_result f1;          /* macro-F1, percentile bootstrap */
    timing *t;
    int nt;
    char *svg;               /* file name in the output folder */
} run_eval;

/* The reference against one other run of the same dataset. */
typedef struct {
    int run;                 /* index into dataset_eval.runs */
    mcnemar_result r;
    boot_result f1_diff;     /* macro-F1(reference) - macro-F1(run), paired */
    double p, p_adj;
} comparison;

typedef struct {
    long long id;            /* images.id */
    long idx;                /* position in the dataset's image order */
} id_index;

typedef struct {
    long long id;
    char *name;
    int k;                   /* 7, or 8 with contempt */
    long n;
    char **image;            /* names, in name order */
    int *y;
    id_index *by_id;         /* sorted by id, for matching predictions */
    run_eval *runs;          /* in report order */
    int nruns;
    int ref;                 /* index of the reference in runs, -1: no run here */
    comparison *cmp;
    int ncmp;
    int has_q, q_degenerate, q_df;
    double q, q_p;
    int masks_differ;        /* the runs were not all evaluated on one recorded mask assignment */
} dataset_eval;

typedef struct {
    const char *db, *split;
    enum mcnemar_method method;
    enum adjust_method adjust;
    double alpha;
    long resamples, seed;
    int threads;
    char **models;           /* selected, in report order */
    int nmodels;
    const char *reference;
    dataset_eval *ds;
    int nds;
} report;

/* ---- small helpers --------------------------------------------------------- */

static int sql_failed(const report *r, sqlite3 *db, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", r->db, sqlite3_errmsg(db));
    return -1;
}

static int model_index(char *const *list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return i;
    return -1;
}

/* "a, b, c" into buf (cut when long). */
static const char *join(char *const *list, int n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o < len; i++) o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", list[i]);
    return buf;
}

static char *path_in(const char *dir, const char *name)
{
    char *p;
    size_t len = strlen(dir);
    if (asprintf(&p, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", name) < 0) {
        fprintf(stderr, "out of memory\n");
        exit(EXIT_BAD_INPUT);
    }
    return p;
}

/* A piece of a file name: letters, digits, '.', '_' and '-' are kept, the
 * rest becomes '_'; a changed (or cut) name gets 8 hex digits of its SHA-256,
 * so different names stay different. */
static void file_part(const char *s, char *out, size_t cap /* >= 100 */)
{
    size_t o = 0;
    int changed = !*s;
    for (const char *p = s; *p; p++) {
        int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                   *p == '_' || *p == '-';
        changed |= !keep;
        if (o < 80) out[o++] = keep ? *p : '_';
        else changed = 1;
    }
    out[o] = '\0';
    if (changed) {
        char hex[65];
        sha256_hex(s, strlen(s), hex);
        snprintf(out + o, cap - o, "%s%.8s", o ? "-" : "", hex);
    }
}

/* confusion-<dataset>-<model>.svg for every run. Names that still collide
 * (dataset "a-b" model "c" and dataset "a" model "b-c", or names that differ
 * only in case) all get 8 hex digits of the pair's SHA-256 appended. */
static void name_svgs(report *r)
{
    int total = 0;
    for (int d = 0; d < r->nds; d++)
        for (int i = 0; i < r->ds[d].nruns; i++, total++) {
            char a[100], b[100];
            file_part(r->ds[d].name, a, sizeof a);
            file_part(r->ds[d].runs[i].model, b, sizeof b);
            if (asprintf(&r->ds[d].runs[i].svg, "confusion-%s-%s", a, b) < 0) exit(EXIT_BAD_INPUT);
        }
    run_eval **all = xmalloc(sizeof *all * (size_t)(total ? total : 1));
    const char **dsname = xmalloc(sizeof *dsname * (size_t)(total ? total : 1));
    int n = 0;
    for (int d = 0; d < r->nds; d++)
        for (int i = 0; i < r->ds[d].nruns; i++, n++) {
            all[n] = &r->ds[d].runs[i];
            dsname[n] = r->ds[d].name;
        }
    unsigned char *clash = xcalloc((size_t)(total ? total : 1), 1);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (!strcasecmp(all[i]->svg, all[j]->svg)) clash[i] = clash[j] = 1;
    for (int i = 0; i < n; i++) {
        char hex[65] = "", *stem = all[i]->svg;
        if (clash[i]) {
            sha256_ctx c;
            sha256_init(&c);
            sha256_update(&c, dsname[i], strlen(dsname[i]) + 1); /* the NUL separates the two names */
            sha256_update(&c, all[i]->model, strlen(all[i]->model));
            sha256_final_hex(&c, hex);
        }
        if (asprintf(&all[i]->svg, "%s%s%.8s.svg", stem, clash[i] ? "-" : "", hex) < 0) exit(EXIT_BAD_INPUT);
        free(stem);
    }
    free(all);
    free(dsname);
    free(clash);
}

/* ---- reading the database ----------------------------------------------------- */

static int select_datasets(sqlite3 *db, report *r, const char *only, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (only) {
        if (db_prepare(db, "SELECT 1 FROM datasets WHERE name = ?", &st, err, errlen)) return -1;
        sqlite3_bind_text(st, 1, only, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sql_failed(r, db, err, errlen);
        if (rc == SQLITE_DONE) {
            snprintf(err, errlen, "%s: --dataset %s: no such dataset (`masksynth init` adds datasets)", r->db, only);
            return -1;
        }
    }
    if (db_prepare(db, "SELECT d.id, d.name FROM datasets d WHERE (?2 IS NULL OR d.name = ?2) AND EXISTS "
                       "(SELECT 1 FROM model_runs m WHERE m.dataset_id = d.id AND m.split = ?1) ORDER BY d.name",
                   &st, err, errlen))
        return -1;
    sqlite3_bind_text(st, 1, r->split, -1, SQLITE_STATIC);
    if (only) sqlite3_bind_text(st, 2, only, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r->ds = xrealloc(r->ds, sizeof *r->ds * (size_t)(r->nds + 1));
        dataset_eval *d = &r->ds[r->nds++];
        memset(d, 0, sizeof *d);
        d->id = sqlite3_column_int64(st, 0);
        d->name = db_column_dup(st, 1, NULL);
        d->ref = -1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_failed(r, db, err, errlen);
    if (r->nds == 0) {
        if (only) snprintf(err, errlen, "%s: dataset %s has no model runs on the %s split", r->db, only, r->split);
        else snprintf(err, errlen, "%s: no model runs on the %s split (`ferbench run` records them)", r->db, r->split);
        return -1;
    }
    return 0;
}

/* The models with a run on the split of the selected datasets, by name. */
static int available_models(sqlite3 *db, const report *r, const char *only, char ***out, int *n, char *err,
                            size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT DISTINCT m.model FROM model_runs m JOIN datasets d ON d.id = m.dataset_id "
                       "WHERE m.split = ?1 AND (?2 IS NULL OR d.name = ?2) ORDER BY m.model",
                   &st, err, errlen))
        return -1;
    sqlite3_bind_text(st, 1, r->split, -1, SQLITE_STATIC);
    if (only) sqlite3_bind_text(st, 2, only, -1, SQLITE_STATIC);
    int rc;
    *out = NULL;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xrealloc(*out, sizeof **out * (size_t)(*n + 1));
        (*out)[(*n)++] = db_column_dup(st, 0, NULL);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_failed(r, db, err, errlen);
}

/* --models (selects and orders) and --reference; without --models the
 * reference comes first, then the others by name. */
static int select_models(report *r, char **avail, int navail, const char *list, const char *ref, char *err,
                         size_t errlen)
{
    char names[1024];
    if (list) {
        const char *p = list;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char *name = xmalloc(len + 1);
            memcpy(name, p, len);
            name[len] = '\0';
            const char *why = !len ? "an empty name"
                              : model_index(r->models, r->nmodels, name) >= 0 ? "a model named twice"
                              : model_index(avail, navail, name) < 0 ? "no run of this model on the split" : NULL;
            if (why) {
                snprintf(err, errlen, "%s: --models: '%s': %s (models with a run on the %s split: %s)", r->db, name,
                         why, r->split, join(avail, navail, names, sizeof names));
                free(name);
                return -1;
            }
            r->models = xrealloc(r->models, sizeof *r->models * (size_t)(r->nmodels + 1));
            r->models[r->nmodels++] = name;
            if (!comma) break;
            p = comma + 1;
        }
    } else {
        r->models = xmalloc(sizeof *r->models * (size_t)navail);
        for (int i = 0; i < navail; i++) r->models[r->nmodels++] = xstrdup(avail[i]);
    }
    int ri = ref ? model_index(r->models, r->nmodels, ref) : model_index(r->models, r->nmodels, "ours");
    if (ref && ri < 0) {
        snprintf(err, errlen, "%s: --reference %s is not among the models reported (%s)", r->db, ref,
                 join(r->models, r->nmodels, names, sizeof names));
        return -1;
    }
    if (ri < 0) ri = 0;
    if (!list && ri > 0) {
        char *m = r->models[ri];
        memmove(r->models + 1, r->models, sizeof *r->models * (size_t)ri);
        r->models[0] = m;
        ri = 0;
    }
    r->reference = r->models[ri];
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    long long x = ((const id_index *)a)->id, y = ((const id_index *)b)->id;
    return (x > y) - (x < y);
}

/* The ground truth: images with status 'ok' in the split, in name order. */
static int load_images(sqlite3 *db, const report *r, dataset_eval *d, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc;
    if (data_dataset_classes(db, d->id, &d->k, err, errlen)) return -1;
    if (db_prepare(db, "SELECT id, name, label FROM images WHERE dataset_id = ? AND status = 'ok' AND "
                       "benchmark_split = ? ORDER BY name",
                   &st, err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, d->id);
    sqlite3_bind_text(st, 2, r->split, -1, SQLITE_STATIC);
    long cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (d->n == cap) {
            cap = cap ? 2 * cap : 1024;
            d->image = xrealloc(d->image, sizeof *d->image * (size_t)cap);
            d->y = xrealloc(d->y, sizeof *d->y * (size_t)cap);
            d->by_id = xrealloc(d->by_id, sizeof *d->by_id * (size_t)cap);
        }
        d->by_id[d->n] = (id_index){sqlite3_column_int64(st, 0), d->n};
        d->image[d->n] = db_column_dup(st, 1, NULL);
        d->y[d->n] = sqlite3_column_int(st, 2);
        d->n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_failed(r, db, err, errlen);
    if (d->n == 0) {
        snprintf(err, errlen, "%s: dataset %s: the %s split has no images with status ok, yet model runs are recorded "
                 "on it", r->db, d->name, r->split);
        return -1;
    }
    qsort(d->by_id, (size_t)d->n, sizeof *d->by_id, cmp_id);
    return 0;
}

static long image_at(const dataset_eval *d, long long id)
{
    id_index key = {id, 0}, *hit = bsearch(&key, d->by_id, (size_t)d->n, sizeof key, cmp_id);
    return hit ? hit->idx : -1;
}

/* Predictions of one run: exactly one per image of the split, none for others. */
static int load_predictions(sqlite3 *db, const report *r, const dataset_eval *d, run_eval *x, char *err,
                            size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT p.image_id, p.pred, i.name FROM predictions p LEFT JOIN images i ON i.id = p.image_id "
                       "WHERE p.model_run_id = ? ORDER BY p.image_id",
                   &st, err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, x->run_id);
    x->yhat = xmalloc(sizeof *x->yhat * (size_t)d->n);
    for (long i = 0; i < d->n; i++) x->yhat[i] = -1;
    long extra = 0, missing = 0;
    char first_extra[256] = "";
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        long i = image_at(d, sqlite3_column_int64(st, 0));
        int pred = sqlite3_column_int(st, 1);
        if (i < 0) {
            if (!extra++) {
                const unsigned char *nm = sqlite3_column_text(st, 2);
                snprintf(first_extra, sizeof first_extra, "%s", nm ? (const char *)nm : "?");
            }
            continue;
        }
        if (pred < 0 || pred >= d->k) {
            snprintf(err, errlen, "%s: model %s (run %lld) predicts class %d for image %s; dataset %s has %d classes "
                     "(0..%d)", r->db, x->model, x->run_id, pred, d->image[i], d->name, d->k, d->k - 1);
            sqlite3_finalize(st);
            return -1;
        }
        x->yhat[i] = pred;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sql_failed(r, db, err, errlen);
    const char *first_missing = NULL;
    for (long i = 0; i < d->n; i++)
        if (x->yhat[i] < 0 && !missing++) first_missing = d->image[i];
    if (missing || extra) {
        char fm[300] = "", fe[300] = "";
        if (missing) snprintf(fm, sizeof fm, " (first: %s)", first_missing);
        if (extra) snprintf(fe, sizeof fe, " (first: %s)", first_extra);
        snprintf(err, errlen, "%s: model %s (run %lld) does not cover the %ld images of %s %s: %ld missing%s, %ld extra "
                 "for images outside the split%s", r->db, x->model, x->run_id, d->n, d->name, r->split, missing, fm,
                 extra, fe);
        return -1;
    }
    return 0;
}

static int load_timings(sqlite3 *db, const report *r, run_eval *x, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT device, batch, ms_per_image, images_per_s, peak_bytes FROM timings "
                       "WHERE model_run_id = ? ORDER BY id",
                   &st, err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, x->run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        x->t = xrealloc(x->t, sizeof *x->t * (size_t)(x->nt + 1));
        timing *t = &x->t[x->nt++];
        t->device = db_column_dup(st, 0, NULL);
        t->batch = sqlite3_column_int(st, 1);
        t->ms = sqlite3_column_double(st, 2);
        t->ips = sqlite3_column_double(st, 3);
        t->has_peak = sqlite3_column_type(st, 4) != SQLITE_NULL;
        t->peak = sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_failed(r, db, err, errlen);
}

/* The latest run of every selected model on the dataset (models without one
 * are left out of it). */
static int load_runs(sqlite3 *db, const report *r, dataset_eval *d, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT m.id, m.tool_run_id, t.started, m.weights_path, m.weights_hash, m.source_path, "
                       "m.source_hash, m.predictions_path, m.mask_mode || ':' || m.mask_seed "
                       "FROM model_runs m LEFT JOIN tool_runs t ON t.id = m.tool_run_id "
                       "WHERE m.dataset_id = ? AND m.split = ? AND m.model = ? ORDER BY m.id DESC LIMIT 1",
                   &st, err, errlen))
        return -1;
    d->runs = xcalloc((size_t)r->nmodels, sizeof *d->runs);
    for (int j = 0; j < r->nmodels; j++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, d->id);
        sqlite3_bind_text(st, 2, r->split, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->models[j], -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) continue;
        if (rc != SQLITE_ROW) {
            sqlite3_finalize(st);
            return sql_failed(r, db, err, errlen);
        }
        run_eval *x = &d->runs[d->nruns++];
        x->model = r->models[j];
        x->run_id = sqlite3_column_int64(st, 0);
        x->tool_run_id = sqlite3_column_int64(st, 1);
        x->started = db_column_dup(st, 2, NULL);
        x->weights_path = db_column_dup(st, 3, NULL);
        x->weights_hash = db_column_dup(st, 4, NULL);
        x->source_path = db_column_dup(st, 5, NULL);
        x->source_hash = db_column_dup(st, 6, NULL);
        x->predictions_path = db_column_dup(st, 7, NULL);
        x->masks = db_column_dup(st, 8, NULL);
        if (x->model == r->reference) d->ref = d->nruns - 1;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < d->nruns; i++) {
        const char *a = d->runs[i].masks, *b = d->runs[0].masks;
        d->masks_differ |= !a || !b || strcmp(a, b) != 0;
        if (load_timings(db, r, &d->runs[i], err, errlen)) return -1;
    }
    return 0;
}

/* Models compared on different masks differ by more than the model: said wherever the runs are listed. */
static const char masks_differ_note[] =
    "Warning: these runs were not all evaluated on the same recorded mask assignment, so their differences "
    "mix the models with the masks.";

/* ---- statistics ------------------------------------------------------------------ */

static int right(const dataset_eval *d, const run_eval *x, long i) { return x->yhat[i] == d->y[i]; }

static void evaluate(const report *r, dataset_eval *d)
{
    size_t kk = (size_t)d->k * (size_t)d->k;
    for (int i = 0; i < d->nruns; i++) {
        run_eval *x = &d->runs[i];
        x->cm = xmalloc(sizeof *x->cm * kk);
        confusion_count(d->k, d->n, d->y, x->yhat, x->cm);
        metrics_compute(&x->m, d->k, x->cm, 0, r->alpha);
        bootstrap(d->k, d->n, d->y, x->yhat, NULL, BOOT_MACRO_F1, r->resamples, (uint64_t)r->seed, r->alpha, 0,
                  r->threads, 0, &x->f1);
    }
    if (d->ref >= 0 && d->nruns > 1) {
        const run_eval *ref = &d->runs[d->ref];
        d->cmp = xcalloc((size_t)d->nruns - 1, sizeof *d->cmp);
        double *raw = xmalloc(sizeof *raw * (size_t)d->nruns), *adj = xmalloc(sizeof *adj * (size_t)d->nruns);
        for (int i = 0; i < d->nruns; i++) {
            if (i == d->ref) continue;
            comparison *c = &d->cmp[d->ncmp];
            long cnt[4] = {0, 0, 0, 0}; /* both right, reference only, this model only, both wrong */
            for (long j = 0; j < d->n; j++) {
                int a = right(d, ref, j), b = right(d, &d->runs[i], j);
                cnt[a && b ? 0 : a ? 1 : b ? 2 : 3]++;
            }
            c->run = i;
            mcnemar(cnt[0], cnt[1], cnt[2], cnt[3], CC_R, r->alpha, &c->r);
            bootstrap(d->k, d->n, d->y, ref->yhat, d->runs[i].yhat, BOOT_MACRO_F1, r->resamples, (uint64_t)r->seed,
                      r->alpha, 0, r->threads, 0, &c->f1_diff);
            raw[d->ncmp++] = c->p = c->r.p[r->method];
        }
        p_adjust(raw, d->ncmp, r->adjust, adj);
        for (int c = 0; c < d->ncmp; c++) d->cmp[c].p_adj = adj[c];
        free(raw);
        free(adj);
    }
    if (d->nruns >= 3) {
        unsigned char *ok = xmalloc((size_t)d->n * (size_t)d->nruns);
        for (long j = 0; j < d->n; j++)
            for (int i = 0; i < d->nruns; i++) ok[j * d->nruns + i] = (unsigned char)right(d, &d->runs[i], j);
        d->has_q = 1;
        d->q_degenerate = cochran_q(ok, d->n, d->nruns, &d->q, &d->q_df, &d->q_p) != 0;
        free(ok);
    }
}

static const comparison *comparison_of(const dataset_eval *d, int run)
{
    for (int c = 0; c < d->ncmp; c++)
        if (d->cmp[c].run == run) return &d->cmp[c];
    return NULL;
}

/* The statistic each method reports: min(b, c) for the binomial ones (as ferstats and statsmodels). */
static double statistic(const mcnemar_result *m, enum mcnemar_method method)
{
    return method == MC_CHI2 ? m->stat_chi2 : method == MC_CHI2_CC ? m->stat_chi2_cc : (double)(m->b < m->c ? m->b : m->c);
}

/* ---- report.json -------------------------------------------------------------------- */

static void jstr(FILE *f, const char *s)
{
    if (s) json_string(f, s);
    else fputs("null", f);
}

static void jnum(FILE *f, double x)
{
    char b[32];
    fputs(fmt_double(b, x), f);
}

static void jpair(FILE *f, double a, double b)
{
    fputc('[', f);
    jnum(f, a);
    fputs(", ", f);
    jnum(f, b);
    fputc(']', f);
}

static void json_run(FILE *f, const dataset_eval *d, const run_eval *x, int is_ref)
{
    const metrics *m = &x->m;
    fputs("    {\"model\": ", f);
    jstr(f, x->model);
    fprintf(f, ", \"reference\": %s, \"run_id\": %lld, \"tool_run_id\": ", is_ref ? "true" : "false", x->run_id);
    if (x->tool_run_id) fprintf(f, "%lld", x->tool_run_id);
    else fputs("null", f);
    fputs(", \"started\": ", f);
    jstr(f, x->started);
    fputs(", \"masks\": ", f);
    jstr(f, x->masks);
    fputs(",\n     \"weights_path\": ", f);
    jstr(f, x->weights_path);
    fputs(", \"weights_hash\": ", f);
    jstr(f, x->weights_hash);
    fputs(", \"source_path\": ", f);
    jstr(f, x->source_path);
    fputs(", \"source_hash\": ", f);
    jstr(f, x->source_hash);
    fputs(", \"predictions_path\": ", f);
    jstr(f, x->predictions_path);
    fprintf(f, ",\n     \"images\": %ld, \"correct\": %ld, \"accuracy\": ", m->n, m->correct);
    jnum(f, m->accuracy);
    fputs(", \"accuracy_ci\": ", f);
    jpair(f, m->wilson[0], m->wilson[1]);
    fputs(", \"macro_f1\": ", f);
    jnum(f, m->macro_f1);
    fputs(", \"macro_f1_ci\": ", f);
    jpair(f, x->f1.lo, x->f1.hi);
    fputs(", \"macro_f1_bootstrap_mean\": ", f);
    jnum(f, x->f1.mean);
    fputs(", \"macro_f1_bootstrap_sd\": ", f);
    jnum(f, x->f1.sd);
    fputs(",\n     \"macro_precision\": ", f);
    jnum(f, m->macro_precision);
    fputs(", \"macro_recall\": ", f);
    jnum(f, m->macro_recall);
    fputs(", \"weighted_precision\": ", f);
    jnum(f, m->weighted_precision);
    fputs(", \"weighted_recall\": ", f);
    jnum(f, m->weighted_recall);
    fputs(", \"weighted_f1\": ", f);
    jnum(f, m->weighted_f1);
    fputs(", \"balanced_accuracy\": ", f);
    jnum(f, m->balanced_accuracy);
    fputs(", \"kappa\": ", f);
    if (m->kappa_defined) jnum(f, m->kappa);
    else fputs("null", f);
    fputs(", \"mcc\": ", f);
    jnum(f, m->mcc);
    fputs(",\n     \"per_class\": [", f);
    for (int c = 0; c < d->k; c++) {
        fprintf(f, "%s{\"label\": \"%s\", \"support\": %ld, \"predicted\": %ld, \"precision\": ", c ? ", " : "",
                data_label_names[c], m->support[c], m->predicted[c]);
        jnum(f, m->precision[c]);
        fputs(", \"recall\": ", f);
        jnum(f, m->recall[c]);
        fputs(", \"f1\": ", f);
        jnum(f, m->f1[c]);
        fputc('}', f);
    }
    fputs("],\n     \"confusion\": [", f);
    for (int i = 0; i < d->k; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        for (int j = 0; j < d->k; j++) fprintf(f, "%s%ld", j ? ", " : "", x->cm[i * d->k + j]);
        fputc(']', f);
    }
    fputs("], \"confusion_svg\": ", f);
    jstr(f, x->svg);
    fputs(",\n     \"timings\": [", f);
    for (int t = 0; t < x->nt; t++) {
        fprintf(f, "%s{\"device\": ", t ? ", " : "");
        jstr(f, x->t[t].device);
        fprintf(f, ", \"batch\": %d, \"ms_per_image\": ", x->t[t].batch);
        jnum(f, x->t[t].ms);
        fputs(", \"images_per_s\": ", f);
        jnum(f, x->t[t].ips);
        if (x->t[t].has_peak) {
            fprintf(f, ", \"peak_bytes\": %lld, \"peak_mib\": ", x->t[t].peak);
            jnum(f, (double)x->t[t].peak / 1048576.0);
        } else {
            fputs(", \"peak_bytes\": null, \"peak_mib\": null", f);
        }
        fputc('}', f);
    }
    fputs("]}", f);
}

static void json_comparison(FILE *f, const report *r, const dataset_eval *d, const comparison *c)
{
    const mcnemar_result *m = &c->r;
    double n = (double)d->n;
    fputs("    {\"model\": ", f);
    jstr(f, d->runs[c->run].model);
    fprintf(f, ", \"both_right\": %ld, \"b\": %ld, \"c\": %ld, \"both_wrong\": %ld, \"n\": %ld", m->both_right, m->b,
            m->c, m->both_wrong, m->n);
    fputs(", \"accuracy_reference\": ", f);
    jnum(f, (double)(m->both_right + m->b) / n);
    fputs(", \"accuracy_model\": ", f);
    jnum(f, (double)(m->both_right + m->c) / n);
    fputs(",\n     \"difference\": ", f);
    jnum(f, m->diff);
    fputs(", \"difference_ci\": ", f);
    jpair(f, m->diff_lo, m->diff_hi);
    fputs(", \"macro_f1_difference\": ", f);
    jnum(f, c->f1_diff.estimate);
    fputs(", \"macro_f1_difference_ci\": ", f);
    jpair(f, c->f1_diff.lo, c->f1_diff.hi);
    fputs(",\n     \"statistic\": ", f);
    jnum(f, statistic(m, r->method));
    fputs(", \"p\": ", f);
    jnum(f, c->p);
    fputs(", \"p_adjusted\": ", f);
    jnum(f, c->p_adj);
    fprintf(f, ", \"significant\": %s, \"p_values\": {", c->p_adj < r->alpha ? "true" : "false");
    for (int k = 0; k < MC_NMETHODS; k++) {
        fprintf(f, "%s\"%s\": ", k ? ", " : "", mcnemar_method_name[k]);
        jnum(f, m->p[k]);
    }
    fprintf(f, "}, \"notes\": [%s]}", m->n == 0 ? "\"no discordant pairs\"" : "");
}

static void write_json(FILE *f, const report *r)
{
    fputs("{\"report\": \"ferbench report\", \"version\": \"" FB_VERSION "\", \"database\": ", f);
    jstr(f, r->db);
    fputs(", \"split\": ", f);
    jstr(f, r->split);
    fputs(", \"reference\": ", f);
    jstr(f, r->reference);
    fputs(",\n \"models\": [", f);
    for (int i = 0; i < r->nmodels; i++) {
        if (i) fputs(", ", f);
        jstr(f, r->models[i]);
    }
    fputs("],\n \"conventions\": {\"alpha\": ", f);
    jnum(f, r->alpha);
    fprintf(f, ", \"accuracy_ci\": \"wilson\", \"zero_division\": 0, \"mcnemar_method\": \"%s\", "
               "\"cc_convention\": \"r\", \"b\": \"reference right, model wrong\", "
               "\"c\": \"reference wrong, model right\",\n  \"adjust\": \"%s\", "
               "\"adjust_family\": \"per dataset: the reference against each other model\", "
               "\"difference\": \"reference - model\", \"difference_ci\": \"newcombe-wilson\",\n  "
               "\"bootstrap\": {\"metric\": \"macro-f1\", \"method\": \"percentile\", \"resamples\": %ld, "
               "\"seed\": %ld, \"paired\": true},\n  \"balanced_accuracy\": \"mean recall over the classes present "
               "in the truth\", \"omnibus\": \"cochran-q over the models of a dataset, when there are 3 or more\"},\n",
            mcnemar_method_name[r->method], adjust_name[r->adjust], r->resamples, r->seed);
    fputs(" \"datasets\": [", f);
    for (int di = 0; di < r->nds; di++) {
        const dataset_eval *d = &r->ds[di];
        fprintf(f, "%s\n  {\"name\": ", di ? "," : "");
        jstr(f, d->name);
        fprintf(f, ", \"images\": %ld, \"classes\": %d, \"labels\": [", d->n, d->k);
        for (int c = 0; c < d->k; c++) fprintf(f, "%s\"%s\"", c ? ", " : "", data_label_names[c]);
        fputs("], \"reference\": ", f);
        jstr(f, d->ref >= 0 ? r->reference : NULL);
        fputs(",\n   \"runs\": [", f);
        for (int i = 0; i < d->nruns; i++) {
            fputs(i ? ",\n" : "\n", f);
            json_run(f, d, &d->runs[i], i == d->ref);
        }
        fputs("],\n   \"comparisons\": [", f);
        for (int c = 0; c < d->ncmp; c++) {
            fputs(c ? ",\n" : "\n", f);
            json_comparison(f, r, d, &d->cmp[c]);
        }
        fputs("],\n   \"cochran_q\": ", f);
        if (d->has_q) {
            fprintf(f, "{\"models\": %d, \"q\": ", d->nruns);
            jnum(f, d->q);
            fprintf(f, ", \"df\": %d, \"p\": ", d->q_df);
            jnum(f, d->q_p);
            fprintf(f, ", \"notes\": [%s]}", d->q_degenerate ? "\"every image is right for all models or wrong for "
                                                               "all\"" : "");
        } else {
            fputs("null", f);
        }
        fputs(", \"notes\": [", f);
        if (d->ref < 0) fputs("\"the reference has no run on this dataset: no comparisons\"", f);
        if (d->masks_differ)
            fprintf(f, "%s\"%s\"", d->ref < 0 ? ", " : "", masks_differ_note);
        fputs("]}", f);
    }
    fputs("\n ]}\n", f);
}

/* ---- Markdown and HTML: one document, two renderings ------------------------------- */

typedef struct {
    FILE *f;
    int html;
} doc;

/* Markdown: backslash before the characters that would format, entities for
 * the HTML ones (a renderer passes raw HTML through), no line breaks. */
static void md_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '<') fputs("&lt;", f);
        else if (*p == '>') fputs("&gt;", f);
        else if (*p == '&') fputs("&amp;", f);
        else if (*p < 0x20 || *p == 0x7f) fputc(' ', f);
        else if (strchr("\\`*_[]|~#", *p)) fprintf(f, "\\%c", *p);
        else fputc(*p, f);
    }
}

static void html_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '<') fputs("&lt;", f);
        else if (*p == '>') fputs("&gt;", f);
        else if (*p == '&') fputs("&amp;", f);
        else if (*p == '"') fputs("&quot;", f);
        else if (*p == '\'') fputs("&#39;", f);
        else if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f) fputc(' ', f);
        else fputc(*p, f);
    }
}

static void doc_text(const doc *d, const char *s) { d->html ? html_text(d->f, s) : md_text(d->f, s); }

static char *vformat(const char *fmt, va_list ap)
{
    char *s;
    if (vasprintf(&s, fmt, ap) < 0) {
        fprintf(stderr, "out of memory\n");
        exit(EXIT_BAD_INPUT);
    }
    return s;
}

/* One block of text: the formatted string, escaped for the rendering, between its opening and closing
 * markup (HTML or Markdown). */
static void doc_vblock(const doc *d, const char *html_open, const char *html_close, const char *md_open,
                       const char *md_close, const char *fmt, va_list ap)
{
    char *s = vformat(fmt, ap);
    fputs(d->html ? html_open : md_open, d->f);
    doc_text(d, s);
    fputs(d->html ? html_close : md_close, d->f);
    free(s);
}

static void doc_heading(const doc *d, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void doc_heading(const doc *d, int level, const char *fmt, ...)
{
    char ho[8], hc[8], md[8];
    snprintf(ho, sizeof ho, "<h%d>", level);
    snprintf(hc, sizeof hc, "</h%d>\n", level);
    snprintf(md, sizeof md, "%.*s ", level, "######");
    va_list ap;
    va_start(ap, fmt);
    doc_vblock(d, ho, hc, md, "\n\n", fmt, ap);
    va_end(ap);
}

static void doc_para(const doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void doc_para(const doc *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    doc_vblock(d, "<p>", "</p>\n", "", "\n\n", fmt, ap);
    va_end(ap);
}

static void doc_list(const doc *d, int begin)
{
    if (d->html) fputs(begin ? "<ul>\n" : "</ul>\n", d->f);
    else if (!begin) fputc('\n', d->f);
}

static void doc_item(const doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void doc_item(const doc *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    doc_vblock(d, "<li>", "</li>\n", "- ", "\n", fmt, ap);
    va_end(ap);
}

/* A table of plain-text cells, row 0 the header; align has one 'l', 'r' or 'n' (left, never wrapped)
 * per column. Cells from tab_num hold only our own number formatting, so
 * Markdown gets them unescaped (readable "[1.00, 2.00]", not "\\[1.00, 2.00\\]"). */
typedef struct {
    const char *align;
    int ncols;
    char **cell;
    unsigned char *num;
    size_t n;
} table;

static void tab_init(table *t, const char *align)
{
    t->align = align;
    t->ncols = (int)strlen(align);
    t->cell = NULL;
    t->num = NULL;
    t->n = 0;
}

static void tab_push(table *t, char *s, int num)
{
    t->cell = xrealloc(t->cell, sizeof *t->cell * (t->n + 1));
    t->num = xrealloc(t->num, t->n + 1);
    t->cell[t->n] = s;
    t->num[t->n++] = (unsigned char)num;
}

static void tab_add(table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tab_add(table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tab_push(t, vformat(fmt, ap), 0);
    va_end(ap);
}

static void tab_num(table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tab_num(table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tab_push(t, vformat(fmt, ap), 1);
    va_end(ap);
}

static const char *cell_class(char align)
{
    return align == 'r' ? " class=\"r\"" : align == 'n' ? " class=\"n\"" : "";
}

/* Renders and frees the table. */
static void doc_table(const doc *d, table *t)
{
    size_t nc = (size_t)t->ncols, rows = t->n / nc;
    if (d->html) fputs("<table>\n", d->f);
    for (size_t r = 0; r < rows; r++) {
        fputs(d->html ? "<tr>" : "|", d->f);
        for (size_t c = 0; c < nc; c++) {
            const char *tag = r == 0 ? "th" : "td";
            if (d->html) fprintf(d->f, "<%s%s>", tag, cell_class(t->align[c]));
            else fputc(' ', d->f);
            if (t->num[r * nc + c] && !d->html) fputs(t->cell[r * nc + c], d->f);
            else doc_text(d, t->cell[r * nc + c]);
            if (d->html) fprintf(d->f, "</%s>", tag);
            else fputs(" |", d->f);
        }
        fputs(d->html ? "</tr>\n" : "\n", d->f);
        if (r == 0 && !d->html) {
            fputc('|', d->f);
            for (size_t c = 0; c < nc; c++) fputs(t->align[c] == 'r' ? "---:|" : "---|", d->f);
            fputc('\n', d->f);
        }
    }
    fputs(d->html ? "</table>\n" : "\n", d->f);
    for (size_t i = 0; i < t->n; i++) free(t->cell[i]);
    free(t->cell);
    free(t->num);
}

/* Numbers as text for the tables: a few at a time, "n/a" when undefined. */
static char ring[32][96];
static int ring_next;

static char *scratch(void) { return ring[ring_next++ % 32]; }

static const char *fixed(double x, int digits)
{
    char *b = scratch();
    if (!isfinite(x)) return "n/a";
    snprintf(b, sizeof ring[0], "%.*f", digits, x);
    return b;
}

/* Percentages with 2 decimals, signed (percentage points of a difference) or not. */
static const char *pct_of(double x, int sign)
{
    char *b = scratch();
    if (!isfinite(x)) return "n/a";
    snprintf(b, sizeof ring[0], sign ? "%+.2f" : "%.2f", 100 * x);
    return b;
}

static const char *interval_of(double lo, double hi, int sign)
{
    char *b = scratch();
    if (!isfinite(lo) || !isfinite(hi)) return "n/a";
    snprintf(b, sizeof ring[0], sign ? "[%+.2f, %+.2f]" : "[%.2f, %.2f]", 100 * lo, 100 * hi);
    return b;
}

static const char *pct(double x) { return pct_of(x, 0); }
static const char *pct_ci(double lo, double hi) { return interval_of(lo, hi, 0); }
static const char *pp(double x) { return pct_of(x, 1); }
static const char *pp_ci(double lo, double hi) { return interval_of(lo, hi, 1); }

static const char *pval(double p)
{
    char *b = scratch();
    if (!isfinite(p)) return "n/a";
    if (p == 0) return "< 1e-300"; /* underflow: smaller than a double holds */
    snprintf(b, sizeof ring[0], "%.3g", p);
    return b;
}

static void tab_model(table *t, const report *r, const char *model)
{
    tab_add(t, "%s%s", model, model == r->reference ? " \u2020" : "");
}

static void doc_summary(const doc *d, const report *r)
{
    table t;
    int cols = r->nds;
    char *align = xmalloc((size_t)cols + 2);
    align[0] = 'l';
    memset(align + 1, 'r', (size_t)cols);
    align[cols + 1] = '\0';
    tab_init(&t, align);
    tab_add(&t, "model");
    for (int i = 0; i < cols; i++) tab_add(&t, "%s (n = %ld)", r->ds[i].name, r->ds[i].n);
    for (int m = 0; m < r->nmodels; m++) {
        tab_model(&t, r, r->models[m]);
        for (int i = 0; i < cols; i++) {
            const dataset_eval *ds = &r->ds[i];
            int run = -1;
            for (int j = 0; j < ds->nruns; j++)
                if (ds->runs[j].model == r->models[m]) run = j;
            const comparison *c = run >= 0 ? comparison_of(ds, run) : NULL;
            if (run < 0) tab_add(&t, "\u2014");
            else tab_num(&t, "%s%s", pct(ds->runs[run].m.accuracy), c && c->p_adj < r->alpha ? " *" : "");
        }
    }
    doc_table(d, &t);
    free(align);
}

static void doc_dataset(const doc *d, const report *r, const dataset_eval *ds)
{
    double level = 100 * (1 - r->alpha);
    const char *ref = r->reference;
    char labels[256];
    size_t o = 0;
    for (int c = 0; c < ds->k; c++) o += (size_t)snprintf(labels + o, sizeof labels - o, "%s%s", c ? ", " : "", data_label_names[c]);
    doc_heading(d, 2, "Dataset %s", ds->name);
    doc_para(d, "%ld images of the %s split (status ok), %d classes: %s.", ds->n, r->split, ds->k, labels);

    doc_heading(d, 3, "Runs");
    table t;
    tab_init(&t, "lrnnl");
    tab_add(&t, "model");
    tab_add(&t, "run");
    tab_add(&t, "started");
    tab_add(&t, "masks");
    tab_add(&t, "provenance");
    for (int i = 0; i < ds->nruns; i++) {
        const run_eval *x = &ds->runs[i];
        tab_model(&t, r, x->model);
        tab_num(&t, "%lld", x->run_id);
        tab_add(&t, "%s", x->started ? x->started : "not recorded");
        tab_add(&t, "%s", x->masks ? x->masks : "not recorded");
        char *w = NULL, *s = NULL;
        if (x->weights_path &&
            asprintf(&w, "weights %s (sha256 %s)", x->weights_path, x->weights_hash ? x->weights_hash : "not recorded") < 0)
            w = NULL;
        if (x->source_path &&
            asprintf(&s, "imported from %s (sha256 %s)", x->source_path, x->source_hash ? x->source_hash : "not recorded") < 0)
            s = NULL;
        tab_add(&t, "%s%s%s", w ? w : "", w && s ? "; " : "", s ? s : !w ? "not recorded" : "");
        free(w);
        free(s);
    }
    doc_table(d, &t);
    doc_para(d, "masks: the mask assignment (mode:seed of masksynth init) whose masked images the run was "
                "evaluated on.%s%s", ds->masks_differ ? " " : "", ds->masks_differ ? masks_differ_note : "");

    doc_heading(d, 3, "Metrics");
    tab_init(&t, "lrrrrrrrr");
    tab_add(&t, "model");
    tab_add(&t, "correct");
    tab_add(&t, "accuracy (%%)");
    tab_add(&t, "%g%% CI (Wilson)", level);
    tab_add(&t, "macro-F1 (%%)");
    tab_add(&t, "%g%% CI (bootstrap)", level);
    tab_add(&t, "balanced acc. (%%)");
    tab_add(&t, "Cohen's kappa");
    tab_add(&t, "MCC");
    for (int i = 0; i < ds->nruns; i++) {
        const metrics *m = &ds->runs[i].m;
        tab_model(&t, r, ds->runs[i].model);
        tab_num(&t, "%ld / %ld", m->correct, m->n);
        tab_num(&t, "%s", pct(m->accuracy));
        tab_num(&t, "%s", pct_ci(m->wilson[0], m->wilson[1]));
        tab_num(&t, "%s", pct(m->macro_f1));
        tab_num(&t, "%s", pct_ci(ds->runs[i].f1.lo, ds->runs[i].f1.hi));
        tab_num(&t, "%s", pct(m->balanced_accuracy));
        tab_num(&t, "%s", m->kappa_defined ? fixed(m->kappa, 4) : "n/a");
        tab_num(&t, "%s", fixed(m->mcc, 4));
    }
    doc_table(d, &t);

    doc_heading(d, 3, "Per-class accuracy (%%)");
    char align[16];
    snprintf(align, sizeof align, "l%.*sr", ds->k, "rrrrrrrr");
    tab_init(&t, align);
    tab_add(&t, "model");
    for (int c = 0; c < ds->k; c++) tab_add(&t, "%s (n = %ld)", data_label_names[c], ds->runs[0].m.support[c]);
    tab_add(&t, "mean");
    for (int i = 0; i < ds->nruns; i++) {
        const metrics *m = &ds->runs[i].m;
        tab_model(&t, r, ds->runs[i].model);
        for (int c = 0; c < ds->k; c++) tab_num(&t, "%s", m->support[c] ? pct(m->recall[c]) : "n/a");
        tab_num(&t, "%s", pct(m->balanced_accuracy));
    }
    doc_table(d, &t);
    doc_para(d, "Per-class accuracy is the recall of the class (the share of its images classified correctly); mean "
             "is the balanced accuracy (over the classes with images).");

    doc_heading(d, 3, "Per-class precision, recall and F1");
    for (int i = 0; i < ds->nruns; i++) {
        const metrics *m = &ds->runs[i].m;
        doc_heading(d, 4, "%s%s", ds->runs[i].model, ds->runs[i].model == ref ? " \u2020" : "");
        tab_init(&t, "lrrrrr");
        tab_add(&t, "class");
        tab_add(&t, "precision (%%)");
        tab_add(&t, "recall (%%)");
        tab_add(&t, "F1 (%%)");
        tab_add(&t, "images");
        tab_add(&t, "predicted");
        for (int c = 0; c < ds->k; c++) {
            tab_add(&t, "%s", data_label_names[c]);
            tab_num(&t, "%s", pct(m->precision[c]));
            tab_num(&t, "%s", pct(m->recall[c]));
            tab_num(&t, "%s", pct(m->f1[c]));
            tab_num(&t, "%ld", m->support[c]);
            tab_num(&t, "%ld", m->predicted[c]);
        }
        tab_add(&t, "macro average");
        tab_num(&t, "%s", pct(m->macro_precision));
        tab_num(&t, "%s", pct(m->macro_recall));
        tab_num(&t, "%s", pct(m->macro_f1));
        tab_num(&t, "%ld", m->n);
        tab_num(&t, "%ld", m->n);
        tab_add(&t, "weighted average");
        tab_num(&t, "%s", pct(m->weighted_precision));
        tab_num(&t, "%s", pct(m->weighted_recall));
        tab_num(&t, "%s", pct(m->weighted_f1));
        tab_num(&t, "%ld", m->n);
        tab_num(&t, "%ld", m->n);
        doc_table(d, &t);
    }

    doc_heading(d, 3, "McNemar against %s", ds->ref >= 0 ? ref : "the reference");
    if (ds->ref < 0) {
        doc_para(d, "The reference model %s has no run on this dataset: no comparisons.", ref);
    } else if (ds->ncmp == 0) {
        doc_para(d, "Only the reference model has a run on this dataset: no comparisons.");
    } else {
        tab_init(&t, "lrrrrrrrrrl");
        tab_add(&t, "model");
        tab_add(&t, "accuracy (%%)");
        tab_add(&t, "b");
        tab_add(&t, "c");
        tab_add(&t, "%s \u2212 model (pp)", ref);
        tab_add(&t, "%g%% CI (Newcombe)", level);
        tab_add(&t, "macro-F1 diff. (pp)");
        tab_add(&t, "%g%% CI (paired bootstrap)", level);
        tab_add(&t, "p (%s)", mcnemar_method_name[r->method]);
        tab_add(&t, "p (%s)", adjust_name[r->adjust]);
        tab_add(&t, "significant");
        for (int c = 0; c < ds->ncmp; c++) {
            const comparison *cp = &ds->cmp[c];
            tab_model(&t, r, ds->runs[cp->run].model);
            tab_num(&t, "%s", pct(ds->runs[cp->run].m.accuracy));
            tab_num(&t, "%ld", cp->r.b);
            tab_num(&t, "%ld", cp->r.c);
            tab_num(&t, "%s", pp(cp->r.diff));
            tab_num(&t, "%s", pp_ci(cp->r.diff_lo, cp->r.diff_hi));
            tab_num(&t, "%s", pp(cp->f1_diff.estimate));
            tab_num(&t, "%s", pp_ci(cp->f1_diff.lo, cp->f1_diff.hi));
            tab_num(&t, "%s", pval(cp->p));
            tab_num(&t, "%s", pval(cp->p_adj));
            tab_num(&t, "%s", cp->p_adj < r->alpha ? "*" : cp->r.n == 0 ? "no discordant pairs" : "");
        }
        doc_table(d, &t);
        doc_para(d, "b: images %s got right and the model wrong; c: the reverse. Differences are %s minus the model, "
                 "in percentage points. Significant (*): the adjusted p is below %g.", ref, ref, r->alpha);
    }
    if (ds->has_q)
        doc_para(d, "Cochran's Q over the %d models: Q = %.4f, df = %d, p = %s%s.", ds->nruns, ds->q, ds->q_df,
                 pval(ds->q_p), ds->q_degenerate ? " (every image is right for all models or wrong for all)" : "");

    doc_heading(d, 3, "Timing");
    tab_init(&t, "llrrrr");
    tab_add(&t, "model");
    tab_add(&t, "device");
    tab_add(&t, "batch");
    tab_add(&t, "ms / image");
    tab_add(&t, "images / s");
    tab_add(&t, "peak memory (MiB)");
    for (int i = 0; i < ds->nruns; i++) {
        const run_eval *x = &ds->runs[i];
        for (int j = 0; j < x->nt; j++) {
            tab_model(&t, r, x->model);
            tab_add(&t, "%s", x->t[j].device);
            tab_num(&t, "%d", x->t[j].batch);
            tab_num(&t, "%s", fixed(x->t[j].ms, 3));
            tab_num(&t, "%s", fixed(x->t[j].ips, 1));
            tab_num(&t, "%s", x->t[j].has_peak ? fixed((double)x->t[j].peak / 1048576.0, 1) : "n/a");
        }
        if (x->nt == 0) {
            tab_model(&t, r, x->model);
            tab_add(&t, "%s", x->source_path ? "not measured here (imported predictions)" : "not measured");
            for (int j = 0; j < 4; j++) tab_add(&t, "n/a");
        }
    }
    doc_table(d, &t);
    doc_para(d, "ms / image: forward pass only; images / s: the whole run, decoding included; peak memory: the "
             "process's maximum resident set on the CPU, what the backend allocated on a GPU.");

    doc_heading(d, 3, "Confusion matrices");
    if (d->html) {
        fputs("<div class=\"cms\">\n", d->f);
        for (int i = 0; i < ds->nruns; i++) {
            const run_eval *x = &ds->runs[i];
            confusion_plot p = {ds->k, data_label_names, x->cm, x->model, ds->name, r->split};
            fputs("<figure>\n", d->f);
            confusion_svg_print(d->f, &p);
            fprintf(d->f, "<figcaption><a href=\"%s\">%s</a></figcaption>\n</figure>\n", x->svg, x->svg);
        }
        fputs("</div>\n", d->f);
    } else {
        for (int i = 0; i < ds->nruns; i++) {
            fputs("- [", d->f);
            md_text(d->f, ds->runs[i].model);
            fprintf(d->f, "](%s)\n", ds->runs[i].svg);
        }
        fputc('\n', d->f);
    }
}

static void write_doc(const doc *d, const report *r)
{
    double level = 100 * (1 - r->alpha);
    if (d->html) {
        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", d->f);
        html_text(d->f, "ferbench report: ");
        html_text(d->f, r->split);
        fputs(" split</title>\n<style>\n"
              "body { font-family: Helvetica, Arial, sans-serif; color: #111; max-width: 72em; margin: 2em auto; "
              "padding: 0 1em; line-height: 1.4; }\n"
              "table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }\n"
              "th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }\n"
              "th { background: #f2f4f7; }\n"
              "td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }\n"
              "td { overflow-wrap: anywhere; }\n"
              "td.r, td.n, td:first-child { white-space: nowrap; }\n" /* numbers, names, dates stay whole */
              ".cms { display: flex; flex-wrap: wrap; gap: 1em; }\n"
              "figure { margin: 0; }\n"
              "figcaption { font-size: 0.8em; color: #555; }\n"
              "</style>\n</head>\n<body>\n",
              d->f);
    }
    doc_heading(d, 1, "ferbench report: %s split", r->split);
    doc_para(d, "ferbench %s, database %s. Reference model: %s (marked \u2020). Each model is represented by its "
             "latest run (the highest run id) on each dataset.", FB_VERSION, r->db, r->reference);
    doc_heading(d, 2, "Summary");
    doc_summary(d, r);
    doc_para(d, "Accuracy (%%) on the %s split of each dataset. \u2020 the reference model; * significantly different "
             "from it (McNemar %s, %s-adjusted p below %g); \u2014 no run on that dataset.", r->split,
             mcnemar_method_name[r->method], adjust_name[r->adjust], r->alpha);
    doc_heading(d, 2, "Conventions");
    doc_list(d, 1);
    doc_item(d, "Accuracy with its %g%% Wilson score interval; per-class precision, recall and F1 as scikit-learn "
             "(F1 = 2tp / (2tp + fp + fn), an undefined value counts as 0); macro = mean over the %s classes; "
             "balanced accuracy = mean recall over the classes with images; Cohen's kappa (n/a when undefined), MCC.",
             level, "declared");
    doc_item(d, "Macro-F1 interval: percentile bootstrap, %ld resamples, seed %ld (resample r draws from its own "
             "stream, so the result does not depend on the thread count; every model is resampled on the same "
             "images).", r->resamples, r->seed);
    doc_item(d, "McNemar (%s) of the reference against each other model on the same images: b = reference right and "
             "model wrong, c = the reverse; chi2-cc skips the continuity correction at b = c (R's convention); "
             "no discordant pairs give p = 1.", mcnemar_method_name[r->method]);
    doc_item(d, "p-values adjusted with %s over the comparisons of each dataset; significance level alpha = %g.",
             adjust_name[r->adjust], r->alpha);
    doc_item(d, "Accuracy differences with Newcombe's paired square-and-add interval (Wilson based); macro-F1 "
             "differences with the paired percentile bootstrap (same resamples and seed).");
    doc_item(d, "Cochran's Q over all models of a dataset when there are 3 or more (chi-square, k - 1 df).");
    doc_list(d, 0);
    for (int i = 0; i < r->nds; i++) doc_dataset(d, r, &r->ds[i]);
    if (d->html) fputs("</body>\n</html>\n", d->f);
}

/* ---- the command ---------------------------------------------------------------------- */

static void report_free(report *r)
{
    for (int di = 0; di < r->nds; di++) {
        dataset_eval *d = &r->ds[di];
        for (int i = 0; i < d->nruns; i++) {
            run_eval *x = &d->runs[i];
            free(x->started);
            free(x->weights_path);
            free(x->weights_hash);
            free(x->source_path);
            free(x->source_hash);
            free(x->predictions_path);
            free(x->masks);
            free(x->yhat);
            free(x->cm);
            if (x->m.cm) metrics_free(&x->m);
            for (int j = 0; j < x->nt; j++) free(x->t[j].device);
            free(x->t);
            free(x->svg);
        }
        for (long i = 0; i < d->n; i++) free(d->image[i]);
        free(d->image);
        free(d->y);
        free(d->by_id);
        free(d->runs);
        free(d->cmp);
        free(d->name);
    }
    free(r->ds);
    for (int i = 0; i < r->nmodels; i++) free(r->models[i]);
    free(r->models);
}

/* Writes one output file through fn. */
static int write_out(const char *dir, const char *name, void (*fn)(FILE *, const report *), const report *r,
                     char *err, size_t errlen)
{
    char *path = path_in(dir, name);
    atomic_file af;
    int rc = atomic_open(&af, path, err, errlen);
    if (rc == 0) {
        fn(af.f, r);
        rc = atomic_commit(&af, err, errlen);
    }
    if (rc == 0) printf("wrote %s\n", path);
    free(path);
    return rc;
}

static void md_file(FILE *f, const report *r) { write_doc(&(doc){f, 0}, r); }
static void html_file(FILE *f, const report *r) { write_doc(&(doc){f, 1}, r); }

static int write_outputs(const report *r, const char *out, char *err, size_t errlen)
{
    char why[1024];
    if (mkdir_p(out, why, sizeof why)) {
        snprintf(err, errlen, "--out: %s", why);
        return -1;
    }
    for (int di = 0; di < r->nds; di++)
        for (int i = 0; i < r->ds[di].nruns; i++) {
            const dataset_eval *d = &r->ds[di];
            const run_eval *x = &d->runs[i];
            confusion_plot p = {d->k, data_label_names, x->cm, x->model, d->name, r->split};
            char *path = path_in(out, x->svg);
            int rc = confusion_svg_write(path, &p, err, errlen);
            if (rc == 0) printf("wrote %s\n", path);
            free(path);
            if (rc) return -1;
        }
    if (write_out(out, "report.json", write_json, r, err, errlen) ||
        write_out(out, "report.md", md_file, r, err, errlen) || write_out(out, "index.html", html_file, r, err, errlen))
        return -1;
    return 0;
}

int cmd_report(const cli_args *a)
{
    report r = {0};
    r.db = cli_get(a, "db") ? cli_get(a, "db") : "db/ferbench.sqlite";
    const char *out = cli_get(a, "out");
    static const char *const splits[] = {"train", "val", "test"};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN), threads;
    int split = cli_get_choice(a, "split", "train|val|test", 2);
    int method = cli_get_choice(a, "method", "midp|exact|chi2|chi2-cc", MC_MIDP);
    int adjust = cli_get_choice(a, "adjust", "holm|bonferroni|none", ADJ_HOLM);
    if (split < 0 || method < 0 || adjust < 0 || cli_get_double(a, "alpha", 0.05, 1e-12, 0.5, &r.alpha) ||
        cli_get_long(a, "resamples", 2000, 2, 100000000, &r.resamples) ||
        cli_get_long(a, "seed", 42, 0, 0x7fffffffffffffffL, &r.seed) ||
        cli_get_long(a, "threads", ncpu > 0 ? ncpu : 1, 1, 256, &threads))
        return EXIT_BAD_INPUT;
    if (!out) {
        log_error("report: --out DIR is required (the folder for report.md, index.html, report.json and the SVGs)");
        return EXIT_BAD_INPUT;
    }
    r.split = splits[split];
    r.method = (enum mcnemar_method)method;
    r.adjust = (enum adjust_method)adjust;
    r.threads = (int)threads;

    /* db_open would create a missing file: the report only reads what exists. */
    struct stat sb;
    if (stat(r.db, &sb) != 0) {
        log_error("%s: %s (the report reads an existing database; give --db FILE)", r.db, strerror(errno));
        return EXIT_BAD_INPUT;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size == 0) {
        log_error("%s: not a ferbench database (%s)", r.db, S_ISREG(sb.st_mode) ? "an empty file" : "not a file");
        return EXIT_BAD_INPUT;
    }
    char err[ERRLEN] = "";
    int rc = EXIT_BAD_INPUT;
    sqlite3 *db = NULL;
    char **avail = NULL;
    int navail = 0;
    const char *only = cli_get(a, "dataset");
    if (db_open(r.db, &db, err, sizeof err) || select_datasets(db, &r, only, err, sizeof err) ||
        available_models(db, &r, only, &avail, &navail, err, sizeof err) ||
        select_models(&r, avail, navail, cli_get(a, "models"), cli_get(a, "reference"), err, sizeof err))
        goto done;
    for (int i = 0; i < r.nds; i++) {
        dataset_eval *d = &r.ds[i];
        if (load_runs(db, &r, d, err, sizeof err) || (d->nruns && load_images(db, &r, d, err, sizeof err)))
            goto done;
        for (int j = 0; j < d->nruns; j++)
            if (load_predictions(db, &r, d, &d->runs[j], err, sizeof err)) goto done;
    }
    /* Datasets where none of the selected models ran are left out. */
    int kept = 0;
    for (int i = 0; i < r.nds; i++) {
        if (!r.ds[i].nruns) {
            free(r.ds[i].runs);
            free(r.ds[i].name);
        } else {
            r.ds[kept++] = r.ds[i];
        }
    }
    r.nds = kept;
    db_close(db);
    db = NULL;
    for (int i = 0; i < r.nds; i++) evaluate(&r, &r.ds[i]);
    name_svgs(&r);
    for (int i = 0; i < r.nds; i++) {
        const dataset_eval *d = &r.ds[i];
        for (int j = 0; j < d->nruns; j++) {
            const run_eval *x = &d->runs[j];
            const comparison *c = comparison_of(d, j);
            printf("report dataset=%s split=%s model=%s run=%lld images=%ld accuracy=%.6f macro_f1=%.6f", d->name,
                   r.split, x->model, x->run_id, d->n, x->m.accuracy, x->m.macro_f1);
            if (j == d->ref) printf(" reference");
            else if (c) printf(" p_%s=%.6g", adjust_name[r.adjust], c->p_adj);
            printf("\n");
        }
    }
    if (write_outputs(&r, out, err, sizeof err)) goto done;
    rc = EXIT_OK;
done:
    if (rc != EXIT_OK) log_error("%s", err[0] ? err : "report failed");
    db_close(db);
    for (int i = 0; i < navail; i++) free(avail[i]);
    free(avail);
    report_free(&r);
    return rc;
}
