#include "render.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/csv.h"
#include "../common/image.h"
#include "../common/log.h"
#include "../common/numfmt.h"
#include "../common/sha256.h"
#include "../common/strmap.h"
#include "../common/util.h"
#include "../db/db.h"
#include "dataset.h"
#include "ingest.h"
#include "landmarks.h"
#include "mask.h"
#include "mask_preview.h"
#include "plan.h"
#include "store.h"

#define CHUNK 512
enum rstatus { RS_OK, RS_FALLBACK, RS_NO_FACE, RS_BAD_IMAGE, RS_FAILED };
static const char *const rstatus_name[5] = {"ok", "fallback_box", "no_face", "bad_image", "failed"};

typedef struct {
    long long image_id, assignment_id;
    char *name, *rel_path, *split, *type, *style, *texture;
    pattern pat;
    int done;                 /* a row and its files are already there */
    /* result */
    int status, has_box, has_pts;
    double box[4], score, pts[68][2], coverage;
    unsigned char visible[68];
    char out_path[1024], alpha_path[1024], out_hash[65], alpha_hash[65];
    char *message;
} job;

typedef struct {
    const render_opts *o;
    const char *root;
    uint64_t seed;
    job *jobs;
    long begin, end, next;
    pthread_mutex_t lock;
    lmk_model **models;
    strmap *given;            /* image name -> index into given_pts */
    double (*given_pts)[68][2];
    const char **fer_rows;
    long fer_nrows;
    progress *prog;
    long *progress_done;
} render_ctx;

static void set_msg(job *j, int status, const char *msg)
{
    j->status = status;
    free(j->message);
    j->message = xstrdup(msg);
}

/* Folder-safe file stem of an image name ("a/b.jpg" -> "a__b"). */
static void file_stem(const char *name, char *out, size_t len)
{
    size_t k = 0;
    for (const char *p = name; *p && k + 3 < len; p++) {
        if (*p == '/') {
            out[k++] = '_';
            out[k++] = '_';
        } else out[k++] = *p;
    }
    out[k] = '\0';
    char *dot = strrchr(out, '.');
    if (dot && !strchr(dot, '_')) *dot = '\0';
}

static int write_bytes(const char *path, const uint8_t *data, size_t len, char *err, size_t errlen)
{
    atomic_file af;
    if (atomic_open(&af, path, err, errlen)) return -1;
    fwrite(data, 1, len, af.f);
    return atomic_commit(&af, err, errlen);
}

