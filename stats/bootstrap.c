#include "bootstrap.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/rng.h"
#include "../common/util.h"
#include "metrics.h"

const char *const boot_metric_name[3] = {"macro-f1", "balanced-accuracy", "accuracy"};

static double metric_of(enum boot_metric m, int k, const long *cm, double zero_division)
{
    switch (m) {
    case BOOT_MACRO_F1: return macro_f1_of(k, cm, zero_division);
    case BOOT_BALANCED_ACCURACY: return balanced_accuracy_of(k, cm);
    default: return accuracy_of(k, cm);
    }
}

typedef struct {
    int k;
    long n;
    const int *y, *ya, *yb;
    enum boot_metric metric;
    double zero_division;
    uint64_t seed;
    long resamples;
    double *values;
    long next;            /* next resample to take, under lock */
    pthread_mutex_t lock;
    progress prog;
} boot_job;

static void *worker(void *arg)
{
    boot_job *j = arg;
    size_t kk = (size_t)j->k * (size_t)j->k;
    long *cma = xmalloc(sizeof *cma * kk), *cmb = xmalloc(sizeof *cmb * kk);
    for (;;) {
        pthread_mutex_lock(&j->lock);
        long r = j->next++;
        if (r < j->resamples && (r & 63) == 0) progress_update(&j->prog, r);
        pthread_mutex_unlock(&j->lock);
        if (r >= j->resamples) break;
        rng_t rng;
        rng_seed(&rng, j->seed, (uint64_t)r);
        memset(cma, 0, sizeof *cma * kk);
        memset(cmb, 0, sizeof *cmb * kk);
        for (long i = 0; i < j->n; i++) {
            long s = (long)rng_below(&rng, (uint64_t)j->n);
            cma[j->y[s] * j->k + j->ya[s]]++;
            if (j->yb) cmb[j->y[s] * j->k + j->yb[s]]++;
        }
        double v = metric_of(j->metric, j->k, cma, j->zero_division);
        if (j->yb) v -= metric_of(j->metric, j->k, cmb, j->zero_division);
        j->values[r] = v;
    }
    free(cma);
    free(cmb);
    return NULL;
}

double quantile_sorted(const double *v, long n, double q)
{
    double h = (double)(n - 1) * q;
    long lo = (long)floor(h);
    if (lo >= n - 1) return v[n - 1];
    double t = h - (double)lo;
    return v[lo] + t * (v[lo + 1] - v[lo]);
}

void bootstrap(int k, long n, const int *y, const int *yhat_a, const int *yhat_b, enum boot_metric metric,
               long resamples, uint64_t seed, double alpha, double zero_division, int threads, int show_progress,
               boot_result *out)
{
    boot_job j = {.k = k, .n = n, .y = y, .ya = yhat_a, .yb = yhat_b, .metric = metric,
                  .zero_division = zero_division, .seed = seed, .resamples = resamples};
    j.values = xmalloc(sizeof *j.values * (size_t)resamples);
    pthread_mutex_init(&j.lock, NULL);
    progress_start(&j.prog, "bootstrap", resamples);
    if (!show_progress) j.prog.enabled = 0;
    if (threads < 1) threads = 1;
    pthread_t *tid = xmalloc(sizeof *tid * (size_t)threads);
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[t], NULL, worker, &j) == 0) started++;
        else break;
    worker(&j);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    progress_finish(&j.prog);
    free(tid);
    pthread_mutex_destroy(&j.lock);

    /* Point estimate on the full sample. */
    size_t kk = (size_t)k * (size_t)k;
    long *cm = xmalloc(sizeof *cm * kk);
    confusion_count(k, n, y, yhat_a, cm);
    out->estimate = metric_of(metric, k, cm, zero_division);
    if (yhat_b) {
        confusion_count(k, n, y, yhat_b, cm);
        out->estimate -= metric_of(metric, k, cm, zero_division);
    }
    free(cm);

    /* Mean and sd in resample order (deterministic), then sort for percentiles. */
    double sum = 0, sq = 0;
    for (long r = 0; r < resamples; r++) sum += j.values[r];
    out->mean = sum / (double)resamples;
    for (long r = 0; r < resamples; r++) sq += (j.values[r] - out->mean) * (j.values[r] - out->mean);
    out->sd = resamples > 1 ? sqrt(sq / (double)(resamples - 1)) : 0;
    qsort(j.values, (size_t)resamples, sizeof *j.values, cmp_double);
    out->lo = quantile_sorted(j.values, resamples, alpha / 2);
    out->hi = quantile_sorted(j.values, resamples, 1 - alpha / 2);
    out->resamples = resamples;
    free(j.values);
}
