/* Thin SQLite access layer: open with the project's settings, migrate the schema, run transactions.
 * Every function that can fail returns 0 on success and -1 on failure with "PATH: reason" in err
 * (err may be NULL; the message is truncated to errlen). */
#ifndef FERBENCH_DB_H
#define FERBENCH_DB_H

#include <stddef.h>
#include <sqlite3.h>

/* The schema version this build writes and understands (PRAGMA user_version). */
#define DB_SCHEMA_VERSION 2

/* schema.sql, embedded at build time by db/embed.sh. */
extern const char db_schema_sql[];

/* Open or create the database at path: busy timeout 5 s, foreign keys on, WAL journal, schema migrated to
 * DB_SCHEMA_VERSION. Refuses files written by a newer ferbench and SQLite files that are not ferbench's.
 * On failure *out is NULL. */
int db_open(const char *path, sqlite3 **out, char *err, size_t errlen);

/* Close; NULL is allowed. Statements still open are finalised by SQLite when they are. */
void db_close(sqlite3 *db);

/* BEGIN IMMEDIATE: takes the write lock now, so a batch never fails half-way on a busy database. */
int db_begin(sqlite3 *db, char *err, size_t errlen);
/* On failure the transaction is still open: call db_rollback. */
int db_commit(sqlite3 *db, char *err, size_t errlen);
/* Roll back the open transaction, if any; for error paths, so it never fails loudly. */
void db_rollback(sqlite3 *db);

/* Run one or more SQL statements that return no rows of interest. */
int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);

/* Prepare exactly one statement (trailing SQL other than whitespace or comments is an error). */
int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen);

/* A copy (malloc'ed) of a text column of the current row; a NULL column gives a copy of if_null, or NULL
 * when if_null is NULL. Out of memory aborts, as the tools' xmalloc does. */
char *db_column_dup(sqlite3_stmt *st, int col, const char *if_null);

/* PRAGMA user_version, or -1 if it cannot be read. */
int db_schema_version(sqlite3 *db);

/* ISO-8601 UTC now; SOURCE_DATE_EPOCH when set, so reruns can be byte-identical. */
void timestamp_now(char out[32]);

/* A tools_runs row for this invocation (args_json: the command line as a JSON
 * array), started now; *id gets its rowid. */
int db_tool_run_begin(sqlite3 *db, const char *tool, const char *version, const char *args_json, long long *id,
                      char *err, size_t errlen);
/* Sets finished (now) and exit_code of the row. */
int db_tool_run_end(sqlite3 *db, long long id, int exit_code, char *err, size_t errlen);

#endif
