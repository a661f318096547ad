/* test_ops_misc.c: the parameter-free ops of engine/ops_misc.c against naive
 * references, and every backward against central finite differences of
 * loss = sum(y * r) for a fixed random r (loss accumulated in double); and
 * every op bitwise identical at 1, 2 and 3 threads on tensors large enough
 * to be split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../engine/ops.h"

#define FD_STEP 1e-3f
#define FD_RTOL 1e-2
#define FD_ATOL 1e-3
/* absolute floor of the FD comparison; tightened for the small mse gradients */
static double fd_atol = FD_ATOL;

static const shape4 SHAPES[] = {
    {1, 1, 2, 2}, {1, 3, 4, 6}, {2, 1, 6, 4}, {2, 5, 4, 4}, {3, 2, 2, 8}, {1, 7, 8, 2},
};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])

static float *fbuf(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static void fill_uniform(rng_t *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

/* |x| in [0.05, 2]: well away from relu's kink at 0 relative to FD_STEP. */
static void fill_away_from_zero(rng_t *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float m = (float)(0.05 + 1.95 * rng_uniform(r));
        x[i] = rng_uniform(r) < 0.5 ? -m : m;
    }
}

/* Distinct values spaced 0.01 apart in random order: no ties, and no
 * FD_STEP perturbation can change which element of a window is the max. */
static void fill_distinct(rng_t *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0.01f * (float)i - 0.005f * (float)n;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

static size_t idx4(shape4 s, int n, int c, int h, int w)
{
    return (((size_t)n * (size_t)s.c + (size_t)c) * (size_t)s.h + (size_t)h) * (size_t)s.w + (size_t)w;
}

/* ---- generic finite-difference check ---- */

/* Computes y (ny floats) from x (one input; the others are bound in ctx). */
typedef void (*fwd_fn)(const float *x, float *y, void *ctx);

static double dot_d(const float *y, const float *r, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * (double)r[i];
    return s;
}

/* Compares analytic dx (from backward with dy = r) against central
 * differences of sum(fwd(x) * r). Returns the max error ratio err/tol. */
static double fd_check(const char *name, fwd_fn f, void *ctx, float *x, size_t nx, size_t ny, const float *r,
                       const float *dx)
{
    float *y = fbuf(ny);
    double worst = 0.0;
    for (size_t i = 0; i < nx; i++) {
        float keep = x[i];
        x[i] = keep + FD_STEP;
        f(x, y, ctx);
        double lp = dot_d(y, r, ny);
        x[i] = keep - FD_STEP;
        f(x, y, ctx);
        double lm = dot_d(y, r, ny);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * (double)FD_STEP);
        double an = dx[i];
        double tol = FD_RTOL * fmax(fabs(num), fabs(an)) + fd_atol;
        double ratio = fabs(num - an) / tol;
        if (ratio > worst) worst = ratio;
        if (ratio > 1.0) print_error("%s: d[%zu] analytic %.6g numeric %.6g\n", name, i, an, num);
    }
    free(y);
    return worst;
}

/* ---- relu / sigmoid ---- */

typedef struct { size_t n; } ew_ctx;
static void relu_w(const float *x, float *y, void *c) { relu_fwd(x, ((ew_ctx *)c)->n, y); }
static void sigmoid_w(const float *x, float *y, void *c) { sigmoid_fwd(x, ((ew_ctx *)c)->n, y); }

static void test_relu(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 11, 0);
    for (size_t si = 0; si < NSHAPES; si++) {
        size_t n = shape4_numel(SHAPES[si]);
        float *x = fbuf(n), *y = fbuf(n), *r = fbuf(n), *dx = fbuf(n);
        fill_away_from_zero(&rg, x, n);
        fill_uniform(&rg, r, n, -1, 1);
        relu_fwd(x, n, y);
        for (size_t i = 0; i < n; i++) assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
        relu_bwd(y, r, n, dx);
        ew_ctx c = {n};
        assert_true(fd_check("relu", relu_w, &c, x, n, n, r, dx) <= 1.0);
        free(x), free(y), free(r), free(dx);
    }
    /* exact zero maps to zero with zero gradient */
    float z = 0.0f, yz, one = 1.0f, dz = 5.0f;
    relu_fwd(&z, 1, &yz);
    relu_bwd(&yz, &one, 1, &dz);
    assert_true(yz == 0.0f && dz == 0.0f);
}

