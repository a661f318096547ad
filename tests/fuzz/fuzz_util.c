/* fuzz_util.c: the temp folder and input splitting of fuzz.h. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void remove_dir(void)
{
    char cmd[300];
    if (!dir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", dir);
}

const char *fuzz_dir(void)
{
    if (dir[0]) return dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/ferbench-fuzz.XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return dir;
}

const char *fuzz_write(const char *rel, const void *data, size_t n)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), rel);
    for (char *s = path + strlen(fuzz_dir()) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        if (mkdir(path, 0700) && access(path, F_OK)) {
            perror(path);
            abort();
        }
        *s = '/';
    }
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) {
        perror(path);
        abort();
    }
    return path;
}

void fuzz_remove(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), rel);
    unlink(path);
}

_Noreturn void fuzz_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "%s:%d: broken promise: %s\n", file, line, cond);
    abort();
}

void fuzz_note(const char *what, const char *msg)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "# %s: %s\n", what, msg);
}

int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max)
{
    static const uint8_t sep[4] = {'\n', '-', '-', '\n'};
    int k = 0;
    while (k < max - 1) {
        const uint8_t *hit = size >= 4 ? memmem(data, size, sep, 4) : NULL;
        if (!hit) break;
        part[k] = data;
        len[k++] = (size_t)(hit - data);
        size -= (size_t)(hit - data) + 4;
        data = hit + 4;
    }
    part[k] = data;
    len[k++] = size;
    return k;
}
