#include "preds.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/csv.h"
#include "../common/strmap.h"
#include "../common/util.h"

#define PROB_SUM_TOLERANCE 1e-3

/* Splits a comma list into xstrdup'ed names; refuses empty and repeated names. */
static int parse_label_list(const char *list, char ***out, int *count, char *why, size_t whylen)
{
    int n = 0, cap = 8;
    char **names = xmalloc(sizeof *names * cap);
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            snprintf(why, whylen, "empty label name in the label list '%.200s'", list);
            goto fail;
        }
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
                snprintf(why, whylen, "label %d contains a control character", n + 1);
                goto fail;
            }
        if (n == PREDS_MAX_LABELS) {
            snprintf(why, whylen, "more than %d labels", PREDS_MAX_LABELS);
            goto fail;
        }
        for (int i = 0; i < n; i++)
            if (strlen(names[i]) == len && !strncmp(names[i], p, len)) {
                snprintf(why, whylen, "label '%.*s' is listed twice", (int)len, p);
                goto fail;
            }
        if (n == cap) names = xrealloc(names, sizeof *names * (cap *= 2));
        names[n] = xmalloc(len + 1);
        memcpy(names[n], p, len);
        names[n][len] = '\0';
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    if (n < 2) {
        snprintf(why, whylen, "a label map needs at least 2 labels, got '%.200s'", list);
        goto fail;
    }
    *out = names;
    *count = n;
    return 0;
fail:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return -1;
}

static void free_labels(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static char *join_labels(char **names, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(names[i]) + 1;
    char *s = xmalloc(len);
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, ",");
        strcat(s, names[i]);
    }
    return s;
}

/* Parses the "# ferbench-predictions v1 key=value ..." line. Returns 1 when it
 * is such a line, 0 when it is some other comment, -1 on error. */
static int parse_header_comment(preds *p, const char *comment, char *why, size_t whylen)
{
    while (*comment == ' ') comment++;
    const char *magic = "ferbench-predictions";
    size_t ml = strlen(magic);
    if (strncmp(comment, magic, ml) != 0 || (comment[ml] != ' ' && comment[ml] != '\0')) return 0;
    char *copy = xstrdup(comment + ml);
    char *save = NULL;
    int seen_version = 0, rc = 1;
    char *labels = NULL;
    for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (!seen_version) {
            if (strcmp(tok, "v1") != 0) {
                snprintf(why, whylen, "unsupported predictions format version '%.200s' (this build reads v1)", tok);
                rc = -1;
                break;
            }
            seen_version = 1;
            continue;
        }
        char *eq = strchr(tok, '=');
        if (!eq) {
            snprintf(why, whylen, "header field '%.200s' is not key=value", tok);
            rc = -1;
            break;
        }
        *eq = '\0';
        char **slot = !strcmp(tok, "dataset") ? &p->dataset : !strcmp(tok, "split") ? &p->split
                    : !strcmp(tok, "model") ? &p->model : !strcmp(tok, "labels") ? &labels : NULL;
        if (!slot) continue;  /* unknown keys are allowed: later versions of v1 writers add some */
        if (*slot) {
            snprintf(why, whylen, "header field '%.200s' given twice", tok);
            rc = -1;
            break;
        }
        *slot = eq + 1;
    }
    if (rc == 1 && !seen_version) {
        snprintf(why, whylen, "header line has no format version (expected 'ferbench-predictions v1')");
        rc = -1;
    }
    if (rc == 1 && !labels) {
        snprintf(why, whylen, "header line has no labels=... field");
        rc = -1;
    }
    if (rc == 1 && parse_label_list(labels, &p->labels, &p->nlabels, why, whylen)) rc = -1;
    p->dataset = p->dataset && rc == 1 ? xstrdup(p->dataset) : NULL;
    p->split = p->split && rc == 1 ? xstrdup(p->split) : NULL;
    p->model = p->model && rc == 1 ? xstrdup(p->model) : NULL;
    free(copy);
    return rc;
}

/* Strict decimal number: [+-]digits[.digits][e[+-]digits]. Fast for the usual
 * short forms (exact when the digits fit 2^53 and the exponent is small),
 * strtod otherwise. Returns 0 or -1 for anything else (nan, inf, hex, spaces). */
