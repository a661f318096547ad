/* fixture.c: synthetic RAF-DB / FER+ datasets in their official layouts (see
 * fixture.h).
 *
 * A plan is made first, sequentially, from one seeded generator: splits,
 * classes, row kinds (FER+ traps), identities, votes, names, planted
 * near-duplicates. Images are then drawn in chunks by a few threads; each
 * image depends only on its own (identity, expression, sample seed), so the
 * bytes never depend on the thread count. Text files are written in row order
 * through atomic temporary files and committed at the end. */
#include "fixture.h"
#include "ingest.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "../common/image.h"
#include "../common/rng.h"
#include "../common/util.h"
#include "face.h"

const char *const fixture_ferplus_columns[10] = {"neutral", "happiness", "surprise", "sadness", "anger",
                                                 "disgust", "fear",      "contempt", "unknown", "NF"};

/* face.h expression (RAF-DB order, + contempt) -> FER+ vote column */
static const int raf_to_col[8] = {2, 6, 5, 1, 3, 4, 0, 7};
/* FER+ vote column -> RAF-DB class, -1 for contempt */
/* RAF-DB class -> FER2013 emotion code (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral) */
static const int raf_to_fer2013[7] = {5, 2, 1, 3, 4, 0, 6};
/* the class a few votes stray to, per RAF-DB class */
static const int confuser[7] = {FACE_FEAR, FACE_SURPRISE, FACE_ANGER, FACE_NEUTRAL,
                                FACE_NEUTRAL, FACE_DISGUST, FACE_SADNESS};

/* RAF-DB basic per-class counts (DATASETS.md), RAF-DB order */
static const long raf_train_counts[7] = {1290, 281, 717, 4772, 1982, 705, 2524};
static const long raf_test_counts[7] = {329, 74, 160, 1185, 478, 162, 680};
/* FER+ Train majority counts (label.csv), in RAF-DB order: Su F D H Sa A N */
static const long ferplus_shares[7] = {3136, 536, 116, 7284, 3022, 2098, 8733};

static const char *const usage_name[3] = {"Training", "PublicTest", "PrivateTest"};
static const char *const folder_name[3] = {"FER2013Train", "FER2013Valid", "FER2013Test"};

static int threads_wanted = 0;

void fixture_set_threads(int n) { threads_wanted = n; }

/* ---- the plan ---------------------------------------------------------- */

enum { /* FER+ row kinds; the first five have a drawn RAF-DB class */
       R_CLEAR,
       R_SINGLES,   /* a majority only once single votes are dropped */
       R_AMBIG,     /* no majority, or unknown */
       R_NINE,      /* votes sum to 9 */
       R_DUP_FIRST, /* first row of the duplicated name */
       R_CONTEMPT,  /* a face, contempt majority */
       R_NF_EMPTY,  /* a non-face, NF = 10, empty name */
       R_NF_NAMED,  /* a non-face with a name, NF majority */
       R_DUP_SECOND /* a non-face, NF = 10, the name of R_DUP_FIRST */
};

typedef struct {
    int split;    /* rafdb: 0 train 1 test; ferplus: usage 0..2 */
    int kind;     /* ferplus kind; R_CLEAR for every rafdb image */
    int expr;     /* drawn expression (face.h), -1 for a non-face */
    int identity; /* -1 for a non-face */
    int num;      /* rafdb: number within the split, 1-based */
    long name;    /* ferplus: PNG number, -1 for an empty name */
    long dup_of;  /* planted near-duplicate: the original's index, else -1 */
    int crlf;     /* rafdb: this label line ends in CRLF */
    int fer_code; /* ferplus: fer2013.csv emotion */
    int votes[10];
    uint64_t sample_seed, nonface_seed, jitter_seed;
} item;

typedef struct {
    int ferplus;
    long n, n_id;
    uint64_t seed;
    item *it;
    face_params *ids;
    long n_split[3];
} plan;

static int is_face(int kind) { return kind <= R_CONTEMPT; }
static int has_class(int kind) { return kind <= R_DUP_FIRST; }

