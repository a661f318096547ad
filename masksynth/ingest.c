#include "ingest.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/csv.h"
#include "../common/image.h"
#include "../common/log.h"
#include "../common/sha256.h"
#include "../common/strmap.h"
#include "../common/util.h"
#include "phash.h"

#define MAX_IMAGE_FILE ((size_t)64 << 20)

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Relative paths named by the label files (kept or dropped): the complement
 * in the image folders is reported as extra files. */
typedef struct {
    char **path;
    long n, cap;
} path_list;

static void list_add(path_list *l, const char *p)
{
    if (l->n == l->cap) l->path = xrealloc(l->path, sizeof *l->path * (size_t)(l->cap = l->cap ? 2 * l->cap : 4096));
    l->path[l->n++] = xstrdup(p);
}

static void list_free(path_list *l)
{
    for (long i = 0; i < l->n; i++) free(l->path[i]);
    free(l->path);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Files in root/sub whose name ends in ext and that no label file names. */
static void find_extra(dataset *d, const char *sub, const char *ext, const path_list *listed)
{
    char *dir = join(d->root, sub);
    DIR *dp = opendir(dir);
    free(dir);
    if (!dp) return;
    strmap known;
    strmap_init(&known, (size_t)listed->n);
    for (long i = 0; i < listed->n; i++) strmap_put(&known, listed->path[i], strlen(listed->path[i]), i);
    char **found = NULL;
    long n = 0, cap = 0;
    struct dirent *e;
    size_t el = strlen(ext);
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len <= el || strcmp(e->d_name + len - el, ext)) continue;
        char *rel = join(sub, e->d_name);
        if (strmap_get(&known, rel, strlen(rel)) >= 0) {
            free(rel);
            continue;
        }
        if (n == cap) found = xrealloc(found, sizeof *found * (size_t)(cap = cap ? 2 * cap : 64));
        found[n++] = rel;
    }
    closedir(dp);
    strmap_free(&known);
    if (n) qsort(found, (size_t)n, sizeof *found, cmp_str);  /* readdir order is not stable */
    d->extra = xrealloc(d->extra, sizeof *d->extra * (size_t)(d->nextra + n + 1));
    for (long i = 0; i < n; i++) d->extra[d->nextra++] = found[i];
    free(found);
}

/* ---- RAF-DB basic -------------------------------------------------------- */

static int valid_rafdb_name(const char *s, int *split)
{
    int digits;
    if (!strncmp(s, "train_", 6)) { *split = SPLIT_TRAIN; digits = 5; s += 6; }
    else if (!strncmp(s, "test_", 5)) { *split = SPLIT_TEST; digits = 4; s += 5; }
    else return 0;
    for (int i = 0; i < digits; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return !strcmp(s + digits, ".jpg");
}

static int read_rafdb(dataset *d, path_list *listed, char *err, size_t errlen)
{
    char *path = join(d->root, "EmoLabel/list_patition_label.txt");
    size_t len;
    char *buf = read_file(path, &len, (size_t)64 << 20, err, errlen);
    if (!buf) {
        free(path);
        return -1;
    }
    int rc = -1;
    strmap seen;
    strmap_init(&seen, 20000);
    long line = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        if (eol > p && eol[-1] == '\r') eol--;  /* CRLF */
        *eol = '\0';
        if (eol == p) {  /* blank: fine at the end only */
            char *q = next;
            while (q < end && (*q == '\r' || *q == '\n')) q++;
            if (q == end) break;
            snprintf(err, errlen, "%s:%ld: empty line", path, line);
            goto out;
        }
        char name[64], extra;
        int label, split;
        if (sscanf(p, "%63s %d %c", name, &label, &extra) != 2) {
            snprintf(err, errlen, "%s:%ld: expected '<name> <label 1..7>', got '%.80s'", path, line, p);
            goto out;
        }
        if (label < 1 || label > 7) {
            snprintf(err, errlen, "%s:%ld: label %d is outside 1..7", path, line, label);
            goto out;
        }
        if (!valid_rafdb_name(name, &split)) {
            snprintf(err, errlen, "%s:%ld: '%s' is not an official RAF-DB name (train_NNNNN.jpg or test_NNNN.jpg)",
                     path, line, name);
            goto out;
        }
        long prev = strmap_get(&seen, name, strlen(name));
        if (prev >= 0) {
            snprintf(err, errlen, "%s:%ld: image '%s' is listed twice (first on line %ld)", path, line, name, prev);
            goto out;
        }
        char rel[128];
        snprintf(rel, sizeof rel, "Image/aligned/%.*s_aligned.jpg", (int)(strlen(name) - 4), name);
        record *r = dataset_add(d, name, rel, label - 1, split, line);
        strmap_put(&seen, r->name, strlen(r->name), line);
        list_add(listed, rel);
        p = next;
    }
    find_extra(d, "Image/aligned", ".jpg", listed);
    rc = 0;
out:
    strmap_free(&seen);
    free(buf);
    free(path);
    return rc;
}