static void render_one(render_ctx *c, job *j, lmk_model *model)
{
    char err[1024];
    image img = {0}, out = {0};
    mask_result mr = {0};
    uint8_t *enc = NULL, *aenc = NULL;
    size_t elen = 0, alen = 0;
    if (!strncmp(j->rel_path, "fer2013.csv#", 12)) {
        long row = atol(j->rel_path + 12);
        if (row < 0 || row >= c->fer_nrows || fer2013_decode(c->fer_rows[row], &img)) {
            snprintf(err, sizeof err, "fer2013.csv row %ld: pixels missing or malformed", row);
            set_msg(j, RS_BAD_IMAGE, err);
            goto out;
        }
    } else {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", c->root, j->rel_path);
        if (image_load(path, &img, err, sizeof err) != IMAGE_OK) {
            set_msg(j, RS_BAD_IMAGE, err);
            goto out;
        }
    }
    if (c->given) {
        long k = strmap_get(c->given, j->name, strlen(j->name));
        if (k < 0) {
            snprintf(err, sizeof err, "%s: no landmarks for this image in the --landmarks file", j->name);
            set_msg(j, RS_FAILED, err);
            goto out;
        }
        memcpy(j->pts, c->given_pts[k], sizeof j->pts);
        double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
        for (int p = 0; p < 68; p++) {
            x0 = fmin(x0, j->pts[p][0]);
            y0 = fmin(y0, j->pts[p][1]);
            x1 = fmax(x1, j->pts[p][0]);
            y1 = fmax(y1, j->pts[p][1]);
        }
        double box[4] = {x0, y0, x1 - x0, y1 - y0};
        memcpy(j->box, box, sizeof box);
        j->score = 0;
        j->status = RS_OK;
    } else {
        face_fit fit;
        int side = img.w < img.h ? img.w : img.h;
        int up = c->o->upsample >= 0 ? c->o->upsample : side >= 80 ? 1 : 2;
        int found = lmk_detect(model, &img, up, &fit);
        if (found == 0) {
            lmk_fallback_box(img.w, img.h, fit.box);
            found = lmk_fit_box(model, &img, fit.box, &fit) == 1 ? 2 : -1;
            fit.score = 0;
        }
        if (found < 0) {
            set_msg(j, RS_FAILED, "the landmark model failed on this image");
            goto out;
        }
        memcpy(j->box, fit.box, sizeof j->box);
        memcpy(j->pts, fit.pts, sizeof j->pts);
        j->score = fit.score;
        j->status = found == 1 ? RS_OK : RS_FALLBACK;
    }
    j->has_box = j->has_pts = 1;
    if (mask_render(&img, (const double(*)[2])j->pts, &j->pat, seeded_hash(c->seed, "render", j->name), &out, &mr, err,
                    sizeof err)) {
        set_msg(j, RS_FAILED, err);
        goto out;
    }
    memcpy(j->visible, mr.visible, sizeof j->visible);
    j->coverage = mr.coverage;
    image alpha = {.w = img.w, .h = img.h, .c = 1, .px = mr.alpha};
    int jpeg = c->o->jpeg_quality > 0;
    if ((jpeg ? image_encode_jpeg(&out, c->o->jpeg_quality, &enc, &elen, err, sizeof err)
              : image_encode_png(&out, &enc, &elen, err, sizeof err)) ||
        image_encode_png(&alpha, &aenc, &alen, err, sizeof err)) {
        set_msg(j, RS_FAILED, err);
        goto out;
    }
    char stem[512];
    file_stem(j->name, stem, sizeof stem);
    snprintf(j->out_path, sizeof j->out_path, "%s/%s/%s.%s", c->o->out_dir, j->split, stem, jpeg ? "jpg" : "png");
    snprintf(j->alpha_path, sizeof j->alpha_path, "%s/%s/%s.alpha.png", c->o->out_dir, j->split, stem);
    sha256_hex(enc, elen, j->out_hash);
    sha256_hex(aenc, alen, j->alpha_hash);
    if (write_bytes(j->out_path, enc, elen, err, sizeof err) || write_bytes(j->alpha_path, aenc, alen, err, sizeof err)) {
        set_msg(j, RS_FAILED, err);
        j->out_path[0] = j->alpha_path[0] = '\0';
    }
out:
    free(enc);
    free(aenc);
    mask_result_free(&mr);
    image_free(&out);
    image_free(&img);
}

typedef struct {
    render_ctx *c;
    int t;
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *w = arg;
    render_ctx *c = w->c;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        long i = c->next++;
        if (i < c->end) progress_update(c->prog, ++*c->progress_done);
        pthread_mutex_unlock(&c->lock);
        if (i >= c->end) break;
        if (!c->jobs[i].done) render_one(c, &c->jobs[i], c->models ? c->models[w->t] : NULL);
    }
    return NULL;
}

/* Reads "image,x0,y0,...,x67,y67"; a numeric first column n names "row%05d"
 * (FER+ fixtures key fer2013.csv rows by number). */
static int load_given(const char *path, strmap *map, double (**pts)[68][2], char ***names, long *count, char *err,
                      size_t errlen)
{
    csv_reader r = {0};
    if (csv_open_header(&r, path, "the header image,x0,y0,...,x67,y67")) {
        snprintf(err, errlen, "%s", r.err);
        return -1;
    }
    long cap = 0;
    int got;
    *count = 0;
    strmap_init(map, 4096);
    while ((got = csv_next(&r)) == 1) {
        if (r.nfields != 137) {
            got = csv_fail(&r, "expected an image name and 136 coordinates, got %d fields", r.nfields);
            break;
        }
        if (*count == cap) {
            cap = cap ? 2 * cap : 4096;
            *pts = xrealloc(*pts, sizeof **pts * (size_t)cap);
            *names = xrealloc(*names, sizeof **names * (size_t)cap);
        }
        char name[64], *end;
        const char *key = r.field[0];
        strtol(key, &end, 10);
        if (*key && !*end) {
            snprintf(name, sizeof name, "row%05ld", strtol(key, NULL, 10));
            key = name;
        }
        for (int k = 0; k < 136; k++) {
            double v = strtod(r.field[1 + k], &end);
            if (end == r.field[1 + k] || *end || !isfinite(v)) {
                got = csv_fail(&r, "coordinate %d is not a number", k);
                break;
            }
            (*pts)[*count][k / 2][k % 2] = v;
        }
        if (got < 0) break;
        (*names)[*count] = xstrdup(key);
        strmap_put(map, (*names)[*count], strlen((*names)[*count]), *count);
        (*count)++;
    }
    if (got < 0) snprintf(err, errlen, "%s", r.err);
    csv_close(&r);
    return got < 0 ? -1 : 0;
}

