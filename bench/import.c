/* import.c: `ferbench run --model NAME --predictions F`: the predictions of a
 * baseline trained and run elsewhere (RAN, SCN, CVT, MVT, PACVT...), read in
 * the shapes baselines' code usually exports them, checked against the split
 * in the database, and written in the canonical form (ARCHITECTURE.md
 * "Formats") with the same model_runs / predictions rows as `run --model ours`.
 *
 * What is accepted (a CSV with a header row, or --no-header and column numbers):
 *   image   a name, a path or a file name of one of the dataset's images: matched as written, then by its
 *           file name, then by its file name without extension, against each image's name, relative path
 *           and their file names and stems (test_0001.jpg, Image/aligned/test_0001_aligned.jpg,
 *           /data/raf/test_0001.png and test_0001 all name the same RAF-DB image). A key two images share
 *           is refused, never guessed.
 *   label   optional: the ground truth as the baseline saw it; every row must agree with the database.
 *   pred    optional when scores are given: a class name (happy, Happiness, sad...) or an index into
 *           --classes, 0- or 1-based (--index-base), written as an integer or an integral float (1.0e+00).
 *   scores  optional: one column per class, probabilities (each in [0, 1], summing to 1 +- 1e-3) or logits
 *           (softmax in double); by prefix (prob_surprise, prob_0...: named or indexed classes) or listed in
 *           --classes order. With both pred and scores, pred must be a highest-scoring class.
 * The rows must name exactly the split's images, each once. Everything refused names the file and line,
 * and nothing is written unless every check holds. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../common/csv.h"
#include "../common/log.h"
#include "../common/sha256.h"
#include "../common/strmap.h"
#include "../common/util.h"
#include "../db/db.h"
#include "ferbench.h"

#define MAX_CLASSES DATA_MAX_CLASSES

/* Class orders baselines' code uses, by name (--classes NAME). */
static const struct {
    const char *name;
    int n;
    int cls[MAX_CLASSES]; /* data_label_names indices */
} class_presets[] = {
    {"rafdb", 7, {0, 1, 2, 3, 4, 5, 6}},       /* RAF-DB's 1..7: surprise fear disgust happiness sadness anger neutral */
    {"ferplus", 8, {6, 3, 0, 4, 5, 2, 1, 7}},  /* FER+ votes: neutral happiness surprise sadness anger disgust fear contempt */
    {"fer2013", 7, {5, 2, 1, 3, 4, 0, 6}},     /* FER2013 emotion codes: anger disgust fear happy sad surprise neutral */
};
#define NPRESETS ((int)(sizeof class_presets / sizeof class_presets[0]))

/* Names for the classes in baselines' code, onto data_label_names indices. */
static const struct {
    const char *name;
    int cls;
} class_aliases[] = {
    {"surprise", 0}, {"surprised", 0}, {"fear", 1},  {"fearful", 1}, {"scared", 1},  {"disgust", 2},
    {"disgusted", 2}, {"happiness", 3}, {"happy", 3}, {"joy", 3},    {"sadness", 4}, {"sad", 4},
    {"anger", 5},    {"angry", 5},    {"neutral", 6}, {"contempt", 7},
};

/* The class a name stands for (case and surrounding blanks ignored), or -1. */
static int class_of_name(const char *s, size_t len)
{
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    for (size_t i = 0; i < sizeof class_aliases / sizeof class_aliases[0]; i++)
        if (strlen(class_aliases[i].name) == len && strncasecmp(class_aliases[i].name, s, len) == 0)
            return class_aliases[i].cls;
    return -1;
}