/* ---- FER+ ---------------------------------------------------------------- */

int ferplus_to_raf(int cls)
{
    static const int raf[7] = {6, 3, 0, 4, 5, 2, 1};  /* FER+ class order -> RAF-DB index */
    return cls >= 0 && cls < 7 ? raf[cls] : -1;
}

static const char *const drop_reason[3] = {"contempt (not one of the 7 classes)", "unknown (no majority)",
                                           "NF (not a face)"};

int ferplus_majority(const int votes[10])
{
    /* Drop single votes (outliers), recompute the total, keep the argmax only
     * with a strict majority: FER+'s own rule (ferplus.py, mode 'majority'). */
    int v[10], sum = 0, best = 0;
    for (int i = 0; i < 10; i++) {
        v[i] = votes[i] <= 1 ? 0 : votes[i];
        sum += v[i];
    }
    for (int i = 1; i < 10; i++)
        if (v[i] > v[best]) best = i;
    if (sum == 0 || 2 * v[best] <= sum) return 8;
    return best;
}

static int parse_votes(char **field, int votes[10])
{
    for (int i = 0; i < 10; i++) {
        char *end;
        errno = 0;
        long x = strtol(field[i], &end, 10);
        if (end == field[i] || *end || errno || x < 0 || x > 1000) return -1;
        votes[i] = (int)x;
    }
    return 0;
}

/* Applies the rule: records the image, or why it is dropped. */
static record *add_voted(dataset *d, const char *name, const char *rel, int official, const int votes[10],
                         const char *file, long line)
{
    int cls = ferplus_majority(votes);
    if (cls >= 7) {
        dataset_drop(d, name, drop_reason[cls - 7], file, line);
        return NULL;
    }
    return dataset_add(d, name, rel, ferplus_to_raf(cls), official, line);
}

static int usage_split(const char *u)
{
    return !strcmp(u, "Training") ? SPLIT_TRAIN : !strcmp(u, "PublicTest") ? SPLIT_VAL
         : !strcmp(u, "PrivateTest") ? SPLIT_TEST : -1;
}

typedef struct {
    char *name;
    int split, votes[10], file;
    long line;
} vote_row;