static uint64_t derive(uint64_t seed, uint64_t tag, uint64_t i)
{
    rng_t r;
    rng_seed(&r, seed, (tag << 40) ^ i);
    return rng_next(&r);
}

static long rnd(double x) { return (long)(x + 0.5); }
static long max1(long v) { return v < 1 ? 1 : v; }

/* total split over k classes in proportion to w (largest remainder; ties to
 * the first); with min1, every class gets at least one when total allows. */
static void allocate(long total, const long *w, int k, int min1, long *out)
{
    long long W = 0, given = 0, rem[8];
    for (int i = 0; i < k; i++) W += w[i];
    for (int i = 0; i < k; i++) {
        out[i] = (long)((long long)total * w[i] / W);
        rem[i] = (long long)total * w[i] % W;
        given += out[i];
    }
    while (given < total) {
        int b = 0;
        for (int i = 1; i < k; i++)
            if (rem[i] > rem[b]) b = i;
        out[b]++;
        rem[b] = -1;
        given++;
    }
    if (min1 && total >= 3L * k) {
        for (int i = 0; i < k; i++) {
            if (out[i] > 0) continue;
            int b = 0;
            for (int j = 1; j < k; j++)
                if (out[j] > out[b]) b = j;
            out[b]--;
            out[i]++;
        }
    }
}