/* An integer, or an integral float as numpy.savetxt writes one ("3.000000000000000000e+00"). */
static int parse_index(const char *s, long *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (end == s || *end || errno || !isfinite(v) || v != floor(v) || fabs(v) > 1e9) return -1;
    *out = (long)v;
    return 0;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (end == s || *end || (errno && fabs(v) > 1) || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

typedef struct {
    int n;               /* classes in the baseline's index order */
    int cls[MAX_CLASSES];
    int base;            /* 0 or 1: the index of cls[0] */
    const char *source;  /* where the order came from, for messages */
} class_map;

/* A class value (name or index) -> data_label_names index; -1 with why. raw gets the index read, or
 * LONG_MIN for a name (for the --index-base / --classes hint). */
static int class_of_value(const class_map *cm, const char *s, long *raw, char *why, size_t whylen)
{
    long v;
    *raw = LONG_MIN;
    if (parse_index(s, &v) == 0) {
        *raw = v;
        if (v < cm->base || v >= cm->base + cm->n) {
            snprintf(why, whylen, "%ld is outside %d..%d (%d classes of %s, --index-base %d)", v, cm->base,
                     cm->base + cm->n - 1, cm->n, cm->source, cm->base);
            return -1;
        }
        return cm->cls[v - cm->base];
    }
    int c = class_of_name(s, strlen(s));
    if (c < 0) snprintf(why, whylen, "'%.60s' is neither a class name nor an index", s);
    return c;
}

/* --classes: a preset name or a comma list of class names. */
static int parse_classes(const char *spec, class_map *cm, char *err, size_t errlen)
{
    for (int p = 0; p < NPRESETS; p++)
        if (strcmp(spec, class_presets[p].name) == 0) {
            cm->n = class_presets[p].n;
            memcpy(cm->cls, class_presets[p].cls, sizeof cm->cls);
            return 0;
        }
    int seen = 0;
    cm->n = 0;
    for (const char *s = spec;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int c = class_of_name(s, len);
        if (c < 0 || cm->n == MAX_CLASSES || (seen >> c & 1)) {
            snprintf(err, errlen, "%s: '%.*s' %s (a list of class names, or rafdb, ferplus, fer2013)", cm->source,
                     (int)len, s, c < 0 ? "is not a class" : "is listed twice");
            return -1;
        }
        seen |= 1 << c;
        cm->cls[cm->n++] = c;
        if (!e) break;
        s = e + 1;
    }
    return 0;
}

/* The dataset's images, all of them (rows naming another split's or an unusable image get a precise
 * message), and the lookup from every way of writing a name to one of them. */
typedef struct {
    long long id;
    char *name, *rel_path, *split, *status;
    int label;
    int in_split; /* position in the split, or -1 */
} image_row;

typedef struct {
    image_row *img;
    long n;
    strmap key, ambiguous; /* key -> image; keys two images share */
} image_index;

static const char *base_name(const char *s)
{
    const char *b = s;
    for (const char *p = s; *p; p++)
        if (*p == '/' || *p == '\\') b = p + 1;
    return b;
}

static size_t stem_len(const char *b)
{
    const char *dot = strrchr(b, '.');
    return dot && dot != b ? (size_t)(dot - b) : strlen(b);
}

static void index_key(image_index *ix, const char *k, size_t len, long i)
{
    if (!len) return;
    long prev = strmap_put(&ix->key, k, len, i);
    if (prev >= 0 && prev != i) strmap_put(&ix->ambiguous, k, len, prev);
}

/* The image a value names: 0 and *i, -1 when none, -2 when it is ambiguous (*i one of the images). */
static int index_find(const image_index *ix, const char *v, long *i)
{
    const char *b = base_name(v);
    const struct { const char *k; size_t len; } tries[3] = {{v, strlen(v)}, {b, strlen(b)}, {b, stem_len(b)}};
    for (int t = 0; t < 3; t++) {
        if (!tries[t].len) continue;
        long a = strmap_get(&ix->ambiguous, tries[t].k, tries[t].len);
        if (a >= 0) {
            *i = a;
            return -2;
        }
        if ((*i = strmap_get(&ix->key, tries[t].k, tries[t].len)) >= 0) return 0;
    }
    return -1;
}

static int load_images(sqlite3 *db, long long ds, const char *split, image_index *ix, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT id, name, rel_path, label, status, ifnull(benchmark_split, '') FROM images "
                       "WHERE dataset_id = ? ORDER BY name", &st, err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, ds);
    long cap = 0, in_split = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (ix->n == cap) ix->img = xrealloc(ix->img, (size_t)(cap = cap ? 2 * cap : 1024) * sizeof *ix->img);
        image_row *r = &ix->img[ix->n++];
        r->id = sqlite3_column_int64(st, 0);
        r->name = db_column_dup(st, 1, "");
        r->rel_path = db_column_dup(st, 2, "");
        r->label = sqlite3_column_int(st, 3);
        r->status = db_column_dup(st, 4, "");
        r->split = db_column_dup(st, 5, "");
        r->in_split = strcmp(r->status, "ok") == 0 && strcmp(r->split, split) == 0 ? (int)in_split++ : -1;
    }
    sqlite3_finalize(st);
    strmap_init(&ix->key, (size_t)ix->n * 5);
    strmap_init(&ix->ambiguous, 16);
    for (long i = 0; i < ix->n; i++) {
        const char *nb = base_name(ix->img[i].name), *rb = base_name(ix->img[i].rel_path);
        index_key(ix, ix->img[i].name, strlen(ix->img[i].name), i);
        index_key(ix, nb, stem_len(nb), i);
        index_key(ix, ix->img[i].rel_path, strlen(ix->img[i].rel_path), i);
        index_key(ix, rb, strlen(rb), i);
        index_key(ix, rb, stem_len(rb), i);
    }
    return 0;
}

