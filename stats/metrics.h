/* metrics.h: classification metrics with scikit-learn's semantics (STATS.md).
 * Confusion matrix rows = true, columns = predicted, over the declared labels. */
#ifndef FB_METRICS_H
#define FB_METRICS_H

typedef struct {
    int k;
    long n, correct;
    long *cm;                 /* k x k, row-major */
    long *support, *predicted;
    double *precision, *recall, *f1;
    double accuracy;
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
    double balanced_accuracy; /* mean recall over classes present in the truth (sklearn) */
    int kappa_defined;        /* 0 when expected disagreement is 0 (sklearn gives NaN) */
    double kappa, mcc;
    double wilson[2], clopper_pearson[2], alpha;
    int absent_classes;       /* labels with no true image */
    int unpredicted_classes;  /* labels never predicted */
} metrics;

void confusion_count(int k, long n, const int *y, const int *yhat, long *cm);
/* Computes everything from a confusion matrix (copied). zero_division is the
 * value of an undefined precision, recall or F1 (sklearn: 0 or 1). */
void metrics_compute(metrics *m, int k, const long *cm, double zero_division, double alpha);
void metrics_free(metrics *m);

/* Single numbers for the bootstrap: from a confusion matrix. */
double macro_f1_of(int k, const long *cm, double zero_division);
double balanced_accuracy_of(int k, const long *cm);
double accuracy_of(int k, const long *cm);

/* Wilson score interval, exactly statsmodels' proportion_confint(method='wilson'). */
void wilson_interval(long count, long n, double alpha, double *lo, double *hi);

#endif