static int parse_number(const char *s, double *out)
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s;
    int neg = 0, digits = 0, frac = 0, exp = 0;
    uint64_t m = 0;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        if (digits < 19) m = m * 10 + (uint64_t)(*p - '0');
        else exp++;
    if (*p == '.') {
        p++;
        for (; *p >= '0' && *p <= '9'; p++, frac++)
            if (digits + frac < 19) { m = m * 10 + (uint64_t)(*p - '0'); exp--; }
    }
    if (digits + frac == 0) return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        int eneg = 0, e = 0, ed = 0;
        if (*p == '+' || *p == '-') eneg = *p++ == '-';
        for (; *p >= '0' && *p <= '9'; p++, ed++)
            if (e < 100000) e = e * 10 + (*p - '0');
        if (!ed) return -1;
        exp += eneg ? -e : e;
    }
    if (*p) return -1;
    if (digits + frac <= 19 && m < (1ULL << 53) && exp >= -22 && exp <= 22) {
        double v = exp < 0 ? (double)m / pow10[-exp] : (double)m * pow10[exp];
        *out = neg ? -v : v;
    } else {
        *out = strtod(s, NULL);  /* the grammar is already checked */
    }
    return isfinite(*out) ? 0 : -1;
}

static int find_label(char **labels, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(labels[i], s)) return i;
    return -1;
}

