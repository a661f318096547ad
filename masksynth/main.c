/* masksynth: dataset ingestion, seeded splits, identity groups, the mask
 * pattern bank and its identity-disjoint assignment, manifests, and the
 * synthetic fixture dataset. Mask rendering arrives with the next issue. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/log.h"
#include "../common/numfmt.h"
#include "../common/util.h"
#include "../db/db.h"
#include "checks.h"
#include "dataset.h"
#include "fixture.h"
#include "ingest.h"
#include "plan.h"
#include "mask_preview.h"
#include "render.h"
#include "store.h"
#include "landmarks.h"

#define ERRLEN 2048
#define DEFAULT_DB "db/ferbench.sqlite"

static const char *argv_json;  /* the command line, recorded in tool_runs */

static int open_db(const cli_args *a, sqlite3 **db)
{
    const char *path = cli_get(a, "db") ? cli_get(a, "db") : DEFAULT_DB;
    char err[ERRLEN];
    if (db_open(path, db, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

static long threads_default(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

static int cmd_init(const cli_args *a)
{
    char err[ERRLEN];
    int kind = cli_get_choice(a, "dataset", "rafdb|ferplus|csv", -1);
    int votes = cli_get_choice(a, "votes", "auto|new|folder", VOTES_AUTO);
    int val = cli_get_choice(a, "val", "stratified|official", 0);
    int assign = cli_get_choice(a, "assign", "identity|pattern|none", ASSIGN_IDENTITY);
    double vf;
    long seed, bank_seed, bank_size, threshold, threads;
    if (kind < 0) {
        if (!cli_get(a, "dataset")) log_error("init: --dataset rafdb|ferplus|csv is required");
        return EXIT_BAD_INPUT;
    }
    if (votes < 0 || val < 0 || assign < 0 || cli_get_double(a, "val-fraction", 0.1, 1e-6, 0.9, &vf) ||
        cli_get_long(a, "seed", 42, 0, 0x7fffffffffffffffL, &seed) ||
        cli_get_long(a, "bank-seed", seed, 0, 0x7fffffffffffffffL, &bank_seed) ||
        cli_get_long(a, "bank-size", 48, 4, 4096, &bank_size) ||
        cli_get_long(a, "phash-threshold", 4, -1, 32, &threshold) ||
        cli_get_long(a, "threads", threads_default(), 1, 256, &threads))
        return EXIT_BAD_INPUT;
    const char *kinds[3] = {"rafdb", "ferplus", "csv"};
    ingest_opts o = {.kind = kinds[kind], .root = cli_get(a, "root"), .list = cli_get(a, "list"), .votes = votes,
                     .threads = (int)threads};
    if (kind < 2 && !o.root) {
        log_error("init: --root DIR is required for --dataset %s", kinds[kind]);
        return EXIT_BAD_INPUT;
    }
    if (kind == 2 && !o.list) {
        log_error("init: --list FILE (image,label,split) is required for --dataset csv");
        return EXIT_BAD_INPUT;
    }
    if (val == 1 && kind != 1) {
        log_error("init: --val official needs a dataset with an official validation set (ferplus)");
        return EXIT_BAD_INPUT;
    }
    const char *manifest = cli_get(a, "manifest");
    manifest_header mh;
    if (manifest) {
        if (manifest_read_header(manifest, &mh, err, sizeof err)) {
            log_error("%s", err);
            return EXIT_BAD_INPUT;
        }
        if (strcmp(mh.kind, kinds[kind])) {
            log_error("%s: the manifest is of a %s dataset, not --dataset %s", manifest, mh.kind, kinds[kind]);
            return EXIT_BAD_INPUT;
        }
        /* The manifest fixes the recipe: its seed, split mode, assignment and bank. */
        seed = (long)mh.seed;
        bank_seed = (long)mh.bank_seed;
        bank_size = mh.bank_size;
        val = !strcmp(mh.val, "official");
        vf = mh.val_fraction;
        assign = !strcmp(mh.assign, "pattern") ? ASSIGN_PATTERN : !strcmp(mh.assign, "none") ? ASSIGN_NONE : ASSIGN_IDENTITY;
    }

    dataset d = {0};
    d.name = xstrdup(cli_get(a, "name") ? cli_get(a, "name") : kinds[kind]);
    if (ingest(&d, &o, err, sizeof err)) {
        log_error("%s", err);
        dataset_free(&d);
        return EXIT_BAD_INPUT;
    }
    int rc = EXIT_OK;
    char *protocol_json = NULL;
    groups g = {0};
    pattern *bank = pattern_bank((uint64_t)bank_seed, (int)bank_size);
    sqlite3 *db = NULL;

    /* The protocol check: expected per-class counts, missing, unreadable, extra. */
    const char *pname = cli_get(a, "protocol"), *ptext = NULL;
    char *pbuf = NULL;
    if (pname && strcmp(pname, "none")) {
        size_t len;
        if (!(pbuf = read_file(pname, &len, 1 << 20, err, sizeof err))) {
            log_error("%s", err);
            rc = EXIT_BAD_INPUT;
            goto out;
        }
        ptext = pbuf;
    } else if (!pname) {
        ptext = protocol_builtin(d.kind, d.vote_source, &pname);
    }
    if (ptext) {
        long problems = protocol_check(&d, pname, ptext, stderr, &protocol_json, err, sizeof err);
        if (problems < 0) {
            log_error("%s", err);
            rc = EXIT_BAD_INPUT;
            goto out;
        }
        if (problems > 0 && !cli_flag(a, "allow-partial")) {
            log_error("%s does not match %s (%ld problems, listed above); --allow-partial ingests it anyway and "
                      "records the report", d.root, pname, problems);
            rc = EXIT_BAD_INPUT;
            goto out;
        }
    }

    const char *idfile = cli_get(a, "identities");
    if (idfile && ingest_identities(&d, idfile, err, sizeof err)) {
        log_error("%s", err);
        rc = EXIT_BAD_INPUT;
        goto out;
    }

    if (manifest) {
        long diffs = manifest_apply(&d, &g, bank, (int)bank_size, manifest, stderr, err, sizeof err);
        if (diffs < 0) {
            log_error("%s", err);
            rc = EXIT_BAD_INPUT;
            goto out;
        }
    } else {
        plan_split(&d, vf, val == 1, (uint64_t)seed);
        plan_groups(&d, (int)threshold, &g);
        plan_assign(&d, &g, bank, (int)bank_size, (enum assign_mode)assign, (uint64_t)seed);
    }

    init_settings s = {.seed = (uint64_t)seed, .bank_seed = (uint64_t)bank_seed, .val_fraction = vf,
                       .val_official = val == 1, .assign = (enum assign_mode)assign, .bank_size = (int)bank_size,
                       .phash_threshold = (int)threshold, .allow_partial = cli_flag(a, "allow-partial"),
                       .protocol_json = protocol_json, .manifest = manifest, .argv_json = argv_json};
    /* A new database is built under "<path>.partial" and renamed when complete, so
     * a killed run leaves no database and the rerun gives the same bytes. An
     * existing one is changed in a single transaction. */
    const char *path = cli_get(a, "db") ? cli_get(a, "db") : DEFAULT_DB;
    int fresh = access(path, F_OK) != 0;
    char *partial = xmalloc(strlen(path) + 16);
    sprintf(partial, "%s.partial", path);
    if (fresh) {
        const char *suffix[3] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            char stale[4096];
            snprintf(stale, sizeof stale, "%s%s", partial, suffix[i]);
            remove(stale);  /* left by an interrupted run */
        }
    }
    if (db_open(fresh ? partial : path, &db, err, sizeof err) ||
        store_dataset(db, &d, &g, bank, &s, cli_flag(a, "replace"), err, sizeof err)) {
        log_error("%s", err);
        free(partial);
        rc = EXIT_BAD_INPUT;
        goto out;
    }
    db_close(db);
    db = NULL;
    if (fresh && rename(partial, path) != 0) {
        log_error("%s: cannot rename %s into place", path, partial);
        free(partial);
        rc = EXIT_BAD_INPUT;
        goto out;
    }
    free(partial);
    long count[4] = {0}, status[3] = {0};
    for (long i = 0; i < d.n; i++) {
        count[d.rec[i].split]++;
        status[d.rec[i].status]++;
    }
    printf("%s: %ld images (train %ld, val %ld, test %ld; %ld unusable: %ld missing, %ld unreadable), %ld dropped, "
           "%ld extra files, %ld identity groups, %d patterns (%s assignment)\n",
           d.name, d.n, count[SPLIT_TRAIN], count[SPLIT_VAL], count[SPLIT_TEST], count[SPLIT_NONE], status[ST_MISSING],
           status[ST_BAD_IMAGE], d.ndrop, d.nextra, g.n, (int)bank_size, assign_mode_name[assign]);
out:
    db_close(db);
    free(bank);
    free(pbuf);
    free(protocol_json);
    groups_free(&g);
    dataset_free(&d);
    return rc;
}

static int cmd_patterns(const cli_args *a)
{
    long seed, size;
    if (cli_get_long(a, "bank-seed", 42, 0, 0x7fffffffffffffffL, &seed) || cli_get_long(a, "bank-size", 48, 4, 4096, &size))
        return EXIT_BAD_INPUT;
    pattern *bank = pattern_bank((uint64_t)seed, (int)size);
    const char *preview = cli_get(a, "preview");
    if (preview) {
        char err[ERRLEN];
        int bad = pattern_preview_sheet(preview, bank, (int)size, err, sizeof err);
        if (bad) log_error("%s", err);
        else printf("wrote %s (%ld patterns)\n", preview, size);
        free(bank);
        return bad ? EXIT_BAD_INPUT : EXIT_OK;
    }
    int json = cli_flag(a, "json");
    if (!json) printf("%-36s %-9s %-11s %-8s %-8s %s\n", "stable id", "type", "style", "colour", "texture", "parameters");
    for (int i = 0; i < size; i++) {
        const pattern *p = &bank[i];
        if (json)
            printf("%s{\"stable_id\": \"%s\", \"type\": \"%s\", \"style\": \"%s\", \"colour\": \"%s\", \"texture\": \"%s\", "
                   "\"params\": %s}%s", i ? "" : "[", p->stable_id, p->type, p->style, p->colour, p->texture, p->params,
                   i + 1 < size ? ",\n" : "]\n");
        else
            printf("%-36s %-9s %-11s %-8s %-8s %s\n", p->stable_id, p->type, p->style, p->colour, p->texture, p->params);
    }
    free(bank);
    return EXIT_OK;
}

static int with_dataset(const cli_args *a, sqlite3 **db, long *ds)
{
    char err[ERRLEN];
    if (open_db(a, db)) return -1;
    *ds = store_find_dataset(*db, cli_get(a, "name"), err, sizeof err);
    if (*ds < 0) {
        log_error("%s", err);
        db_close(*db);
        return -1;
    }
    return 0;
}

static int cmd_verify(const cli_args *a)
{
    sqlite3 *db;
    long ds;
    char err[ERRLEN];
    if (with_dataset(a, &db, &ds)) return EXIT_BAD_INPUT;
    long bad = store_verify(db, ds, stdout, err, sizeof err);
    db_close(db);
    if (bad < 0) {
        log_error("%s", err);
        return EXIT_BAD_INPUT;
    }
    return bad ? EXIT_CHECK_FAILED : EXIT_OK;
}

static int cmd_audit(const cli_args *a)
{
    sqlite3 *db;
    long ds;
    char err[ERRLEN];
    if (with_dataset(a, &db, &ds)) return EXIT_BAD_INPUT;
    long n = store_audit(db, ds, stdout, err, sizeof err);
    db_close(db);
    if (n < 0) {
        log_error("%s", err);
        return EXIT_BAD_INPUT;
    }
    return EXIT_OK;
}

static int cmd_manifest(const cli_args *a)
{
    sqlite3 *db;
    long ds;
    char err[ERRLEN];
    const char *out = cli_get(a, "out");
    if (!out) {
        log_error("manifest: --out FILE is required");
        return EXIT_BAD_INPUT;
    }
    if (with_dataset(a, &db, &ds)) return EXIT_BAD_INPUT;
    int rc = store_manifest(db, ds, out, err, sizeof err);
    db_close(db);
    if (rc) {
        log_error("%s", err);
        return EXIT_BAD_INPUT;
    }
    printf("wrote %s\n", out);
    return EXIT_OK;
}

static int cmd_fixture(const cli_args *a)
{
    char err[ERRLEN];
    int layout = cli_get_choice(a, "layout", "rafdb|ferplus", -1);
    long n, seed;
    if (layout < 0) {
        if (!cli_get(a, "layout")) log_error("fixture: --layout rafdb|ferplus is required");
        return EXIT_BAD_INPUT;
    }
    if (cli_get_long(a, "n", 500, 10, 10000000, &n) || cli_get_long(a, "seed", 42, 0, 0x7fffffffffffffffL, &seed))
        return EXIT_BAD_INPUT;
    /* Writing over an older fixture would leave its extra images behind. */
    DIR *dir = opendir(a->pos[0]);
    if (dir) {
        struct dirent *e;
        int used = 0;
        while ((e = readdir(dir)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) used = 1;
        closedir(dir);
        if (used) {
            log_error("fixture: %s is not empty; give a new or empty folder", a->pos[0]);
            return EXIT_BAD_INPUT;
        }
    }
    if (fixture_write(layout ? "ferplus" : "rafdb", n, (uint64_t)seed, a->pos[0], err, sizeof err)) {
        log_error("%s", err);
        return EXIT_BAD_INPUT;
    }
    printf("wrote a %s fixture of %ld images to %s\n", layout ? "ferplus" : "rafdb", n, a->pos[0]);
    return EXIT_OK;
}

static int cmd_render(const cli_args *a)
{
    sqlite3 *db;
    long ds, upsample, quality, threads, shard = 0, nshards = 1;
    int split = cli_get_choice(a, "split", "train|val|test|all", -1);
    int format = cli_get_choice(a, "format", "png|jpeg", 0);
    if (split < 0) {
        if (!cli_get(a, "split")) log_error("render: --split train|val|test|all is required");
        return EXIT_BAD_INPUT;
    }
    if (format < 0 || cli_get_long(a, "upsample", -1, -1, 4, &upsample) || cli_get_long(a, "quality", 95, 1, 100, &quality) ||
        cli_get_long(a, "threads", threads_default(), 1, 64, &threads))
        return EXIT_BAD_INPUT;
    const char *sh = cli_get(a, "shard");
    if (sh && (sscanf(sh, "%ld/%ld", &shard, &nshards) != 2 || nshards < 1 || shard < 1 || shard > nshards)) {
        log_error("render: --shard expects K/N with 1 <= K <= N, got '%s'", sh);
        return EXIT_BAD_INPUT;
    }
    if (with_dataset(a, &db, &ds)) return EXIT_BAD_INPUT;
    char out_dir[2048];
    const char *dbpath = cli_get(a, "db") ? cli_get(a, "db") : DEFAULT_DB, *slash = strrchr(dbpath, '/');
    if (cli_get(a, "out")) snprintf(out_dir, sizeof out_dir, "%s", cli_get(a, "out"));
    else snprintf(out_dir, sizeof out_dir, "%.*smasked", slash ? (int)(slash - dbpath + 1) : 0, dbpath);
    const char *splits[4] = {"train", "val", "test", "all"};
    render_opts o = {.split = splits[split], .out_dir = out_dir,
                     .predictor = cli_get(a, "predictor") ? cli_get(a, "predictor") : LMK_DEFAULT_PREDICTOR,
                     .landmarks = cli_get(a, "landmarks"), .upsample = (int)upsample,
                     .jpeg_quality = format == 1 ? (int)quality : 0, .threads = (int)threads,
                     .shard = nshards > 1 ? (int)shard - 1 : 0, .nshards = (int)nshards, .argv_json = argv_json};
    int rc = render_split(db, ds, &o);
    db_close(db);
    return rc;
}

static int cmd_preview(const cli_args *a)
{
    sqlite3 *db;
    long ds, n;
    int split = cli_get_choice(a, "split", "train|val|test|all", 3);
    if (split < 0 || cli_get_long(a, "n", 36, 1, 400, &n) || with_dataset(a, &db, &ds)) return EXIT_BAD_INPUT;
    const char *splits[4] = {"train", "val", "test", "all"};
    int rc = render_preview(db, ds, splits[split], (int)n, a->pos[0]);
    db_close(db);
    return rc;
}

static int cmd_merge(const cli_args *a)
{
    sqlite3 *db;
    if (open_db(a, &db)) return EXIT_BAD_INPUT;
    int rc = render_merge(db, a->pos, a->npos);
    db_close(db);
    return rc;
}

#define OPT_DB {"db", "PATH", "database file (default " DEFAULT_DB ")"}
#define OPT_NAME {"name", "NAME", "dataset name in the database (default: the dataset kind)"}
static const cli_opt init_opts[] = {
    {"dataset", "rafdb|ferplus|csv", "dataset kind"},
    {"root", "DIR", "dataset folder (rafdb, ferplus)"},
    {"list", "FILE", "image,label,split list for --dataset csv (paths relative to its folder)"},
    {"votes", "new|folder", "FER+ votes: fer2013new.csv with fer2013.csv pixels, or the folders' label.csv"},
    {"val", "stratified|official", "validation: a stratified share of train (default) or FER+'s Valid set"},
    {"val-fraction", "F", "validation share of each class of train (default 0.1)"},
    {"seed", "S", "seed of the split and the assignment (default 42)"},
    {"identities", "FILE", "image,identity file of known identities"},
    {"phash-threshold", "BITS", "near-duplicate distance in perceptual-hash bits (default 4; -1: off)"},
    {"assign", "identity|pattern|none", "pattern assignment mode (MASKS.md; default identity)"},
    {"bank-seed", "S", "seed of the pattern bank (default: --seed)"},
    {"bank-size", "N", "patterns in the bank (default 48)"},
    {"protocol", "FILE|none", "expected per-class counts (default: the built-in protocol of the dataset)"},
    {"allow-partial", NULL, "ingest a copy that differs from the protocol, recording the report"},
    {"manifest", "FILE", "re-create the split and assignment of a published manifest"},
    {"replace", NULL, "replace a dataset of the same name in the database"},
    {"threads", "N", "worker threads for reading images (results do not depend on it)"},
    OPT_DB, OPT_NAME, {0}};
static const cli_opt preview_opts[] = {{"split", "train|val|test|all", "which split (default all)"},
                                       {"n", "N", "number of faces (default 36)"}, OPT_DB, OPT_NAME, {0}};
static const cli_opt merge_opts[] = {OPT_DB, {0}};
static const cli_opt patterns_opts[] = {{"bank-seed", "S", "seed of the bank (default 42)"},
                                        {"preview", "OUT.png", "draw the bank on a synthetic face"},
                                        {"bank-size", "N", "number of patterns (default 48)"},
                                        {"json", NULL, "JSON output"}, {0}};
static const cli_opt db_opts[] = {OPT_DB, OPT_NAME, {0}};
static const cli_opt manifest_opts[] = {{"out", "FILE", "manifest to write"}, OPT_DB, OPT_NAME, {0}};
static const cli_opt fixture_opts[] = {{"layout", "rafdb|ferplus", "official layout to write"},
                                       {"n", "N", "number of images (default 500)"},
                                       {"seed", "S", "seed (default 42)"}, {0}};

static const cli_opt render_opts_list[] = {
    {"split", "train|val|test|all", "which benchmark split to mask"},
    {"out", "DIR", "folder of masked images and alpha maps (default: masked/ beside the database)"},
    {"landmarks", "FILE|dataset", "use given landmarks (image,x0,y0,...,x67,y67) instead of dlib; 'dataset': the "
     "dataset's own landmarks.csv (fixtures have one)"},
    {"predictor", "FILE", "dlib 68-point model (default " LMK_DEFAULT_PREDICTOR ")"},
    {"upsample", "N", "detector upsampling steps (default: 1 for faces of 80 px and more, 2 below)"},
    {"format", "png|jpeg", "masked image format (default png: untouched pixels stay byte-identical)"},
    {"quality", "Q", "JPEG quality (default 95)"},
    {"shard", "K/N", "process only every N-th image, starting at the K-th (cluster array jobs)"},
    {"threads", "N", "worker threads (results do not depend on it)"},
    OPT_DB, OPT_NAME, {0}};

static const cli_command commands[] = {
    {"render", "", "mask a split: landmarks, the assigned pattern, masked image, alpha map, database rows (also "
     "'masksynth --split S')", render_opts_list, 0, 0, cmd_render},
    {"init", "", "ingest RAF-DB, FER+ or a CSV list; seeded split, identity groups, pattern assignment", init_opts, 0,
     0, cmd_init},
    {"patterns", "", "list the mask pattern bank", patterns_opts, 0, 0, cmd_patterns},
    {"audit", "", "list identity groups (near duplicates) that span training and test", db_opts, 0, 0, cmd_audit},
    {"verify", "", "check the pattern assignment invariant with a query (exit 1 on a violation)", db_opts, 0, 0,
     cmd_verify},
    {"manifest", "", "write the split and assignment manifest with a checksum", manifest_opts, 0, 0, cmd_manifest},
    {"fixture", "OUT", "write a synthetic dataset in the official layout", fixture_opts, 1, 1, cmd_fixture},
    {"preview", "OUT.png", "contact sheet of masked faces with landmarks and mask outlines", preview_opts, 1, 1,
     cmd_preview},
    {"merge", "SHARD.sqlite...", "add the renders of --shard K/N runs (copies of this database) in image order",
     merge_opts, 1, -1, cmd_merge},
    {0},
};

int main(int argc, char **argv)
{
    /* The command line as a JSON array, for the tool_runs table. */
    char *buf = cli_argv_json(argc, argv);
    argv_json = buf;
    /* "masksynth --split S ..." is the render command. */
    char **args = argv;
    char *with_cmd[argc + 2];
    if (argc > 1 && !strncmp(argv[1], "--split", 7)) {
        with_cmd[0] = argv[0];
        with_cmd[1] = "render";
        for (int i = 1; i < argc; i++) with_cmd[i + 1] = argv[i];
        with_cmd[argc + 1] = NULL;
        args = with_cmd;
        argc++;
    }
    int rc = cli_main("masksynth", "Synthesises face masks on RAF-DB and FER+ without leaking mask patterns between "
                      "training and test.", commands, argc, args);
    free(buf);
    return rc;
}
