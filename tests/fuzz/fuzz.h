/* fuzz.h: what the fuzz targets share. Each target (fuzz_*.c) defines
 * LLVMFuzzerTestOneInput and is linked either with libFuzzer (`make fuzz`,
 * clang, ASan + UBSan: new inputs are searched for) or with replay.c (`make
 * test` and `make asan`: every input of tests/fuzz/corpus/<target>/ is run
 * once, so each bug the fuzzer found stays a regression test).
 *
 * A target must never crash, leak, hang or read out of bounds, whatever the
 * bytes; refusing them with an error is the expected outcome. Most of the
 * parsers read files, so inputs are written to a private temp folder first. */
#ifndef FB_FUZZ_H
#define FB_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The process's own temp folder (created on first use, removed at exit). */
const char *fuzz_dir(void);
/* Writes n bytes to fuzz_dir()/rel (parent folders created) and returns the
 * full path (static storage, valid until the next call). Aborts on I/O errors:
 * they are the harness's failure, not the target's. */
const char *fuzz_write(const char *rel, const void *data, size_t n);
/* Removes fuzz_dir()/rel if it exists. */
void fuzz_remove(const char *rel);

/* A promise of the target: when cond is false, names it, the file and line,
 * and aborts (libFuzzer then saves the input). */
#define FUZZ_ASSERT(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))
_Noreturn void fuzz_fail(const char *cond, const char *file, int line);

/* With FUZZ_VERBOSE set, prints "# what: msg" to stderr (what a seed reached). */
void fuzz_note(const char *what, const char *msg);

/* Splits data at the first occurrence of the 4-byte separator "\n--\n" into
 * up to max parts (the last part takes the rest); returns the part count. */
int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max);

#endif