static void test_sigmoid(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 12, 0);
    for (size_t si = 0; si < NSHAPES; si++) {
        size_t n = shape4_numel(SHAPES[si]);
        float *x = fbuf(n), *y = fbuf(n), *r = fbuf(n), *dx = fbuf(n);
        fill_uniform(&rg, x, n, -6, 6);
        fill_uniform(&rg, r, n, -1, 1);
        sigmoid_fwd(x, n, y);
        for (size_t i = 0; i < n; i++) assert_true(fabs(y[i] - 1.0 / (1.0 + exp(-(double)x[i]))) < 1e-6);
        sigmoid_bwd(y, r, n, dx);
        ew_ctx c = {n};
        assert_true(fd_check("sigmoid", sigmoid_w, &c, x, n, n, r, dx) <= 1.0);
        free(x), free(y), free(r), free(dx);
    }
    float big[6] = {100.0f, -100.0f, 1000.0f, -1000.0f, INFINITY, -INFINITY}, yb[6], ones[6] = {1, 1, 1, 1, 1, 1},
          db[6];
    sigmoid_fwd(big, 6, yb);
    sigmoid_bwd(yb, ones, 6, db);
    for (int i = 0; i < 6; i++) {
        assert_true(isfinite(yb[i]) && isfinite(db[i]));
        assert_true(yb[i] >= 0.0f && yb[i] <= 1.0f);
    }
    assert_true(yb[0] == 1.0f && yb[1] < 1e-40f && yb[1] >= 0.0f && yb[4] == 1.0f && yb[5] == 0.0f);
}

/* ---- maxpool2 ---- */

typedef struct { shape4 xs; int32_t *am; } mp_ctx;
static void maxpool_w(const float *x, float *y, void *c) { maxpool2_fwd(x, ((mp_ctx *)c)->xs, y, ((mp_ctx *)c)->am); }

static void test_maxpool2(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 13, 0);
    for (size_t si = 0; si < NSHAPES; si++) {
        shape4 xs = SHAPES[si], ys = {xs.n, xs.c, xs.h / 2, xs.w / 2};
        size_t nx = shape4_numel(xs), ny = shape4_numel(ys);
        float *x = fbuf(nx), *y = fbuf(ny), *r = fbuf(ny), *dx = fbuf(nx);
        int32_t *am = calloc(ny, sizeof(int32_t)), *am2 = calloc(ny, sizeof(int32_t));
        fill_distinct(&rg, x, nx);
        fill_uniform(&rg, r, ny, -1, 1);
        maxpool2_fwd(x, xs, y, am);
        for (int n = 0; n < xs.n; n++)
            for (int c = 0; c < xs.c; c++)
                for (int i = 0; i < ys.h; i++)
                    for (int j = 0; j < ys.w; j++) {
                        float m = -INFINITY;
                        size_t mi = 0;
                        for (int di = 0; di < 2; di++)
                            for (int dj = 0; dj < 2; dj++) {
                                size_t k = idx4(xs, n, c, 2 * i + di, 2 * j + dj);
                                if (x[k] > m) m = x[k], mi = k;
                            }
                        size_t o = idx4(ys, n, c, i, j);
                        assert_true(y[o] == m);
                        assert_int_equal(am[o], (int32_t)mi);
                    }
        for (size_t i = 0; i < nx; i++) dx[i] = 123.0f; /* must be overwritten */
        maxpool2_bwd(am, r, ys, dx, xs);
        mp_ctx c = {xs, am2};
        assert_true(fd_check("maxpool2", maxpool_w, &c, x, nx, ny, r, dx) <= 1.0);
        free(x), free(y), free(r), free(dx), free(am), free(am2);
    }
    /* ties: first max in row-major window order */
    shape4 ts = {1, 1, 2, 4};
    float t[8] = {1, 5, 2, 2, 5, 5, 2, 2}, ty[2];
    int32_t ta[2];
    maxpool2_fwd(t, ts, ty, ta);
    assert_int_equal(ta[0], 1);
    assert_int_equal(ta[1], 2);
    assert_true(ty[0] == 5.0f && ty[1] == 2.0f);
}

/* ---- upsample2 ---- */

typedef struct { shape4 xs; } sh_ctx;
static void upsample_w(const float *x, float *y, void *c) { upsample2_fwd(x, ((sh_ctx *)c)->xs, y); }