static int read_ferplus_folders(dataset *d, path_list *listed, char *err, size_t errlen)
{
    static const char *const folder[3] = {"FER2013Train", "FER2013Valid", "FER2013Test"};
    vote_row *rows = NULL;
    long nrows = 0, cap = 0;
    char *paths[3] = {0};
    int rc = -1;
    for (int f = 0; f < 3; f++) {
        char *dir = join(d->root, folder[f]);
        paths[f] = join(dir, "label.csv");
        free(dir);
        csv_reader r = {0};
        if (csv_open(&r, paths[f])) {
            snprintf(err, errlen, "%s", r.err);
            goto out;
        }
        int got;
        while ((got = csv_next(&r)) == 1) {
            if (r.nfields != 12) {
                got = csv_fail(&r, "expected 12 fields (name, face box, 10 votes), got %d", r.nfields);
                break;
            }
            if (nrows == cap) rows = xrealloc(rows, sizeof *rows * (size_t)(cap = cap ? 2 * cap : 4096));
            vote_row *x = &rows[nrows++];
            *x = (vote_row){.name = xstrdup(r.field[0]), .split = f, .file = f, .line = r.line};
            if (parse_votes(r.field + 2, x->votes)) {
                got = csv_fail(&r, "the votes must be 10 non-negative integers");
                break;
            }
        }
        if (got < 0) snprintf(err, errlen, "%s", r.err);
        csv_close(&r);
        if (got < 0) goto out;
    }
    /* A name listed twice is ambiguous (which row owns the file?): every copy is dropped. */
    char *dup = xcalloc((size_t)nrows + 1, 1);
    strmap first;
    strmap_init(&first, (size_t)nrows);
    for (long i = 0; i < nrows; i++) {
        if (!*rows[i].name) continue;
        long j = strmap_put(&first, rows[i].name, strlen(rows[i].name), i);
        if (j >= 0) dup[i] = dup[j] = 1;
    }
    strmap_free(&first);
    for (long i = 0; i < nrows; i++) {
        vote_row *x = &rows[i];
        if (!*x->name) {
            dataset_drop(d, "", "empty name", paths[x->file], x->line);
            continue;
        }
        char rel[300];
        snprintf(rel, sizeof rel, "%s/%.200s", folder[x->file], x->name);
        list_add(listed, rel);
        if (dup[i]) dataset_drop(d, x->name, "duplicate name (listed more than once)", paths[x->file], x->line);
        else add_voted(d, x->name, rel, x->split, x->votes, paths[x->file], x->line);
    }
    free(dup);
    for (int f = 0; f < 3; f++) find_extra(d, folder[f], ".png", listed);
    d->vote_source = "label_csv";
    rc = 0;
out:
    for (long i = 0; i < nrows; i++) free(rows[i].name);
    free(rows);
    for (int f = 0; f < 3; f++) free(paths[f]);
    return rc;
}

/* Finds a header column by its name with spaces stripped (a Kaggle variant
 * writes "emotion, Usage, pixels"). */
static int header_index(csv_reader *r, const char *want)
{
    for (int i = 0; i < r->nfields; i++) {
        const char *s = r->field[i];
        while (*s == ' ') s++;
        size_t n = strlen(s);
        while (n && s[n - 1] == ' ') n--;
        if (n == strlen(want) && !strncmp(s, want, n)) return i;
    }
    return -1;
}

/* fer2013.csv pixels + fer2013new.csv votes, row-aligned. The canonical image
 * id is the fer2013.csv row index: FER+ names are not row indices. */
