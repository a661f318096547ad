/* distributions.h: the few distribution functions ferstats needs, accurate to
 * a few ulp where GSL's general routines are not (GSL's binomial CDF is off by
 * up to 1e-11 at n = 5000; its beta quantile can fail to converge).
 *
 * Binomial probabilities use Loader's saddle-point form (stirlerr + bd0), the
 * method R's dbinom uses; tails sum terms outward from the far side of the
 * mode with compensated summation. */
#ifndef FB_DISTRIBUTIONS_H
#define FB_DISTRIBUTIONS_H

double binom_pmf(long k, long n, double p);
double binom_cdf(long k, long n, double p);  /* P(X <= k) */
double binom_sf(long k, long n, double p);   /* P(X >= k) */

/* Upper tail of chi-square with df degrees of freedom. df = 1 uses
 * erfc(sqrt(x/2)) (most accurate); larger df GSL's incomplete gamma. */
double chi2_sf(double x, int df);

/* z with P(Z > z) = p, refined to the last ulp by a Newton step on erfc. */
double normal_isf(double p);

/* Clopper-Pearson bounds for count successes out of n at two-sided level
 * 1 - alpha, i.e. the beta quantiles Beta(alpha/2; c, n-c+1) and
 * Beta(1-alpha/2; c+1, n-c), found by bisection on the binomial tails. */
void clopper_pearson(long count, long n, double alpha, double *lo, double *hi);

#endif
