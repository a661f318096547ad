/* bootstrap.h: seeded percentile bootstrap of accuracy, macro-F1 or balanced
 * accuracy, for one model or (paired: the same resampled images) the
 * difference of two. Resample r draws from its own stream (seed, r), so the
 * result is identical at any thread count. */
#ifndef FB_BOOTSTRAP_H
#define FB_BOOTSTRAP_H

#include <stdint.h>

enum boot_metric { BOOT_MACRO_F1, BOOT_BALANCED_ACCURACY, BOOT_ACCURACY };
extern const char *const boot_metric_name[3];

typedef struct {
    double estimate;      /* on the full sample (A - B when paired) */
    double lo, hi;        /* percentile interval */
    double mean, sd;      /* over the resamples */
    long resamples;
} boot_result;

/* yhat_b may be NULL (single model). zero_division applies to macro-F1.
 * threads >= 1. show_progress draws a progress line on a terminal. */
void bootstrap(int k, long n, const int *y, const int *yhat_a, const int *yhat_b, enum boot_metric metric,
               long resamples, uint64_t seed, double alpha, double zero_division, int threads, int show_progress,
               boot_result *out);

/* Linear-interpolation quantile (numpy's default) of sorted values. */
double quantile_sorted(const double *v, long n, double q);

#endif