int preds_load(preds *p, const char *path, const char *labels_opt, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->path = xstrdup(path);
    char why[512];
    csv_reader r = {0};
    r.max_field = CSV_DEFAULT_MAX_FIELD;
    int *prob_col = NULL;
    strmap seen = {0};
    long cap = 0;

    if (csv_open(&r, path)) {
        snprintf(err, errlen, "%s", r.err);
        goto fail;
    }
    if (r.len == 0 || (r.len == 3 && !memcmp(r.buf, "\xEF\xBB\xBF", 3))) {
        snprintf(err, errlen, "%s:1: file is empty", path);
        goto fail;
    }
    if (r.comment) {
        int h = parse_header_comment(p, r.comment, why, sizeof why);
        if (h < 0) {
            snprintf(err, errlen, "%s:1: %s", path, why);
            goto fail;
        }
    }
    if (labels_opt) {
        char **opt;
        int nopt;
        if (parse_label_list(labels_opt, &opt, &nopt, why, sizeof why)) {
            snprintf(err, errlen, "--labels: %s", why);
            goto fail;
        }
        if (p->labels) {
            int same = nopt == p->nlabels;
            for (int i = 0; same && i < nopt; i++) same = !strcmp(opt[i], p->labels[i]);
            if (!same) {
                char *a = join_labels(p->labels, p->nlabels), *b = join_labels(opt, nopt);
                snprintf(err, errlen, "%s:1: the file's label map (%s) differs from --labels (%s)", path, a, b);
                free(a);
                free(b);
                free_labels(opt, nopt);
                goto fail;
            }
            free_labels(opt, nopt);
        } else {
            p->labels = opt;
            p->nlabels = nopt;
        }
    }

    /* Column header. */
    int rc = csv_next(&r);
    if (rc < 0) { snprintf(err, errlen, "%s", r.err); goto fail; }
    if (rc == 0) {
        snprintf(err, errlen, "%s:%ld: no column header (expected image,label,pred)", path, r.next_line);
        goto fail;
    }
    if (!p->labels) {
        snprintf(err, errlen, "%s:1: no label map: the file has no '# ferbench-predictions v1 ... labels=' line; give --labels a,b,c", path);
        goto fail;
    }
    int ncol = r.nfields, col_image = -1, col_label = -1, col_pred = -1, nprob = 0;
    prob_col = xmalloc(sizeof *prob_col * (size_t)p->nlabels);
    for (int k = 0; k < p->nlabels; k++) prob_col[k] = -1;
    for (int c = 0; c < ncol; c++) {
        const char *name = r.field[c];
        int *slot = !strcmp(name, "image") ? &col_image : !strcmp(name, "label") ? &col_label
                  : !strcmp(name, "pred") ? &col_pred : NULL;
        if (!slot && !strncmp(name, "prob_", 5)) {
            int k = find_label(p->labels, p->nlabels, name + 5);
            if (k < 0) {
                snprintf(err, errlen, "%s:%ld: column '%.200s' names no label of the label map", path, r.line, name);
                goto fail;
            }
            slot = &prob_col[k];
            nprob++;
        }
        if (!slot) {
            snprintf(err, errlen, "%s:%ld: unknown column '%.200s' (expected image,label,pred[,prob_<label>...])", path, r.line, name);
            goto fail;
        }
        if (*slot >= 0) {
            snprintf(err, errlen, "%s:%ld: column '%.200s' appears twice", path, r.line, name);
            goto fail;
        }
        *slot = c;
    }
    if (col_image < 0 || col_label < 0 || col_pred < 0) {
        snprintf(err, errlen, "%s:%ld: missing column '%.200s' (expected image,label,pred[,prob_<label>...])", path, r.line,
                 col_image < 0 ? "image" : col_label < 0 ? "label" : "pred");
        goto fail;
    }
    if (nprob && nprob != p->nlabels) {
        snprintf(err, errlen, "%s:%ld: %d probability columns for %d labels (give prob_<label> for every label or none)",
                 path, r.line, nprob, p->nlabels);
        goto fail;
    }
    p->has_probs = nprob > 0;

    /* Rows <= remaining line ends: size the map once instead of rehashing. */
    size_t lines = 1;
    for (const char *q = r.buf + r.pos; (q = memchr(q, '\n', r.len - (size_t)(q - r.buf))); q++) lines++;
    strmap_init(&seen, lines);
    while ((rc = csv_next(&r)) == 1) {
        if (r.nfields != ncol) {
            snprintf(err, errlen, "%s:%ld: row has %d fields, the header has %d", path, r.line, r.nfields, ncol);
            goto fail;
        }
        if (p->n == cap) {
            cap = cap ? cap * 2 : 1024;
            p->image = xrealloc(p->image, sizeof *p->image * (size_t)cap);
            p->line = xrealloc(p->line, sizeof *p->line * (size_t)cap);
            p->y = xrealloc(p->y, sizeof *p->y * (size_t)cap);
            p->yhat = xrealloc(p->yhat, sizeof *p->yhat * (size_t)cap);
        }
        char *img = r.field[col_image];
        if (!*img) {
            snprintf(err, errlen, "%s:%ld: empty image name", path, r.line);
            goto fail;
        }
        long first = strmap_put(&seen, img, r.field_len[col_image], p->n);
        if (first >= 0) {
            snprintf(err, errlen, "%s:%ld: duplicate image '%.200s' (first on line %ld)", path, r.line, img, p->line[first]);
            goto fail;
        }
        int y = find_label(p->labels, p->nlabels, r.field[col_label]);
        int yh = find_label(p->labels, p->nlabels, r.field[col_pred]);
        if (y < 0 || yh < 0) {
            char *all = join_labels(p->labels, p->nlabels);
            snprintf(err, errlen, "%s:%ld: unknown label '%.64s' in column %s (labels: %s)", path, r.line,
                     r.field[y < 0 ? col_label : col_pred], y < 0 ? "label" : "pred", all);
            free(all);
            goto fail;
        }
        if (p->has_probs) {
            double sum = 0;
            for (int k = 0; k < p->nlabels; k++) {
                double v;
                const char *s = r.field[prob_col[k]];
                if (parse_number(s, &v)) {
                    snprintf(err, errlen, "%s:%ld: prob_%s is not a finite number: '%.64s'", path, r.line, p->labels[k], s);
                    goto fail;
                }
                if (v < 0 || v > 1) {
                    snprintf(err, errlen, "%s:%ld: prob_%s = %s is outside [0, 1]", path, r.line, p->labels[k], s);
                    goto fail;
                }
                sum += v;
            }
            if (fabs(sum - 1) > PROB_SUM_TOLERANCE) {
                snprintf(err, errlen, "%s:%ld: probabilities sum to %.9g, not 1 (tolerance %g)", path, r.line, sum,
                         PROB_SUM_TOLERANCE);
                goto fail;
            }
        }
        p->image[p->n] = img;
        p->line[p->n] = r.line;
        p->y[p->n] = y;
        p->yhat[p->n] = yh;
        p->n++;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s", r.err);
        goto fail;
    }
    if (p->n == 0) {
        snprintf(err, errlen, "%s:%ld: no prediction rows after the column header", path, r.next_line);
        goto fail;
    }
    p->buf = r.buf;  /* image names point into it */
    r.buf = NULL;
    csv_close(&r);
    strmap_free(&seen);
    free(prob_col);
    return 0;
fail:
    csv_close(&r);
    if (seen.slot) strmap_free(&seen);
    free(prob_col);
    preds_free(p);
    return -1;
}