static int mkdirs(const char *path)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) && errno != EEXIST ? -1 : 0;
}

/* Temporary files of a run killed while writing ("<name>.tmp.<pid>"). */
static void remove_stale_temps(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(dp)))
        if (strstr(e->d_name, ".tmp.")) {
            snprintf(path, sizeof path, "%.2000s/%.1000s", dir, e->d_name);
            remove(path);
        }
    closedir(dp);
}

/* A row exists and both files hold the recorded bytes: nothing to do. */
static int already_done(const char *path, const char *hash)
{
    char hex[65];
    return sha256_file(path, hex) == 0 && !strcmp(hex, hash);
}

static int insert_rows(sqlite3 *db, job *jobs, long begin, long end, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_begin(db, err, errlen)) return -1;
    if (db_prepare(db, "INSERT OR REPLACE INTO renders(image_id, assignment_id, status, box_x, box_y, box_w, box_h, score, "
                       "landmarks, visibility, coverage, output_path, output_hash, alpha_path, alpha_hash) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, err, errlen)) {
        db_rollback(db);
        return -1;
    }
    for (long i = begin; i < end; i++) {
        job *j = &jobs[i];
        if (j->done) continue;
        sqlite3_bind_int64(st, 1, j->image_id);
        sqlite3_bind_int64(st, 2, j->assignment_id);
        sqlite3_bind_text(st, 3, rstatus_name[j->status], -1, SQLITE_STATIC);
        for (int k = 0; k < 4; k++) {
            long v = (long)floor(j->box[k] + 0.5);
            if (j->has_box && (k < 2 || v > 0)) sqlite3_bind_int64(st, 4 + k, v);
            else sqlite3_bind_null(st, 4 + k);
        }
        if (j->has_box && j->status == RS_OK && !j->score) sqlite3_bind_null(st, 8);  /* given landmarks: no detector */
        else if (j->has_box && j->status == RS_OK) sqlite3_bind_double(st, 8, j->score);
        else sqlite3_bind_null(st, 8);
        char *lm = NULL, vis[69];
        size_t lml = 0;
        if (j->has_pts) {
            FILE *m = open_memstream(&lm, &lml);
            char a[32], b[32];
            fputc('[', m);
            for (int p = 0; p < 68; p++) fprintf(m, "%s[%s, %s]", p ? ", " : "", fmt_double(a, j->pts[p][0]), fmt_double(b, j->pts[p][1]));
            fputc(']', m);
            fclose(m);
            sqlite3_bind_text(st, 9, lm, -1, SQLITE_TRANSIENT);
        } else sqlite3_bind_null(st, 9);
        int rendered = j->out_path[0] != '\0';
        if (rendered) {
            for (int p = 0; p < 68; p++) vis[p] = j->visible[p] ? '1' : '0';
            vis[68] = '\0';
            sqlite3_bind_text(st, 10, vis, -1, SQLITE_TRANSIENT);
            sqlite3_bind_double(st, 11, j->coverage);
            sqlite3_bind_text(st, 12, j->out_path, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 13, j->out_hash, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 14, j->alpha_path, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 15, j->alpha_hash, -1, SQLITE_STATIC);
        } else {
            for (int k = 10; k <= 15; k++) sqlite3_bind_null(st, k);
        }
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        free(lm);
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
            sqlite3_finalize(st);
            db_rollback(db);
            return -1;
        }
    }
    sqlite3_finalize(st);
    return db_commit(db, err, errlen);
}

