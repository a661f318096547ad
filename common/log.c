#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const char *program = "ferbench";
static int verbose;

void log_set_program(const char *name) { program = name; }
const char *log_program(void) { return program; }
void log_set_verbose(int v) { verbose = v; }

static void emit(const char *level, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: %s", program, level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("warning: ", fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    if (!verbose) return;
    va_list ap;
    va_start(ap, fmt);
    emit("", fmt, ap);
    va_end(ap);
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, const char *label, long total)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->t0 = p->last_draw = now_seconds();
    p->enabled = isatty(STDERR_FILENO) && !getenv("CI") && !getenv("FERBENCH_NO_PROGRESS");
}

static void draw(progress *p, double t)
{
    double el = t - p->t0, rate = el > 0 ? (double)p->done / el : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    fprintf(stderr, "\r%s: %ld/%ld (%.0f/s, ETA %.0fs)   ", p->label, p->done, p->total, rate, eta);
    fflush(stderr);
    p->last_draw = t;
}

void progress_update(progress *p, long done)
{
    p->done = done;
    if (!p->enabled) return;
    double t = now_seconds();
    if (t - p->last_draw >= 0.1) draw(p, t);
}

void progress_finish(progress *p)
{
    if (!p->enabled) return;
    p->done = p->total;
    draw(p, now_seconds());
    fputc('\n', stderr);
}