static void test_upsample2(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 14, 0);
    for (size_t si = 0; si < NSHAPES; si++) {
        shape4 xs = SHAPES[si], ys = {xs.n, xs.c, 2 * xs.h, 2 * xs.w};
        size_t nx = shape4_numel(xs), ny = shape4_numel(ys);
        float *x = fbuf(nx), *y = fbuf(ny), *r = fbuf(ny), *dx = fbuf(nx);
        fill_uniform(&rg, x, nx, -1, 1);
        fill_uniform(&rg, r, ny, -1, 1);
        upsample2_fwd(x, xs, y);
        for (int n = 0; n < ys.n; n++)
            for (int c = 0; c < ys.c; c++)
                for (int i = 0; i < ys.h; i++)
                    for (int j = 0; j < ys.w; j++) assert_true(y[idx4(ys, n, c, i, j)] == x[idx4(xs, n, c, i / 2, j / 2)]);
        upsample2_bwd(r, xs, dx);
        sh_ctx c = {xs};
        assert_true(fd_check("upsample2", upsample_w, &c, x, nx, ny, r, dx) <= 1.0);
        free(x), free(y), free(r), free(dx);
    }
}

/* ---- concat ---- */

typedef struct { const float *other; int ca, cb, n, h, w, which; } cat_ctx;
static void concat_w(const float *x, float *y, void *cv)
{
    cat_ctx *c = cv;
    if (c->which == 0) concat_fwd(x, c->ca, c->other, c->cb, c->n, c->h, c->w, y);
    else concat_fwd(c->other, c->ca, x, c->cb, c->n, c->h, c->w, y);
}

static void test_concat(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 15, 0);
    static const int CH[][2] = {{1, 1}, {3, 1}, {1, 4}, {5, 2}, {2, 7}, {1, 3}};
    for (size_t si = 0; si < NSHAPES; si++) {
        shape4 s = SHAPES[si];
        int ca = CH[si][0], cb = CH[si][1];
        size_t hw = (size_t)s.h * (size_t)s.w, na = (size_t)s.n * ca * hw, nb = (size_t)s.n * cb * hw, ny = na + nb;
        float *a = fbuf(na), *b = fbuf(nb), *y = fbuf(ny), *r = fbuf(ny), *da = fbuf(na), *db = fbuf(nb);
        fill_uniform(&rg, a, na, -1, 1);
        fill_uniform(&rg, b, nb, -1, 1);
        fill_uniform(&rg, r, ny, -1, 1);
        concat_fwd(a, ca, b, cb, s.n, s.h, s.w, y);
        shape4 as = {s.n, ca, s.h, s.w}, bs = {s.n, cb, s.h, s.w}, ysh = {s.n, ca + cb, s.h, s.w};
        for (int n = 0; n < s.n; n++)
            for (int c = 0; c < ca + cb; c++)
                for (int i = 0; i < s.h; i++)
                    for (int j = 0; j < s.w; j++) {
                        float e = c < ca ? a[idx4(as, n, c, i, j)] : b[idx4(bs, n, c - ca, i, j)];
                        assert_true(y[idx4(ysh, n, c, i, j)] == e);
                    }
        /* split round trip: backward of y itself gives back a and b */
        concat_bwd(y, ca, cb, s.n, s.h, s.w, da, db);
        assert_memory_equal(da, a, na * sizeof(float));
        assert_memory_equal(db, b, nb * sizeof(float));
        /* NULL gradients are skipped */
        concat_bwd(y, ca, cb, s.n, s.h, s.w, NULL, db);
        concat_bwd(y, ca, cb, s.n, s.h, s.w, da, NULL);
        concat_bwd(r, ca, cb, s.n, s.h, s.w, da, db);
        cat_ctx c0 = {b, ca, cb, s.n, s.h, s.w, 0}, c1 = {a, ca, cb, s.n, s.h, s.w, 1};
        assert_true(fd_check("concat.a", concat_w, &c0, a, na, ny, r, da) <= 1.0);
        assert_true(fd_check("concat.b", concat_w, &c1, b, nb, ny, r, db) <= 1.0);
        free(a), free(b), free(y), free(r), free(da), free(db);
    }
}

/* ---- quadrants ---- */

typedef struct { shape4 xs; int q; } q_ctx;
static void crop_w(const float *x, float *y, void *c) { quadrant_crop(x, ((q_ctx *)c)->xs, ((q_ctx *)c)->q, y); }