int render_split(sqlite3 *db, long ds, const render_opts *o)
{
    char err[2048];
    int rc = EXIT_BAD_INPUT;
    sqlite3_stmt *st = NULL;
    job *jobs = NULL;
    long n = 0, cap = 0;
    render_ctx c = {.o = o};
    char *root = NULL, *fer_buf = NULL, **given_names = NULL;
    long given_count = 0;
    strmap given = {0};
    int nmodels = 0;
    long long run_id = 0;

    if (db_prepare(db, "SELECT root, json_extract(settings, '$.seed') FROM datasets WHERE id = ?", &st, err, sizeof err)) goto out;
    sqlite3_bind_int64(st, 1, ds);
    if (sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, sizeof err, "dataset %ld not found", ds);
        goto out;
    }
    root = db_column_dup(st, 0, "");
    c.seed = (uint64_t)sqlite3_column_int64(st, 1);
    c.root = root;
    sqlite3_finalize(st);
    st = NULL;

    if (db_prepare(db, "SELECT i.id, a.id, i.name, i.rel_path, i.benchmark_split, p.stable_id, p.type, p.style, p.colour, "
                       "p.texture, p.texture_params, r.output_path, r.output_hash, r.alpha_path, r.alpha_hash "
                       "FROM images i JOIN assignments a ON a.image_id = i.id JOIN patterns p ON p.id = a.pattern_id "
                       "LEFT JOIN renders r ON r.image_id = i.id AND r.assignment_id = a.id "
                       "WHERE i.dataset_id = ?1 AND i.status = 'ok' AND i.benchmark_split IS NOT NULL "
                       "AND (?2 = 'all' OR i.benchmark_split = ?2) ORDER BY i.id", &st, err, sizeof err)) goto out;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_text(st, 2, o->split, -1, SQLITE_STATIC);
    long index = 0, todo = 0, skipped = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (o->nshards > 1 && index++ % o->nshards != o->shard) continue;
        if (n == cap) jobs = xrealloc(jobs, sizeof *jobs * (size_t)(cap = cap ? 2 * cap : 1024));
        job *j = &jobs[n++];
        memset(j, 0, sizeof *j);
        j->image_id = sqlite3_column_int64(st, 0);
        j->assignment_id = sqlite3_column_int64(st, 1);
        j->name = db_column_dup(st, 2, "");
        j->rel_path = db_column_dup(st, 3, "");
        j->split = db_column_dup(st, 4, "");
        j->type = db_column_dup(st, 6, "");
        j->style = db_column_dup(st, 7, "");
        j->texture = db_column_dup(st, 9, "");
        snprintf(j->pat.stable_id, sizeof j->pat.stable_id, "%s", sqlite3_column_text(st, 5));
        snprintf(j->pat.colour, sizeof j->pat.colour, "%s", sqlite3_column_text(st, 8));
        snprintf(j->pat.params, sizeof j->pat.params, "%s", sqlite3_column_text(st, 10));
        j->pat.type = j->type;
        j->pat.style = j->style;
        j->pat.texture = j->texture;
        const unsigned char *op = sqlite3_column_text(st, 11), *oh = sqlite3_column_text(st, 12),
                            *ap = sqlite3_column_text(st, 13), *ah = sqlite3_column_text(st, 14);
        j->done = op && oh && ap && ah && already_done((const char *)op, (const char *)oh) &&
                  already_done((const char *)ap, (const char *)ah);
        skipped += j->done;
        todo += !j->done;
    }
    sqlite3_finalize(st);
    st = NULL;

    /* "--landmarks dataset": the landmarks.csv that comes with the dataset (fixtures have one). */
    char given_path[2048];
    if (o->landmarks) snprintf(given_path, sizeof given_path, "%s", o->landmarks);
    if (o->landmarks && !strcmp(o->landmarks, "dataset")) snprintf(given_path, sizeof given_path, "%.2000s/landmarks.csv", root);
    if (o->landmarks && load_given(given_path, &given, &c.given_pts, &given_names, &given_count, err, sizeof err)) goto out;
    if (o->landmarks) c.given = &given;
    for (long i = 0; i < n && !fer_buf; i++)
        if (!jobs[i].done && !strncmp(jobs[i].rel_path, "fer2013.csv#", 12) &&
            fer2013_rows(root, &fer_buf, &c.fer_rows, &c.fer_nrows, err, sizeof err)) goto out;
    int threads = o->threads < 1 ? 1 : o->threads > 64 ? 64 : o->threads;
    /* This run in tool_runs; finished and exit_code are set at the end (NULL if killed). */
    if (db_tool_run_begin(db, "masksynth", FB_VERSION, o->argv_json, &run_id, err, sizeof err)) goto out;

    double t_load = now_seconds();
    if (!o->landmarks && todo > 0) {
        c.models = xcalloc((size_t)threads, sizeof *c.models);
        for (nmodels = 0; nmodels < threads; nmodels++)
            if (!(c.models[nmodels] = lmk_load(o->predictor, err, sizeof err))) goto out;
    }
    const char *splits[3] = {"train", "val", "test"};
    for (int s = 0; s < 3; s++) {
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", o->out_dir, splits[s]);
        if ((!strcmp(o->split, "all") || !strcmp(o->split, splits[s])) && mkdirs(dir)) {
            snprintf(err, sizeof err, "%.1900s: cannot create: %s", dir, strerror(errno));
            goto out;
        }
        remove_stale_temps(dir);
    }

    t_load = now_seconds() - t_load;
    double t_start = now_seconds();
    progress prog;
    long done_count = 0;
    progress_start(&prog, "masking", n);
    c.prog = &prog;
    c.progress_done = &done_count;
    c.jobs = jobs;
    pthread_mutex_init(&c.lock, NULL);
    for (long begin = 0; begin < n; begin += CHUNK) {
        c.begin = c.next = begin;
        c.end = begin + CHUNK < n ? begin + CHUNK : n;
        pthread_t tid[64];
        worker_arg args[64];
        int started = 0;
        for (int t = 1; t < threads; t++) {
            args[t] = (worker_arg){&c, t};
            if (pthread_create(&tid[t], NULL, worker, &args[t]) == 0) started = t;
            else break;
        }
        args[0] = (worker_arg){&c, 0};
        worker(&args[0]);
        for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
        /* Rows follow their files, in image order: a kill loses at most this chunk's rows. */
        if (insert_rows(db, jobs, c.begin, c.end, err, sizeof err)) {
            pthread_mutex_destroy(&c.lock);
            goto out;
        }
        const char *fault = getenv("FERBENCH_FAULT");  /* for the resumption test */
        if (fault && !strcmp(fault, "after-first-chunk")) raise(SIGKILL);
    }
    progress_finish(&prog);
    pthread_mutex_destroy(&c.lock);

    long count[5] = {0};
    for (long i = 0; i < n; i++)
        if (!jobs[i].done) count[jobs[i].status]++;
    double t_work = now_seconds() - t_start;
    printf("masked %ld image%s of split %s (ok %ld, fallback_box %ld, bad_image %ld, failed %ld); %ld already done\n",
           todo, todo == 1 ? "" : "s", o->split, count[RS_OK], count[RS_FALLBACK], count[RS_BAD_IMAGE], count[RS_FAILED],
           skipped);
    printf("time: %.2f s masking (%.1f images/s), %.2f s loading the landmark model\n", t_work,
           t_work > 0 ? (double)todo / t_work : 0.0, t_load);
    long shown = 0;
    for (long i = 0; i < n && shown < 10; i++)
        if (!jobs[i].done && jobs[i].message) {
            log_warn("%s: %s", rstatus_name[jobs[i].status], jobs[i].message);
            shown++;
        }
    rc = EXIT_OK;
