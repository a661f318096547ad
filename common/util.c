#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void out_of_memory(size_t n)
{
    fprintf(stderr, "out of memory (asked for %zu bytes)\n", n);
    exit(EXIT_BAD_INPUT);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

char *read_file(const char *path, size_t *len, size_t max_bytes, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max_bytes) {
                snprintf(err, errlen, "%s: file is larger than %zu bytes", path, max_bytes);
                free(buf);
                fclose(f);
                return NULL;
            }
            cap = cap * 2 > max_bytes ? max_bytes : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int atomic_open(atomic_file *af, const char *path, char *err, size_t errlen)
{
    size_t n = strlen(path) + 32;
    af->path = xstrdup(path);
    af->tmp_path = xmalloc(n);
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        free(af->path);
        free(af->tmp_path);
        return -1;
    }
    return 0;
}

int atomic_commit(atomic_file *af, char *err, size_t errlen)
{
    int bad = ferror(af->f);
    if (fclose(af->f) != 0) bad = 1;
    if (!bad && rename(af->tmp_path, af->path) != 0) bad = 1;
    if (bad) {
        snprintf(err, errlen, "%s: cannot write: %s", af->path, strerror(errno));
        remove(af->tmp_path);
    }
    free(af->path);
    free(af->tmp_path);
    return bad ? -1 : 0;
}

void atomic_abort(atomic_file *af)
{
    fclose(af->f);
    remove(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
}

int utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        /* ASCII fast path, eight bytes at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ULL) break;
            p += 8;
        }
        if (p == end) break;
        unsigned c = *p;
        if (c < 0x80) { p++; continue; }
        int extra;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { extra = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { extra = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { extra = 3; cp = c & 0x07; }
        else return 0;
        if (end - p <= extra) return 0;
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        p += extra + 1;
    }
    return 1;
}

int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int mkdir_p(const char *path, char *err, size_t errlen)
{
    size_t len = strlen(path);
    if (len == 0 || len >= PATH_MAX) {
        snprintf(err, errlen, "%s: bad output folder name", path);
        return -1;
    }
    char buf[PATH_MAX];
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: cannot create folder: %s", buf, strerror(errno));
            return -1;
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a folder", path);
        return -1;
    }
    return 0;
}