static void image_index_free(image_index *ix)
{
    for (long i = 0; i < ix->n; i++) {
        free(ix->img[i].name);
        free(ix->img[i].rel_path);
        free(ix->img[i].status);
        free(ix->img[i].split);
    }
    free(ix->img);
    strmap_free(&ix->key);
    strmap_free(&ix->ambiguous);
}

/* A column given as a header name or a 1-based number; -1 with a message. */
static int find_column(const char *opt, const char *spec, char **hdr, int ncols, int has_header, const char *path,
                       char *err, size_t errlen)
{
    long num;
    size_t len = strlen(spec);
    if (len && strspn(spec, "0123456789") == len && parse_index(spec, &num) == 0) {
        if (num >= 1 && num <= ncols) return (int)num - 1;
        snprintf(err, errlen, "%s: --%s %s: the file has %d columns", path, opt, spec, ncols);
        return -1;
    }
    if (!has_header) {
        snprintf(err, errlen, "%s: --%s %s: with --no-header, columns are numbers (1..%d)", path, opt, spec, ncols);
        return -1;
    }
    for (int c = 0; c < ncols; c++)
        if (strcmp(hdr[c], spec) == 0) return c;
    snprintf(err, errlen, "%s:1: no column '%s' (--%s); the header has", path, spec, opt);
    for (int c = 0; c < ncols && strlen(err) + 40 < errlen; c++)
        snprintf(err + strlen(err), errlen - strlen(err), "%s '%.30s'", c ? "," : "", hdr[c]);
    return -1;
}

typedef struct {
    long line;
    long img;        /* into image_index */
    int label, pred; /* classes, -1 when the file has no such column */
    long label_raw;  /* the label index as written (LONG_MIN for a name) */
} row;

/* The class map under which the most numeric labels agree with the database, for the hint in a
 * ground-truth mismatch: "--index-base 1" or "--classes ferplus --index-base 0". */
static void label_hint(const row *rows, long nrows, const image_index *ix, const class_map *cur, char *hint,
                       size_t hintlen)
{
    hint[0] = '\0';
    long numeric = 0;
    for (long r = 0; r < nrows; r++) numeric += rows[r].label_raw != LONG_MIN;
    if (!numeric) return;
    for (int p = 0; p < NPRESETS; p++)
        for (int base = 0; base <= 1; base++) {
            const int *cls = class_presets[p].cls;
            long agree = 0;
            for (long r = 0; r < nrows; r++) {
                long v = rows[r].label_raw - base;
                if (rows[r].label_raw != LONG_MIN && v >= 0 && v < class_presets[p].n &&
                    cls[v] == ix->img[rows[r].img].label)
                    agree++;
            }
            int same = base == cur->base && cur->n == class_presets[p].n &&
                       memcmp(cur->cls, cls, sizeof(int) * (size_t)cur->n) == 0;
            if (agree == numeric && !same) {
                snprintf(hint, hintlen, "; with --classes %s --index-base %d every label agrees", class_presets[p].name,
                         base);
                return;
            }
        }
}

