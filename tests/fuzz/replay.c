/* replay.c: runs a fuzz target once on each file named (folders: each file in
 * them, in name order) and reports TAP, one test per input. With no argument,
 * build/tests/fuzz_NAME replays tests/fuzz/corpus/NAME (run from the
 * repository root, as the suite does). A target that crashes, aborts or
 * trips a sanitizer ends the process, which prove reports as a failure; the
 * input it was running is named on stderr first (a signal handler, and the
 * sanitizers' death callback). FUZZ_VERBOSE=1 names every input as it starts. */
#include "fuzz.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#include <sanitizer/common_interface_defs.h>
#define HAVE_DEATH_CALLBACK 1
#endif

static char current[1024]; /* the input being run, for the crash message */

static void name_current(void)
{
    static const char pre[] = "\nfuzz replay: died on input ";
    if (!current[0]) return;
    if (write(2, pre, sizeof pre - 1) < 0 || write(2, current, strlen(current)) < 0 || write(2, "\n", 1) < 0) return;
    current[0] = 0;
}

static void on_signal(int sig)
{
    name_current();
    signal(sig, SIG_DFL);
    raise(sig);
}
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
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "# replay %s (%zu bytes)\n", path, len);
    snprintf(current, sizeof current, "%s", path);
    LLVMFuzzerTestOneInput(buf, len);
    current[0] = 0;
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
    static const int sigs[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], on_signal);
#ifdef HAVE_DEATH_CALLBACK
    __sanitizer_set_death_callback(name_current);
#endif
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
