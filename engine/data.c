#include "data.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/image.h"
#include "../common/rng.h"
#include "../common/util.h"
#include "../db/db.h"

const float data_mean[3] = {0.485f, 0.456f, 0.406f};
const float data_std[3] = {0.229f, 0.224f, 0.225f};
const char *const data_label_names[DATA_MAX_CLASSES] = {"surprise", "fear",  "disgust", "happiness",
                                                        "sadness",  "anger", "neutral", "contempt"};

/* MODEL.md's pairs; every index not listed maps to itself. */
const int data_flip_perm[DATA_NPOINTS] = {
    16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1,  0,  /* jaw */
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,                             /* brows */
    27, 28, 29, 30, 35, 34, 33, 32, 31,                                 /* nose */
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,                     /* eyes */
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,                     /* outer lips */
    64, 63, 62, 61, 60, 67, 66, 65,                                     /* inner lips */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------- */
/* The split from the database */

/* Strict "[[x, y], ...]" with 68 finite pairs, as render.c writes them. */
static int parse_landmarks(const char *s, double pts[DATA_NPOINTS][2])
{
    const char *p = s;
    char *end;
#define WS() while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++
#define EXPECT(ch) do { WS(); if (*p++ != (ch)) return -1; } while (0)
    EXPECT('[');
    for (int k = 0; k < DATA_NPOINTS; k++) {
        if (k) EXPECT(',');
        EXPECT('[');
        for (int c = 0; c < 2; c++) {
            if (c) EXPECT(',');
            WS();
            errno = 0;
            pts[k][c] = strtod(p, &end);
            if (end == p || errno || !isfinite(pts[k][c])) return -1;
            p = end;
        }
        EXPECT(']');
    }
    EXPECT(']');
    WS();
#undef EXPECT
#undef WS
    return *p ? -1 : 0;
}

static char *path_join(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* masksynth stores --out as given: absolute, or relative to the folder it ran in, which is usually ours or
 * (with --db x --out y run inside the database's folder) the database's. First existing candidate wins. */
static char *resolve_path(const char *stored, const char *cwd, const char *db_dir)
{
    if (stored[0] == '/') return access(stored, F_OK) == 0 ? xstrdup(stored) : NULL;
    char *a = path_join(cwd, stored);
    if (access(a, F_OK) == 0) return a;
    free(a);
    a = path_join(db_dir, stored);
    if (access(a, F_OK) == 0) return a;
    free(a);
    return NULL;
}

/* One problem kind found while loading: how many images, and the first by name. */
typedef struct {
    int count;
    char first[512];
} problem;

static void note(problem *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(problem *p, const char *fmt, ...)
{
    if (p->count++) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->first, sizeof p->first, fmt, ap);
    va_end(ap);
}

void data_split_free(data_split *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->items[i].name);
        free(s->items[i].image_path);
        free(s->items[i].alpha_path);
    }
    free(s->items);
    free(s->dataset);
    memset(s, 0, sizeof *s);
}

int data_choose_masks(sqlite3 *db, long long ds, const char *dataset, const char *split, const char *mode,
                      char out_mode[16], long long *out_seed, char *err, size_t errlen)
{
    char want[16] = "";
    long long want_seed = 0;
    int has_seed = 0;
    if (mode) {
        const char *colon = strchr(mode, ':');
        size_t len = colon ? (size_t)(colon - mode) : strlen(mode);
        char *end;
        if (colon) {
            errno = 0;
            want_seed = strtoll(colon + 1, &end, 10);
            has_seed = 1;
        }
        if (len == 0 || len >= sizeof want || (colon && (end == colon + 1 || *end || errno))) {
            set_err(err, errlen, "mode '%s': expected MODE or MODE:SEED (MODE identity, pattern or none)", mode);
            return -1;
        }
        memcpy(want, mode, len);
        want[len] = '\0';
        if (strcmp(want, "identity") && strcmp(want, "pattern") && strcmp(want, "none")) {
            set_err(err, errlen, "mode '%s': unknown (identity, pattern or none)", want);
            return -1;
        }
    }
    /* Rendered (mode, seed) pairs of the split first; without any, the assigned ones (the images then have
     * no render, which the caller reports with the fix). */
    static const char *const sql[2] = {
        "SELECT a.mode, a.seed, count(*) FROM renders r JOIN assignments a ON a.id = r.assignment_id "
        "JOIN images i ON i.id = r.image_id WHERE i.dataset_id = ?1 AND i.status = 'ok' AND i.benchmark_split = ?2 "
        "AND (?3 IS NULL OR a.mode = ?3) AND (?4 IS NULL OR a.seed = ?4) GROUP BY a.mode, a.seed ORDER BY a.mode, a.seed",
        "SELECT a.mode, a.seed, count(*) FROM assignments a JOIN images i ON i.id = a.image_id "
        "WHERE i.dataset_id = ?1 AND i.status = 'ok' AND i.benchmark_split = ?2 "
        "AND (?3 IS NULL OR a.mode = ?3) AND (?4 IS NULL OR a.seed = ?4) GROUP BY a.mode, a.seed ORDER BY a.mode, a.seed",
    };
    for (int q = 0; q < 2; q++) {
        sqlite3_stmt *st;
        if (db_prepare(db, sql[q], &st, err, errlen)) return -1;
        sqlite3_bind_int64(st, 1, ds);
        sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
        if (mode) sqlite3_bind_text(st, 3, want, -1, SQLITE_STATIC);
        if (has_seed) sqlite3_bind_int64(st, 4, want_seed);
        char list[1024] = "";
        size_t used = 0;
        int found = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *m = (const char *)sqlite3_column_text(st, 0);
            long long seed = sqlite3_column_int64(st, 1);
            if (!found++) {
                snprintf(out_mode, 16, "%s", m);
                *out_seed = seed;
            }
            if (used < sizeof list)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s:%lld (%lld %s)", found > 1 ? ", " : "",
                                         m, seed, sqlite3_column_int64(st, 2), q ? "assigned" : "rendered");
        }
        sqlite3_finalize(st);
        if (found > 1) {
            set_err(err, errlen, "dataset %s, split %s: %s of several mask assignments (%s): choose one with MODE:SEED",
                    dataset, split, q ? "images" : "renders", list);
            return -1;
        }
        if (found == 1) return 0;
    }
    if (mode)
        set_err(err, errlen, "dataset %s, split %s: no assignment of mode %s: run `masksynth init` with it", dataset,
                split, mode);
    else
        set_err(err, errlen, "dataset %s, split %s: no pattern assignments: run `masksynth init` first", dataset,
                split);
    return -1;
}