/* Score columns: the file's columns holding one class each; -1 with a message. */
typedef struct {
    int n;
    int col[MAX_CLASSES];
    int cls[MAX_CLASSES];
} score_cols;

static int find_scores(const char *spec, int explicit_spec, const char *prefix_default, char **hdr, int ncols,
                       int has_header, const class_map *cm, int nclasses, const char *path, score_cols *sc, char *err,
                       size_t errlen)
{
    sc->n = 0;
    size_t sl = spec ? strlen(spec) : 0;
    if (!spec || (sl && spec[sl - 1] == '*')) {
        /* By prefix: each column's suffix names its class, or is its index. */
        const char *prefix = spec ? spec : prefix_default;
        size_t pl = spec ? sl - 1 : strlen(prefix);
        if (!has_header) {
            if (!explicit_spec) return 0;
            snprintf(err, errlen, "%s: --score-cols %s: with --no-header, list the columns by number", path, spec);
            return -1;
        }
        for (int c = 0; c < ncols; c++) {
            if (strncmp(hdr[c], prefix, pl) != 0) continue;
            const char *suf = hdr[c] + pl;
            long raw;
            char why[160];
            int k = class_of_value(cm, suf, &raw, why, sizeof why);
            if (k < 0) {
                snprintf(err, errlen, "%s:1: score column '%.40s': its suffix %s; or list the columns in --classes "
                         "order (--score-cols a,b,...)", path, hdr[c], why);
                return -1;
            }
            if (sc->n == MAX_CLASSES) {
                snprintf(err, errlen, "%s:1: more than %d score columns '%.*s*'", path, MAX_CLASSES, (int)pl, prefix);
                return -1;
            }
            sc->col[sc->n] = c;
            sc->cls[sc->n++] = k;
        }
        if (!sc->n) {
            if (!explicit_spec) return 0;
            snprintf(err, errlen, "%s:1: no column starts with '%.*s' (--score-cols)", path, (int)pl, prefix);
            return -1;
        }
    } else {
        /* Listed: in --classes order. */
        for (const char *s = spec;;) {
            const char *e = strchr(s, ',');
            char one[128];
            snprintf(one, sizeof one, "%.*s", (int)(e ? (size_t)(e - s) : strlen(s)), s);
            if (sc->n == cm->n) {
                snprintf(err, errlen, "%s: --score-cols lists more columns than the %d classes of %s", path, cm->n,
                         cm->source);
                return -1;
            }
            int c = find_column("score-cols", one, hdr, ncols, has_header, path, err, errlen);
            if (c < 0) return -1;
            sc->col[sc->n] = c;
            sc->cls[sc->n] = cm->cls[sc->n];
            sc->n++;
            if (!e) break;
            s = e + 1;
        }
        if (sc->n != cm->n) {
            snprintf(err, errlen, "%s: --score-cols lists %d columns for the %d classes of %s", path, sc->n, cm->n,
                     cm->source);
            return -1;
        }
    }
    /* Exactly one column per class of the dataset. */
    int seen = 0;
    for (int j = 0; j < sc->n; j++) {
        if (sc->cls[j] >= nclasses || (seen >> sc->cls[j] & 1)) {
            snprintf(err, errlen, "%s:1: score column '%.40s' is for %s, %s", path, hdr ? hdr[sc->col[j]] : "?",
                     data_label_names[sc->cls[j]],
                     sc->cls[j] >= nclasses ? "which the dataset does not have" : "like an earlier one");
            return -1;
        }
        seen |= 1 << sc->cls[j];
    }
    for (int k = 0; k < nclasses; k++)
        if (!(seen >> k & 1)) {
            snprintf(err, errlen, "%s:1: no score column for %s (the dataset has %d classes)", path,
                     data_label_names[k], nclasses);
            return -1;
        }
    return 0;
}

/* From the canonical header line "# ferbench-predictions v1 ... split=S ... labels=a,b": the value of key. */
static int header_value(const char *comment, const char *key, char *out, size_t outlen)
{
    if (!comment || !strstr(comment, "ferbench-predictions")) return 0;
    size_t kl = strlen(key);
    for (const char *p = comment; (p = strstr(p, key)); p += kl)
        if ((p == comment || p[-1] == ' ') && p[kl] == '=') {
            size_t vl = strcspn(p + kl + 1, " \t");
            snprintf(out, outlen, "%.*s", (int)vl, p + kl + 1);
            return 1;
        }
    return 0;
}