static void test_quadrants(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 16, 0);
    for (size_t si = 0; si < NSHAPES; si++) {
        shape4 xs = SHAPES[si], qs = {xs.n, xs.c, xs.h / 2, xs.w / 2};
        size_t nx = shape4_numel(xs), nq = shape4_numel(qs);
        float *x = fbuf(nx), *x2 = fbuf(nx), *q[4], *r = fbuf(nq), *dx = fbuf(nx);
        fill_uniform(&rg, x, nx, -1, 1);
        fill_uniform(&rg, r, nq, -1, 1);
        for (size_t i = 0; i < nx; i++) x2[i] = NAN;
        for (int k = 0; k < 4; k++) {
            q[k] = fbuf(nq);
            quadrant_crop(x, xs, k, q[k]);
            int r0 = (k / 2) * qs.h, c0 = (k % 2) * qs.w;
            for (int n = 0; n < xs.n; n++)
                for (int c = 0; c < xs.c; c++)
                    for (int i = 0; i < qs.h; i++)
                        for (int j = 0; j < qs.w; j++)
                            assert_true(q[k][idx4(qs, n, c, i, j)] == x[idx4(xs, n, c, r0 + i, c0 + j)]);
        }
        for (int k = 3; k >= 0; k--) quadrant_assemble(q[k], xs, k, x2);
        assert_memory_equal(x2, x, nx * sizeof(float));
        /* crop's gradient is assemble into a zeroed buffer */
        for (int k = 0; k < 4; k++) {
            memset(dx, 0, nx * sizeof(float));
            quadrant_assemble(r, xs, k, dx);
            q_ctx c = {xs, k};
            assert_true(fd_check("quadrant_crop", crop_w, &c, x, nx, nq, r, dx) <= 1.0);
        }
        for (int k = 0; k < 4; k++) free(q[k]);
        free(x), free(x2), free(r), free(dx);
    }
}

/* ---- broadcast products ---- */

typedef struct { shape4 rs; const float *other; int which; } mul_ctx;
static void mul_spatial_w(const float *x, float *y, void *cv)
{
    mul_ctx *c = cv;
    if (c->which == 0) mul_spatial_fwd(x, c->rs, c->other, y);
    else mul_spatial_fwd(c->other, c->rs, x, y);
}
static void mul_channel_w(const float *x, float *y, void *cv)
{
    mul_ctx *c = cv;
    if (c->which == 0) mul_channel_fwd(x, c->rs, c->other, y);
    else mul_channel_fwd(c->other, c->rs, x, y);
}

static void test_mul_spatial(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 17, 0);
    for (size_t si = 0; si < NSHAPES; si++) {
        shape4 rs = SHAPES[si], as = {rs.n, 1, rs.h, rs.w};
        size_t nr = shape4_numel(rs), na = shape4_numel(as);
        float *rr = fbuf(nr), *a = fbuf(na), *y = fbuf(nr), *w = fbuf(nr), *dr = fbuf(nr), *da = fbuf(na);
        fill_uniform(&rg, rr, nr, -1, 1);
        fill_uniform(&rg, a, na, -1, 1);
        fill_uniform(&rg, w, nr, -1, 1);
        mul_spatial_fwd(rr, rs, a, y);
        for (int n = 0; n < rs.n; n++)
            for (int c = 0; c < rs.c; c++)
                for (int i = 0; i < rs.h; i++)
                    for (int j = 0; j < rs.w; j++)
                        assert_true(y[idx4(rs, n, c, i, j)] == rr[idx4(rs, n, c, i, j)] * a[idx4(as, n, 0, i, j)]);
        for (size_t i = 0; i < na; i++) da[i] = 99.0f; /* written, not accumulated */
        mul_spatial_bwd(rr, rs, a, w, dr, da);
        mul_ctx c0 = {rs, a, 0}, c1 = {rs, rr, 1};
        assert_true(fd_check("mul_spatial.r", mul_spatial_w, &c0, rr, nr, nr, w, dr) <= 1.0);
        assert_true(fd_check("mul_spatial.a", mul_spatial_w, &c1, a, na, nr, w, da) <= 1.0);
        mul_spatial_bwd(rr, rs, a, w, NULL, da);
        mul_spatial_bwd(rr, rs, a, w, dr, NULL);
        free(rr), free(a), free(y), free(w), free(dr), free(da);
    }
}

