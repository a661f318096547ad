/* rng.h: the project's own seeded generator (xoshiro256**, seeded through
 * splitmix64), so results never depend on the C library or the platform. */
#ifndef FB_RNG_H
#define FB_RNG_H

#include <stdint.h>

typedef struct { uint64_t s[4]; } rng_t;

/* Seeds from (seed, stream): independent streams, e.g. one per bootstrap
 * resample, make results independent of thread count and order. */
void rng_seed(rng_t *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(rng_t *r);
/* Uniform integer in [0, n), n > 0, without modulo bias (Lemire). */
uint64_t rng_below(rng_t *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(rng_t *r);

#endif