static int read_ferplus_csv(dataset *d, char *err, size_t errlen)
{
    char *pix_path = join(d->root, "fer2013.csv"), *vote_path = join(d->root, "fer2013new.csv");
    csv_reader pix = {0}, vot = {0};
    strmap names = {0};  /* FER+ names seen, to report the ones listed twice */
    pix.max_field = 16384;
    int rc = -1;
    if (csv_open_header(&pix, pix_path, "the header emotion,pixels,Usage")) {
        snprintf(err, errlen, "%s", pix.err);
        goto out;
    }
    int c_em = header_index(&pix, "emotion"), c_px = header_index(&pix, "pixels"), c_us = header_index(&pix, "Usage");
    if (c_em < 0 || c_px < 0 || c_us < 0) {
        snprintf(err, errlen, "%s:%ld: header needs emotion, pixels and Usage columns", pix_path, pix.line);
        goto out;
    }
    int ncol = pix.nfields;
    if (csv_open_header(&vot, vote_path, "the header Usage,Image name,neutral,...")) {
        snprintf(err, errlen, "%s", vot.err);
        goto out;
    }
    static const char *const vote_cols[12] = {"Usage", "Image name", "neutral", "happiness", "surprise", "sadness",
                                              "anger", "disgust", "fear", "contempt", "unknown", "NF"};
    for (int i = 0; i < 12; i++)
        if (vot.nfields != 12 || header_index(&vot, vote_cols[i]) != i) {
            snprintf(err, errlen, "%s:%ld: expected the header Usage,Image name,neutral,...,NF", vote_path, vot.line);
            goto out;
        }
    strmap_init(&names, 40000);
    for (long row = 0;; row++) {
        int a = csv_next(&pix), b = csv_next(&vot);
        if (a < 0 || b < 0) {
            snprintf(err, errlen, "%s", a < 0 ? pix.err : vot.err);
            goto out;
        }
        if (a != b) {
            snprintf(err, errlen, "%s and %s have different row counts (%s ends first, after row %ld)", pix_path,
                     vote_path, a ? "fer2013new.csv" : "fer2013.csv", row);
            goto out;
        }
        if (!a) break;
        if (pix.nfields != ncol) {
            csv_fail(&pix, "row has %d fields, the header has %d", pix.nfields, ncol);
            snprintf(err, errlen, "%s", pix.err);
            goto out;
        }
        if (vot.nfields != 12) {
            csv_fail(&vot, "row has %d fields, the header has 12", vot.nfields);
            snprintf(err, errlen, "%s", vot.err);
            goto out;
        }
        int split = usage_split(pix.field[c_us]), vsplit = usage_split(vot.field[0]), votes[10];
        if (split < 0 || split != vsplit) {
            snprintf(err, errlen, "%s:%ld: Usage '%.40s' is not Training/PublicTest/PrivateTest or disagrees with %s:%ld",
                     pix_path, pix.line, pix.field[c_us], vote_path, vot.line);
            goto out;
        }
        if (parse_votes(vot.field + 2, votes)) {
            csv_fail(&vot, "the votes must be 10 non-negative integers");
            snprintf(err, errlen, "%s", vot.err);
            goto out;
        }
        char name[32];
        snprintf(name, sizeof name, "row%05ld", row);
        if (*vot.field[1]) {
            /* Names are not ids here (the row is): a repeated name is reported, both rows kept. */
            long first = strmap_get(&names, vot.field[1], strlen(vot.field[1]));
            if (first < 0) strmap_put(&names, xstrdup(vot.field[1]), strlen(vot.field[1]), vot.line);
            else
                log_warn("%s:%ld: name '%.80s' also on line %ld; rows are identified by their fer2013.csv index, both kept",
                         vote_path, vot.line, vot.field[1], first);
        }
        if (!*vot.field[1]) {
            dataset_drop(d, name, "empty name", vote_path, vot.line);
            continue;
        }
        char rel[48];
        snprintf(rel, sizeof rel, "fer2013.csv#%ld", row);
        record *r = add_voted(d, name, rel, split, votes, vote_path, vot.line);
        if (r) {
            r->row = row;
            r->pixels = pix.field[c_px];  /* stays valid: the buffer is kept below */
        }
    }
    d->pixels_csv = pix.buf;  /* keep the parsed buffer for the pixel fields */
    pix.buf = NULL;
    d->vote_source = "fer2013new";
    rc = 0;
out:
    for (size_t i = 0; i < names.cap; i++) free((char *)names.slot[i].key);
    strmap_free(&names);
    csv_close(&pix);
    csv_close(&vot);
    free(pix_path);
    free(vote_path);
    return rc;
}

/* ---- any other dataset: image,label,split ------------------------------- */

static int read_csv_list(dataset *d, const char *list, path_list *listed, char *err, size_t errlen)
{
    csv_reader r = {0};
    int rc = -1, got;
    if (csv_open_header(&r, list, "the header image,label,split")) {
        snprintf(err, errlen, "%s", r.err);
        goto out;
    }
    int c_img = -1, c_lab = -1, c_split = -1;
    for (int i = 0; i < r.nfields; i++) {
        int *slot = !strcmp(r.field[i], "image") ? &c_img : !strcmp(r.field[i], "label") ? &c_lab
                  : !strcmp(r.field[i], "split") ? &c_split : NULL;
        if (!slot || *slot >= 0) {
            csv_fail(&r, "unexpected or repeated column '%.60s' (expected image,label,split)", r.field[i]);
            snprintf(err, errlen, "%s", r.err);
            goto out;
        }
        *slot = i;
    }
    if (c_img < 0 || c_lab < 0 || c_split < 0) {
        csv_fail(&r, "the header must name the columns image, label and split");
        snprintf(err, errlen, "%s", r.err);
        goto out;
    }
    int ncol = r.nfields;
    strmap seen;
    strmap_init(&seen, 4096);
    while ((got = csv_next(&r)) == 1) {
        const char *img = r.field[c_img];
        int label = class_index(r.field[c_lab]), split = -1;
        for (int s = 0; s < 3; s++)
            if (!strcmp(r.field[c_split], split_name[s])) split = s;
        const char *bad = r.nfields != ncol ? "row has a different number of fields than the header"
                        : !*img ? "empty image path"
                        : img[0] == '/' || strstr(img, "..") ? "image paths must be relative to the list's folder"
                        : label < 0 ? "unknown label (expected surprise, fear, disgust, happiness, sadness, anger, neutral)"
                        : split < 0 ? "split must be train, val or test" : NULL;
        if (!bad && strmap_get(&seen, img, strlen(img)) >= 0) bad = "image listed twice";
        if (bad) {
            csv_fail(&r, "%s", bad);
            snprintf(err, errlen, "%s", r.err);
            strmap_free(&seen);
            goto out;
        }
        record *rec = dataset_add(d, img, img, label, split, r.line);
        strmap_put(&seen, rec->name, strlen(rec->name), r.line);
        list_add(listed, img);
    }
    strmap_free(&seen);
    if (got < 0) {
        snprintf(err, errlen, "%s", r.err);
        goto out;
    }
    rc = 0;
out:
    csv_close(&r);
    return rc;
}