/* Options that drive the engine, which an import does not run. */
static const char *const engine_opts[] = {"weights", "config", "size", "width", "device", "precision",
                                          "deterministic", "batch"};

static int valid_model_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") == n;
}

/* Where things are in the file, for parse_row. */
typedef struct {
    int col_image, col_label, col_pred; /* -1: no such column */
    const score_cols *sc;               /* sc->n == 0: no scores */
    const class_map *cm;
    int kind;                           /* 0 probabilities, 1 logits */
    int k;                              /* the dataset's classes */
    const char *dataset, *split;
} layout;

/* One record: its image (of the split, not seen before: first_line), label, pred and, when p is not NULL,
 * its probabilities in label order. 0, or -1 with r->err ("path:line: ..."). */
static int parse_row(csv_reader *r, const layout *L, const image_index *ix, long *first_line, row *w, double *p)
{
    char why[256];
    *w = (row){.line = r->line, .label = -1, .pred = -1, .label_raw = LONG_MIN};
    int f = index_find(ix, r->field[L->col_image], &w->img);
    if (f == -2) {
        csv_fail(r, "'%.80s' could name several images of dataset %s (one is %s): write the image's name",
                 r->field[L->col_image], L->dataset, ix->img[w->img].name);
        return -1;
    }
    if (f < 0) {
        csv_fail(r, "'%.80s' is not an image of dataset %s", r->field[L->col_image], L->dataset);
        return -1;
    }
    const image_row *im = &ix->img[w->img];
    if (im->in_split < 0) {
        if (strcmp(im->status, "ok") != 0) csv_fail(r, "image %s cannot be used (status %s)", im->name, im->status);
        else if (!im->split[0]) csv_fail(r, "image %s is in no benchmark split", im->name);
        else csv_fail(r, "image %s is in the %s split, not %s (--split %s?)", im->name, im->split, L->split, im->split);
        return -1;
    }
    if (first_line[w->img]) {
        csv_fail(r, "image %s again (first on line %ld)", im->name, first_line[w->img]);
        return -1;
    }
    first_line[w->img] = r->line;
    /* An index outside the classes counts as a disagreement, so the message can hint at the right
     * --classes / --index-base from all the labels. */
    if (L->col_label >= 0 &&
        (w->label = class_of_value(L->cm, r->field[L->col_label], &w->label_raw, why, sizeof why)) < 0 &&
        w->label_raw == LONG_MIN) {
        csv_fail(r, "label: %s", why);
        return -1;
    }
    long pred_raw = LONG_MIN;
    if (L->col_pred >= 0) {
        if ((w->pred = class_of_value(L->cm, r->field[L->col_pred], &pred_raw, why, sizeof why)) < 0) {
            csv_fail(r, "pred: %s", why);
            return -1;
        }
        if (w->pred >= L->k) {
            csv_fail(r, "pred is %s, which dataset %s does not have (%d classes)", data_label_names[w->pred],
                     L->dataset, L->k);
            return -1;
        }
    }
    if (L->sc->n) {
        double sum = 0, mx = -INFINITY;
        for (int j = 0; j < L->sc->n; j++) {
            const char *cell = r->field[L->sc->col[j]];
            if (parse_number(cell, &p[L->sc->cls[j]]) != 0) {
                csv_fail(r, "%s score '%.40s' is not a finite number", data_label_names[L->sc->cls[j]], cell);
                return -1;
            }
        }
        if (L->kind == 0) {
            for (int c = 0; c < L->k; c++) {
                if (p[c] < 0 || p[c] > 1) {
                    csv_fail(r, "probability of %s is %.17g, outside [0, 1] (logits? --score-kind logits)",
                             data_label_names[c], p[c]);
                    return -1;
                }
                sum += p[c];
            }
            if (fabs(sum - 1) > 1e-3) {
                csv_fail(r, "probabilities sum to %.17g, not 1 +- 1e-3 (logits? --score-kind logits)", sum);
                return -1;
            }
        } else { /* softmax in double, from the largest logit */
            for (int c = 0; c < L->k; c++) mx = fmax(mx, p[c]);
            for (int c = 0; c < L->k; c++) sum += (p[c] = exp(p[c] - mx));
            for (int c = 0; c < L->k; c++) p[c] /= sum;
        }
        int best = 0;
        for (int c = 1; c < L->k; c++)
            if (p[c] > p[best]) best = c;
        if (w->pred < 0) w->pred = best; /* ties: the first class in label order */
        else if (p[w->pred] < p[best]) {
            csv_fail(r, "pred is %s but the highest score is %s's (%.6g against %.6g)%s", data_label_names[w->pred],
                     data_label_names[best], p[best], p[w->pred],
                     pred_raw != LONG_MIN ? "; are --classes and --index-base right?" : "");
            return -1;
        }
    }
    return 0;
}

