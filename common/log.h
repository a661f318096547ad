/* log.h: messages on stderr prefixed by the tool name, and a progress line
 * (count, rate, ETA) shown only on a terminal: quiet in logs and CI. */
#ifndef FB_LOG_H
#define FB_LOG_H

void log_set_program(const char *name);
const char *log_program(void);
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_set_verbose(int verbose);

typedef struct {
    const char *label;
    long total, done;
    double t0, last_draw;
    int enabled;
} progress;

double now_seconds(void);
void progress_start(progress *p, const char *label, long total);
void progress_update(progress *p, long done);
void progress_finish(progress *p);

#endif