/* ---- probing: hash, size, decode, perceptual hash ------------------------ */

/* 2304 grey values "v v v ..." -> 48x48 pixels; -1 when malformed. */
int fer2013_decode(const char *s, image *img)
{
    if (image_alloc(img, 48, 48, 1)) return -1;
    for (int i = 0; i < 48 * 48; i++) {
        while (*s == ' ') s++;
        if (*s < '0' || *s > '9') return -1;
        int v = 0;
        while (*s >= '0' && *s <= '9' && v <= 255) v = v * 10 + (*s++ - '0');
        if (v > 255) return -1;
        img->px[i] = (uint8_t)v;
    }
    while (*s == ' ') s++;
    return *s ? -1 : 0;
}

static void set_status(record *r, int status, const char *msg)
{
    r->status = status;
    free(r->message);
    r->message = xstrdup(msg);
}

static void probe_one(const dataset *d, record *r)
{
    char err[512];
    image img = {0};
    if (r->pixels) {
        if (fer2013_decode(r->pixels, &img)) {
            char msg[160];
            snprintf(msg, sizeof msg, "fer2013.csv row %ld: pixels are not 2304 values in 0..255", r->row);
            set_status(r, ST_BAD_IMAGE, msg);
            image_free(&img);
            return;
        }
        sha256_hex(img.px, 48 * 48, r->hash);
        r->size = 48 * 48;
    } else {
        char *path = join(d->root, r->rel_path);
        size_t len;
        char *buf = read_file(path, &len, MAX_IMAGE_FILE, err, sizeof err);
        if (!buf) {
            set_status(r, ST_MISSING, err);
            free(path);
            return;
        }
        sha256_hex(buf, len, r->hash);
        r->size = (long)len;
        if (image_load_mem((const uint8_t *)buf, len, path, &img, err, sizeof err) != IMAGE_OK) {
            set_status(r, ST_BAD_IMAGE, err);
            free(buf);
            free(path);
            image_free(&img);
            return;
        }
        free(buf);
        free(path);
    }
    r->w = img.w;
    r->h = img.h;
    r->phash = phash_image(&img);
    r->status = ST_OK;
    image_free(&img);
}

typedef struct {
    dataset *d;
    long next;
    pthread_mutex_t lock;
    progress prog;
} probe_job;

static void *probe_worker(void *arg)
{
    probe_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        long i = j->next;
        j->next += 64;
        progress_update(&j->prog, i < j->d->n ? i : j->d->n);
        pthread_mutex_unlock(&j->lock);
        if (i >= j->d->n) break;
        for (long k = i; k < i + 64 && k < j->d->n; k++) probe_one(j->d, &j->d->rec[k]);
    }
    return NULL;
}

static void probe_all(dataset *d, int threads)
{
    probe_job j = {.d = d};
    pthread_mutex_init(&j.lock, NULL);
    progress_start(&j.prog, "reading images", d->n);
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads && t < 64; t++)
        if (pthread_create(&tid[started], NULL, probe_worker, &j) == 0) started++;
    probe_worker(&j);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    progress_finish(&j.prog);
    pthread_mutex_destroy(&j.lock);
}

static char *absolute(const char *path)
{
    char *abs = realpath(path, NULL);
    return abs ? abs : xstrdup(path);  /* a missing root fails later, naming the path as given */
}

