/* Thin SQLite access layer; see db.h. */
#include "db.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* migrations[v] takes a database from schema version v to v + 1. A new version appends one entry. */
static const char *const migrations[] = {
    db_schema_sql, /* 0 -> 1: the first schema, on a new file */
    /* 1 -> 2: imported predictions (`ferbench run --predictions F`) keep the file they came from, and every
     * model run the mask assignment its split was evaluated on (NULL in runs recorded before). */
    "ALTER TABLE model_runs ADD COLUMN source_path TEXT;"
    "ALTER TABLE model_runs ADD COLUMN source_hash TEXT CHECK (source_hash IS NULL OR length(source_hash) = 64);"
    "ALTER TABLE model_runs ADD COLUMN mask_mode TEXT CHECK (mask_mode IS NULL OR mask_mode IN ('identity', 'pattern', "
    "'none'));"
    "ALTER TABLE model_runs ADD COLUMN mask_seed INTEGER CHECK ((mask_mode IS NULL) = (mask_seed IS NULL));",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == DB_SCHEMA_VERSION,
               "one migration per schema version");

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The name used in messages about an open database: its file, as SQLite resolved it. */
static const char *db_label(sqlite3 *db)
{
    const char *f = sqlite3_db_filename(db, "main");
    return f && *f ? f : ":memory:";
}

static int exec_as(sqlite3 *db, const char *label, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        set_err(err, errlen, "%s: %s", label, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Run a statement that yields one row (a PRAGMA) and copy its first column as text. */
static int query_text(sqlite3 *db, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(buf, len, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

char *db_column_dup(sqlite3_stmt *st, int col, const char *if_null)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    if (!t && !if_null) return NULL;
    char *c = strdup(t ? t : if_null);
    if (!c) {
        fputs("out of memory\n", stderr);
        abort();
    }
    return c;
}

int db_schema_version(sqlite3 *db)
{
    char buf[32];
    if (query_text(db, "PRAGMA user_version", buf, sizeof buf) != 0)
        return -1;
    return (int)strtol(buf, NULL, 10);
}

/* Read the schema version and refuse files this build must not touch: written by a newer ferbench, or
 * SQLite files of something else (tables but no version). */
static int check_version(sqlite3 *db, const char *path, int *version, char *err, size_t errlen)
{
    char tables[32];
    int v = db_schema_version(db);
    if (v < 0) {
        set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    if (v > DB_SCHEMA_VERSION) {
        set_err(err, errlen,
                "%s: database schema version %d is newer than this build supports (%d); upgrade ferbench",
                path, v, DB_SCHEMA_VERSION);
        return -1;
    }
    if (v == 0) {
        if (query_text(db, "SELECT count(*) FROM sqlite_master", tables, sizeof tables) != 0) {
            set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
            return -1;
        }
        if (strcmp(tables, "0") != 0) {
            set_err(err, errlen, "%s: not a ferbench database (it has tables but no schema version)", path);
            return -1;
        }
    }
    *version = v;
    return 0;
}

/* Bring the schema up to DB_SCHEMA_VERSION in one transaction, so a failure leaves the file as it was. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int v;
    if (exec_as(db, path, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    /* Re-read under the write lock: another process may have migrated the file meanwhile. */
    if (check_version(db, path, &v, err, errlen) != 0)
        goto fail;
    for (; v < DB_SCHEMA_VERSION; v++) {
        char pragma[48];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (exec_as(db, path, migrations[v], err, errlen) != 0 || exec_as(db, path, pragma, err, errlen) != 0)
            goto fail;
    }
    if (exec_as(db, path, "COMMIT", err, errlen) != 0)
        goto fail;
    return 0;
fail:
    db_rollback(db);
    return -1;
}

int db_open(const char *path, sqlite3 **out, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    char mode[16];
    int version;

    *out = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        int sys = db ? sqlite3_system_errno(db) : 0;
        set_err(err, errlen, "%s: %s%s%s%s", path, db ? sqlite3_errmsg(db) : "out of memory",
                sys ? " (" : "", sys ? strerror(sys) : "", sys ? ")" : "");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);

    /* Both settings are silently ignored in some builds and states, so read them back. */
    if (exec_as(db, path, "PRAGMA foreign_keys = ON", err, errlen) != 0)
        goto fail;
    if (query_text(db, "PRAGMA foreign_keys", mode, sizeof mode) != 0 || strcmp(mode, "1") != 0) {
        set_err(err, errlen, "%s: cannot enable foreign keys", path);
        goto fail;
    }
    /* Check the version before switching to WAL, so files we refuse are left unchanged. */
    if (check_version(db, path, &version, err, errlen) != 0)
        goto fail;
    if (query_text(db, "PRAGMA journal_mode = WAL", mode, sizeof mode) != 0) {
        set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    if (strcmp(mode, "wal") != 0) {
        set_err(err, errlen, "%s: cannot use WAL journal mode (got %s)", path, mode);
        goto fail;
    }
    if (version < DB_SCHEMA_VERSION && migrate(db, path, err, errlen) != 0)
        goto fail;
    *out = db;
    return 0;
fail:
    sqlite3_close(db);
    return -1;
}

void db_close(sqlite3 *db)
{
    sqlite3_close_v2(db);
}

int db_begin(sqlite3 *db, char *err, size_t errlen)
{
    return exec_as(db, db_label(db), "BEGIN IMMEDIATE", err, errlen);
}

int db_commit(sqlite3 *db, char *err, size_t errlen)
{
    return exec_as(db, db_label(db), "COMMIT", err, errlen);
}

void db_rollback(sqlite3 *db)
{
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    return exec_as(db, db_label(db), sql, err, errlen);
}

int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    const char *tail = NULL;
    sqlite3_stmt *extra = NULL;

    *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, st, &tail) != SQLITE_OK) {
        set_err(err, errlen, "%s: %s", db_label(db), sqlite3_errmsg(db));
        return -1;
    }
    if (!*st) {
        set_err(err, errlen, "%s: empty SQL statement", db_label(db));
        return -1;
    }
    /* A second statement would be silently ignored by sqlite3_prepare; refuse it instead. */
    if (sqlite3_prepare_v2(db, tail, -1, &extra, NULL) != SQLITE_OK || extra) {
        set_err(err, errlen, "%s: more than one SQL statement: %s", db_label(db), sql);
        sqlite3_finalize(extra);
        sqlite3_finalize(*st);
        *st = NULL;
        return -1;
    }
    return 0;
}

void timestamp_now(char out[32])
{
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t t = sde && *sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int db_tool_run_begin(sqlite3 *db, const char *tool, const char *version, const char *args_json, long long *id,
                      char *err, size_t errlen)
{
    char started[32];
    timestamp_now(started);
    sqlite3_stmt *st;
    if (db_prepare(db, "INSERT INTO tool_runs(tool, version, arguments, started) VALUES (?, ?, ?, ?)", &st, err,
                   errlen))
        return -1;
    sqlite3_bind_text(st, 1, tool, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, args_json ? args_json : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, started, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if (err) snprintf(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
        return -1;
    }
    *id = sqlite3_last_insert_rowid(db);
    return 0;
}

int db_tool_run_end(sqlite3 *db, long long id, int exit_code, char *err, size_t errlen)
{
    char finished[32];
    timestamp_now(finished);
    sqlite3_stmt *st;
    if (db_prepare(db, "UPDATE tool_runs SET finished = ?, exit_code = ? WHERE id = ?", &st, err, errlen)) return -1;
    sqlite3_bind_text(st, 1, finished, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, exit_code);
    sqlite3_bind_int64(st, 3, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if (err) snprintf(err, errlen, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}
