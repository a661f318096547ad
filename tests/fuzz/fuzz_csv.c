/* fuzz_csv.c: common/csv.c on arbitrary bytes. Besides not crashing, every
 * record must keep the reader's promises: NUL-free fields whose field_len is
 * their strlen, within max_field, lines that never go backwards, and a
 * refusal that names the file. */
#include <string.h>

#include "../../common/csv.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    csv_reader r = {0};
    /* The first byte picks a small field limit half of the time, so the limit is reached. */
    size_t max_field = data[0] & 1 ? 1 + (data[0] >> 1) : 0;
    if (csv_open_buffer(&r, "fuzz.csv", (const char *)data + 1, size - 1)) {
        FUZZ_ASSERT(strstr(r.err, "fuzz.csv") != NULL);
        /* no csv_close: a failed open must hold nothing (LeakSanitizer checks) */
        return 0;
    }
    if (max_field) r.max_field = max_field;
    long last = 0, records = 0;
    int got;
    while ((got = csv_next(&r)) == 1) {
        FUZZ_ASSERT(r.line >= 1 && r.line >= last && r.nfields >= 1);
        last = r.line;
        records++;
        for (int i = 0; i < r.nfields; i++) {
            FUZZ_ASSERT(strlen(r.field[i]) == r.field_len[i]);
            FUZZ_ASSERT(!max_field || r.field_len[i] <= max_field);
        }
    }
    if (got < 0) {
        FUZZ_ASSERT(strstr(r.err, "fuzz.csv") != NULL);
        fuzz_note("refused", r.err);
    } else fuzz_note("accepted", records ? "records" : "no records");
    csv_close(&r);
    return 0;
}