static void test_mul_channel(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 18, 0);
    for (size_t si = 0; si < NSHAPES; si++) {
        shape4 rs = SHAPES[si];
        size_t nr = shape4_numel(rs), ns = (size_t)rs.n * (size_t)rs.c;
        float *rr = fbuf(nr), *s = fbuf(ns), *y = fbuf(nr), *w = fbuf(nr), *dr = fbuf(nr), *ds = fbuf(ns);
        fill_uniform(&rg, rr, nr, -1, 1);
        fill_uniform(&rg, s, ns, -1, 1);
        fill_uniform(&rg, w, nr, -1, 1);
        mul_channel_fwd(rr, rs, s, y);
        for (int n = 0; n < rs.n; n++)
            for (int c = 0; c < rs.c; c++)
                for (int i = 0; i < rs.h; i++)
                    for (int j = 0; j < rs.w; j++)
                        assert_true(y[idx4(rs, n, c, i, j)] == rr[idx4(rs, n, c, i, j)] * s[(size_t)n * rs.c + c]);
        for (size_t i = 0; i < ns; i++) ds[i] = 99.0f;
        mul_channel_bwd(rr, rs, s, w, dr, ds);
        mul_ctx c0 = {rs, s, 0}, c1 = {rs, rr, 1};
        assert_true(fd_check("mul_channel.r", mul_channel_w, &c0, rr, nr, nr, w, dr) <= 1.0);
        assert_true(fd_check("mul_channel.s", mul_channel_w, &c1, s, ns, nr, w, ds) <= 1.0);
        free(rr), free(s), free(y), free(w), free(dr), free(ds);
    }
}

/* ---- pooling to vectors ---- */

static void gavg_w(const float *x, float *y, void *c) { avgpool_global_fwd(x, ((sh_ctx *)c)->xs, y); }
typedef struct { shape4 xs; int g; } blk_ctx;
static void bavg_w(const float *x, float *y, void *c) { avgpool_block_fwd(x, ((blk_ctx *)c)->xs, ((blk_ctx *)c)->g, y); }

static void test_avgpool_global(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 19, 0);
    for (size_t si = 0; si < NSHAPES; si++) {
        shape4 xs = SHAPES[si];
        size_t nx = shape4_numel(xs), ny = (size_t)xs.n * (size_t)xs.c, hw = (size_t)xs.h * (size_t)xs.w;
        float *x = fbuf(nx), *y = fbuf(ny), *r = fbuf(ny), *dx = fbuf(nx);
        fill_uniform(&rg, x, nx, -1, 1);
        fill_uniform(&rg, r, ny, -1, 1);
        avgpool_global_fwd(x, xs, y);
        for (size_t p = 0; p < ny; p++) {
            double s = 0;
            for (size_t i = 0; i < hw; i++) s += x[p * hw + i];
            assert_true(fabs(y[p] - s / (double)hw) < 1e-6);
        }
        avgpool_global_bwd(r, xs, dx);
        sh_ctx c = {xs};
        assert_true(fd_check("avgpool_global", gavg_w, &c, x, nx, ny, r, dx) <= 1.0);
        free(x), free(y), free(r), free(dx);
    }
}

static void test_avgpool_block(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 20, 0);
    static const struct { shape4 s; int g; } CASES[] = {
        {{1, 1, 4, 4}, 2}, {{2, 3, 6, 6}, 3}, {{1, 5, 8, 8}, 2}, {{3, 1, 4, 4}, 4}, {{1, 2, 6, 6}, 1}, {{2, 3, 12, 12}, 4},
    };
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        shape4 xs = CASES[ci].s;
        int g = CASES[ci].g, bh = xs.h / g, bw = xs.w / g;
        shape4 ys = {xs.n, xs.c, g, g};
        size_t nx = shape4_numel(xs), ny = shape4_numel(ys);
        float *x = fbuf(nx), *y = fbuf(ny), *r = fbuf(ny), *dx = fbuf(nx);
        fill_uniform(&rg, x, nx, -1, 1);
        fill_uniform(&rg, r, ny, -1, 1);
        avgpool_block_fwd(x, xs, g, y);
        for (int n = 0; n < xs.n; n++)
            for (int c = 0; c < xs.c; c++)
                for (int bi = 0; bi < g; bi++)
                    for (int bj = 0; bj < g; bj++) {
                        double s = 0;
                        for (int i = 0; i < bh; i++)
                            for (int j = 0; j < bw; j++) s += x[idx4(xs, n, c, bi * bh + i, bj * bw + j)];
                        assert_true(fabs(y[idx4(ys, n, c, bi, bj)] - s / (bh * bw)) < 1e-6);
                    }
        avgpool_block_bwd(r, xs, g, dx);
        blk_ctx c = {xs, g};
        assert_true(fd_check("avgpool_block", bavg_w, &c, x, nx, ny, r, dx) <= 1.0);
        /* g = 1 is the global mean */
        if (g == 1) {
            float *yg = fbuf(ny);
            avgpool_global_fwd(x, xs, yg);
            for (size_t i = 0; i < ny; i++) assert_true(fabs(yg[i] - y[i]) < 1e-6);
            free(yg);
        }
        free(x), free(y), free(r), free(dx);
    }
}

