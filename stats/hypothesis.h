/* hypothesis.h: paired tests between models (STATS.md): McNemar in four
 * variants, the paired accuracy-difference interval, Holm and Bonferroni
 * adjustment, and Cochran's Q. */
#ifndef FB_HYPOTHESIS_H
#define FB_HYPOTHESIS_H

enum mcnemar_method { MC_MIDP, MC_EXACT, MC_CHI2, MC_CHI2_CC, MC_NMETHODS };
enum cc_convention { CC_R, CC_STATSMODELS };

extern const char *const mcnemar_method_name[MC_NMETHODS];

typedef struct {
    long both_right, b, c, both_wrong, n;  /* n = b + c */
    double stat_chi2, stat_chi2_cc;
    double p[MC_NMETHODS];
    enum cc_convention cc;
    double diff, diff_lo, diff_hi;         /* accuracy(A) - accuracy(B) and its interval */
} mcnemar_result;

/* b = A right and B wrong, c = the reverse. alpha sets the interval level. */
void mcnemar(long both_right, long b, long c, long both_wrong, enum cc_convention cc, double alpha,
             mcnemar_result *r);

/* Newcombe's square-and-add interval (method 10, 1998) for the difference of
 * paired proportions, from Wilson intervals of each and the phi correlation. */
void paired_difference_interval(long a, long b, long c, long d, double alpha, double *lo, double *hi);

enum adjust_method { ADJ_HOLM, ADJ_BONFERRONI, ADJ_NONE };
/* R's p.adjust: Holm = min(1, cummax((m - i + 1) p_(i))) in sorted order, ties kept stable. */
void p_adjust(const double *p, int m, enum adjust_method how, double *out);

/* Cochran's Q over k models on n images; correct[i*k + j] is 1 when model j
 * got image i right. Returns 0, or -1 when the denominator is 0 (every image
 * right or wrong for all models): then q = 0, p = 1. */
int cochran_q(const unsigned char *correct, long n, int k, double *q, int *df, double *p);

#endif