int cmd_import(const cli_args *a)
{
    const char *model = cli_get(a, "model"), *path = cli_get(a, "predictions"), *out = cli_get(a, "out");
    const char *dbp = cli_get(a, "db") ? cli_get(a, "db") : "db/ferbench.sqlite";
    const char *split = cli_get(a, "split") ? cli_get(a, "split") : "test";
    for (size_t i = 0; i < sizeof engine_opts / sizeof engine_opts[0]; i++)
        if (cli_get(a, engine_opts[i]) || cli_flag(a, engine_opts[i])) {
            log_error("--%s is for running ours; an import (--predictions) runs nothing", engine_opts[i]);
            return EXIT_BAD_INPUT;
        }
    if (!model || !out) {
        log_error("--predictions F needs --model NAME (the baseline's name) and --out P.csv");
        return EXIT_BAD_INPUT;
    }
    if (!valid_model_name(model) || strcmp(model, "ours") == 0) {
        log_error("--model '%.80s': %s", model,
                  strcmp(model, "ours") == 0 ? "'ours' is the model trained here: give the imported one its own name"
                                             : "1 to 64 letters, digits or ._+-");
        return EXIT_BAD_INPUT;
    }
    if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")) {
        log_error("--split %s: unknown (train, val or test)", split);
        return EXIT_BAD_INPUT;
    }
    int kind = cli_get_choice(a, "score-kind", "probs|logits", 0);
    long base;
    if (kind < 0 || cli_get_long(a, "index-base", 0, 0, 1, &base)) return EXIT_BAD_INPUT;
    const int has_header = !cli_flag(a, "no-header");

    char err[2048] = "", why[256];
    int rc = EXIT_BAD_INPUT;
    sqlite3 *db = NULL;
    image_index ix = {0};
    csv_reader r = {0};
    int csv_opened = 0;
    row *rows = NULL;
    double *prob = NULL;
    int *pred = NULL;
    data_split sp = {0};
    long nrows = 0, cap = 0, *first_line = NULL;
    char **hdr = NULL;
    int ncols = 0;

    struct stat sb;
    if (stat(dbp, &sb) != 0) { /* never create a database here */
        snprintf(err, sizeof err, "%s: %s", dbp, strerror(errno));
        goto out;
    }
    long long ds;
    if (db_open(dbp, &db, err, sizeof err) ||
        data_find_dataset(db, dbp, cli_get(a, "dataset"), &ds, &sp.dataset, &sp.nclasses, err, sizeof err) ||
        load_images(db, ds, split, &ix, err, sizeof err))
        goto out;
    snprintf(sp.split, sizeof sp.split, "%s", split);
    sp.labels = data_label_names;
    /* The masked images the baseline was evaluated on, as for `run --model ours`: recorded, so the report
     * can tell when models did not see the same masks. */
    if (data_choose_masks(db, ds, sp.dataset, split, cli_get(a, "mode"), sp.mode, &sp.mode_seed, err, sizeof err))
        goto out;
    int nsplit = 0; /* sp.n is set with sp.items, for data_split_free */
    for (long i = 0; i < ix.n; i++) nsplit += ix.img[i].in_split >= 0;
    if (!nsplit) {
        snprintf(err, sizeof err, "dataset %s: split %s has no images (is a split recipe applied? `masksynth init`)",
                 sp.dataset, split);
        goto out;
    }

    if (csv_open(&r, path) != 0) {
        snprintf(err, sizeof err, "%s", r.err);
        goto out;
    }
    csv_opened = 1;
    /* The class order: --classes, else a canonical file's labels=, else RAF-DB's. */
    class_map cm = {.base = (int)base};
    char hv[512];
    if (cli_get(a, "classes")) {
        cm.source = "--classes";
        if (parse_classes(cli_get(a, "classes"), &cm, err, sizeof err)) goto out;
    } else if (header_value(r.comment, "labels", hv, sizeof hv)) {
        cm.source = "the file's labels=";
        if (parse_classes(hv, &cm, err, sizeof err)) goto out;
    } else {
        cm = (class_map){.n = 7, .cls = {0, 1, 2, 3, 4, 5, 6}, .base = (int)base, .source = "rafdb"};
    }
    if (header_value(r.comment, "split", hv, sizeof hv) && strcmp(hv, split) != 0) {
        snprintf(err, sizeof err, "%s:1: the file says split=%s; importing split %s (--split %s?)", path, hv, split, hv);
        goto out;
    }

    int got = csv_next(&r);
    if (got <= 0) {
        snprintf(err, sizeof err, "%s", got < 0 ? r.err : "");
        if (got == 0) snprintf(err, sizeof err, "%s: no rows", path);
        goto out;
    }
    ncols = r.nfields;
    hdr = xcalloc((size_t)ncols, sizeof *hdr);
    for (int c = 0; c < ncols; c++) hdr[c] = xstrdup(has_header ? r.field[c] : "");
    const long hdr_line = r.line;

    /* Columns: named by options, else the canonical names when the header has them. */
    int col_image, col_label = -1, col_pred = -1;
    const char *ci = cli_get(a, "image-col"), *cl = cli_get(a, "label-col"), *cp = cli_get(a, "pred-col");
    if (!ci && !has_header) {
        snprintf(err, sizeof err, "%s: with --no-header, give --image-col N", path);
        goto out;
    }
    if ((col_image = find_column("image-col", ci ? ci : "image", hdr, ncols, has_header, path, err, sizeof err)) < 0)
        goto out;
    if (cl || (has_header && find_column("label-col", "label", hdr, ncols, 1, path, why, sizeof why) >= 0))
        if ((col_label = find_column("label-col", cl ? cl : "label", hdr, ncols, has_header, path, err, sizeof err)) < 0)
            goto out;
    if (cp || (has_header && find_column("pred-col", "pred", hdr, ncols, 1, path, why, sizeof why) >= 0))
        if ((col_pred = find_column("pred-col", cp ? cp : "pred", hdr, ncols, has_header, path, err, sizeof err)) < 0)
            goto out;
    score_cols sc;
    if (find_scores(cli_get(a, "score-cols"), cli_get(a, "score-cols") || cli_get(a, "score-kind"),
                    kind ? "logit_" : "prob_", hdr, ncols, has_header, &cm, sp.nclasses, path, &sc, err, sizeof err))
        goto out;
    if (col_pred < 0 && !sc.n) {
        snprintf(err, sizeof err, "%s:%ld: no predictions: no 'pred' column (--pred-col) and no %s* score columns "
                 "(--score-cols)", path, hdr_line, kind ? "logit_" : "prob_");
        goto out;
    }

    /* The rows. */
    first_line = xcalloc((size_t)ix.n, sizeof *first_line);
    const int k = sp.nclasses;
    const layout L = {.col_image = col_image, .col_label = col_label, .col_pred = col_pred, .sc = &sc, .cm = &cm,
                      .kind = kind, .k = k, .dataset = sp.dataset, .split = split};
    int pending = !has_header; /* without a header the first record is data */
    while (pending || (got = csv_next(&r)) == 1) {
        pending = 0;
        if (nrows == cap) {
            rows = xrealloc(rows, (size_t)(cap = cap ? 2 * cap : 4096) * sizeof *rows);
            if (sc.n) prob = xrealloc(prob, (size_t)cap * (size_t)k * sizeof *prob);
        }
        if (r.nfields != ncols) got = csv_fail(&r, "%d fields, the header has %d", r.nfields, ncols);
        else got = parse_row(&r, &L, &ix, first_line, &rows[nrows], sc.n ? prob + (size_t)nrows * k : NULL);
        if (got < 0) break;
        nrows++;
    }
    if (got < 0) {
        snprintf(err, sizeof err, "%s", r.err);
        goto out;
    }

    /* Coverage: every image of the split, once (duplicates and strangers were refused above). */
    if (nrows != nsplit) {
        char names[256] = "";
        int listed = 0;
        for (long i = 0; i < ix.n && listed < 3; i++)
            if (ix.img[i].in_split >= 0 && !first_line[i]) /* first_line: the images rows named */
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", listed++ ? ", " : "",
                         ix.img[i].name);
        snprintf(err, sizeof err, "%s: %ld of the %d %s images of dataset %s have no row (first: %s)", path,
                 nsplit - nrows, nsplit, split, sp.dataset, names);
        goto out;
    }
    /* Ground truth as the baseline saw it. */
    long disagree = 0, first_bad = -1;
    for (long i = 0; i < nrows; i++)
        if (col_label >= 0 && rows[i].label != ix.img[rows[i].img].label && !disagree++) first_bad = i;
    if (disagree) {
        char hint[160], said[96];
        label_hint(rows, nrows, &ix, &cm, hint, sizeof hint);
        const row *b = &rows[first_bad];
        if (b->label >= 0) snprintf(said, sizeof said, "%s", data_label_names[b->label]);
        else snprintf(said, sizeof said, "%ld (outside %d..%d)", b->label_raw, cm.base, cm.base + cm.n - 1);
        snprintf(err, sizeof err, "%s:%ld: label %s, the database says %s for %s; %ld of %ld rows disagree%s", path,
                 b->line, said, data_label_names[ix.img[b->img].label], ix.img[b->img].name, disagree, nrows, hint);
        goto out;
    }

    /* In the split's order (image name), as `run --model ours` writes it. */
    sp.items = xcalloc((size_t)nsplit, sizeof *sp.items);
    sp.n = nsplit;
    pred = xcalloc((size_t)nsplit, sizeof *pred);
    double *sprob = sc.n ? xcalloc((size_t)nsplit * (size_t)k, sizeof *sprob) : NULL;
    for (long i = 0; i < nrows; i++) {
        const image_row *im = &ix.img[rows[i].img];
        data_item *it = &sp.items[im->in_split];
        it->image_id = im->id;
        it->name = xstrdup(im->name);
        it->label = im->label;
        pred[im->in_split] = rows[i].pred;
        if (sprob) memcpy(sprob + (size_t)im->in_split * k, prob + (size_t)i * k, (size_t)k * sizeof *sprob);
    }
    free(prob);
    prob = sprob;

    char shash[65];
    if (sha256_file(path, shash)) {
        snprintf(err, sizeof err, "%s: cannot read", path);
        goto out;
    }
    split_predictions res = {.model = model, .source_path = path, .source_hash = shash, .pred = pred, .prob = prob};
    if (predictions_write_csv(out, &sp, &res, err, sizeof err) || predictions_record(db, &sp, &res, out, err, sizeof err))
        goto out;
    long correct = 0;
    for (int i = 0; i < sp.n; i++) correct += pred[i] == sp.items[i].label;
    printf("import model=%s dataset=%s split=%s masks=%s:%lld images=%d accuracy=%.6f scores=%s source=%s out=%s\n",
           model, sp.dataset, split, sp.mode, sp.mode_seed, sp.n, (double)correct / sp.n,
           !sc.n ? "none" : kind ? "logits" : "probs", path, out);
    rc = EXIT_OK;
out:
    if (rc != EXIT_OK) log_error("%s", err[0] ? err : "import failed");
    if (csv_opened) csv_close(&r);
    for (int c = 0; c < ncols; c++) free(hdr[c]);
    free(hdr);
    free(rows);
    free(first_line);
    free(prob);
    free(pred);
    image_index_free(&ix);
    data_split_free(&sp);
    db_close(db);
    return rc;
}
