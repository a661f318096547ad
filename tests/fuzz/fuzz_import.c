/* fuzz_import.c: `ferbench run --model NAME --predictions F` (bench/import.c),
 * the import of baselines' exported predictions, through the real command
 * table. Input: OPTIONS \n--\n CSV, where OPTIONS are whitespace-separated
 * import options (only --classes, --index-base, --score-cols, --score-kind,
 * --image-col, --label-col, --pred-col, --no-header, --split, --mode are
 * kept). The database is a 50-face RAF-DB fixture (10 test images) made once per process by
 * $FERBENCH_BIN/masksynth (default bin/: `make all` first).
 * Promises: exit 0 or 2; on 2 no output file and no model run recorded; on 0
 * a canonical predictions file covering the whole split, and one run. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/ferbench.h"
#include "../../common/util.h"
#include "../../stats/preds.h"
#include "fuzz.h"

static char db[512], out[512], *pristine;
static size_t pristine_len;
static long split_n;

static long query_long(const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    long v = -1;
    FUZZ_ASSERT(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    FUZZ_ASSERT(sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void setup(void)
{
    const char *bin = getenv("FERBENCH_BIN") ? getenv("FERBENCH_BIN") : "bin";
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "SOURCE_DATE_EPOCH=1700000000 %s/masksynth fixture --layout rafdb --n 50 --seed 5 %s/raf >/dev/null 2>&1 && "
             "%s/masksynth init --dataset rafdb --root %s/raf --protocol %s/raf/protocol.csv --db %s/pristine.sqlite "
             ">/dev/null 2>&1",
             bin, fuzz_dir(), bin, fuzz_dir(), fuzz_dir(), fuzz_dir());
    if (system(cmd) != 0) {
        fprintf(stderr, "fuzz_import: cannot make the fixture database with %s/masksynth (make all first)\n", bin);
        abort();
    }
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/pristine.sqlite", fuzz_dir());
    pristine = read_file(path, &pristine_len, (size_t)64 << 20, err, sizeof err);
    FUZZ_ASSERT(pristine != NULL);
    snprintf(db, sizeof db, "%s", fuzz_write("d.sqlite", pristine, pristine_len));
    snprintf(out, sizeof out, "%s/out.csv", fuzz_dir());
    split_n = query_long("SELECT count(*) FROM images WHERE benchmark_split = 'test'");
    FUZZ_ASSERT(split_n > 0);
}

static const char *const allowed[] = {"--classes", "--index-base", "--score-cols", "--score-kind", "--image-col",
                                      "--label-col", "--pred-col", "--no-header", "--split", "--mode"};

static int is_allowed(const char *tok)
{
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) {
        size_t n = strlen(allowed[i]);
        if (!strncmp(tok, allowed[i], n) && (tok[n] == 0 || tok[n] == '=')) return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!pristine) setup();
    const uint8_t *part[2];
    size_t len[2];
    if (fuzz_split(data, size, part, len, 2) != 2 || len[0] > 512 || memchr(part[0], 0, len[0])) return 0;
    char opts[513];
    memcpy(opts, part[0], len[0]);
    opts[len[0]] = 0;
    const char *csv = fuzz_write("export.csv", part[1], len[1]);
    char csv_path[600];
    snprintf(csv_path, sizeof csv_path, "%s", csv);
    char *argv[48] = {"ferbench", "run", "--model", "fz", "--db", db, "--out", out, "--predictions", csv_path};
    int argc = 10, keep = 0;
    for (char *tok = strtok(opts, " \t\r\n"); tok && argc < 46; tok = strtok(NULL, " \t\r\n")) {
        if (tok[0] == '-') keep = is_allowed(tok);
        if (keep) argv[argc++] = tok; /* an allowed option and the values after it */
    }
    argv[argc] = NULL;
    remove(out);
    int rc = cli_main("ferbench", "fuzz", ferbench_commands, argc, argv);
    FILE *f = fopen(out, "rb");
    int written = f != NULL;
    if (f) fclose(f);
    long runs = query_long("SELECT count(*) FROM model_runs");
    FUZZ_ASSERT(rc == 0 || rc == 2);
    if (rc == 2) {
        FUZZ_ASSERT(!written && runs == 0);
        return 0;
    }
    FUZZ_ASSERT(written && runs == 1);
    preds p = {0};
    char err[1024];
    FUZZ_ASSERT(preds_load(&p, out, NULL, err, sizeof err) == 0);
    const char *split = "test";
    for (int i = 10; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--split")) split = argv[i + 1];
    if (!strcmp(split, "test")) FUZZ_ASSERT(p.n == split_n);
    fuzz_note("imported", split);
    preds_free(&p);
    fuzz_write("d.sqlite", pristine, pristine_len); /* back to no runs */
    fuzz_remove("d.sqlite-wal");
    fuzz_remove("d.sqlite-shm");
    return 0;
}
