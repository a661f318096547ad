/* util.h: small helpers shared by every tool: checked allocation, exit codes,
 * file reading, atomic file writing. */
#ifndef FB_UTIL_H
#define FB_UTIL_H

#include <stddef.h>
#include <stdio.h>

#define FB_VERSION "0.1.0"

/* Exit codes used by every tool (ARCHITECTURE.md, Conventions). */
enum { EXIT_OK = 0, EXIT_CHECK_FAILED = 1, EXIT_BAD_INPUT = 2 };

/* "out of memory (asked for N bytes)" on stderr, exit EXIT_BAD_INPUT: what xmalloc does on failure. */
void out_of_memory(size_t n);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* qsort comparator for doubles, ascending. */
int cmp_double(const void *a, const void *b);

/* Reads a whole file into a NUL-terminated buffer. Returns NULL and fills err
 * ("path: reason") on failure. max_bytes guards against absurd inputs. */
char *read_file(const char *path, size_t *len, size_t max_bytes, char *err, size_t errlen);

/* Atomic output: open writes to "<path>.tmp.<pid>", commit renames it over path,
 * abort removes it. Nothing half-written is ever visible under path. */
typedef struct {
    FILE *f;
    char *path;
    char *tmp_path;
} atomic_file;

int atomic_open(atomic_file *af, const char *path, char *err, size_t errlen);
int atomic_commit(atomic_file *af, char *err, size_t errlen);
void atomic_abort(atomic_file *af);

/* mkdir -p, then insist that path is a folder. -1 with "PATH: cannot create folder: reason", "PATH: not a
 * folder" or "PATH: bad output folder name" in err. */
int mkdir_p(const char *path, char *err, size_t errlen);

/* Non-zero when s is valid UTF-8 of length len (no overlongs, no surrogates). */
int utf8_valid(const char *s, size_t len);

#endif
