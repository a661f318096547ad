#include "hypothesis.h"

#include <math.h>
#include <stdlib.h>

#include "../common/util.h"
#include "distributions.h"
#include "metrics.h"

const char *const mcnemar_method_name[MC_NMETHODS] = {"midp", "exact", "chi2", "chi2-cc"};

void mcnemar(long both_right, long b, long c, long both_wrong, enum cc_convention cc, double alpha,
             mcnemar_result *r)
{
    r->both_right = both_right;
    r->b = b;
    r->c = c;
    r->both_wrong = both_wrong;
    r->n = b + c;
    r->cc = cc;
    long n = b + c, k = b < c ? b : c, d = labs(b - c);
    if (n == 0) {
        /* No discordant pairs: no evidence either way (statsmodels gives NaN). */
        r->stat_chi2 = r->stat_chi2_cc = 0;
        for (int m = 0; m < MC_NMETHODS; m++) r->p[m] = 1;
    } else {
        double tail = binom_cdf(k, n, 0.5), pk = binom_pmf(k, n, 0.5);
        r->p[MC_EXACT] = fmin(1, 2 * tail);
        /* mid-p (Fagerland et al. 2013): exact - P(X = k); at b = c, 1 - P(X = b)/2. */
        r->p[MC_MIDP] = b == c ? 1 - pk / 2 : 2 * tail - pk;
        r->stat_chi2 = (double)(d * d) / (double)n;
        /* Continuity correction: R skips it at b = c, statsmodels subtracts 1 anyway. */
        double dc = (b == c && cc == CC_R) ? 0 : (double)(d - 1);
        r->stat_chi2_cc = dc * dc / (double)n;
        r->p[MC_CHI2] = chi2_sf(r->stat_chi2, 1);
        r->p[MC_CHI2_CC] = chi2_sf(r->stat_chi2_cc, 1);
    }
    double total = (double)(both_right + b + c + both_wrong);
    r->diff = (double)(b - c) / total;
    paired_difference_interval(both_right, b, c, both_wrong, alpha, &r->diff_lo, &r->diff_hi);
}

void paired_difference_interval(long a, long b, long c, long d, double alpha, double *lo, double *hi)
{
    long n = a + b + c + d;
    double p1 = (double)(a + b) / (double)n, p2 = (double)(a + c) / (double)n, diff = p1 - p2;
    double l1, u1, l2, u2;
    wilson_interval(a + b, n, alpha, &l1, &u1);
    wilson_interval(a + c, n, alpha, &l2, &u2);
    double den = (double)(a + b) * (double)(c + d) * (double)(a + c) * (double)(b + d);
    double phi = den > 0 ? ((double)a * (double)d - (double)b * (double)c) / sqrt(den) : 0;
    double dl = (p1 - l1) * (p1 - l1) - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) * (u2 - p2);
    double du = (u1 - p1) * (u1 - p1) - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) * (p2 - l2);
    *lo = fmax(-1, diff - sqrt(fmax(0, dl)));
    *hi = fmin(1, diff + sqrt(fmax(0, du)));
}

void p_adjust(const double *p, int m, enum adjust_method how, double *out)
{
    if (how != ADJ_HOLM) {
        for (int i = 0; i < m; i++) out[i] = how == ADJ_NONE ? p[i] : fmin(1, p[i] * m);
        return;
    }
    int *order = xmalloc(sizeof *order * (size_t)(m ? m : 1));
    for (int i = 0; i < m; i++) order[i] = i;
    /* Stable insertion sort: m is the number of baselines, a handful. */
    for (int i = 1; i < m; i++) {
        int t = order[i], j = i;
        while (j > 0 && p[order[j - 1]] > p[t]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = t;
    }
    double run = 0;
    for (int i = 0; i < m; i++) {
        double v = (double)(m - i) * p[order[i]];
        run = fmax(run, v);
        out[order[i]] = fmin(1, run);
    }
    free(order);
}

int cochran_q(const unsigned char *correct, long n, int k, double *q, int *df, double *p)
{
    /* Integer sums, then statsmodels' (k-1)(k sum G^2 - T^2)/(k T - sum L^2). */
    long long T = 0, sum_l2 = 0, sum_g2 = 0;
    long long *G = xcalloc((size_t)k, sizeof *G);
    for (long i = 0; i < n; i++) {
        long long L = 0;
        for (int j = 0; j < k; j++) {
            L += correct[i * k + j];
            G[j] += correct[i * k + j];
        }
        T += L;
        sum_l2 += L * L;
    }
    for (int j = 0; j < k; j++) sum_g2 += G[j] * G[j];
    free(G);
    *df = k - 1;
    long long den = (long long)k * T - sum_l2;
    if (den == 0) {
        *q = 0;
        *p = 1;
        return -1;
    }
    *q = (double)(k - 1) * (double)((long long)k * sum_g2 - T * T) / (double)den;
    *p = chi2_sf(*q, *df);
    return 0;
}
