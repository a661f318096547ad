/* fuzz_protocol.c: protocol files (masksynth/checks.c: protocol_check), the
 * expected per-class counts `init --protocol FILE` compares a copy with. The
 * first byte picks the file name (one that JSON must escape, or not); the rest
 * is the file. Promises: a refusal names the file; an accepted one gives a
 * report that is valid JSON (SQLite's json_valid: the database stores it). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../masksynth/checks.h"
#include "fuzz.h"

static int json_valid(const char *js)
{
    static sqlite3 *db;
    static sqlite3_stmt *st;
    if (!db) {
        FUZZ_ASSERT(sqlite3_open(":memory:", &db) == SQLITE_OK);
        FUZZ_ASSERT(sqlite3_prepare_v2(db, "SELECT json_valid(?)", -1, &st, NULL) == SQLITE_OK);
    }
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, js, -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || memchr(data + 1, 0, size - 1)) return 0; /* the text of a file read whole: no NUL */
    const char *name = data[0] & 1 ? "we\"ird\\proto.csv" : "proto.csv";
    char *text = strndup((const char *)data + 1, size - 1);
    FUZZ_ASSERT(text != NULL);
    dataset d = {0};
    for (int i = 0; i < 5; i++) {
        char img[32];
        snprintf(img, sizeof img, "train_%05d.jpg", i + 1);
        dataset_add(&d, img, img, i % 7, i < 4 ? 0 : 2, i + 1);
    }
    d.rec[1].status = ST_MISSING;
    d.rec[1].message = strdup("absent");
    FILE *sink = fopen("/dev/null", "w");
    FUZZ_ASSERT(sink != NULL);
    char *json = NULL, err[1024] = "";
    long problems = protocol_check(&d, name, text, sink, &json, err, sizeof err);
    fclose(sink);
    if (problems < 0) {
        fuzz_note("refused", err);
        FUZZ_ASSERT(strstr(err, "proto.csv") != NULL && json == NULL);
    } else {
        fuzz_note("report", json);
        FUZZ_ASSERT(json != NULL && json_valid(json));
    }
    free(json);
    free(text);
    dataset_free(&d);
    return 0;
}
