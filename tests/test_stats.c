/* Unit tests of the statistics library: every reference value of STATS.md to
 * 1e-13 relative, exact binomial values, and properties (Cochran's Q with two
 * models = uncorrected McNemar chi2; Holm monotone and >= raw; the bootstrap
 * repeatable for a seed, different for another, independent of threads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../stats/bootstrap.h"
#include "../stats/distributions.h"
#include "../stats/hypothesis.h"
#include "../stats/metrics.h"

#define REL 1e-13

static void close_to(double got, double want, double rel, const char *what)
{
    double err = fabs(got - want);
    if (err > rel * fmax(fabs(want), 1e-300))
        fail_msg("%s: got %.17g, want %.17g (relative error %.3g)", what, got, want, err / fabs(want));
}

/* ---- STATS.md reference values ------------------------------------------ */

static void test_mcnemar_reference(void **state)
{
    (void)state;
    struct { long b, c; double exact, midp, cc_stat, cc_p, stat, p; } ref[] = {
        {10, 2, 0.0385742187500000, 0.0224609375000000, 4.08333333333333, 0.0433081428107920, 5.33333333333333,
         0.0209213353377940},
        {150, 90, 0.000129876675407791, 0.000102753499202760, 14.5041666666667, 0.000139849874627204, 15,
         0.000107511176729501},
        {1, 0, 1, 0.5, 0, 1, 1, 0.317310507862914},
        {25, 25, 1, 0.943862413670391, 0.02, 0.887537083981715, 0, 1},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        mcnemar_result r;
        char what[64];
        /* The table's chi2-cc row at b = c is statsmodels' convention. */
        enum cc_convention cc = ref[i].b == ref[i].c ? CC_STATSMODELS : CC_R;
        mcnemar(100, ref[i].b, ref[i].c, 50, cc, 0.05, &r);
        snprintf(what, sizeof what, "b=%ld c=%ld exact", ref[i].b, ref[i].c);
        close_to(r.p[MC_EXACT], ref[i].exact, REL, what);
        snprintf(what, sizeof what, "b=%ld c=%ld mid-p", ref[i].b, ref[i].c);
        close_to(r.p[MC_MIDP], ref[i].midp, REL, what);
        /* the table gives statistics to 15 significant digits */
        snprintf(what, sizeof what, "b=%ld c=%ld chi2-cc", ref[i].b, ref[i].c);
        if (ref[i].cc_stat == 0) assert_true(r.stat_chi2_cc == 0);
        else close_to(r.stat_chi2_cc, ref[i].cc_stat, REL, what);
        close_to(r.p[MC_CHI2_CC], ref[i].cc_p, REL, what);
        snprintf(what, sizeof what, "b=%ld c=%ld chi2", ref[i].b, ref[i].c);
        if (ref[i].stat == 0) assert_true(r.stat_chi2 == 0);
        else close_to(r.stat_chi2, ref[i].stat, REL, what);
        close_to(r.p[MC_CHI2], ref[i].p, REL, what);
    }
}

static void test_mcnemar_conventions(void **state)
{
    (void)state;
    mcnemar_result r;
    mcnemar(10, 25, 25, 10, CC_R, 0.05, &r);  /* R: no correction at b = c */
    assert_true(r.stat_chi2_cc == 0);
    assert_true(r.p[MC_CHI2_CC] == 1);
    mcnemar(10, 0, 0, 10, CC_R, 0.05, &r);    /* n = 0: p = 1 everywhere, statistic 0 */
    assert_int_equal(r.n, 0);
    for (int m = 0; m < MC_NMETHODS; m++) assert_true(r.p[m] == 1);
    assert_true(r.stat_chi2 == 0 && r.stat_chi2_cc == 0);
    assert_true(r.diff == 0 && r.diff_lo <= 0 && r.diff_hi >= 0);
    mcnemar(0, 5000, 0, 0, CC_R, 0.05, &r);   /* far tail: finite, never NaN */
    for (int m = 0; m < MC_NMETHODS; m++) assert_true(isfinite(r.p[m]) && r.p[m] >= 0);
    assert_true(r.diff_hi <= 1 && r.diff_lo >= -1);
}