/* ---- losses ---- */

typedef struct { int n, k; const int *labels; float scale; } ce_ctx;
/* "forward" producing the scalar loss as a 1-element y (r = {1}). */
static void ce_w(const float *x, float *y, void *cv)
{
    ce_ctx *c = cv;
    y[0] = softmax_ce(x, c->n, c->k, c->labels, c->scale, NULL);
}
typedef struct { const float *t; size_t n; float scale; } mse_ctx;
static void mse_w(const float *x, float *y, void *cv)
{
    mse_ctx *c = cv;
    y[0] = mse(x, c->t, c->n, c->scale, NULL);
}

static void test_softmax_ce(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 21, 0);
    static const int NK[][2] = {{1, 7}, {4, 7}, {3, 1}, {5, 3}, {2, 10}};
    for (size_t ci = 0; ci < sizeof NK / sizeof NK[0]; ci++) {
        int n = NK[ci][0], k = NK[ci][1];
        size_t nl = (size_t)n * (size_t)k;
        float *z = fbuf(nl), *d = fbuf(nl);
        int *lab = calloc((size_t)n, sizeof(int));
        fill_uniform(&rg, z, nl, -4, 4);
        for (int i = 0; i < n; i++) lab[i] = (int)rng_below(&rg, (uint64_t)k);
        float scale = ci % 2 ? 0.4f : 1.0f;
        float loss = softmax_ce(z, n, k, lab, scale, d);
        double ref = 0;
        for (int i = 0; i < n; i++) {
            double se = 0;
            for (int j = 0; j < k; j++) se += exp((double)z[i * k + j]);
            ref += -log(exp((double)z[i * k + lab[i]]) / se);
        }
        ref /= n;
        assert_true(fabs(loss - ref) <= 1e-6 * fmax(1.0, fabs(ref)));
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < k; j++) s += d[i * k + j];
            assert_true(fabs(s) < 1e-6);
        }
        /* FD of the unscaled loss against dlogits / scale */
        float rr = 1.0f;
        float *dsc = fbuf(nl);
        for (size_t i = 0; i < nl; i++) dsc[i] = d[i] / scale;
        ce_ctx c = {n, k, lab, 1.0f};
        assert_true(fd_check("softmax_ce", ce_w, &c, z, nl, 1, &rr, dsc) <= 1.0);
        free(dsc), free(z), free(d), free(lab);
    }
    /* large logits: stable */
    float zb[3] = {1000.0f, -1000.0f, 999.0f}, db[3];
    int lb = 2;
    float l = softmax_ce(zb, 1, 3, &lb, 1.0f, db);
    assert_true(isfinite(l) && fabs(l - (1.0 + log1p(exp(-1.0)))) < 1e-5);
    for (int j = 0; j < 3; j++) assert_true(isfinite(db[j]));
    /* out-of-range label: NAN, dlogits untouched */
    float zz[4] = {0, 1, 2, 3}, dd[4] = {7, 7, 7, 7};
    int bad[2] = {1, 2};
    assert_true(isnan(softmax_ce(zz, 2, 2, bad, 1.0f, dd)));
    int neg[2] = {0, -1};
    assert_true(isnan(softmax_ce(zz, 2, 2, neg, 1.0f, dd)));
    for (int j = 0; j < 4; j++) assert_true(dd[j] == 7.0f);
}

