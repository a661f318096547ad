#include "distributions.h"

#include <gsl/gsl_cdf.h>
#include <math.h>

/* stirlerr(n) = log(n!) - log(sqrt(2 pi n) (n/e)^n) for integers 1..15,
 * computed once with 60-digit decimal arithmetic. */
static const double stirlerr_small[16] = {
    0.0,
    8.1061466795327258219670264e-2, 4.1340695955409294093822081e-2, 2.7677925684998339148789293e-2,
    2.0790672103765093111522772e-2, 1.6644691189821192163194865e-2, 1.3876128823070747998745727e-2,
    1.1896709945891770095055724e-2, 1.0411265261972096497478567e-2, 9.2554621827127329177286366e-3,
    8.3305634333628712564693187e-3, 7.5736754879518407949720242e-3, 6.9428401072095298656641527e-3,
    6.4089941880042070684396311e-3, 5.9513701127588477356244160e-3, 5.5547335519628013710386900e-3,
};

/* Valid for integer n >= 1; the series terms are Stirling's 1/12, 1/360, ... */
static double stirlerr(double n)
{
    const double S0 = 1.0 / 12, S1 = 1.0 / 360, S2 = 1.0 / 1260, S3 = 1.0 / 1680, S4 = 1.0 / 1188;
    if (n <= 15) return stirlerr_small[(int)n];
    double nn = n * n;
    if (n > 500) return (S0 - S1 / nn) / n;
    if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
    if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
    return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

/* bd0(x, m) = x log(x/m) + m - x, without cancellation when x is near m.
 * Far from m the terms reach hundreds, so the logarithm is taken in long
 * double: in double its last-bit error alone would cost 1e-13 of the pmf. */
static long double bd0(double x, double m)
{
    if (fabs(x - m) < 0.1 * (x + m)) {
        double v = (x - m) / (x + m), s = (x - m) * v, ej = 2 * x * v;
        v *= v;
        for (int j = 1; j < 1000; j++) {
            ej *= v;
            double s1 = s + ej / (2 * j + 1);
            if (s1 == s) return s1;
            s = s1;
        }
    }
    long double lx = x, lm = m;
    return lx * log1pl((lx - lm) / lm) + lm - lx;
}

/* C(n,k) 2^-n for small k as a product: k roundings instead of the large,
 * cancelling logarithms of the saddle-point form. */
static double half_pmf_small_k(long k, long n)
{
    double c = 1;
    for (long i = 1; i <= k; i++) c = c * (double)(n - k + i) / (double)i;
    return ldexp(c, n > 4000 ? -4000 : -(int)n);
}

double binom_pmf(long k, long n, double p)
{
    if (k < 0 || k > n) return 0;
    double q = 1 - p;
    if (p == 0) return k == 0;
    if (q == 0) return k == n;
    if (p == 0.5 && (k <= 40 || n - k <= 40) && n <= 1000) return half_pmf_small_k(k < n - k ? k : n - k, n);
    double dn = (double)n, dk = (double)k;
    if (k == 0) return (double)expl(p < 0.1 ? -bd0(dn, dn * q) - dn * p : dn * log1pl(-(long double)p));
    if (k == n) return (double)expl(q < 0.1 ? -bd0(dn, dn * p) - dn * q : dn * logl(p));
    long double lc = (long double)stirlerr(dn) - stirlerr(dk) - stirlerr(dn - dk) - bd0(dk, dn * p) - bd0(dn - dk, dn * q);
    return (double)(expl(lc) * sqrtl(dn / (2 * 3.14159265358979323846264338327950288L * dk * (dn - dk))));
}

/* Sums pmf(k) + pmf(k + step) + ... while terms matter; step is -1 or +1 and
 * must point away from the mode. Neumaier-compensated. */
static double tail_sum(long k, long n, double p, int step)
{
    double term = binom_pmf(k, n, p), sum = 0, comp = 0;
    double ratio_pq = step > 0 ? p / (1 - p) : (1 - p) / p;
    for (long i = k; i >= 0 && i <= n; i += step) {
        double t = sum + term;
        comp += fabs(sum) >= fabs(term) ? (sum - t) + term : (term - t) + sum;
        sum = t;
        if (term == 0 || term < sum * 0x1p-60) break;
        /* pmf(i+1)/pmf(i) = (n-i)/(i+1) p/q ; pmf(i-1)/pmf(i) = i/(n-i+1) q/p */
        term *= step > 0 ? ((double)(n - i) / (double)(i + 1)) * ratio_pq
                         : ((double)i / (double)(n - i + 1)) * ratio_pq;
    }
    return sum + comp;
}

static long binom_mode(long n, double p) { return (long)floor((double)(n + 1) * p); }

double binom_cdf(long k, long n, double p)
{
    if (k < 0) return 0;
    if (k >= n) return 1;
    if (k <= binom_mode(n, p)) return tail_sum(k, n, p, -1);
    return 1 - tail_sum(k + 1, n, p, +1);
}

double binom_sf(long k, long n, double p)
{
    if (k <= 0) return 1;
    if (k > n) return 0;
    if (k >= binom_mode(n, p)) return tail_sum(k, n, p, +1);
    return 1 - tail_sum(k - 1, n, p, -1);
}

double chi2_sf(double x, int df)
{
    if (!(x > 0)) return 1;
    if (df == 1) return erfc(sqrt(x / 2));
    return gsl_cdf_chisq_Q(x, df);
}

double normal_isf(double p)
{
    double z = gsl_cdf_ugaussian_Qinv(p);
    for (int i = 0; i < 2; i++) {
        double f = 0.5 * erfc(z / M_SQRT2) - p;                   /* Q(z) - p */
        double dens = exp(-0.5 * z * z) / sqrt(2 * M_PI);          /* -dQ/dz */
        if (dens > 0) z += f / dens;
    }
    return z;
}

/* Finds p in [0,1] where f(p) crosses target; f increasing when up is 1. */
static double bisect(long c, long n, double target, int lower_bound)
{
    double a = 0, b = 1;
    for (int it = 0; it < 2000; it++) {
        double m = 0.5 * (a + b);
        if (m <= a || m >= b) break;
        /* lower bound: P(X >= c | p) increases with p; upper: P(X <= c | p) decreases. */
        double f = lower_bound ? binom_sf(c, n, m) : binom_cdf(c, n, m);
        int go_right = lower_bound ? f < target : f > target;
        if (go_right) a = m;
        else b = m;
    }
    return 0.5 * (a + b);
}

void clopper_pearson(long count, long n, double alpha, double *lo, double *hi)
{
    double half = alpha / 2;
    *lo = count <= 0 ? 0 : count >= n ? pow(half, 1.0 / (double)n) : bisect(count, n, half, 1);
    *hi = count >= n ? 1 : count <= 0 ? -expm1(log(half) / (double)n) : bisect(count, n, half, 0);
}