void preds_free(preds *p)
{
    free(p->path);
    if (p->labels) free_labels(p->labels, p->nlabels);
    free(p->image);
    free(p->line);
    free(p->y);
    free(p->yhat);
    free(p->dataset);
    free(p->split);
    free(p->model);
    free(p->buf);
    memset(p, 0, sizeof *p);
}

const char *preds_name(const preds *p)
{
    if (p->model) return p->model;
    const char *slash = strrchr(p->path, '/');
    return slash ? slash + 1 : p->path;
}

/* Counts a problem and keeps the first three examples as "a, b, c". */
static void add_example(char *buf, size_t len, int *count, const char *example)
{
    if (++*count > 3) return;
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%.60s", *count > 1 ? ", " : "", example);
}

int preds_match(const preds *a, preds *b, long *order, char *err, size_t errlen)
{
    /* Same label set; b may list it in another order, and is recoded. */
    int remap[PREDS_MAX_LABELS];
    int same_set = a->nlabels == b->nlabels;
    for (int k = 0; same_set && k < b->nlabels; k++) {
        remap[k] = find_label(a->labels, a->nlabels, b->labels[k]);
        same_set = remap[k] >= 0;
    }
    if (!same_set) {
        char *la = join_labels(a->labels, a->nlabels), *lb = join_labels(b->labels, b->nlabels);
        snprintf(err, errlen, "%s and %s have different label maps (%s vs %s)", a->path, b->path, la, lb);
        free(la);
        free(lb);
        return -1;
    }

    strmap where;
    strmap_init(&where, (size_t)a->n);
    for (long i = 0; i < a->n; i++) strmap_put(&where, a->image[i], strlen(a->image[i]), i);
    for (long i = 0; i < a->n; i++) order[i] = -1;
    int nextra = 0, ndisagree = 0, nmissing = 0;
    char extra[512] = "", disagree[512] = "", missing[512] = "";
    for (long j = 0; j < b->n; j++) {
        long i = strmap_get(&where, b->image[j], strlen(b->image[j]));
        if (i < 0) {
            add_example(extra, sizeof extra, &nextra, b->image[j]);
            continue;
        }
        order[i] = j;
        if (remap[b->y[j]] != a->y[i]) {
            char ex[200];
            snprintf(ex, sizeof ex, "%.60s: %.40s vs %.40s", a->image[i], a->labels[a->y[i]], b->labels[b->y[j]]);
            add_example(disagree, sizeof disagree, &ndisagree, ex);
        }
    }
    for (long i = 0; i < a->n; i++)
        if (order[i] < 0) add_example(missing, sizeof missing, &nmissing, a->image[i]);
    strmap_free(&where);
    if (nextra || ndisagree || nmissing) {
        snprintf(err, errlen,
                 "%s and %s do not cover the same images with the same ground truth: "
                 "%d missing from the second%s%s%s, %d extra in the second%s%s%s, %d with different labels%s%s%s",
                 a->path, b->path, nmissing, nmissing ? " (" : "", missing, nmissing ? (nmissing > 3 ? ", ...)" : ")") : "",
                 nextra, nextra ? " (" : "", extra, nextra ? (nextra > 3 ? ", ...)" : ")") : "", ndisagree,
                 ndisagree ? " (" : "", disagree, ndisagree ? (ndisagree > 3 ? ", ...)" : ")") : "");
        return -1;
    }
    for (long j = 0; j < b->n; j++) {
        b->y[j] = remap[b->y[j]];
        b->yhat[j] = remap[b->yhat[j]];
    }
    for (int k = 0; k < b->nlabels; k++) {
        free(b->labels[k]);
        b->labels[k] = xstrdup(a->labels[k]);
    }
    return 0;
}