int data_dataset_classes(sqlite3 *db, long long dataset_id, int *nclasses, char *err, size_t errlen)
{
    /* Contempt (7) only if the dataset kept it, for every split alike. */
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT ifnull(max(label), 0) FROM images WHERE dataset_id = ?", &st, err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, dataset_id);
    int rc = sqlite3_step(st);
    *nclasses = rc == SQLITE_ROW && sqlite3_column_int(st, 0) == 7 ? 8 : 7;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        set_err(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

int data_find_dataset(sqlite3 *db, const char *db_path, const char *name, long long *id, char **name_out,
                      int *nclasses, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int n = 0;
    char names[512] = "";
    size_t used = 0;
    *id = -1;
    *name_out = NULL;
    if (db_prepare(db, "SELECT id, name FROM datasets WHERE ?1 IS NULL OR name = ?1 ORDER BY name", &st, err, errlen))
        return -1;
    if (name) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (!n++) {
            *id = sqlite3_column_int64(st, 0);
            *name_out = db_column_dup(st, 1, NULL);
        }
        if (used < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", n > 1 ? ", " : "",
                                     sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (n != 1) {
        if (name) set_err(err, errlen, "%s: no dataset named '%s'", db_path, name);
        else if (!n) set_err(err, errlen, "%s: no dataset: run `masksynth init` first", db_path);
        else set_err(err, errlen, "%s: several datasets (%s): name one", db_path, names);
        free(*name_out);
        *name_out = NULL;
        return -1;
    }
    if (data_dataset_classes(db, *id, nclasses, err, errlen)) {
        free(*name_out);
        *name_out = NULL;
        return -1;
    }
    return 0;
}

int data_open_split(const char *db_path, const char *dataset, const char *split, const char *mode, data_split *out,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!split || (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test"))) {
        set_err(err, errlen, "split '%s': unknown (train, val or test)", split ? split : "(null)");
        return -1;
    }
    struct stat sb;
    if (stat(db_path, &sb) != 0) {
        set_err(err, errlen, "%s: %s", db_path, strerror(errno));
        return -1;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    data_split s = {0};
    char *db_dir = NULL, cwd[4096];
    int rc = -1;
    snprintf(s.split, sizeof s.split, "%s", split);
    if (!getcwd(cwd, sizeof cwd)) {
        set_err(err, errlen, "cannot read the current directory: %s", strerror(errno));
        return -1;
    }
    /* Absolute folder of the database, for paths masksynth wrote relative to it. */
    const char *slash = strrchr(db_path, '/');
    if (!slash) db_dir = xstrdup(cwd);
    else if (db_path[0] == '/') db_dir = slash == db_path ? xstrdup("/") : strndup(db_path, (size_t)(slash - db_path));
    else {
        char *rel = strndup(db_path, (size_t)(slash - db_path));
        db_dir = path_join(cwd, rel);
        free(rel);
    }
    if (db_open(db_path, &db, err, errlen)) goto out;

    long long ds;
    if (data_find_dataset(db, db_path, dataset, &ds, &s.dataset, &s.nclasses, err, errlen)) goto out;
    s.labels = data_label_names;

    long long nimages = 0;
    if (db_prepare(db, "SELECT count(*) FROM images WHERE dataset_id = ? AND status = 'ok' AND benchmark_split = ?", &st,
                   err, errlen)) goto out;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) nimages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (nimages == 0) {
        set_err(err, errlen, "dataset %s: split %s has no images (is a split recipe applied? `masksynth init`)",
                s.dataset, split);
        goto out;
    }
    if (nimages > 0x7fffffff / 2) {
        set_err(err, errlen, "dataset %s: split %s has %lld images, more than this loader handles", s.dataset, split,
                nimages);
        goto out;
    }
    if (data_choose_masks(db, ds, s.dataset, s.split, mode, s.mode, &s.mode_seed, err, errlen)) goto out;

    if (db_prepare(db, "SELECT i.id, i.name, i.label, ifnull(i.width, 0), ifnull(i.height, 0), r.id, r.status, "
                       "r.output_path, r.alpha_path, r.landmarks FROM images i "
                       "LEFT JOIN assignments a ON a.image_id = i.id AND a.mode = ?3 AND a.seed = ?4 "
                       "LEFT JOIN renders r ON r.image_id = i.id AND r.assignment_id = a.id "
                       "WHERE i.dataset_id = ?1 AND i.status = 'ok' AND i.benchmark_split = ?2 ORDER BY i.name",
                   &st, err, errlen)) goto out;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s.mode, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, s.mode_seed);
    s.items = xcalloc((size_t)nimages, sizeof *s.items);
    problem no_render = {0}, no_output = {0}, bad_label = {0}, bad_lmk = {0}, missing = {0};
    while (sqlite3_step(st) == SQLITE_ROW && s.n < nimages) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        int label = sqlite3_column_int(st, 2);
        const char *status = (const char *)sqlite3_column_text(st, 6);
        const char *op = (const char *)sqlite3_column_text(st, 7), *ap = (const char *)sqlite3_column_text(st, 8),
                   *lm = (const char *)sqlite3_column_text(st, 9);
        if (sqlite3_column_type(st, 5) == SQLITE_NULL) {
            note(&no_render, "%s", name);
            continue;
        }
        if (!op || !ap || !lm) {
            note(&no_output, "%s, status %s", name, status);
            continue;
        }
        if (label < 0 || label >= s.nclasses) {
            note(&bad_label, "%s, label %d", name, label);
            continue;
        }
        data_item *it = &s.items[s.n];
        if (parse_landmarks(lm, it->landmarks)) {
            note(&bad_lmk, "%s", name);
            continue;
        }
        char *ip = resolve_path(op, cwd, db_dir), *alp = ip ? resolve_path(ap, cwd, db_dir) : NULL;
        if (!ip || !alp) {
            note(&missing, "%s: %s", name, ip ? ap : op);
            free(ip);
            free(alp);
            continue;
        }
        it->image_id = sqlite3_column_int64(st, 0);
        it->name = xstrdup(name);
        it->label = label;
        it->width = sqlite3_column_int(st, 3);
        it->height = sqlite3_column_int(st, 4);
        it->image_path = ip;
        it->alpha_path = alp;
        s.n++;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* Every problem kind in one message, so one look tells what to fix. */
    char msg[2048] = "";
    size_t used = 0;
    struct { problem *p; const char *what, *fix; } kinds[5] = {
        {&no_render, "with no render", "run `masksynth --split %s` first"},
        {&no_output, "with a render but no output", "they cannot be used: fix them and re-run `masksynth --split %s`"},
        {&bad_label, "with a label outside the dataset's classes", "the database is inconsistent (split %s)"},
        {&bad_lmk, "with landmarks that are not 68 [x, y] pairs", "re-run `masksynth --split %s`"},
        {&missing, "with a render file missing", "moved? re-run `masksynth --split %s`, or run from the folder "
                                                 "masksynth ran in"},
    };
    for (int k = 0; k < 5; k++) {
        problem *p = kinds[k].p;
        if (!p->count || used >= sizeof msg) continue;
        char fix[256];
        snprintf(fix, sizeof fix, kinds[k].fix, split);
        used += (size_t)snprintf(msg + used, sizeof msg - used, "%s%d %s image%s %s (first: %s): %s", used ? "; " : "",
                                 p->count, split, p->count == 1 ? "" : "s", kinds[k].what, p->first, fix);
    }
    if (msg[0]) {
        set_err(err, errlen, "dataset %s, mode %s:%lld: %s", s.dataset, s.mode, s.mode_seed, msg);
        goto out;
    }
    if (s.n != nimages) {
        set_err(err, errlen, "dataset %s: split %s changed while it was read", s.dataset, split);
        goto out;
    }
    *out = s;
    rc = 0;
out:
    sqlite3_finalize(st);
    db_close(db);
    free(db_dir);
    if (rc) data_split_free(&s);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* One sample */

void data_flip_landmarks(const double in[DATA_NPOINTS][2], int W, double out[DATA_NPOINTS][2])
{
    for (int k = 0; k < DATA_NPOINTS; k++) {
        const double *p = in[data_flip_perm[k]];
        double xc = p[0] + 0.5;            /* continuous coordinate: pixel x covers [x, x+1) */
        out[k][0] = ((double)W - xc) - 0.5;
        out[k][1] = p[1];
    }
}

/* PyTorch's linear interpolation indices and weights for one axis (compute_indices_weights_linear): a float
 * scale, the source index in double (float scale * (int + 0.5) promotes), the weight rounded to float.
 * These weights equal PyTorch 1.13's bit for bit (checked on many sizes); the values then differ from its
 * by at most about one float ulp, because its compiled kernel fuses some multiply-adds. */
typedef struct {
    int i0, i1;
    float l0, l1;
} lin_w;

static void linear_weights(int in, int out, lin_w *w)
{
    float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        double src = scale * (d + 0.5) - 0.5;
        if (src < 0) src = 0;
        int i0 = (int)src;
        float l1 = (float)(src - i0);
        l1 = l1 < 0 ? 0 : l1 > 1 ? 1 : l1;
        w[d] = (lin_w){i0, i0 + (i0 < in - 1), 1.0f - l1, l1};
    }
}

/* One source row resized across: o[x] = the row's two neighbours blended, as PyTorch's first step. */
static void resize_row(const uint8_t *row, int nc, const lin_w *wx, int S, float *o)
{
    for (int x = 0; x < S; x++) o[x] = (float)row[wx[x].i0 * nc] * wx[x].l0 + (float)row[wx[x].i1 * nc] * wx[x].l1;
}

/* Source row i resized across, from a two-row cache (output rows walk the source rows in order, each
 * source row serving about S/h of them); the slot holding row `keep` is never overwritten. */
static const float *cached_row(const uint8_t *px, int w, int nc, int c, const lin_w *wx, int S, int i, int keep,
                               int idx[2], float *buf[2])
{
    for (int k = 0; k < 2; k++)
        if (idx[k] == i) return buf[k];
    int k = idx[0] == keep ? 1 : 0;
    resize_row(px + (size_t)i * w * nc + c, nc, wx, S, buf[k]);
    idx[k] = i;
    return buf[k];
}

void data_resize_bilinear(const uint8_t *px, int w, int h, int nc, int c, int S, float *out)
{
    lin_w *wx = xmalloc(sizeof *wx * (size_t)S), *wy = xmalloc(sizeof *wy * (size_t)S);
    float *rows = xmalloc(sizeof *rows * 2 * (size_t)S), *buf[2] = {rows, rows + S};
    int idx[2] = {-1, -1};
    linear_weights(w, S, wx);
    linear_weights(h, S, wy);
    /* rows first, then columns, in PyTorch's order of operations; a source row's horizontal blend is the
     * same floats whichever output row asks for it, so it is computed once */
    for (int y = 0; y < S; y++) {
        const float *t0 = cached_row(px, w, nc, c, wx, S, wy[y].i0, wy[y].i1, idx, buf);
        const float *t1 = cached_row(px, w, nc, c, wx, S, wy[y].i1, wy[y].i0, idx, buf);
        const float l0 = wy[y].l0, l1 = wy[y].l1;
        float *o = out + (size_t)y * S;
        for (int x = 0; x < S; x++) o[x] = t0[x] * l0 + t1[x] * l1;
    }
    free(rows);
    free(wx);
    free(wy);
}

/* Fractional overlaps of [k*n/G, (k+1)*n/G) with source pixels: first pixel and up to cap weights. */
static int overlaps(int n, int G, int k, int *first, double *wt, int cap)
{
    double a = (double)k * n / G, b = (double)(k + 1) * n / G;
    int p0 = (int)floor(a), p1 = (int)ceil(b), m = 0;
    if (p1 > n) p1 = n;
    *first = p0;
    for (int p = p0; p < p1 && m < cap; p++) wt[m++] = fmin(p + 1.0, b) - fmax((double)p, a);
    return m;
}

void data_area_average(const uint8_t *px, int w, int h, int G, float *out)
{
    /* a cell spans at most ceil(n/G) + 1 pixels */
    int capx = w / G + 2, capy = h / G + 2;
    double *wx = xmalloc(sizeof *wx * (size_t)capx), *wy = xmalloc(sizeof *wy * (size_t)capy);
    for (int i = 0; i < G; i++) {
        int y0, ny = overlaps(h, G, i, &y0, wy, capy);
        for (int j = 0; j < G; j++) {
            int x0, nx = overlaps(w, G, j, &x0, wx, capx);
            double sum = 0, sw = 0, sh = 0;
            for (int a = 0; a < ny; a++) {
                const uint8_t *row = px + (size_t)(y0 + a) * w + x0;
                double rs = 0;
                for (int b = 0; b < nx; b++) rs += wx[b] * row[b];
                sum += wy[a] * rs;
                sh += wy[a];
            }
            for (int b = 0; b < nx; b++) sw += wx[b];
            out[(size_t)i * G + j] = (float)(sum / (255.0 * sw * sh));
        }
    }
    free(wx);
    free(wy);
}

void data_heatmaps(const double pts[DATA_NPOINTS][2], int W, int H, int G, float *out)
{
    /* exp(-(dx^2 + dy^2)/(2 s^2)) = exp(-dx^2/(2 s^2)) * exp(-dy^2/(2 s^2)), in double: equal to the formula
     * up to double rounding, and 2G instead of G^2 exponentials per point. */
    const double two_s2 = 2 * 1.5 * 1.5;
    double *ex = xmalloc(sizeof *ex * (size_t)G), *ey = xmalloc(sizeof *ey * (size_t)G);
    for (int k = 0; k < DATA_NPOINTS; k++) {
        double u = (pts[k][0] + 0.5) * G / W - 0.5, v = (pts[k][1] + 0.5) * G / H - 0.5;
        for (int j = 0; j < G; j++) ex[j] = exp(-(j - u) * (j - u) / two_s2);
        for (int i = 0; i < G; i++) ey[i] = exp(-(i - v) * (i - v) / two_s2);
        float *o = out + (size_t)k * G * G;
        for (int i = 0; i < G; i++)
            for (int j = 0; j < G; j++) o[(size_t)i * G + j] = (float)(ey[i] * ex[j]);
    }
    free(ex);
    free(ey);
}

static void mirror(image *img)
{
    for (int y = 0; y < img->h; y++) {
        uint8_t *row = img->px + (size_t)y * img->w * img->c;
        for (int a = 0, b = img->w - 1; a < b; a++, b--)
            for (int k = 0; k < img->c; k++) {
                uint8_t t = row[a * img->c + k];
                row[a * img->c + k] = row[b * img->c + k];
                row[b * img->c + k] = t;
            }
    }
}

int data_make_sample(const data_item *it, int S, int G, int flip, float *x, float *occ_t, float *heat_t, char *err,
                     size_t errlen)
{
    image img = {0}, alpha = {0};
    char e[1024];
    int rc = -1;
    if (image_load(it->image_path, &img, e, sizeof e) != IMAGE_OK) {
        set_err(err, errlen, "image %s: %s", it->name, e);
        goto out;
    }
    if ((it->width && img.w != it->width) || (it->height && img.h != it->height)) {
        set_err(err, errlen, "image %s: %s: %dx%d, but the original is %dx%d (a stale render?)", it->name,
                it->image_path, img.w, img.h, it->width, it->height);
        goto out;
    }
    if (flip) mirror(&img);
    const size_t plane = (size_t)S * S;
    /* grey: one resized plane, normalised three times (3 copies of v, each channel's mean and std) */
    for (int c = 0; c < 3; c++) {
        float *o = x + c * plane;
        if (c < img.c) data_resize_bilinear(img.px, img.w, img.h, img.c, c, S, o);
        else memcpy(o, x, plane * sizeof *o);
    }
    for (int c = 0; c < 3; c++) {
        float *o = x + c * plane;
        for (size_t p = 0; p < plane; p++) o[p] = (o[p] / 255.0f - data_mean[c]) / data_std[c];
    }
    if (occ_t) {
        if (image_load(it->alpha_path, &alpha, e, sizeof e) != IMAGE_OK) {
            set_err(err, errlen, "image %s: alpha map %s", it->name, e);
            goto out;
        }
        if (alpha.c != 1 || alpha.w != img.w || alpha.h != img.h) {
            set_err(err, errlen, "image %s: alpha map %s: %dx%d with %d channels, expected %dx%d grey", it->name,
                    it->alpha_path, alpha.w, alpha.h, alpha.c, img.w, img.h);
            goto out;
        }
        if (flip) mirror(&alpha);
        data_area_average(alpha.px, alpha.w, alpha.h, G, occ_t);
    }
    if (heat_t) {
        double flipped[DATA_NPOINTS][2];
        if (flip) data_flip_landmarks(it->landmarks, img.w, flipped);
        data_heatmaps(flip ? (const double(*)[2])flipped : it->landmarks, img.w, img.h, G, heat_t);
    }
    rc = 0;
out:
    image_free(&img);
    image_free(&alpha);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* The epoch plan */

void data_epoch_order(int n, uint64_t seed, int epoch, int *perm)
{
    rng_t r;
    rng_seed(&r, seed, DATA_STREAM_ORDER(epoch));
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint64_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

int data_flip(uint64_t seed, int epoch, int index_in_epoch)
{
    rng_t r;
    rng_seed(&r, seed, DATA_STREAM_FLIP(epoch, index_in_epoch));
    return (int)(rng_next(&r) >> 63);
}

/* ------------------------------------------------------------------------- */
/* The loader.
 * Batch b of the epoch is built in slot b % depth. A slot is open to batch b once batch b - depth has been
 * released; workers claim samples in plan order, so the consumer's next batch is always the one furthest
 * along. Sample p goes to position p % batch of its slot: the bytes never depend on which worker ran it. */

typedef struct {
    data_batch b;
    int batch;      /* the batch this slot is for (may still be filling) */
    int done;       /* samples finished */
    int held;       /* handed to the consumer, not yet released */
    int err_pos;    /* first failing sample of the batch, -1 if none */
    char err[1024];
} slot;

struct data_loader {
    const data_split *s;
    data_loader_opts o;
    int total, nbatches, depth;
    int *order;            /* [total] item per position */
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t work;   /* a slot was released, or stop */
    pthread_cond_t ready;  /* a batch was completed */
    int next_pos, next_out, stop, failed;
    char err[1024];
    pthread_t *tid;
    int nthreads;
};

static int batch_size(const data_loader *l, int b)
{
    int left = l->total - b * l->o.batch;
    return left < l->o.batch ? left : l->o.batch;
}

static void *loader_worker(void *arg)
{
    data_loader *l = arg;
    const int B = l->o.batch, S = l->o.S, G = l->o.G;
    const size_t xs = (size_t)3 * S * S, gs = (size_t)G * G;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_pos < l->total && l->slots[(l->next_pos / B) % l->depth].batch != l->next_pos / B)
            pthread_cond_wait(&l->work, &l->mu);
        if (l->stop || l->next_pos >= l->total) break;
        int pos = l->next_pos++, b = pos / B, k = pos % B;
        slot *sl = &l->slots[b % l->depth];
        pthread_mutex_unlock(&l->mu);

        int item = l->order[pos];
        int flip = l->o.augment ? data_flip(l->o.seed, l->o.epoch, pos) : 0;
        char e[1024];
        int rc = data_make_sample(&l->s->items[item], S, G, flip, sl->b.x + k * xs,
                                  l->o.with_targets ? sl->b.occ_t + k * gs : NULL,
                                  l->o.with_targets ? sl->b.heat_t + k * DATA_NPOINTS * gs : NULL, e, sizeof e);
        sl->b.labels[k] = l->s->items[item].label;
        sl->b.items[k] = item;
        sl->b.flipped[k] = (uint8_t)flip;

        pthread_mutex_lock(&l->mu);
        if (rc && (sl->err_pos < 0 || pos < sl->err_pos)) {
            sl->err_pos = pos;
            snprintf(sl->err, sizeof sl->err, "%s", e);
        }
        if (++sl->done == batch_size(l, b)) pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* The buffers that are uploaded: from the options' allocator when it has one. */
static void *upload_buffer(const data_loader_opts *o, size_t bytes)
{
    if (!o->host_alloc) return xmalloc(bytes);
    void *p = o->host_alloc(o->host_ctx, bytes);
    if (!p) out_of_memory(bytes);
    return p;
}

static void upload_buffer_free(const data_loader_opts *o, void *p)
{
    if (!p) return;
    if (o->host_free) o->host_free(o->host_ctx, p);
    else free(p);
}

data_loader *data_loader_start(const data_split *s, const data_loader_opts *o, char *err, size_t errlen)
{
    if (o->S < 1 || o->S > 4096 || o->G < 1 || o->G > 4096 || o->batch < 1 || o->batch > 65536) {
        set_err(err, errlen, "data loader: size %d, grid %d, batch %d: out of range", o->S, o->G, o->batch);
        return NULL;
    }
    if ((o->shuffle || o->augment) && (o->epoch < 0 || o->epoch > 32767)) {
        set_err(err, errlen, "data loader: epoch %d out of range (0..32767)", o->epoch);
        return NULL;
    }
    if (!o->host_alloc != !o->host_free) {
        set_err(err, errlen, "data loader: host_alloc and host_free go together");
        return NULL;
    }
    data_loader *l = xcalloc(1, sizeof *l);
    l->s = s;
    l->o = *o;
    l->total = o->drop_last ? s->n / o->batch * o->batch : s->n;
    l->nbatches = (l->total + o->batch - 1) / o->batch;
    l->depth = o->depth > 0 ? o->depth : 3;
    l->order = xmalloc(sizeof *l->order * (size_t)(s->n ? s->n : 1));
    if (o->shuffle) data_epoch_order(s->n, o->seed, o->epoch, l->order);
    else
        for (int i = 0; i < s->n; i++) l->order[i] = i;
    const size_t B = (size_t)o->batch, gs = (size_t)o->G * o->G;
    l->slots = xcalloc((size_t)l->depth, sizeof *l->slots);
    for (int i = 0; i < l->depth; i++) {
        slot *sl = &l->slots[i];
        sl->batch = i;
        sl->err_pos = -1;
        sl->b.x = upload_buffer(o, sizeof(float) * B * 3 * (size_t)o->S * o->S);
        if (o->with_targets) {
            sl->b.occ_t = upload_buffer(o, sizeof(float) * B * gs);
            sl->b.heat_t = upload_buffer(o, sizeof(float) * B * DATA_NPOINTS * gs);
        }
        sl->b.labels = upload_buffer(o, sizeof(int) * B);
        sl->b.items = xmalloc(sizeof(int) * B);
        sl->b.flipped = xmalloc(B);
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    int want = o->nthreads;
    if (want <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        want = cpus < 1 ? 1 : cpus > 32 ? 32 : (int)cpus;
    }
    if (want > 64) want = 64;
    l->tid = xmalloc(sizeof *l->tid * (size_t)want);
    for (int t = 0; t < want; t++) {
        int e = pthread_create(&l->tid[t], NULL, loader_worker, l);
        if (e) {
            if (l->nthreads) break;  /* fewer workers give the same bytes, only slower */
            set_err(err, errlen, "data loader: cannot start a thread: %s", strerror(e));
            data_loader_stop(l);
            return NULL;
        }
        l->nthreads++;
    }
    return l;
}

int data_loader_nbatches(const data_loader *l) { return l->nbatches; }

const char *data_loader_error(const data_loader *l) { return l->err; }

int data_loader_next(data_loader *l, data_batch **out)
{
    *out = NULL;
    pthread_mutex_lock(&l->mu);
    int rc = -1, b = l->next_out;
    if (l->failed) goto out;
    if (b >= l->nbatches) {
        rc = 0;
        goto out;
    }
    slot *sl = &l->slots[b % l->depth];
    if (sl->batch != b) {  /* still holding batch b - depth: nothing can fill this slot */
        snprintf(l->err, sizeof l->err, "data loader: batch %d is still held: release it before asking for batch %d",
                 sl->batch, b);
        l->failed = 1;
        goto out;
    }
    while (sl->done < batch_size(l, b)) pthread_cond_wait(&l->ready, &l->mu);
    if (sl->err_pos >= 0) {
        snprintf(l->err, sizeof l->err, "%s", sl->err);
        l->failed = 1;
        goto out;
    }
    sl->held = 1;
    sl->b.n = batch_size(l, b);
    sl->b.index = b;
    l->next_out++;
    *out = &sl->b;
    rc = 1;
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void data_loader_release(data_loader *l, data_batch *b)
{
    if (!b) return;
    pthread_mutex_lock(&l->mu);
    slot *sl = &l->slots[b->index % l->depth];
    if (&sl->b == b && sl->held) {
        sl->held = 0;
        sl->batch += l->depth;
        sl->done = 0;
        sl->err_pos = -1;
        pthread_cond_broadcast(&l->work);
    }
    pthread_mutex_unlock(&l->mu);
}

void data_loader_stop(data_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->nthreads; t++) pthread_join(l->tid[t], NULL);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    pthread_mutex_destroy(&l->mu);
    for (int i = 0; i < l->depth; i++) {
        upload_buffer_free(&l->o, l->slots[i].b.x);
        upload_buffer_free(&l->o, l->slots[i].b.occ_t);
        upload_buffer_free(&l->o, l->slots[i].b.heat_t);
        upload_buffer_free(&l->o, l->slots[i].b.labels);
        free(l->slots[i].b.items);
        free(l->slots[i].b.flipped);
    }
    free(l->slots);
    free(l->tid);
    free(l->order);
    free(l);
}
