/* Unit tests for db/: schema creation, settings, migration refusals, transactions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../db/db.h"

static char tmpdir[] = "/tmp/test_db.XXXXXX";

static const char *const tables[] = {
    "datasets",   "identity_groups", "images",      "dropped_images", "split_recipes",
    "patterns",   "assignments",     "renders",     "tool_runs",      "train_runs",
    "train_epochs", "model_runs",    "predictions", "timings",
};

static const char *tmp_path(const char *name)
{
    static char buf[512]; /* room for any d_name */
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* Run a query that yields one integer. */
static long long query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    char err[512];
    assert_int_equal(db_prepare(db, sql, &st, err, sizeof err), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static const char insert_dataset[] =
    "INSERT INTO datasets(id, name, kind, root) VALUES (1, 'raf', 'rafdb', '/data/raf')";
static const char insert_image[] =
    "INSERT INTO images(dataset_id, name, rel_path, label, official_split) "
    "VALUES (1, 'train_00001.jpg', 'Image/aligned/train_00001_aligned.jpg', 4, 'train')";

static void test_new_file_has_schema(void **state)
{
    (void)state;
    sqlite3 *db;
    char err[512];
    assert_int_equal(db_open(tmp_path("new.sqlite"), &db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(db), DB_SCHEMA_VERSION);
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'",
                 tables[i]);
        if (query_int(db, sql) != 1)
            fail_msg("table %s missing", tables[i]);
    }
    db_close(db);
}

static void test_settings(void **state)
{
    (void)state;
    sqlite3 *db;
    sqlite3_stmt *st;
    char err[512];
    assert_int_equal(db_open(tmp_path("settings.sqlite"), &db, err, sizeof err), 0);
    assert_int_equal(db_prepare(db, "PRAGMA journal_mode", &st, err, sizeof err), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(db, "PRAGMA busy_timeout"), 5000);
    db_close(db);
}

