/* fuzz_preds.c: the predictions reader (stats/preds.c) and the matching of two
 * files. Input: LABELS \n--\n FILE_A [\n--\n FILE_B]; an empty LABELS means no
 * --labels. A loaded file must be consistent (indices within the label map,
 * named images), a refusal must name the file, and a match must pair the
 * same images with the same truth. */
#include <stdlib.h>
#include <string.h>

#include "../../stats/preds.h"
#include "fuzz.h"

static int load(preds *p, const char *rel, const uint8_t *data, size_t n, const char *labels, char *err, size_t el)
{
    const char *path = fuzz_write(rel, data, n);
    memset(p, 0, sizeof *p);
    err[0] = 0;
    if (preds_load(p, path, labels, err, el)) {
        fuzz_note("refused", err);
        FUZZ_ASSERT(strstr(err, rel) || !strncmp(err, "--labels", 8)); /* the file, or the option at fault */
        preds_free(p);
        return -1;
    }
    FUZZ_ASSERT(p->nlabels >= 1 && p->nlabels <= PREDS_MAX_LABELS && p->n >= 0);
    for (long i = 0; i < p->n; i++) {
        FUZZ_ASSERT(p->y[i] >= 0 && p->y[i] < p->nlabels && p->yhat[i] >= 0 && p->yhat[i] < p->nlabels);
        FUZZ_ASSERT(p->image[i][0] != 0);
    }
    fuzz_note("accepted", rel);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[3];
    size_t len[3];
    int k = fuzz_split(data, size, part, len, 3);
    if (k < 2 || len[0] > 4096) return 0;
    /* A label list holding a NUL cannot come from a command line. */
    if (memchr(part[0], 0, len[0])) return 0;
    char *labels = len[0] ? strndup((const char *)part[0], len[0]) : NULL;
    char err[1024];
    preds a, b;
    if (load(&a, "a.csv", part[1], len[1], labels, err, sizeof err) == 0) {
        if (k == 3 && load(&b, "b.csv", part[2], len[2], labels, err, sizeof err) == 0) {
            long *order = malloc(sizeof *order * (size_t)(a.n ? a.n : 1));
            FUZZ_ASSERT(order != NULL);
            err[0] = 0;
            if (preds_match(&a, &b, order, err, sizeof err) == 0) {
                FUZZ_ASSERT(a.n == b.n);
                for (long i = 0; i < a.n; i++) {
                    FUZZ_ASSERT(order[i] >= 0 && order[i] < b.n);
                    FUZZ_ASSERT(strcmp(a.image[i], b.image[order[i]]) == 0 && a.y[i] == b.y[order[i]]);
                }
                fuzz_note("matched", "a.csv b.csv");
            } else {
                FUZZ_ASSERT(err[0] != 0);
                fuzz_note("not matched", err);
            }
            free(order);
            preds_free(&b);
        }
        preds_free(&a);
    }
    free(labels);
    return 0;
}