static void test_holm_bonferroni_reference(void **state)
{
    (void)state;
    double p[] = {0.0386, 0.5, 1e-4, 0.0123}, holm[4], bonf[4], none[4];
    double want_holm[] = {0.0772, 0.5, 0.0004, 0.0369}, want_bonf[] = {0.1544, 1, 0.0004, 0.0492};
    p_adjust(p, 4, ADJ_HOLM, holm);
    p_adjust(p, 4, ADJ_BONFERRONI, bonf);
    p_adjust(p, 4, ADJ_NONE, none);
    for (int i = 0; i < 4; i++) {
        close_to(holm[i], want_holm[i], REL, "holm");
        close_to(bonf[i], want_bonf[i], REL, "bonferroni");
        assert_true(none[i] == p[i]);
    }
}

/* y_true/y_pred of STATS.md's classification example. */
static const int ex_true[] = {0, 0, 1, 1, 2, 2, 2, 3, 4, 5, 6, 6};
static const int ex_pred[] = {0, 1, 1, 1, 2, 0, 2, 3, 5, 5, 6, 0};

static void test_metrics_reference(void **state)
{
    (void)state;
    long cm[49];
    confusion_count(7, 12, ex_true, ex_pred, cm);
    metrics m;
    metrics_compute(&m, 7, cm, 0, 0.05);
    close_to(m.accuracy, 0.666666666666667, REL, "accuracy");
    close_to(m.macro_precision, 0.642857142857143, REL, "macro P");
    close_to(m.macro_recall, 0.666666666666667, REL, "macro R");
    close_to(m.macro_f1, 0.619047619047619, REL, "macro F1");
    close_to(m.weighted_precision, 0.708333333333333, REL, "weighted P");
    close_to(m.weighted_recall, 0.666666666666667, REL, "weighted R");
    close_to(m.weighted_f1, 0.65, REL, "weighted F1");
    close_to(m.balanced_accuracy, 0.666666666666667, REL, "balanced accuracy");
    assert_true(m.kappa_defined);
    close_to(m.kappa, 0.603305785123967, REL, "kappa");
    close_to(m.mcc, 0.618732947053990, REL, "MCC");
    close_to(m.wilson[0], 0.390622088872800, REL, "Wilson lo");
    close_to(m.wilson[1], 0.861879908908787, REL, "Wilson hi");
    close_to(m.clopper_pearson[0], 0.348875506418814, REL, "CP lo");
    close_to(m.clopper_pearson[1], 0.900753908850417, REL, "CP hi");
    assert_int_equal(m.cm[2 * 7 + 0], 1);  /* rows true, columns predicted */
    assert_int_equal(m.cm[6 * 7 + 0], 1);
    metrics_free(&m);
}

static void test_wilson_reference(void **state)
{
    (void)state;
    double lo, hi;
    wilson_interval(2700, 3068, 0.05, &lo, &hi);
    close_to(lo, 0.868077608218118, REL, "Wilson 2700/3068 lo");
    close_to(hi, 0.891076153869355, REL, "Wilson 2700/3068 hi");
    wilson_interval(0, 10, 0.05, &lo, &hi);
    assert_true(fabs(lo) < 1e-17 && hi > 0 && hi < 1);
    clopper_pearson(0, 10, 0.05, &lo, &hi);
    assert_true(lo == 0);
    close_to(hi, 1 - pow(0.025, 0.1), 1e-14, "CP 0/10 hi");
    clopper_pearson(10, 10, 0.05, &lo, &hi);
    assert_true(hi == 1);
    close_to(lo, pow(0.025, 0.1), 1e-14, "CP 10/10 lo");
}

/* ---- exact binomial values ---------------------------------------------- */

