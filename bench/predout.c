/* predout.c: what `ferbench run` writes for a split it predicted or imported:
 * the canonical predictions CSV (ARCHITECTURE.md "Formats") and the
 * model_runs / predictions / timings rows, in one transaction. */
#include <stdio.h>
#include <stdlib.h>

#include "../common/numfmt.h"
#include "../common/util.h"
#include "../db/db.h"
#include "ferbench.h"

int predictions_write_csv(const char *path, const data_split *sp, const split_predictions *p, char *err,
                          size_t errlen)
{
    atomic_file af;
    char nb[32];
    const int k = sp->nclasses;
    if (atomic_open(&af, path, err, errlen) != 0) return -1;
    FILE *f = af.f;
    fprintf(f, "# ferbench-predictions v1 dataset=%s split=%s model=%s labels=", sp->dataset, sp->split, p->model);
    for (int c = 0; c < k; c++) fprintf(f, "%s%s", c ? "," : "", sp->labels[c]);
    fprintf(f, "\nimage,label,pred");
    if (p->prob)
        for (int c = 0; c < k; c++) fprintf(f, ",prob_%s", sp->labels[c]);
    fputc('\n', f);
    for (int i = 0; i < sp->n; i++) {
        csv_string(f, sp->items[i].name);
        fprintf(f, ",%s,%s", sp->labels[sp->items[i].label], sp->labels[p->pred[i]]);
        if (p->prob)
            for (int c = 0; c < k; c++) {
                fputc(',', f);
                fputs(fmt_double(nb, p->prob[(size_t)i * k + c]), f);
            }
        fputc('\n', f);
    }
    return atomic_commit(&af, err, errlen);
}

/* Binds text, or NULL for a NULL pointer. */
static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

int predictions_record(sqlite3 *db, const data_split *sp, const split_predictions *p, const char *out, char *err,
                       size_t errlen)
{
    long long tool_run, run_id;
    sqlite3_stmt *st = NULL;
    /* Absolute paths, so the rows still name the files when read from another folder. */
    char *abs_w = p->weights_path ? realpath(p->weights_path, NULL) : NULL;
    char *abs_s = p->source_path ? realpath(p->source_path, NULL) : NULL, *abs_o = realpath(out, NULL);
    const int k = sp->nclasses;
    int ok = 0;
    if (db_begin(db, err, errlen)) goto done;
    if (db_tool_run_begin(db, "ferbench", FB_VERSION, ferbench_argv_json, &tool_run, err, errlen)) goto done;
    if (db_prepare(db, "INSERT INTO model_runs(tool_run_id, dataset_id, model, weights_path, weights_hash, split, "
                       "predictions_path, source_path, source_hash, mask_mode, mask_seed) "
                       "SELECT ?, id, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM datasets WHERE name = ?", &st, err, errlen))
        goto done;
    sqlite3_bind_int64(st, 1, tool_run);
    sqlite3_bind_text(st, 2, p->model, -1, SQLITE_STATIC);
    bind_text_or_null(st, 3, abs_w ? abs_w : p->weights_path);
    bind_text_or_null(st, 4, p->weights_hash);
    sqlite3_bind_text(st, 5, sp->split, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, abs_o ? abs_o : out, -1, SQLITE_STATIC);
    bind_text_or_null(st, 7, abs_s ? abs_s : p->source_path);
    bind_text_or_null(st, 8, p->source_hash);
    bind_text_or_null(st, 9, sp->mode[0] ? sp->mode : NULL);
    if (sp->mode[0]) sqlite3_bind_int64(st, 10, sp->mode_seed);
    else sqlite3_bind_null(st, 10);
    sqlite3_bind_text(st, 11, sp->dataset, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(db) != 1) goto sqlfail;
    sqlite3_finalize(st);
    st = NULL;
    run_id = sqlite3_last_insert_rowid(db);
    if (db_prepare(db, "INSERT INTO predictions(model_run_id, image_id, pred, probabilities) VALUES (?, ?, ?, ?)", &st,
                   err, errlen))
        goto done;
    for (int i = 0; i < sp->n; i++) {
        char js[32 * DATA_MAX_CLASSES + 8], nb[32];
        size_t o = 0;
        js[o++] = '[';
        for (int c = 0; p->prob && c < k; c++)
            o += (size_t)snprintf(js + o, sizeof js - o, "%s%s", c ? "," : "", fmt_double(nb, p->prob[(size_t)i * k + c]));
        snprintf(js + o, sizeof js - o, "]");
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, sp->items[i].image_id);
        sqlite3_bind_int(st, 3, p->pred[i]);
        if (p->prob) sqlite3_bind_text(st, 4, js, -1, SQLITE_TRANSIENT);
        else sqlite3_bind_null(st, 4);
        if (sqlite3_step(st) != SQLITE_DONE) goto sqlfail;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (p->has_timing) {
        if (db_prepare(db, "INSERT INTO timings(model_run_id, device, batch, ms_per_image, images_per_s, peak_bytes) "
                           "VALUES (?, ?, ?, ?, ?, ?)", &st, err, errlen))
            goto done;
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_text(st, 2, p->device, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, p->batch);
        sqlite3_bind_double(st, 4, p->ms_per_image > 0 ? p->ms_per_image : 1e-9);
        sqlite3_bind_double(st, 5, p->images_per_s > 0 ? p->images_per_s : 1e-9);
        sqlite3_bind_int64(st, 6, p->peak_bytes);
        if (sqlite3_step(st) != SQLITE_DONE) goto sqlfail;
        sqlite3_finalize(st);
        st = NULL;
    }
    if (db_tool_run_end(db, tool_run, 0, err, errlen) || db_commit(db, err, errlen)) goto done;
    ok = 1;
    goto done;
sqlfail:
    snprintf(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
done:
    if (st) sqlite3_finalize(st);
    if (!ok) db_rollback(db);
    free(abs_w);
    free(abs_s);
    free(abs_o);
    return ok ? 0 : -1;
}