int ingest(dataset *d, const ingest_opts *o, char *err, size_t errlen)
{
    path_list listed = {0};
    int rc;
    d->kind = o->kind;
    /* The root is stored absolute: later steps run from any folder. */
    if (!strcmp(o->kind, "rafdb")) {
        d->root = absolute(o->root);
        rc = read_rafdb(d, &listed, err, errlen);
    } else if (!strcmp(o->kind, "ferplus")) {
        d->root = absolute(o->root);
        char *folders = join(o->root, "FER2013Train/label.csv"), *csvs = join(o->root, "fer2013.csv");
        int votes = o->votes;
        if (votes == VOTES_AUTO) votes = file_exists(folders) ? VOTES_FOLDER : VOTES_NEW;
        if (votes == VOTES_FOLDER) rc = read_ferplus_folders(d, &listed, err, errlen);
        else if (!file_exists(csvs)) {
            snprintf(err, errlen, "%s: neither FER2013Train/label.csv nor fer2013.csv + fer2013new.csv found", o->root);
            rc = -1;
        } else rc = read_ferplus_csv(d, err, errlen);
        free(folders);
        free(csvs);
    } else {
        char *slash = strrchr(o->list, '/'), *dir = slash ? strndup(o->list, (size_t)(slash - o->list)) : xstrdup(".");
        d->root = absolute(dir);
        free(dir);
        rc = read_csv_list(d, o->list, &listed, err, errlen);
    }
    list_free(&listed);
    if (rc) return rc;
    probe_all(d, o->threads < 1 ? 1 : o->threads);
    return 0;
}

int ingest_identities(dataset *d, const char *path, char *err, size_t errlen)
{
    csv_reader r = {0};
    if (csv_open(&r, path)) {
        snprintf(err, errlen, "%s", r.err);
        return -1;
    }
    strmap where;
    strmap_init(&where, (size_t)d->n);
    for (long i = 0; i < d->n; i++) strmap_put(&where, d->rec[i].name, strlen(d->rec[i].name), i);
    int got = csv_next(&r);
    if (got == 0) got = csv_fail(&r, "empty file (expected the header image,identity)");
    else if (got == 1 && (r.nfields != 2 || strcmp(r.field[0], "image") || strcmp(r.field[1], "identity")))
        got = csv_fail(&r, "expected the header image,identity");
    long unknown = 0;
    while (got == 1 && (got = csv_next(&r)) == 1) {
        if (r.nfields != 2 || !*r.field[0] || !*r.field[1]) {
            got = csv_fail(&r, "expected <image>,<identity>");
            break;
        }
        long i = strmap_get(&where, r.field[0], r.field_len[0]);
        if (i < 0) unknown++;
        else d->rec[i].identity = r.field[1];  /* points into the buffer kept below */
    }
    strmap_free(&where);
    if (got < 0) {
        snprintf(err, errlen, "%s", r.err);
        csv_close(&r);
        return -1;
    }
    if (unknown) log_warn("%s: %ld images are not in the dataset (ignored)", path, unknown);
    free(d->identity_csv);
    d->identity_csv = r.buf;
    r.buf = NULL;
    csv_close(&r);
    return 0;
}

int fer2013_rows(const char *root, char **buf, const char ***pixels, long *nrows, char *err, size_t errlen)
{
    char *path = join(root, "fer2013.csv");
    csv_reader r = {0};
    r.max_field = 16384;
    int rc = -1, got = 0;
    long cap = 0;
    *pixels = NULL;
    *nrows = 0;
    if (csv_open_header(&r, path, "a header with a pixels column")) {
        snprintf(err, errlen, "%s", r.err);
        goto out;
    }
    int col = header_index(&r, "pixels");
    if (col < 0) {
        snprintf(err, errlen, "%s:1: no pixels column", path);
        goto out;
    }
    while ((got = csv_next(&r)) == 1) {
        if (col >= r.nfields) {
            got = csv_fail(&r, "row has no pixels field");
            break;
        }
        if (*nrows == cap) *pixels = xrealloc(*pixels, sizeof **pixels * (size_t)(cap = cap ? 2 * cap : 40000));
        (*pixels)[(*nrows)++] = r.field[col];
    }
    if (got < 0) {
        snprintf(err, errlen, "%s", r.err);
        goto out;
    }
    *buf = r.buf;
    r.buf = NULL;
    rc = 0;
out:
    if (rc) {
        free(*pixels);
        *pixels = NULL;
    }
    csv_close(&r);
    free(path);
    return rc;
}
