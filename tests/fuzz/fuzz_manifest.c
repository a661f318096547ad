/* fuzz_manifest.c: published manifests (masksynth/checks.c: manifest_read_header,
 * manifest_apply), which re-create a split from a file made elsewhere. The
 * harness signs each input (appends the "# sha256=" line over its bytes), so
 * the fuzzer gets past the checksum to the header and rows. The copy they are
 * applied to is six images, one of them unreadable. Promises: a refusal names
 * the file; an applied manifest leaves every image with a valid split, a group
 * and pattern in range, and no more groups than images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/sha256.h"
#include "../../masksynth/checks.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *text = malloc(size + 80);
    FUZZ_ASSERT(text != NULL);
    memcpy(text, data, size);
    size_t n = size;
    if (n && text[n - 1] != '\n') text[n++] = '\n';
    char hex[65];
    sha256_hex(text, n, hex);
    n += (size_t)snprintf(text + n, 80, "# sha256=%s\n", hex);
    const char *path = fuzz_write("m.csv", text, n);
    free(text);

    char err[1024] = "";
    manifest_header h;
    if (manifest_read_header(path, &h, err, sizeof err)) {
        fuzz_note("header refused", err);
        FUZZ_ASSERT(strstr(err, "m.csv") != NULL);
        return 0;
    }
    dataset d = {0};
    static const char *const names[6] = {"train_00001.jpg", "train_00002.jpg", "train_00003.jpg",
                                         "train_00004.jpg", "test_0001.jpg", "test_0002.jpg"};
    for (int i = 0; i < 6; i++) dataset_add(&d, names[i], names[i], i % 7, i < 4 ? 0 : 2, i + 1);
    d.rec[2].status = ST_MISSING;
    pattern *bank = pattern_bank(h.bank_seed, h.bank_size);
    groups g = {0};
    FILE *sink = fopen("/dev/null", "w");
    FUZZ_ASSERT(sink != NULL);
    long diffs = manifest_apply(&d, &g, bank, h.bank_size, path, sink, err, sizeof err);
    fclose(sink);
    if (diffs < 0) {
        fuzz_note("rows refused", err);
        FUZZ_ASSERT(strstr(err, "m.csv") != NULL);
    } else {
        fuzz_note("applied", "");
        FUZZ_ASSERT(g.n >= 0 && g.n <= d.n);
        for (long i = 0; i < d.n; i++) {
            const record *r = &d.rec[i];
            FUZZ_ASSERT(r->split >= SPLIT_TRAIN && r->split <= SPLIT_NONE);
            FUZZ_ASSERT(r->group >= -1 && r->group < g.n);
            FUZZ_ASSERT(r->pattern >= -1 && r->pattern < h.bank_size);
            FUZZ_ASSERT(r->status == ST_OK || r->split == SPLIT_NONE);
        }
    }
    groups_free(&g);
    free(bank);
    dataset_free(&d);
    return 0;
}