static void test_foreign_keys_enforced(void **state)
{
    (void)state;
    sqlite3 *db;
    char err[512];
    assert_int_equal(db_open(tmp_path("fk.sqlite"), &db, err, sizeof err), 0);
    /* No dataset 1 yet: the image's reference dangles. */
    assert_int_equal(db_exec(db, insert_image, err, sizeof err), -1);
    assert_non_null(strstr(err, "FOREIGN KEY"));
    /* With the parent present it works, and deleting the parent cascades. */
    assert_int_equal(db_exec(db, insert_dataset, err, sizeof err), 0);
    assert_int_equal(db_exec(db, insert_image, err, sizeof err), 0);
    assert_int_equal(db_exec(db, "DELETE FROM datasets", err, sizeof err), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM images"), 0);
    db_close(db);
}

static void test_check_constraints(void **state)
{
    (void)state;
    sqlite3 *db;
    char err[512];
    assert_int_equal(db_open(tmp_path("check.sqlite"), &db, err, sizeof err), 0);
    assert_int_equal(db_exec(db, "INSERT INTO datasets(name, kind, root) VALUES ('x', 'affectnet', '/')",
                             err, sizeof err), -1);
    assert_non_null(strstr(err, "CHECK"));
    assert_int_equal(db_exec(db, insert_dataset, err, sizeof err), 0);
    assert_int_equal(db_exec(db, insert_image, err, sizeof err), 0);
    assert_int_equal(db_exec(db, "UPDATE images SET label = 9", err, sizeof err), -1);
    db_close(db);
}

static void test_reopen_keeps_data(void **state)
{
    (void)state;
    const char *path = tmp_path("reopen.sqlite");
    sqlite3 *db;
    char err[512];
    assert_int_equal(db_open(path, &db, err, sizeof err), 0);
    assert_int_equal(db_exec(db, insert_dataset, err, sizeof err), 0);
    db_close(db);
    assert_int_equal(db_open(path, &db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(db), DB_SCHEMA_VERSION);
    assert_int_equal(query_int(db, "SELECT count(*) FROM datasets WHERE name = 'raf'"), 1);
    db_close(db);
}

/* A version-1 file (the first schema, with a model run in it) opened by this build is migrated in place:
 * rows kept, the new columns present and NULL, constraints of the new columns enforced. */
static void test_migrates_version_1(void **state)
{
    (void)state;
    const char *path = tmp_path("v1.sqlite");
    sqlite3 *raw, *db;
    char err[512];
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, db_schema_sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, insert_dataset, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "INSERT INTO model_runs(dataset_id, model, split) VALUES (1, 'ours', 'test')",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    assert_int_equal(db_open(path, &db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(db), DB_SCHEMA_VERSION);
    assert_int_equal(query_int(db, "SELECT count(*) FROM model_runs WHERE model = 'ours' AND source_path IS NULL "
                                   "AND source_hash IS NULL"), 1);
    assert_int_equal(db_exec(db, "UPDATE model_runs SET source_hash = 'abc'", err, sizeof err), -1);
    assert_int_equal(db_exec(db, "UPDATE model_runs SET mask_mode = 'identity'", err, sizeof err), -1); /* no seed */
    assert_int_equal(db_exec(db, "UPDATE model_runs SET mask_mode = 'identity', mask_seed = 42", err, sizeof err), 0);
    db_close(db);
    /* Opening again does not migrate twice. */
    assert_int_equal(db_open(path, &db, err, sizeof err), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM model_runs"), 1);
    db_close(db);
}

static void test_newer_version_refused(void **state)
{
    (void)state;
    const char *path = tmp_path("newer.sqlite");
    sqlite3 *raw;
    char err[512];
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    char pragma[48];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", DB_SCHEMA_VERSION + 1);
    assert_int_equal(sqlite3_exec(raw, pragma, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    sqlite3 *db = (sqlite3 *)1;
    assert_int_equal(db_open(path, &db, err, sizeof err), -1);
    assert_null(db);
    assert_non_null(strstr(err, "newer"));
    assert_non_null(strstr(err, path));
}

static void test_foreign_sqlite_refused(void **state)
{
    (void)state;
    const char *path = tmp_path("other.sqlite");
    sqlite3 *raw, *db;
    char err[512];
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(db_open(path, &db, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a ferbench database"));
}

static void test_garbage_file_refused(void **state)
{
    (void)state;
    const char *path = tmp_path("garbage.sqlite");
    unsigned char bytes[4096];
    uint32_t x = 2463534242u; /* xorshift32: fixed "random" bytes */
    for (size_t i = 0; i < sizeof bytes; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes[i] = (unsigned char)x;
    }
    write_file(path, bytes, sizeof bytes);

    sqlite3 *db;
    char err[512];
    assert_int_equal(db_open(path, &db, err, sizeof err), -1);
    assert_null(db);
    assert_non_null(strstr(err, path));
}

static void test_rollback_leaves_nothing(void **state)
{
    (void)state;
    sqlite3 *db;
    char err[512];
    assert_int_equal(db_open(tmp_path("rollback.sqlite"), &db, err, sizeof err), 0);
    assert_int_equal(db_begin(db, err, sizeof err), 0);
    assert_int_equal(db_exec(db, insert_dataset, err, sizeof err), 0);
    assert_int_equal(db_exec(db, insert_image, err, sizeof err), 0);
    db_rollback(db);
    db_rollback(db); /* no transaction open: still quiet */
    assert_int_equal(query_int(db, "SELECT count(*) FROM datasets"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM images"), 0);

    assert_int_equal(db_begin(db, err, sizeof err), 0);
    assert_int_equal(db_exec(db, insert_dataset, err, sizeof err), 0);
    assert_int_equal(db_commit(db, err, sizeof err), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM datasets"), 1);
    db_close(db);
}

static void test_missing_directory(void **state)
{
    (void)state;
    const char *path = tmp_path("no/such/dir/x.sqlite");
    sqlite3 *db;
    char err[512] = "";
    assert_int_equal(db_open(path, &db, err, sizeof err), -1);
    assert_null(db);
    assert_non_null(strstr(err, path));
    assert_true(strlen(err) > strlen(path) + 2);
}

static void test_prepare_one_statement(void **state)
{
    (void)state;
    sqlite3 *db;
    sqlite3_stmt *st;
    char err[512];
    assert_int_equal(db_open(tmp_path("prepare.sqlite"), &db, err, sizeof err), 0);
    assert_int_equal(db_prepare(db, "SELECT 1; -- a comment\n", &st, err, sizeof err), 0);
    sqlite3_finalize(st);
    assert_int_equal(db_prepare(db, "SELECT 1; SELECT 2", &st, err, sizeof err), -1);
    assert_null(st);
    assert_int_equal(db_prepare(db, "SELEC 1", &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "syntax error"));
    db_close(db);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(tmp_path(e->d_name));
    closedir(d);
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_file_has_schema),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_foreign_keys_enforced),
        cmocka_unit_test(test_check_constraints),
        cmocka_unit_test(test_reopen_keeps_data),
        cmocka_unit_test(test_migrates_version_1),
        cmocka_unit_test(test_newer_version_refused),
        cmocka_unit_test(test_foreign_sqlite_refused),
        cmocka_unit_test(test_garbage_file_refused),
        cmocka_unit_test(test_rollback_leaves_nothing),
        cmocka_unit_test(test_missing_directory),
        cmocka_unit_test(test_prepare_one_statement),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
