#include "store.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/numfmt.h"
#include "../common/sha256.h"
#include "../common/util.h"
#include "../db/db.h"
#include "phash.h"

/* Steps a prepared statement that returns no row; reports the SQL error. */
static int step_done(sqlite3 *db, sqlite3_stmt *st, char *err, size_t errlen)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

int store_dataset(sqlite3 *db, const dataset *d, const groups *g, const pattern *bank, const init_settings *s,
                  int replace, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    long long *group_id = xcalloc((size_t)g->n + 1, sizeof *group_id), *pattern_id = xcalloc((size_t)s->bank_size, sizeof *pattern_id);
    char started[32], settings[2048];
    int rc = -1;
    timestamp_now(started);
    if (db_begin(db, err, errlen)) goto out;

    long existing = -1;
    if (db_prepare(db, "SELECT id FROM datasets WHERE name = ?", &st, err, errlen)) goto fail;
    sqlite3_bind_text(st, 1, d->name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) existing = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (existing >= 0 && !replace) {
        snprintf(err, errlen, "%s: dataset '%s' is already in the database (--replace re-creates it)",
                 sqlite3_db_filename(db, "main"), d->name);
        goto fail;
    }
    if (existing >= 0) {
        char sql[96];
        snprintf(sql, sizeof sql, "DELETE FROM datasets WHERE id = %ld", existing);
        if (db_exec(db, sql, err, errlen)) goto fail;
    }

    if (db_prepare(db, "INSERT INTO tool_runs(tool, version, arguments, started) VALUES ('masksynth', ?, ?, ?)", &st,
                   err, errlen)) goto fail;
    sqlite3_bind_text(st, 1, FB_VERSION, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->argv_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, started, -1, SQLITE_STATIC);
    if (step_done(db, st, err, errlen)) goto fail;
    long long run_id = sqlite3_last_insert_rowid(db);
    sqlite3_finalize(st);
    st = NULL;

    char vf[32];
    snprintf(settings, sizeof settings,
             "{\"seed\": %" PRIu64 ", \"val_mode\": \"%s\", \"val_fraction\": %s, \"assign\": \"%s\", \"bank_seed\": %" PRIu64
             ", \"bank_size\": %d, \"phash_threshold\": %d, \"allow_partial\": %s, \"tool_run\": %lld, \"protocol\": %s}",
             s->seed, s->val_official ? "official" : "stratified", s->val_official ? "null" : fmt_double(vf, s->val_fraction),
             assign_mode_name[s->assign], s->bank_seed, s->bank_size, s->phash_threshold,
             s->allow_partial ? "true" : "false", run_id, s->protocol_json ? s->protocol_json : "null");
    if (db_prepare(db, "INSERT INTO datasets(name, kind, root, vote_source, settings) VALUES (?, ?, ?, ?, ?)", &st, err,
                   errlen)) goto fail;
    sqlite3_bind_text(st, 1, d->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->root, -1, SQLITE_STATIC);
    bind_text_or_null(st, 4, d->vote_source);
    sqlite3_bind_text(st, 5, settings, -1, SQLITE_STATIC);
    if (step_done(db, st, err, errlen)) goto fail;
    long long ds = sqlite3_last_insert_rowid(db);
    sqlite3_finalize(st);
    st = NULL;

    if (db_prepare(db, "INSERT INTO identity_groups(dataset_id, source, name) VALUES (?, ?, ?)", &st, err, errlen)) goto fail;
    for (long i = 0; i < g->n; i++) {
        sqlite3_bind_int64(st, 1, ds);
        sqlite3_bind_text(st, 2, g->source[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, g->name[i], -1, SQLITE_STATIC);
        if (step_done(db, st, err, errlen)) goto fail;
        group_id[i] = sqlite3_last_insert_rowid(db);
    }
    sqlite3_finalize(st);

    /* Patterns are shared by datasets: insert the bank once, look up the ids. */
    if (db_prepare(db, "INSERT OR IGNORE INTO patterns(stable_id, type, style, colour, texture, texture_params) "
                       "VALUES (?, ?, ?, ?, ?, ?)", &st, err, errlen)) goto fail;
    for (int i = 0; i < s->bank_size; i++) {
        const pattern *p = &bank[i];
        const char *v[6] = {p->stable_id, p->type, p->style, p->colour, p->texture, p->params};
        for (int k = 0; k < 6; k++) sqlite3_bind_text(st, k + 1, v[k], -1, SQLITE_STATIC);
        if (step_done(db, st, err, errlen)) goto fail;
    }
    sqlite3_finalize(st);
    if (db_prepare(db, "SELECT id FROM patterns WHERE stable_id = ?", &st, err, errlen)) goto fail;
    for (int i = 0; i < s->bank_size; i++) {
        sqlite3_bind_text(st, 1, bank[i].stable_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
            snprintf(err, errlen, "pattern %s missing after insert", bank[i].stable_id);
            goto fail;
        }
        pattern_id[i] = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);

    sqlite3_stmt *asg = NULL;
    if (db_prepare(db, "INSERT INTO images(dataset_id, name, rel_path, content_hash, size_bytes, width, height, label, "
                       "official_split, benchmark_split, identity_group_id, status, message, phash) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, err, errlen) ||
        db_prepare(db, "INSERT INTO assignments(image_id, pattern_id, mode, seed) VALUES (?, ?, ?, ?)", &asg, err, errlen)) {
        sqlite3_finalize(asg);
        goto fail;
    }
    for (long i = 0; i < d->n; i++) {
        const record *r = &d->rec[i];
        char ph[17];
        snprintf(ph, sizeof ph, "%016" PRIx64, r->phash);
        sqlite3_bind_int64(st, 1, ds);
        sqlite3_bind_text(st, 2, r->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->rel_path, -1, SQLITE_STATIC);
        bind_text_or_null(st, 4, r->status == ST_MISSING ? NULL : r->hash);
        if (r->status == ST_MISSING) sqlite3_bind_null(st, 5);
        else sqlite3_bind_int64(st, 5, r->size);
        if (r->status == ST_OK) {
            sqlite3_bind_int(st, 6, r->w);
            sqlite3_bind_int(st, 7, r->h);
        } else {
            sqlite3_bind_null(st, 6);
            sqlite3_bind_null(st, 7);
        }
        sqlite3_bind_int(st, 8, r->label);
        sqlite3_bind_text(st, 9, split_name[r->official], -1, SQLITE_STATIC);
        bind_text_or_null(st, 10, r->split == SPLIT_NONE ? NULL : split_name[r->split]);
        if (r->group >= 0) sqlite3_bind_int64(st, 11, group_id[r->group]);
        else sqlite3_bind_null(st, 11);
        sqlite3_bind_text(st, 12, status_name[r->status], -1, SQLITE_STATIC);
        bind_text_or_null(st, 13, r->message);
        bind_text_or_null(st, 14, r->status == ST_OK ? ph : NULL);
        if (step_done(db, st, err, errlen)) {
            sqlite3_finalize(asg);
            goto fail;
        }
        if (r->pattern >= 0) {
            sqlite3_bind_int64(asg, 1, sqlite3_last_insert_rowid(db));
            sqlite3_bind_int64(asg, 2, pattern_id[r->pattern]);
            sqlite3_bind_text(asg, 3, assign_mode_name[s->assign], -1, SQLITE_STATIC);
            sqlite3_bind_int64(asg, 4, (sqlite3_int64)s->seed);
            if (step_done(db, asg, err, errlen)) {
                sqlite3_finalize(asg);
                goto fail;
            }
        }
    }
    sqlite3_finalize(asg);
    sqlite3_finalize(st);

    if (db_prepare(db, "INSERT INTO dropped_images(dataset_id, name, reason, source_file, line) VALUES (?, ?, ?, ?, ?)",
                   &st, err, errlen)) goto fail;
    for (long i = 0; i < d->ndrop + d->nextra; i++) {
        int extra = i >= d->ndrop;
        const dropped *x = extra ? NULL : &d->drop[i];
        sqlite3_bind_int64(st, 1, ds);
        sqlite3_bind_text(st, 2, extra ? d->extra[i - d->ndrop] : x->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, extra ? "extra file: no label file lists it" : x->reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, extra ? d->root : x->file, -1, SQLITE_STATIC);
        if (extra) sqlite3_bind_null(st, 5);
        else sqlite3_bind_int64(st, 5, x->line);
        if (step_done(db, st, err, errlen)) goto fail;
    }
    sqlite3_finalize(st);

    if (db_prepare(db, "INSERT INTO split_recipes(dataset_id, seed, val_fraction, val_mode, created) VALUES (?, ?, ?, ?, ?)",
                   &st, err, errlen)) goto fail;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)s->seed);
    if (s->val_official) sqlite3_bind_null(st, 3);
    else sqlite3_bind_double(st, 3, s->val_fraction);
    sqlite3_bind_text(st, 4, s->val_official ? "official" : "stratified", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, started, -1, SQLITE_STATIC);
    if (step_done(db, st, err, errlen)) goto fail;
    sqlite3_finalize(st);

    char finished[32], sql[160];
    timestamp_now(finished);
    snprintf(sql, sizeof sql, "UPDATE tool_runs SET finished = '%s', exit_code = 0 WHERE id = %lld", finished, run_id);
    /* Fault injection for the interruption test: die with the transaction open. */
    const char *fault = getenv("FERBENCH_FAULT");
    if (fault && !strcmp(fault, "before-commit")) raise(SIGKILL);
    if (db_exec(db, sql, err, errlen) || db_commit(db, err, errlen)) {
        st = NULL;
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    sqlite3_finalize(st);
    db_rollback(db);
out:
    free(group_id);
    free(pattern_id);
    return rc;
}

long store_find_dataset(sqlite3 *db, const char *name, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, name ? "SELECT id FROM datasets WHERE name = ?" : "SELECT id FROM datasets", &st, err, errlen))
        return -1;
    if (name) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    long id = -1, count = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        id = (long)sqlite3_column_int64(st, 0);
        count++;
    }
    sqlite3_finalize(st);
    if (count == 1) return id;
    if (count == 0) snprintf(err, errlen, "%s: no dataset%s%s (run masksynth init first)", sqlite3_db_filename(db, "main"),
                             name ? " named " : "", name ? name : "");
    else snprintf(err, errlen, "%s: %ld datasets: say which with --name", sqlite3_db_filename(db, "main"), count);
    return -1;
}