static void test_binomial_exact(void **state)
{
    (void)state;
    /* C(n,k) and 2^n are exact in unsigned 64 bits for n <= 62. */
    for (long n = 1; n <= 62; n++) {
        uint64_t c = 1, cum = 0;
        for (long k = 0; k <= n; k++) {
            if (k > 0) c = c / (uint64_t)k * (uint64_t)(n - k + 1) + c % (uint64_t)k * (uint64_t)(n - k + 1) / (uint64_t)k;
            cum += c;
            long double scale = ldexpl(1.0L, (int)-n);
            char what[64];
            snprintf(what, sizeof what, "pmf(%ld; %ld)", k, n);
            close_to(binom_pmf(k, n, 0.5), (double)((long double)c * scale), 1e-14, what);
            snprintf(what, sizeof what, "cdf(%ld; %ld)", k, n);
            close_to(binom_cdf(k, n, 0.5), (double)((long double)cum * scale), 1e-14, what);
        }
    }
    assert_true(binom_cdf(-1, 10, 0.5) == 0 && binom_cdf(10, 10, 0.5) == 1);
    assert_true(binom_sf(0, 10, 0.5) == 1 && binom_sf(11, 10, 0.5) == 0);
    close_to(chi2_sf(3.841458820694124, 1), 0.05, 1e-14, "chi2 95% point");
    close_to(normal_isf(0.025), 1.959963984540054, 1e-15, "z 0.975");
}

/* ---- properties --------------------------------------------------------- */

static void test_cochran_two_models_is_mcnemar(void **state)
{
    (void)state;
    rng_t g;
    rng_seed(&g, 7, 0);
    for (int trial = 0; trial < 200; trial++) {
        long n = 1 + (long)rng_below(&g, 3000);
        unsigned char *x = malloc((size_t)n * 2);
        long cnt[4] = {0};
        double pa = rng_uniform(&g), pb = rng_uniform(&g);
        for (long i = 0; i < n; i++) {
            x[2 * i] = rng_uniform(&g) < pa;
            x[2 * i + 1] = rng_uniform(&g) < pb;
            cnt[x[2 * i] && x[2 * i + 1] ? 0 : x[2 * i] ? 1 : x[2 * i + 1] ? 2 : 3]++;
        }
        double q, p;
        int df;
        int rc = cochran_q(x, n, 2, &q, &df, &p);
        mcnemar_result r;
        mcnemar(cnt[0], cnt[1], cnt[2], cnt[3], CC_R, 0.05, &r);
        assert_int_equal(df, 1);
        if (r.n == 0) {
            assert_int_equal(rc, -1);
            assert_true(q == 0 && p == 1);
        } else {
            close_to(q, r.stat_chi2, 1e-14, "Q vs chi2");
            close_to(p, r.p[MC_CHI2], 1e-14, "Q p vs chi2 p");
        }
        free(x);
    }
}

static void test_holm_properties(void **state)
{
    (void)state;
    rng_t g;
    rng_seed(&g, 11, 0);
    for (int trial = 0; trial < 500; trial++) {
        int m = 1 + (int)rng_below(&g, 12);
        double p[12], adj[12], bonf[12];
        for (int i = 0; i < m; i++) p[i] = rng_below(&g, 4) == 0 ? 0.01 : pow(rng_uniform(&g), 3);
        p_adjust(p, m, ADJ_HOLM, adj);
        p_adjust(p, m, ADJ_BONFERRONI, bonf);
        for (int i = 0; i < m; i++) {
            assert_true(adj[i] >= p[i] && adj[i] <= 1 && adj[i] <= bonf[i]);
            for (int j = 0; j < m; j++)
                if (p[i] <= p[j]) assert_true(adj[i] <= adj[j]);  /* order preserved: monotone */
        }
    }
}

