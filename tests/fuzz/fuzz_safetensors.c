/* fuzz_safetensors.c: the safetensors reader (engine/safetensors.c), which
 * treats its file as untrusted. The table is a small stand-in for the model's
 * (a conv weight, a bias, BN running statistics) so that short inputs can
 * reach the tensor checks. The reader promises: on failure an error naming
 * the file and the buffers untouched; on success a file that is read back the
 * same after writing it again. */
#include <stdlib.h>
#include <string.h>

#include "../../engine/safetensors.h"
#include "fuzz.h"

static const param_entry table[] = {
    {.name = "conv.weight", .ndim = 4, .shape = {2, 1, 1, 2}, .offset = 0, .numel = 4, .kind = PK_WEIGHT, .trainable = 1},
    {.name = "conv.bias", .ndim = 1, .shape = {2, 1, 1, 1}, .offset = 4, .numel = 2, .kind = PK_BIAS, .trainable = 1},
    {.name = "bn.running_mean", .ndim = 1, .shape = {3, 1, 1, 1}, .offset = 6, .numel = 3, .kind = PK_BN_RUNNING_MEAN},
};
enum { TOTAL = 9, SENTINEL = 0x5a };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_params p = {.cfg = {.size = 64, .width = 0.125}, .entries = (param_entry *)table, .n = 3, .total = TOTAL};
    float w[TOTAL], m[TOTAL];
    unsigned char before[2 * sizeof w];
    memset(w, SENTINEL, sizeof w);
    memset(m, SENTINEL, sizeof m);
    memcpy(before, w, sizeof w);
    memcpy(before + sizeof w, m, sizeof m);
    p.data = w;
    const char *path = fuzz_write("w.safetensors", data, size);
    char err[1024] = "";

    st_meta meta = {0};
    if (safetensors_read_meta(path, &meta, err, sizeof err)) FUZZ_ASSERT(strstr(err, "w.safetensors") && !meta.n);
    st_meta_free(&meta);

    st_set sets[2] = {{.prefix = "", .data = w, .required = 1}, {.prefix = "adam_m.", .data = m, .required = 0}};
    err[0] = 0;
    if (safetensors_read_sets(path, &p, sets, 2, &meta, err, sizeof err)) {
        FUZZ_ASSERT(strstr(err, "w.safetensors") && !meta.n);
        fuzz_note("refused", err);
        FUZZ_ASSERT(memcmp(before, w, sizeof w) == 0 && memcmp(before + sizeof w, m, sizeof m) == 0);
        st_meta_free(&meta);
        return 0;
    }
    /* Accepted: writing it again and reading that back gives the same floats. */
    const char *copy = fuzz_write("copy.safetensors", "", 0);
    FUZZ_ASSERT(safetensors_write_sets(copy, &p, sets, sets[1].present ? 2 : 1, NULL, err, sizeof err) == 0);
    float w2[TOTAL], m2[TOTAL];
    st_set again[2] = {{.prefix = "", .data = w2, .required = 1}, {.prefix = "adam_m.", .data = m2, .required = 0}};
    FUZZ_ASSERT(safetensors_read_sets(copy, &p, again, 2, NULL, err, sizeof err) == 0);
    FUZZ_ASSERT(again[1].present == sets[1].present && memcmp(w, w2, sizeof w) == 0);
    FUZZ_ASSERT(!sets[1].present || memcmp(m, m2, sizeof m) == 0);
    fuzz_note("accepted", sets[1].present ? "weights and moments" : "weights");
    st_meta_free(&meta);
    return 0;
}