static char *dataset_setting(sqlite3 *db, long ds, const char *path)
{
    sqlite3_stmt *st;
    char *v = NULL;
    if (sqlite3_prepare_v2(db, "SELECT json_extract(settings, ?) FROM datasets WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ds);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) v = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

long store_verify(sqlite3 *db, long ds, FILE *out, char *err, size_t errlen)
{
    char *mode = dataset_setting(db, ds, "$.assign");
    int pattern_mode = mode && !strcmp(mode, "pattern"), none_mode = mode && !strcmp(mode, "none");
    /* The invariant as one query: a (group, pattern) pair -- or in pattern mode a
     * pattern alone -- seen on both the training side (train, val) and test. */
    const char *by_group =
        "SELECT g.name, p.stable_id, sum(i.benchmark_split = 'test'), sum(i.benchmark_split <> 'test') "
        "FROM images i JOIN assignments a ON a.image_id = i.id JOIN patterns p ON p.id = a.pattern_id "
        "JOIN identity_groups g ON g.id = i.identity_group_id WHERE i.dataset_id = ?1 "
        "GROUP BY i.identity_group_id, a.pattern_id HAVING count(DISTINCT i.benchmark_split = 'test') > 1 "
        "ORDER BY g.id, p.id";
    const char *by_pattern =
        "SELECT '', p.stable_id, sum(i.benchmark_split = 'test'), sum(i.benchmark_split <> 'test') "
        "FROM images i JOIN assignments a ON a.image_id = i.id JOIN patterns p ON p.id = a.pattern_id "
        "WHERE i.dataset_id = ?1 GROUP BY a.pattern_id HAVING count(DISTINCT i.benchmark_split = 'test') > 1 ORDER BY p.id";
    sqlite3_stmt *st;
    if (db_prepare(db, pattern_mode ? by_pattern : by_group, &st, err, errlen)) {
        free(mode);
        return -1;
    }
    sqlite3_bind_int64(st, 1, ds);
    long bad = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (bad++ < 20) {
            if (pattern_mode)
                fprintf(out, "leak: pattern %s is used by %d test and %d training images\n", sqlite3_column_text(st, 1),
                        sqlite3_column_int(st, 2), sqlite3_column_int(st, 3));
            else
                fprintf(out, "leak: identity group %s wears pattern %s in test (%d images) and in training (%d)\n",
                        sqlite3_column_text(st, 0), sqlite3_column_text(st, 1), sqlite3_column_int(st, 2),
                        sqlite3_column_int(st, 3));
        }
    }
    sqlite3_finalize(st);
    /* Every usable image has exactly one assignment. */
    if (db_prepare(db, "SELECT count(*) FROM images i WHERE i.dataset_id = ?1 AND i.benchmark_split IS NOT NULL AND "
                       "(SELECT count(*) FROM assignments a WHERE a.image_id = i.id) <> 1", &st, err, errlen)) {
        free(mode);
        return -1;
    }
    sqlite3_bind_int64(st, 1, ds);
    long unassigned = sqlite3_step(st) == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (unassigned) fprintf(out, "%ld usable images do not have exactly one pattern\n", unassigned);
    if (none_mode) {
        fprintf(out, "assignment mode none: no constraint is promised; %ld (group, pattern) pairs cross training and "
                     "test (the leakage this mode measures)\n", bad);
        bad = 0;
    } else {
        fprintf(out, "assignment mode %s: %ld violation%s\n", mode ? mode : "?", bad, bad == 1 ? "" : "s");
    }
    free(mode);
    return bad + unassigned;
}

long store_audit(sqlite3 *db, long ds, FILE *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT g.id, g.name, g.source, i.name, i.benchmark_split, i.phash FROM identity_groups g "
                       "JOIN images i ON i.identity_group_id = g.id WHERE g.dataset_id = ?1 AND g.id IN "
                       "(SELECT identity_group_id FROM images WHERE dataset_id = ?1 AND identity_group_id IS NOT NULL "
                       "GROUP BY identity_group_id HAVING sum(benchmark_split = 'test') > 0 AND "
                       "sum(benchmark_split IN ('train', 'val')) > 0) ORDER BY g.id, i.id", &st, err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, ds);
    long groups = 0, current = -1, nm = 0, cap = 0;
    struct member { char name[256], split[8]; uint64_t ph; int has; } *m = NULL;
    char gname[256] = "", gsource[16] = "";
    for (int done = 0; !done;) {
        int row = sqlite3_step(st) == SQLITE_ROW;
        long gid = row ? (long)sqlite3_column_int64(st, 0) : -2;
        if (gid != current && current != -1) {
            /* Report the group: members, and the closest training / test pair. */
            int best = 99;
            long bi = -1, bj = -1;
            for (long i = 0; i < nm; i++)
                for (long j = 0; j < nm; j++)
                    if (!strcmp(m[i].split, "test") && strcmp(m[j].split, "test") && m[i].has && m[j].has &&
                        hamming64(m[i].ph, m[j].ph) < best)
                        best = hamming64(m[i].ph, m[j].ph), bi = i, bj = j;
            fprintf(out, "group %s (%s, %ld images):", gname, gsource, nm);
            for (long i = 0; i < nm; i++) fprintf(out, " %s[%s]", m[i].name, m[i].split);
            if (bi >= 0) fprintf(out, "; closest across: %s ~ %s, distance %d bits", m[bi].name, m[bj].name, best);
            fprintf(out, "\n");
            groups++;
            nm = 0;
        }
        if (!row) {
            done = 1;
            break;
        }
        current = gid;
        snprintf(gname, sizeof gname, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(gsource, sizeof gsource, "%s", (const char *)sqlite3_column_text(st, 2));
        if (nm == cap) m = xrealloc(m, sizeof *m * (size_t)(cap = cap ? 2 * cap : 16));
        struct member *x = &m[nm++];
        snprintf(x->name, sizeof x->name, "%s", (const char *)sqlite3_column_text(st, 3));
        const unsigned char *sp = sqlite3_column_text(st, 4), *ph = sqlite3_column_text(st, 5);
        snprintf(x->split, sizeof x->split, "%s", sp ? (const char *)sp : "-");
        x->has = ph != NULL;
        x->ph = ph ? strtoull((const char *)ph, NULL, 16) : 0;
    }
    sqlite3_finalize(st);
    free(m);
    fprintf(out, "%ld identity group%s span training and test\n", groups, groups == 1 ? "" : "s");
    return groups;
}

int store_manifest(sqlite3 *db, long ds, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT d.name, d.kind, json_extract(d.settings, '$.seed'), json_extract(d.settings, '$.val_mode'), "
                       "ifnull(json_extract(d.settings, '$.val_fraction'), ''), json_extract(d.settings, '$.assign'), "
                       "json_extract(d.settings, '$.bank_seed'), json_extract(d.settings, '$.bank_size') "
                       "FROM datasets d WHERE d.id = ?", &st, err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, ds);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        snprintf(err, errlen, "dataset %ld not found", ds);
        return -1;
    }
    char header[1024];
    snprintf(header, sizeof header,
             "# masksynth-manifest v1 dataset=%s kind=%s seed=%s val=%s val_fraction=%s assign=%s bank_seed=%s bank_size=%s\n"
             "image,label,split,group,pattern\n",
             sqlite3_column_text(st, 0), sqlite3_column_text(st, 1), sqlite3_column_text(st, 2),
             sqlite3_column_text(st, 3), sqlite3_column_text(st, 4), sqlite3_column_text(st, 5),
             sqlite3_column_text(st, 6), sqlite3_column_text(st, 7));
    sqlite3_finalize(st);
    if (db_prepare(db, "SELECT i.name, i.label, ifnull(i.benchmark_split, ''), ifnull(g.name, ''), ifnull(p.stable_id, '') "
                       "FROM images i LEFT JOIN identity_groups g ON g.id = i.identity_group_id "
                       "LEFT JOIN assignments a ON a.image_id = i.id LEFT JOIN patterns p ON p.id = a.pattern_id "
                       "WHERE i.dataset_id = ? ORDER BY i.id", &st, err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, ds);
    atomic_file af;
    if (atomic_open(&af, path, err, errlen)) {
        sqlite3_finalize(st);
        return -1;
    }
    sha256_ctx h;
    sha256_init(&h);
    fputs(header, af.f);
    sha256_update(&h, header, strlen(header));
    char *line = NULL;
    size_t cap = 0;
    FILE *mem;
    while (sqlite3_step(st) == SQLITE_ROW) {
        mem = open_memstream(&line, &cap);
        for (int c = 0; c < 5; c++) {
            if (c) fputc(',', mem);
            if (c == 1) fputs(class_name[sqlite3_column_int(st, 1)], mem);
            else csv_string(mem, (const char *)sqlite3_column_text(st, c));
        }
        fputc('\n', mem);
        fclose(mem);
        fputs(line, af.f);
        sha256_update(&h, line, strlen(line));
        free(line);  /* each open_memstream allocates anew */
        line = NULL;
    }
    sqlite3_finalize(st);
    char hex[65];
    sha256_final_hex(&h, hex);
    fprintf(af.f, "# sha256=%s\n", hex);
    return atomic_commit(&af, err, errlen);
}