static void shuffle_int(rng_t *r, int *a, long n)
{
    for (long i = n - 1; i > 0; i--) {
        long j = (long)rng_below(r, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* a class list of n entries with the given counts, shuffled */
static int *class_list(rng_t *r, const long *counts, long n)
{
    int *c = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    long k = 0;
    for (int i = 0; i < 7; i++)
        for (long j = 0; j < counts[i]; j++) c[k++] = i;
    shuffle_int(r, c, n);
    return c;
}

/* a random column among 0..hi-1 not in ex[0..nex) */
static int pick_col(rng_t *r, int hi, const int *ex, int nex)
{
    int cand[10], n = 0;
    for (int c = 0; c < hi; c++) {
        int bad = 0;
        for (int j = 0; j < nex; j++) bad |= ex[j] == c;
        if (!bad) cand[n++] = c;
    }
    return cand[rng_below(r, (uint64_t)n)];
}

static void make_votes(rng_t *r, int kind, int cls, int *v)
{
    memset(v, 0, sizeof(int) * 10);
    int tc = cls >= 0 ? raf_to_col[cls] : 0, cc = cls >= 0 ? raf_to_col[confuser[cls]] : 0;
    switch (kind) {
    case R_CLEAR:
    case R_DUP_FIRST: {
        static const int ks[9] = {6, 7, 8, 8, 9, 9, 10, 10, 10};
        int k = ks[rng_below(r, 9)];
        v[tc] = k;
        for (int i = k; i < 10; i++) {
            double u = rng_uniform(r);
            if (u < 0.4) v[cc]++;
            else if (u < 0.7) v[tc == 0 ? 3 : 0]++;
            else if (u < 0.85) v[8]++;
            else v[pick_col(r, 8, &tc, 1)]++;
        }
        break;
    }
    case R_SINGLES: {
        int k = 3 + (int)rng_below(r, 2), cand[8], n = 0;
        v[tc] = k;
        for (int c = 0; c < 9; c++)
            if (c != tc) cand[n++] = c;
        shuffle_int(r, cand, n);
        for (int i = 0; i < 10 - k; i++) v[cand[i]] = 1;
        break;
    }
    case R_AMBIG: {
        int ex[3] = {tc, cc, 8};
        switch (rng_below(r, 5)) {
        case 0: v[tc] = 5, v[cc] = 5; break;
        case 1: {
            v[tc] = 4, v[cc] = 4;
            int a = pick_col(r, 9, ex, 2);
            int ex2[3] = {tc, cc, a};
            v[a] = 1;
            v[pick_col(r, 9, ex2, 3)] = 1;
            break;
        }
        case 2: v[tc] = 4, v[cc] = 3, v[8] = 3; break;
        case 3: v[tc] = 3, v[cc] = 3, v[pick_col(r, 8, ex, 2)] = 2, v[8] = 2; break;
        default: v[tc] = 4, v[8] = 6; break;
        }
        break;
    }
    case R_NINE: {
        int ex[2] = {tc, cc};
        v[tc] = 5, v[cc] = 3;
        v[pick_col(r, 9, ex, 2)] = 1;
        break;
    }
    case R_CONTEMPT: {
        int k = 6 + (int)rng_below(r, 3), rest = 10 - k, h = (int)rng_below(r, (uint64_t)rest + 1);
        v[7] = k, v[1] = h, v[0] = rest - h;
        break;
    }
    case R_NF_NAMED: {
        int k = 6 + (int)rng_below(r, 5), rest = 10 - k, u = (int)rng_below(r, (uint64_t)rest + 1);
        v[9] = k, v[8] = u, v[0] = rest - u;
        break;
    }
    default: v[9] = 10; break; /* R_NF_EMPTY, R_DUP_SECOND */
    }
}

static void plan_ferplus_block(plan *P, rng_t *r, long start, long m, int usage)
{
    double fm = (double)m;
    long nf_empty, nf_named, contempt, nine = 0, dup = 0;
    if (usage == 0) {
        nf_empty = max1(rnd(fm * 148 / 28709));
        nf_named = max1(rnd(fm * 0.006));
        contempt = max1(rnd(fm * 120 / 28709));
        nine = 1;
    } else {
        nf_empty = max1(rnd(fm * (usage == 1 ? 10 : 15) / 3589));
        nf_named = rnd(fm * 0.006);
        contempt = rnd(fm * 0.004);
        dup = usage == 2;
    }
    long ambig = rnd(fm * 0.115), singles = rnd(fm * 0.04);
    int *kinds = xmalloc(sizeof(int) * (size_t)m);
    long k = 0;
#define PUT(kind, count)                                      \
    for (long j_ = 0, c_ = (count); j_ < c_ && k < m; j_++) \
    kinds[k++] = (kind)
    PUT(R_NF_EMPTY, nf_empty);
    PUT(R_DUP_FIRST, dup);
    PUT(R_DUP_SECOND, dup);
    PUT(R_NINE, nine);
    PUT(R_NF_NAMED, nf_named);
    PUT(R_CONTEMPT, contempt);
    PUT(R_AMBIG, ambig);
    PUT(R_SINGLES, singles);
    PUT(R_CLEAR, m - k);
#undef PUT
    shuffle_int(r, kinds, m);
    long first = -1, second = -1, empty = -1;
    for (long i = 0; i < m; i++) {
        if (kinds[i] == R_DUP_FIRST) first = i;
        if (kinds[i] == R_DUP_SECOND) second = i;
        if (kinds[i] == R_NF_EMPTY && empty < 0) empty = i;
    }
    if (first >= 0 && second >= 0 && second < first) {
        kinds[first] = R_DUP_SECOND;
        kinds[second] = R_DUP_FIRST;
    }
    /* An empty name at row 3, so that names part from row indices early. */
    if (usage == 0 && m > 4 && empty >= 0) {
        kinds[empty] = kinds[3];
        kinds[3] = R_NF_EMPTY;
    }
    long ncls = 0, counts[7];
    for (long i = 0; i < m; i++) ncls += has_class(kinds[i]);
    allocate(ncls, ferplus_shares, 7, usage == 0, counts);
    int *cls = class_list(r, counts, ncls);
    long c = 0;
    for (long i = 0; i < m; i++) {
        item *it = &P->it[start + i];
        it->split = usage;
        it->kind = kinds[i];
        it->expr = has_class(kinds[i]) ? cls[c++] : kinds[i] == R_CONTEMPT ? FACE_CONTEMPT : -1;
        make_votes(r, it->kind, has_class(it->kind) ? it->expr : -1, it->votes);
        it->fer_code = it->expr >= 0 && it->expr < 7 ? raf_to_fer2013[it->expr]
                       : it->expr == FACE_CONTEMPT ? 6
                                                   : (int)rng_below(r, 7);
    }
    free(cls);
    free(kinds);
}

/* Plants near-duplicates: rows of split b become copies (same identity,
 * expression and sample, a little extra noise) of rows of split a with the
 * same class. Only rows of kind R_CLEAR take part. */
static void plant_duplicates(plan *P, rng_t *r, int a, int b, long pairs)
{
    long n = P->n, nb = 0;
    long *cand = xmalloc(sizeof(long) * (size_t)n);
    char *used = xcalloc((size_t)n, 1);
    for (long i = 0; i < n; i++)
        if (P->it[i].split == b && P->it[i].kind == R_CLEAR) cand[nb++] = i;
    for (long i = nb - 1; i > 0; i--) {
        long j = (long)rng_below(r, (uint64_t)i + 1), t = cand[i];
        cand[i] = cand[j];
        cand[j] = t;
    }
    long made = 0;
    for (long q = 0; q < nb && made < pairs; q++) {
        item *copy = &P->it[cand[q]];
        long s0 = (long)rng_below(r, (uint64_t)n);
        for (long s = 0; s < n; s++) {
            long i = (s0 + s) % n;
            item *orig = &P->it[i];
            if (used[i] || orig->split != a || orig->kind != R_CLEAR || orig->expr != copy->expr) continue;
            used[i] = used[cand[q]] = 1;
            copy->identity = orig->identity;
            copy->sample_seed = orig->sample_seed;
            copy->dup_of = i;
            made++;
            break;
        }
    }
    free(cand);
    free(used);
}

static void plan_common(plan *P, rng_t *r, uint64_t tag)
{
    for (long i = 0; i < P->n; i++) {
        item *it = &P->it[i];
        it->dup_of = -1;
        it->identity = is_face(it->kind) ? (int)rng_below(r, (uint64_t)P->n_id) : -1;
        it->sample_seed = derive(P->seed, tag + 1, (uint64_t)i);
        it->nonface_seed = derive(P->seed, tag + 2, (uint64_t)i);
        it->jitter_seed = derive(P->seed, tag + 3, (uint64_t)i);
    }
    P->ids = xmalloc(sizeof(face_params) * (size_t)P->n_id);
    for (long k = 0; k < P->n_id; k++) face_params_from_seed(&P->ids[k], derive(P->seed, tag, (uint64_t)k));
}

static void plan_rafdb(plan *P)
{
    rng_t r;
    rng_seed(&r, P->seed, 0xFA0DB);
    long n = P->n, ntr = (long)(((long long)n * 12271 * 2 + 15339) / (2 * 15339)), nte = n - ntr;
    P->n_split[0] = ntr;
    P->n_split[1] = nte;
    long ctr[7], cte[7];
    allocate(ntr, raf_train_counts, 7, 1, ctr);
    allocate(nte, raf_test_counts, 7, 0, cte);
    int *ltr = class_list(&r, ctr, ntr), *lte = class_list(&r, cte, nte);
    for (long i = 0; i < n; i++) {
        item *it = &P->it[i];
        it->split = i < ntr ? 0 : 1;
        it->num = (int)(i < ntr ? i + 1 : i - ntr + 1);
        it->kind = R_CLEAR;
        it->expr = i < ntr ? ltr[i] : lte[i - ntr];
        it->name = -1;
    }
    free(ltr);
    free(lte);
    plan_common(P, &r, 0xA1);
    plant_duplicates(P, &r, 0, 1, 3 + n / 500);
    /* Some label lines end in CRLF, never the first, at least one. */
    int any = 0;
    for (long i = 0; i < n; i++) P->it[i].crlf = rng_uniform(&r) < 0.15;
    P->it[0].crlf = 0;
    for (long i = 0; i < n; i++) any |= P->it[i].crlf;
    if (!any) P->it[n / 2].crlf = 1;
}

static void plan_ferplus(plan *P)
{
    rng_t r;
    rng_seed(&r, P->seed, 0xFE2B);
    long n = P->n;
    long ntr = (long)(((long long)n * 28709 * 2 + 35887) / (2 * 35887));
    long npub = (long)(((long long)n * 3589 * 2 + 35887) / (2 * 35887));
    P->n_split[0] = ntr;
    P->n_split[1] = npub;
    P->n_split[2] = n - ntr - npub;
    plan_ferplus_block(P, &r, 0, ntr, 0);
    plan_ferplus_block(P, &r, ntr, npub, 1);
    plan_ferplus_block(P, &r, ntr + npub, n - ntr - npub, 2);
    plan_common(P, &r, 0xB1);
    plant_duplicates(P, &r, 0, 2, 3 + n / 500);
    /* Names: a numbering of their own. Empty names and the reused name take
     * no number; a few numbers are skipped, but only while names lag behind
     * row indices, so that no row after the first empty one has name == row. */
    long counter = 0, dup_name = -1;
    for (long i = 0; i < n; i++) {
        item *it = &P->it[i];
        if (it->kind == R_NF_EMPTY) it->name = -1;
        else if (it->kind == R_DUP_SECOND) it->name = dup_name;
        else {
            it->name = counter++;
            if (it->kind == R_DUP_FIRST) dup_name = it->name;
            if (rng_uniform(&r) < 0.004) {
                long g = 1 + (long)rng_below(&r, 3);
                if (counter + g <= i) counter += g;
            }
        }
    }
}

/* ---- output helpers -------------------------------------------------------- */

static int join(char *out, size_t cap, const char *dir, const char *rel, char *err, size_t errlen)
{
    int k = snprintf(out, cap, "%s/%s", dir, rel);
    if (k < 0 || (size_t)k >= cap) {
        snprintf(err, errlen, "%s/%s: path too long", dir, rel);
        return -1;
    }
    return 0;
}

/* fixed 3-decimal formatting, fast and the same everywhere */
static char *put_fix3(char *p, double v)
{
    long long m = llround(v * 1000.0);
    if (m < 0) {
        *p++ = '-';
        m = -m;
    }
    char tmp[24];
    int k = 0;
    long long ip = m / 1000;
    do tmp[k++] = (char)('0' + ip % 10), ip /= 10;
    while (ip);
    while (k) *p++ = tmp[--k];
    int fr = (int)(m % 1000);
    *p++ = '.';
    *p++ = (char)('0' + fr / 100);
    *p++ = (char)('0' + fr / 10 % 10);
    *p++ = (char)('0' + fr % 10);
    return p;
}

static char *put_long(char *p, long v)
{
    char tmp[24];
    int k = 0;
    if (v < 0) *p++ = '-', v = -v;
    do tmp[k++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (k) *p++ = tmp[--k];
    return p;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static void item_name(const plan *P, const item *it, char *buf, size_t cap)
{
    if (P->ferplus) {
        if (it->name >= 0) snprintf(buf, cap, "fer%07ld.png", it->name);
        else buf[0] = '\0';
    } else if (it->split == 0) snprintf(buf, cap, "train_%05d.jpg", it->num);
    else snprintf(buf, cap, "test_%04d.jpg", it->num);
}

/* ---- drawing, in threads ------------------------------------------------- */

#define CHUNK 2048

typedef struct {
    const plan *P;
    const char *out_dir;
    long start, end; /* the chunk */
    int t, nt;
    uint8_t *pix;         /* ferplus: 2304 grey bytes per chunk row */
    double (*lm)[68][2]; /* per chunk row */
    int failed;
    char err[512];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    const plan *P = w->P;
    int side = P->ferplus ? 48 : 100, ch = P->ferplus ? 1 : 3;
    image img;
    if (image_alloc(&img, side, side, ch) != 0) {
        w->failed = 1;
        snprintf(w->err, sizeof w->err, "out of memory");
        return NULL;
    }
    char name[64], rel[128], path[PATH_MAX];
    for (long i = w->start + w->t; i < w->end && !w->failed; i += w->nt) {
        const item *it = &P->it[i];
        double(*lm)[2] = w->lm[i - w->start];
        if (is_face(it->kind)) {
            face_draw(&img, &P->ids[it->identity], it->expr, it->sample_seed, lm);
            if (it->dup_of >= 0) { /* the copy of a near-duplicate: a little fresh noise */
                rng_t r;
                rng_seed(&r, it->jitter_seed, 0xD0B);
                size_t nb = (size_t)side * side * ch;
                for (size_t k = 0; k < nb; k++) {
                    int v = img.px[k] + (int)rng_below(&r, 5) - 2;
                    img.px[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        } else {
            face_draw_nonface(&img, it->nonface_seed);
            memset(lm, 0, sizeof(double) * 136);
        }
        int rc = 0;
        if (P->ferplus) {
            memcpy(w->pix + (size_t)(i - w->start) * 2304, img.px, 2304);
            /* FER+'s script writes every named row; the second row of a reused
             * name overwrites the first, so the first is not written at all. */
            if (it->name >= 0 && it->kind != R_DUP_FIRST) {
                item_name(P, it, name, sizeof name);
                snprintf(rel, sizeof rel, "%s/%s", folder_name[it->split], name);
                rc = join(path, sizeof path, w->out_dir, rel, w->err, sizeof w->err);
                if (rc == 0) rc = image_save_png(path, &img, w->err, sizeof w->err);
            }
        } else {
            snprintf(rel, sizeof rel, "Image/aligned/%s_%0*d_aligned.jpg", it->split == 0 ? "train" : "test",
                     it->split == 0 ? 5 : 4, it->num);
            rc = join(path, sizeof path, w->out_dir, rel, w->err, sizeof w->err);
            if (rc == 0) rc = image_save_jpeg(path, &img, 95, w->err, sizeof w->err);
        }
        if (rc != 0) w->failed = 1;
    }
    image_free(&img);
    return NULL;
}

/* ---- text outputs ---------------------------------------------------------- */

enum { F_LABELS, F_LANDMARKS, F_IDENT, F_DUPS, F_PROTOCOL, F_FER2013, F_FERNEW, F_LABEL0, F_LABEL1, F_LABEL2, F_N };

typedef struct {
    atomic_file f[F_N];
    int open[F_N];
} outputs;

static int out_open(outputs *o, int k, const char *dir, const char *rel, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (join(path, sizeof path, dir, rel, err, errlen) != 0) return -1;
    if (atomic_open(&o->f[k], path, err, errlen) != 0) return -1;
    o->open[k] = 1;
    return 0;
}

static void out_abort(outputs *o)
{
    for (int k = 0; k < F_N; k++)
        if (o->open[k]) atomic_abort(&o->f[k]), o->open[k] = 0;
}

static int out_commit(outputs *o, char *err, size_t errlen)
{
    for (int k = 0; k < F_N; k++) {
        if (!o->open[k]) continue;
        o->open[k] = 0;
        if (atomic_commit(&o->f[k], err, errlen) != 0) {
            out_abort(o);
            return -1;
        }
    }
    return 0;
}

static void landmark_header(FILE *f, const char *key)
{
    fputs(key, f);
    for (int i = 0; i < 68; i++) fprintf(f, ",x%d,y%d", i, i);
    fputc('\n', f);
}

/* The text rows of one drawn chunk, in row order. */
static void write_chunk(const plan *P, outputs *o, long start, long end, const uint8_t *pix, double (*lm)[68][2])
{
    char digits[256][4];
    int dlen[256];
    for (int v = 0; v < 256; v++) dlen[v] = snprintf(digits[v], sizeof digits[v], "%d", v);
    char line[2304 * 4 + 128];
    char name[64];
    for (long i = start; i < end; i++) {
        const item *it = &P->it[i];
        if (P->ferplus) {
            char *p = line;
            p = put_long(p, it->fer_code);
            *p++ = ',';
            const uint8_t *px = pix + (size_t)(i - start) * 2304;
            for (int k = 0; k < 2304; k++) {
                if (k) *p++ = ' ';
                memcpy(p, digits[px[k]], 4);
                p += dlen[px[k]];
            }
            *p++ = ',';
            p = put_str(p, usage_name[it->split]);
            *p++ = '\r';
            *p++ = '\n';
            fwrite(line, 1, (size_t)(p - line), o->f[F_FER2013].f);
        }
        if (!is_face(it->kind)) continue;
        char *p = line;
        if (P->ferplus) p = put_long(p, i);
        else {
            item_name(P, it, name, sizeof name);
            p = put_str(p, name);
        }
        for (int k = 0; k < 68; k++) {
            *p++ = ',';
            p = put_fix3(p, lm[i - start][k][0]);
            *p++ = ',';
            p = put_fix3(p, lm[i - start][k][1]);
        }
        *p++ = '\n';
        fwrite(line, 1, (size_t)(p - line), o->f[F_LANDMARKS].f);
    }
}

static void write_votes(FILE *f, const int *v)
{
    for (int k = 0; k < 10; k++) fprintf(f, ",%d", v[k]);
    fputc('\n', f);
}

static void write_plan_files(const plan *P, outputs *o)
{
    char name[64], name2[64];
    long counts[3][7];
    memset(counts, 0, sizeof counts);
    FILE *fi = o->f[F_IDENT].f, *fd = o->f[F_DUPS].f;
    fputs(P->ferplus ? "image,identity,row\n" : "image,identity\n", fi);
    fputs(P->ferplus ? "image_a,image_b,row_a,row_b\n" : "image_a,image_b\n", fd);
    if (P->ferplus) {
        FILE *fn = o->f[F_FERNEW].f;
        fputs("Usage,Image name", fn);
        for (int k = 0; k < 10; k++) fprintf(fn, ",%s", fixture_ferplus_columns[k]);
        fputc('\n', fn);
    }
    for (long i = 0; i < P->n; i++) {
        const item *it = &P->it[i];
        item_name(P, it, name, sizeof name);
        if (is_face(it->kind)) {
            if (P->ferplus) fprintf(fi, "%s,%d,%ld\n", name, it->identity, i);
            else fprintf(fi, "%s,%d\n", name, it->identity);
        }
        if (it->dup_of >= 0) {
            item_name(P, &P->it[it->dup_of], name2, sizeof name2);
            if (P->ferplus) fprintf(fd, "%s,%s,%ld,%ld\n", name2, name, it->dup_of, i);
            else fprintf(fd, "%s,%s\n", name2, name);
        }
        if (!P->ferplus) {
            fprintf(o->f[F_LABELS].f, "%s %d%s", name, it->expr + 1, it->crlf ? "\r\n" : "\n");
            counts[it->split][it->expr]++;
            continue;
        }
        fprintf(o->f[F_FERNEW].f, "%s,%s", usage_name[it->split], name);
        write_votes(o->f[F_FERNEW].f, it->votes);
        if (it->name >= 0 && it->kind != R_DUP_SECOND) {
            FILE *fl = o->f[F_LABEL0 + it->split].f;
            fprintf(fl, "%s,\"(0, 0, 48, 48)\"", name);
            write_votes(fl, it->votes);
            int raf = ferplus_to_raf(ferplus_majority(it->votes));
            if (raf >= 0) counts[it->split][raf]++;
        }
    }
    FILE *fp = o->f[F_PROTOCOL].f;
    fputs("split,label,count\n", fp);
    static const char *const splits_raf[2] = {"train", "test"}, *const splits_fer[3] = {"train", "val", "test"};
    for (int s = 0; s < (P->ferplus ? 3 : 2); s++)
        for (int c = 0; c < 7; c++)
            fprintf(fp, "%s,%s,%ld\n", P->ferplus ? splits_fer[s] : splits_raf[s], face_expression_name[c], counts[s][c]);
}

static int nthreads(void)
{
    long n = threads_wanted > 0 ? threads_wanted : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

int fixture_write(const char *layout, long n, uint64_t seed, const char *out_dir, char *err, size_t errlen)
{
    plan P;
    memset(&P, 0, sizeof P);
    if (!layout || (strcmp(layout, "rafdb") != 0 && strcmp(layout, "ferplus") != 0)) {
        snprintf(err, errlen, "fixture: unknown layout '%s' (rafdb or ferplus)", layout ? layout : "");
        return -1;
    }
    P.ferplus = strcmp(layout, "ferplus") == 0;
    long maxn = P.ferplus ? FIXTURE_MAX_N_FERPLUS : FIXTURE_MAX_N_RAFDB;
    if (n < FIXTURE_MIN_N || n > maxn) {
        snprintf(err, errlen, "fixture: n = %ld is outside %ld..%ld for %s", n, FIXTURE_MIN_N, maxn, layout);
        return -1;
    }
    P.n = n;
    P.seed = seed;
    P.n_id = (n + 2) / 4;
    if (mkdir_p(out_dir, err, errlen) != 0) return -1;
    char path[PATH_MAX];
    const char *const dirs_raf[] = {"EmoLabel", "Image/aligned", NULL};
    const char *const dirs_fer[] = {"FER2013Train", "FER2013Valid", "FER2013Test", NULL};
    for (const char *const *d = P.ferplus ? dirs_fer : dirs_raf; *d; d++)
        if (join(path, sizeof path, out_dir, *d, err, errlen) != 0 || mkdir_p(path, err, errlen) != 0) return -1;

    P.it = xcalloc((size_t)n, sizeof(item));
    if (P.ferplus) plan_ferplus(&P);
    else plan_rafdb(&P);

    outputs o;
    memset(&o, 0, sizeof o);
    int rc = 0;
    if (P.ferplus) {
        rc |= out_open(&o, F_FER2013, out_dir, "fer2013.csv", err, errlen);
        rc = rc ? rc : out_open(&o, F_FERNEW, out_dir, "fer2013new.csv", err, errlen);
        for (int s = 0; s < 3 && !rc; s++) {
            char rel[64];
            snprintf(rel, sizeof rel, "%s/label.csv", folder_name[s]);
            rc = out_open(&o, F_LABEL0 + s, out_dir, rel, err, errlen);
        }
    } else {
        rc = out_open(&o, F_LABELS, out_dir, "EmoLabel/list_patition_label.txt", err, errlen);
    }
    rc = rc ? rc : out_open(&o, F_LANDMARKS, out_dir, "landmarks.csv", err, errlen);
    rc = rc ? rc : out_open(&o, F_IDENT, out_dir, "identities.csv", err, errlen);
    rc = rc ? rc : out_open(&o, F_DUPS, out_dir, "duplicates.csv", err, errlen);
    rc = rc ? rc : out_open(&o, F_PROTOCOL, out_dir, "protocol.csv", err, errlen);
    if (rc) goto fail;
    if (P.ferplus) fputs("emotion,pixels,Usage\r\n", o.f[F_FER2013].f);
    landmark_header(o.f[F_LANDMARKS].f, P.ferplus ? "row" : "image");

    int nt = nthreads();
    worker *ws = xcalloc((size_t)nt, sizeof(worker));
    pthread_t *th = xcalloc((size_t)nt, sizeof(pthread_t));
    uint8_t *pix = P.ferplus ? xmalloc((size_t)CHUNK * 2304) : NULL;
    double(*lm)[68][2] = xmalloc(sizeof(double[68][2]) * CHUNK);
    for (long start = 0; start < n && !rc; start += CHUNK) {
        long end = start + CHUNK < n ? start + CHUNK : n;
        for (int t = 0; t < nt; t++) {
            ws[t] = (worker){.P = &P, .out_dir = out_dir, .start = start, .end = end, .t = t, .nt = nt, .pix = pix, .lm = lm};
        }
        int started = 0;
        for (int t = 1; t < nt; t++) {
            if (pthread_create(&th[t], NULL, work, &ws[t]) != 0) break;
            started = t;
        }
        /* threads that could not start: their share is done here */
        for (int t = started + 1; t < nt; t++) work(&ws[t]);
        work(&ws[0]);
        for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
        for (int t = 0; t < nt && !rc; t++)
            if (ws[t].failed) {
                snprintf(err, errlen, "%s", ws[t].err);
                rc = -1;
            }
        if (!rc) write_chunk(&P, &o, start, end, pix, lm);
    }
    free(pix);
    free(lm);
    free(th);
    free(ws);
    if (rc) goto fail;
    write_plan_files(&P, &o);
    if (out_commit(&o, err, errlen) != 0) goto fail_committed;
    free(P.it);
    free(P.ids);
    return 0;
fail:
    out_abort(&o);
fail_committed:
    free(P.it);
    free(P.ids);
    return -1;
}