out:
    if (rc) log_error("%s", err);
    if (run_id > 0) db_tool_run_end(db, run_id, rc, NULL, 0);
    sqlite3_finalize(st);
    for (int t = 0; t < nmodels; t++) lmk_free(c.models[t]);
    free(c.models);
    for (long i = 0; i < n; i++) {
        job *j = &jobs[i];
        free(j->name);
        free(j->rel_path);
        free(j->split);
        free(j->type);
        free(j->style);
        free(j->texture);
        free(j->message);
    }
    free(jobs);
    for (long i = 0; i < given_count; i++) free(given_names[i]);
    free(given_names);
    free(c.given_pts);
    if (given.slot) strmap_free(&given);
    free(c.fer_rows);
    free(fer_buf);
    free(root);
    return rc;
}

int render_preview(sqlite3 *db, long ds, const char *split, int n, const char *out_png)
{
    char err[2048];
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT r.output_path, r.alpha_path, r.landmarks FROM renders r JOIN images i ON i.id = r.image_id "
                       "WHERE i.dataset_id = ?1 AND r.output_path IS NOT NULL AND (?2 = 'all' OR i.benchmark_split = ?2) "
                       "ORDER BY i.id LIMIT ?3", &st, err, sizeof err)) {
        log_error("%s", err);
        return EXIT_BAD_INPUT;
    }
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, n);
    image **faces = xcalloc((size_t)n, sizeof *faces);
    uint8_t **alphas = xcalloc((size_t)n, sizeof *alphas);
    double (*pts)[68][2] = xcalloc((size_t)n, sizeof *pts);
    int k = 0, rc = EXIT_OK;
    while (k < n && sqlite3_step(st) == SQLITE_ROW) {
        image *face = xcalloc(1, sizeof *face), alpha = {0};
        if (image_load((const char *)sqlite3_column_text(st, 0), face, err, sizeof err) ||
            image_load((const char *)sqlite3_column_text(st, 1), &alpha, err, sizeof err) || alpha.w != face->w ||
            alpha.h != face->h || alpha.c != 1) {
            log_error("%s", err);
            image_free(face);
            free(face);
            image_free(&alpha);
            rc = EXIT_BAD_INPUT;
            break;
        }
        /* landmarks JSON: [[x, y], ...] */
        const char *p = (const char *)sqlite3_column_text(st, 2);
        for (int q = 0; q < 68 && p; q++) {
            p = strchr(p + 1, '[');
            if (!p) break;
            sscanf(p, "[%lf, %lf]", &pts[k][q][0], &pts[k][q][1]);
        }
        faces[k] = face;
        alphas[k] = alpha.px;
        k++;
    }
    sqlite3_finalize(st);
    if (rc == EXIT_OK && k == 0) {
        log_error("no rendered images in split %s: run masksynth --split %s first", split, split);
        rc = EXIT_BAD_INPUT;
    }
    if (rc == EXIT_OK && mask_preview_sheet(out_png, faces, (const uint8_t *const *)alphas, (const double(*)[68][2])pts, k,
                                            k < 6 ? k : 6, err, sizeof err)) {
        log_error("%s", err);
        rc = EXIT_BAD_INPUT;
    }
    if (rc == EXIT_OK) printf("wrote %s (%d images)\n", out_png, k);
    for (int i = 0; i < k; i++) {
        image_free(faces[i]);
        free(faces[i]);
        free(alphas[i]);
    }
    free(faces);
    free(alphas);
    free(pts);
    return rc;
}

