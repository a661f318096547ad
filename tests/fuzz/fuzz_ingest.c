/* fuzz_ingest.c: masksynth's dataset readers (masksynth/ingest.c) on hostile
 * label files. The first byte picks the layout, the rest is split at "\n--\n"
 * into its files:
 *   0 RAF-DB   EmoLabel/list_patition_label.txt
 *   1 FER+     FER2013Train/label.csv, FER2013Valid/label.csv, FER2013Test/label.csv
 *   2 FER+     fer2013.csv, fer2013new.csv (also read by fer2013_rows)
 *   3 a list   list.csv (image,label,split)
 *   4 a list   list.csv, then identities.csv (ingest_identities)
 * The images themselves are absent (each gets a recorded status), so the
 * target exercises the parsers and their bookkeeping. A refusal must name a
 * file; every record must have a name and a label in range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../masksynth/ingest.h"
#include "fuzz.h"

static const char *const files[] = {
    "EmoLabel/list_patition_label.txt", "FER2013Train/label.csv", "FER2013Valid/label.csv",
    "FER2013Test/label.csv", "fer2013.csv", "fer2013new.csv", "list.csv", "identities.csv",
};

static void check(const dataset *d)
{
    for (long i = 0; i < d->n; i++) {
        const record *r = &d->rec[i];
        FUZZ_ASSERT(r->name && r->name[0] && r->label >= 0 && r->label <= 7);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 5;
    const uint8_t *part[3];
    size_t len[3];
    int k = fuzz_split(data + 1, size - 1, part, len, 3);
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) fuzz_remove(files[f]);
    ingest_opts o = {.root = fuzz_dir(), .threads = 1};
    char list[512];
    switch (mode) {
    case 0:
        o.kind = "rafdb";
        fuzz_write(files[0], part[0], len[0]);
        break;
    case 1:
        o.kind = "ferplus", o.votes = VOTES_FOLDER;
        for (int i = 0; i < 3; i++) fuzz_write(files[1 + i], i < k ? part[i] : (const uint8_t *)"", i < k ? len[i] : 0);
        break;
    case 2:
        o.kind = "ferplus", o.votes = VOTES_NEW;
        fuzz_write(files[4], part[0], len[0]);
        if (k > 1) fuzz_write(files[5], part[1], len[1]);
        break;
    default:
        o.kind = "csv";
        snprintf(list, sizeof list, "%s", fuzz_write(files[6], part[0], len[0]));
        o.list = list;
        break;
    }
    dataset d = {0};
    char err[2048] = "";
    if (ingest(&d, &o, err, sizeof err)) {
        fuzz_note("refused", err);
        FUZZ_ASSERT(strstr(err, fuzz_dir()) != NULL);
    } else {
        check(&d);
        fuzz_note("accepted", o.kind);
        if (mode == 4 && k > 1) {
            const char *ids = fuzz_write(files[7], part[1], len[1]);
            err[0] = 0;
            if (ingest_identities(&d, ids, err, sizeof err)) {
                fuzz_note("identities refused", err);
                FUZZ_ASSERT(strstr(err, "identities.csv") != NULL);
            } else fuzz_note("identities accepted", ids);
        }
    }
    dataset_free(&d);
    if (mode == 2) {
        char *buf = NULL;
        const char **pixels = NULL;
        long nrows = 0;
        err[0] = 0;
        if (fer2013_rows(fuzz_dir(), &buf, &pixels, &nrows, err, sizeof err) == 0) {
            image img = {0};
            for (long i = 0; i < nrows && i < 64; i++) {
                if (pixels[i]) fer2013_decode(pixels[i], &img);
                image_free(&img);
            }
        } else {
            fuzz_note("rows refused", err);
            FUZZ_ASSERT(strstr(err, "fer2013.csv") != NULL);
        }
        free(buf);
        free(pixels);
    }
    return 0;
}