static void make_predictions(long n, int *y, int *ya, int *yb, uint64_t seed)
{
    rng_t g;
    rng_seed(&g, seed, 0);
    for (long i = 0; i < n; i++) {
        y[i] = (int)rng_below(&g, 7);
        ya[i] = rng_uniform(&g) < 0.7 ? y[i] : (int)rng_below(&g, 7);
        yb[i] = rng_uniform(&g) < 0.6 ? y[i] : (int)rng_below(&g, 7);
    }
}

static void test_bootstrap_determinism(void **state)
{
    (void)state;
    long n = 1500;
    int *y = malloc(sizeof *y * n), *ya = malloc(sizeof *ya * n), *yb = malloc(sizeof *yb * n);
    make_predictions(n, y, ya, yb, 3);
    for (int metric = 0; metric < 3; metric++) {
        boot_result a, b, c, d;
        bootstrap(7, n, y, ya, yb, metric, 400, 42, 0.05, 0, 1, 0, &a);
        bootstrap(7, n, y, ya, yb, metric, 400, 42, 0.05, 0, 3, 0, &b);  /* other thread count */
        bootstrap(7, n, y, ya, yb, metric, 400, 43, 0.05, 0, 1, 0, &c);  /* other seed */
        bootstrap(7, n, y, ya, NULL, metric, 400, 42, 0.05, 0, 2, 0, &d);
        assert_memory_equal(&a, &b, sizeof a);
        assert_true(a.lo != c.lo || a.hi != c.hi || a.mean != c.mean);
        assert_true(a.estimate == c.estimate);
        assert_true(a.lo <= a.estimate && a.estimate <= a.hi);
        assert_true(d.lo <= d.estimate && d.estimate <= d.hi && d.lo >= 0 && d.hi <= 1);
        assert_true(a.estimate > 0);  /* model A is the better one */
    }
    free(y);
    free(ya);
    free(yb);
}

static void test_degenerate_metrics(void **state)
{
    (void)state;
    /* One class only, always right: kappa undefined (sklearn NaN), MCC 0. */
    int y[5] = {3, 3, 3, 3, 3};
    long cm[49];
    confusion_count(7, 5, y, y, cm);
    metrics m;
    metrics_compute(&m, 7, cm, 0, 0.05);
    assert_false(m.kappa_defined);
    assert_true(m.mcc == 0 && m.accuracy == 1 && m.balanced_accuracy == 1);
    assert_int_equal(m.absent_classes, 6);
    close_to(m.macro_f1, 1.0 / 7, REL, "macro F1 with absent classes (zero_division 0)");
    metrics_free(&m);
    metrics_compute(&m, 7, cm, 1, 0.05);
    close_to(m.macro_f1, 1.0, REL, "macro F1 with zero_division 1");
    metrics_free(&m);
}

static void test_paired_interval(void **state)
{
    (void)state;
    rng_t g;
    rng_seed(&g, 5, 0);
    for (int t = 0; t < 300; t++) {
        long a = (long)rng_below(&g, 200), b = (long)rng_below(&g, 50), c = (long)rng_below(&g, 50),
             d = (long)rng_below(&g, 100);
        if (a + b + c + d == 0) continue;
        double lo, hi, diff = (double)(b - c) / (double)(a + b + c + d);
        paired_difference_interval(a, b, c, d, 0.05, &lo, &hi);
        assert_true(lo <= diff + 1e-15 && diff <= hi + 1e-15 && lo >= -1 && hi <= 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mcnemar_reference),
        cmocka_unit_test(test_mcnemar_conventions),
        cmocka_unit_test(test_holm_bonferroni_reference),
        cmocka_unit_test(test_metrics_reference),
        cmocka_unit_test(test_wilson_reference),
        cmocka_unit_test(test_binomial_exact),
        cmocka_unit_test(test_cochran_two_models_is_mcnemar),
        cmocka_unit_test(test_holm_properties),
        cmocka_unit_test(test_bootstrap_determinism),
        cmocka_unit_test(test_degenerate_metrics),
        cmocka_unit_test(test_paired_interval),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