static void test_mse(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 22, 0);
    static const size_t NS[] = {1, 3, 17, 68 * 4};
    for (size_t ci = 0; ci < sizeof NS / sizeof NS[0]; ci++) {
        size_t n = NS[ci];
        float *a = fbuf(n), *t = fbuf(n), *d = fbuf(n);
        fill_uniform(&rg, a, n, -1, 1);
        fill_uniform(&rg, t, n, 0, 1);
        float scale = 0.6f;
        float l = mse(a, t, n, scale, d);
        double ref = 0;
        for (size_t i = 0; i < n; i++) ref += ((double)a[i] - t[i]) * ((double)a[i] - t[i]);
        ref /= (double)n;
        assert_true(fabs(l - ref) <= 1e-6 * fmax(1.0, ref));
        for (size_t i = 0; i < n; i++)
            assert_true(fabs(d[i] - scale * 2.0 * ((double)a[i] - t[i]) / (double)n) < 1e-7);
        /* FD on the unscaled loss (scale 1). The gradients are O(1/n) and
         * the loss comes back as a float, so the FD resolution is about
         * ulp(loss) / (2 * step): use a few of those as the absolute floor. */
        float *du = fbuf(n), one = 1.0f;
        for (size_t i = 0; i < n; i++) du[i] = d[i] / scale;
        mse_ctx c = {t, n, 1.0f};
        fd_atol = 4.0 * FLT_EPSILON * fabs(l) / (2.0 * (double)FD_STEP) + 1e-7;
        double worst = fd_check("mse", mse_w, &c, a, n, 1, &one, du);
        fd_atol = FD_ATOL;
        assert_true(worst <= 1.0);
        free(a), free(t), free(d), free(du);
    }
    float a0 = 1.0f;
    assert_true(isnan(mse(&a0, &a0, 0, 1.0f, NULL)));
}

/* The vectorised max pool against the scalar rule, with NaNs, ties and infinities sprinkled in. */
static void test_maxpool2_special(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 24, 0);
    static const shape4 S[] = {{2, 3, 6, 22}, {1, 2, 4, 8}, {1, 1, 2, 2}, {1, 2, 10, 18}};
    static const float special[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0.5f};
    for (size_t si = 0; si < sizeof S / sizeof S[0]; si++) {
        shape4 s = S[si], ys = {s.n, s.c, s.h / 2, s.w / 2};
        size_t n = shape4_numel(s), ny = shape4_numel(ys);
        float *x = fbuf(n), *y = fbuf(ny);
        int32_t *am = malloc(ny * sizeof(int32_t));
        assert_non_null(am);
        for (size_t i = 0; i < n; i++) {
            double u = rng_uniform(&rg);
            x[i] = u < 0.3 ? special[rng_below(&rg, 6)] : (float)(rng_below(&rg, 5)) * 0.25f;
        }
        maxpool2_fwd(x, s, y, am);
        for (int p = 0; p < s.n * s.c; p++)
            for (int i = 0; i < ys.h; i++)
                for (int j = 0; j < ys.w; j++) {
                    size_t base = (size_t)p * s.h * s.w, best = base + (size_t)(2 * i) * s.w + 2 * j;
                    float bv = x[best];
                    for (int di = 0; di < 2; di++)
                        for (int dj = 0; dj < 2; dj++) {
                            size_t idx = base + (size_t)(2 * i + di) * s.w + 2 * j + dj;
                            if (!isnan(bv) && (x[idx] > bv || isnan(x[idx]))) bv = x[idx], best = idx;
                        }
                    size_t o = ((size_t)p * ys.h + i) * ys.w + j;
                    assert_int_equal(am[o], (int32_t)best);
                    assert_memory_equal(&y[o], &bv, sizeof(float));
                }
        free(x), free(y), free(am);
    }
}

/* ---- thread-count independence ---- */

