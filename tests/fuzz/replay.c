/* replay.c: runs a fuzz target once on each file named (folders: each file in
 * them, in name order) and reports TAP, one test per input. With no argument,
 * build/tests/fuzz_NAME replays tests/fuzz/corpus/NAME (run from the
 * repository root, as the suite does). A target that
 * crashes or trips a sanitizer ends the process, which prove reports as a
 * failure naming the last input started (printed to stderr first). */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int n_run;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("not ok %d - %s: cannot open\n", ++n_run, path);
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) buf = realloc(buf, cap = cap ? 2 * cap : 65536);
        if (!buf) abort();
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got);
    fclose(f);
    fprintf(stderr, "# replay %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    printf("ok %d - %s\n", ++n_run, path);
    fflush(stdout);
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st)) {
        printf("not ok %d - %s: no such file or folder\n", ++n_run, path);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) {
        printf("not ok %d - %s: cannot list\n", ++n_run, path);
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        size_t l = strlen(path) + strlen(e->d_name) + 2;
        if (!names || !(names[n] = malloc(l))) abort();
        snprintf(names[n++], l, "%s/%s", path, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 0; i < n; i++) {
        run_path(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        if (strncmp(base, "fuzz_", 5)) {
            fprintf(stderr, "usage: %s FILE|FOLDER...\n", argv[0]);
            return 2;
        }
        char corpus[512];
        snprintf(corpus, sizeof corpus, "tests/fuzz/corpus/%s", base + 5);
        run_path(corpus);
    }
    for (int i = 1; i < argc; i++) run_path(argv[i]);
    if (!n_run) printf("not ok 1 - no inputs found\n"), n_run = 1;
    printf("1..%d\n", n_run);
    return 0;
}
