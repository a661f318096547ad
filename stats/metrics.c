#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "distributions.h"

void confusion_count(int k, long n, const int *y, const int *yhat, long *cm)
{
    memset(cm, 0, sizeof *cm * (size_t)k * (size_t)k);
    for (long i = 0; i < n; i++) cm[y[i] * k + yhat[i]]++;
}

void wilson_interval(long count, long n, double alpha, double *lo, double *hi)
{
    /* statsmodels' expression order, so the roundings match too. */
    double crit = normal_isf(alpha / 2), crit2 = crit * crit, nobs = (double)n;
    double q = (double)count / nobs;
    double denom = 1 + crit2 / nobs;
    double center = (q + crit2 / (2 * nobs)) / denom;
    double dist = crit * sqrt(q * (1. - q) / nobs + crit2 / (4. * nobs * nobs));
    dist /= denom;
    *lo = center - dist;
    *hi = center + dist;
}

static double ratio_or(double num, double den, double zero_division)
{
    return den == 0 ? zero_division : num / den;
}

void metrics_compute(metrics *m, int k, const long *cm, double zero_division, double alpha)
{
    memset(m, 0, sizeof *m);
    m->k = k;
    m->alpha = alpha;
    size_t kk = (size_t)k * (size_t)k;
    m->cm = memcpy(xmalloc(sizeof *cm * kk), cm, sizeof *cm * kk);
    m->support = xcalloc((size_t)k, sizeof *m->support);
    m->predicted = xcalloc((size_t)k, sizeof *m->predicted);
    m->precision = xcalloc((size_t)k, sizeof *m->precision);
    m->recall = xcalloc((size_t)k, sizeof *m->recall);
    m->f1 = xcalloc((size_t)k, sizeof *m->f1);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            m->support[i] += cm[i * k + j];
            m->predicted[j] += cm[i * k + j];
            m->n += cm[i * k + j];
        }
    for (int i = 0; i < k; i++) {
        long tp = cm[i * k + i], fp = m->predicted[i] - tp, fn = m->support[i] - tp;
        m->correct += tp;
        m->precision[i] = ratio_or((double)tp, (double)m->predicted[i], zero_division);
        m->recall[i] = ratio_or((double)tp, (double)m->support[i], zero_division);
        /* F1 = 2tp/(2tp+fp+fn): sklearn's modern form (the old 2PR/(P+R) differs by an ulp). */
        m->f1[i] = ratio_or(2.0 * (double)tp, (double)(2 * tp + fp + fn), zero_division);
        m->absent_classes += m->support[i] == 0;
        m->unpredicted_classes += m->predicted[i] == 0;
    }
    double n = (double)m->n;
    m->accuracy = (double)m->correct / n;

    /* numpy sums short vectors left to right; so do we. */
    double sp = 0, sr = 0, sf = 0, wp = 0, wr = 0, wf = 0, wsum = 0;
    for (int i = 0; i < k; i++) {
        sp += m->precision[i];
        sr += m->recall[i];
        sf += m->f1[i];
        double w = (double)m->support[i];
        wp += m->precision[i] * w;
        wr += m->recall[i] * w;
        wf += m->f1[i] * w;
        wsum += w;
    }
    m->macro_precision = sp / k;
    m->macro_recall = sr / k;
    m->macro_f1 = sf / k;
    m->weighted_precision = wp / wsum;
    m->weighted_recall = wr / wsum;
    m->weighted_f1 = wf / wsum;
    m->balanced_accuracy = balanced_accuracy_of(k, cm);

    /* Kappa from exact integers: (n*D - S) / (n^2 - S), S = sum_i rows_i*cols_i.
     * One rounding, where sklearn's 1 - sum(w*cm)/sum(w*expected) has several. */
    double S = 0;
    for (int i = 0; i < k; i++) S += (double)m->support[i] * (double)m->predicted[i];
    double num = n * (double)m->correct - S, den = n * n - S;
    m->kappa_defined = den != 0;
    m->kappa = den != 0 ? num / den : 0;

    /* MCC exactly as sklearn writes it (integer-valued doubles). */
    double tt = 0, pp = 0, tp = 0;
    for (int i = 0; i < k; i++) {
        double t = (double)m->support[i], p = (double)m->predicted[i];
        tt += t * t;
        pp += p * p;
        tp += t * p;
    }
    double cov_ytyp = (double)m->correct * n - tp, cov_ypyp = n * n - pp, cov_ytyt = n * n - tt;
    m->mcc = cov_ypyp * cov_ytyt == 0 ? 0 : cov_ytyp / sqrt(cov_ytyt * cov_ypyp);

    wilson_interval(m->correct, m->n, alpha, &m->wilson[0], &m->wilson[1]);
    clopper_pearson(m->correct, m->n, alpha, &m->clopper_pearson[0], &m->clopper_pearson[1]);
}

void metrics_free(metrics *m)
{
    free(m->cm);
    free(m->support);
    free(m->predicted);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    memset(m, 0, sizeof *m);
}

double accuracy_of(int k, const long *cm)
{
    long n = 0, d = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) n += cm[i * k + j];
    for (int i = 0; i < k; i++) d += cm[i * k + i];
    return (double)d / (double)n;
}

double macro_f1_of(int k, const long *cm, double zero_division)
{
    double s = 0;
    for (int i = 0; i < k; i++) {
        long tp = cm[i * k + i], row = 0, col = 0;
        for (int j = 0; j < k; j++) {
            row += cm[i * k + j];
            col += cm[j * k + i];
        }
        s += ratio_or(2.0 * (double)tp, (double)(row + col), zero_division);
    }
    return s / k;
}

double balanced_accuracy_of(int k, const long *cm)
{
    double s = 0;
    int present = 0;
    for (int i = 0; i < k; i++) {
        long row = 0;
        for (int j = 0; j < k; j++) row += cm[i * k + j];
        if (row == 0) continue;
        s += (double)cm[i * k + i] / (double)row;
        present++;
    }
    return s / present;
}