/* Every op, forward and backward, at `threads`; outputs appended to out[] (sizes in len[]). */
enum { TOUT = 24 };
static void misc_run(int threads, const float *x, const float *x2, const float *dyb, const float *sv, shape4 s,
                     float **out, size_t *len, float *loss)
{
    ops_set_threads(threads);
    assert_int_equal(ops_threads(), threads);
    size_t n = shape4_numel(s), np = (size_t)s.n * s.c, hw = (size_t)s.h * s.w;
    shape4 hs = {s.n, s.c, s.h / 2, s.w / 2};
    size_t nh = shape4_numel(hs);
    int k = 0;
#define OUT(sz) (len[k] = (sz), out[k] = fbuf(len[k]), out[k++])
    float *y;
    relu_fwd(x, n, y = OUT(n));
    relu_bwd(y, dyb, n, OUT(n));
    sigmoid_fwd(x, n, y = OUT(n));
    sigmoid_bwd(y, dyb, n, OUT(n));
    int32_t *am = malloc(nh * sizeof(int32_t));
    assert_non_null(am);
    maxpool2_fwd(x, s, OUT(nh), am);
    maxpool2_bwd(am, dyb, hs, OUT(n), s);
    free(am);
    upsample2_fwd(x, s, OUT(4 * n));
    upsample2_bwd(x2, s, OUT(n)); /* x2 holds 4n values */
    concat_fwd(x, s.c, dyb, s.c, s.n, s.h, s.w, y = OUT(2 * n));
    float *da = OUT(n), *db = OUT(n);
    concat_bwd(y, s.c, s.c, s.n, s.h, s.w, da, db);
    quadrant_crop(x, s, 3, OUT(nh));
    y = OUT(n);
    memcpy(y, dyb, n * sizeof(float));
    quadrant_assemble(x2, s, 1, y);
    mul_spatial_fwd(x, s, sv, OUT(n)); /* sv: [N,1,H,W] */
    float *dr = OUT(n);
    mul_spatial_bwd(x, s, sv, dyb, dr, OUT((size_t)s.n * hw));
    mul_channel_fwd(x, s, sv, OUT(n)); /* sv: [N,C] */
    dr = OUT(n);
    mul_channel_bwd(x, s, sv, dyb, dr, OUT(np));
    avgpool_global_fwd(x, s, OUT(np));
    avgpool_global_bwd(dyb, s, OUT(n));
    avgpool_block_fwd(x, s, 4, OUT(np * 16));
    avgpool_block_bwd(dyb, s, 4, OUT(n));
    *loss = mse(x, dyb, n, 0.6f, OUT(n));
#undef OUT
    assert_true(k <= TOUT);
    for (; k < TOUT; k++) out[k] = NULL, len[k] = 0;
}

static void test_threads_misc(void **state)
{
    (void)state;
    rng_t rg;
    rng_seed(&rg, 23, 0);
    static const shape4 S[] = {{16, 32, 32, 32}, {3, 7, 24, 40}};
    for (size_t si = 0; si < sizeof S / sizeof S[0]; si++) {
        shape4 s = S[si];
        size_t n = shape4_numel(s);
        float *x = fbuf(n), *x2 = fbuf(4 * n), *dy = fbuf(4 * n), *sv = fbuf(n);
        fill_uniform(&rg, x, n, -2, 2);
        fill_uniform(&rg, x2, 4 * n, -1, 1);
        fill_uniform(&rg, dy, 4 * n, -1, 1);
        fill_uniform(&rg, sv, n, -1, 1);
        float *out[3][TOUT], loss[3];
        size_t len[3][TOUT];
        for (int t = 0; t < 3; t++) misc_run(t + 1, x, x2, dy, sv, s, out[t], len[t], &loss[t]);
        for (int t = 1; t < 3; t++) {
            assert_memory_equal(&loss[0], &loss[t], sizeof(float));
            for (int i = 0; i < TOUT && out[0][i]; i++) {
                assert_int_equal(len[0][i], len[t][i]);
                if (memcmp(out[0][i], out[t][i], len[0][i] * sizeof(float)))
                    fail_msg("shape %zu, output %d differs at %d threads", si, i, t + 1);
            }
        }
        for (int t = 0; t < 3; t++)
            for (int i = 0; i < TOUT; i++) free(out[t][i]);
        free(x), free(x2), free(dy), free(sv);
    }
    ops_set_threads(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu),          cmocka_unit_test(test_sigmoid),       cmocka_unit_test(test_maxpool2),
        cmocka_unit_test(test_upsample2),     cmocka_unit_test(test_concat),        cmocka_unit_test(test_quadrants),
        cmocka_unit_test(test_mul_spatial),   cmocka_unit_test(test_mul_channel),   cmocka_unit_test(test_avgpool_global),
        cmocka_unit_test(test_avgpool_block), cmocka_unit_test(test_softmax_ce),    cmocka_unit_test(test_mse),
        cmocka_unit_test(test_maxpool2_special), cmocka_unit_test(test_threads_misc),
    };
    return cmocka_run_group_tests_name("ops_misc", tests, NULL, NULL);
}