int render_merge(sqlite3 *db, const char *const *shards, int nshards)
{
    /* Shard databases are copies of this one taken after init, so image and
     * assignment ids agree; rows go in image order, as one run would insert them. */
    char err[2048], sql[4096];
    if (db_begin(db, err, sizeof err)) goto fail;
    size_t used = (size_t)snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO renders(image_id, assignment_id, status, box_x, "
                                   "box_y, box_w, box_h, score, landmarks, visibility, coverage, output_path, output_hash, "
                                   "alpha_path, alpha_hash) SELECT image_id, assignment_id, status, box_x, box_y, box_w, "
                                   "box_h, score, landmarks, visibility, coverage, output_path, output_hash, alpha_path, "
                                   "alpha_hash FROM (");
    for (int s = 0; s < nshards; s++) {
        char attach[64];
        snprintf(attach, sizeof attach, "ATTACH ? AS shard%d", s);
        sqlite3_stmt *st;
        if (db_prepare(db, attach, &st, err, sizeof err)) goto fail;
        sqlite3_bind_text(st, 1, shards[s], -1, SQLITE_STATIC);
        int ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
        if (!ok) {
            snprintf(err, sizeof err, "%s: cannot attach: %s", shards[s], sqlite3_errmsg(db));
            goto fail;
        }
        used += (size_t)snprintf(sql + used, sizeof sql - used, "%sSELECT * FROM shard%d.renders", s ? " UNION ALL " : "", s);
    }
    snprintf(sql + used, sizeof sql - used, ") ORDER BY image_id");
    if (db_exec(db, sql, err, sizeof err) || db_commit(db, err, sizeof err)) goto fail;
    printf("merged %d shard database%s: %d renders rows now\n", nshards, nshards == 1 ? "" : "s", sqlite3_total_changes(db));
    return EXIT_OK;
fail:
    db_rollback(db);
    log_error("%s", err);
    return EXIT_BAD_INPUT;
}
