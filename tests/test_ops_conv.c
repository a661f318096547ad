/* Unit tests of engine/ops_conv.c: conv2d against a naive double-precision
 * reference, finite-difference gradient checks of conv2d, batch norm (train)
 * and linear, accumulation of parameter gradients, batch-norm running
 * statistics (unbiased variance) and eval mode, and degenerate shapes; the
 * tiled paths (column tiles inside an image, groups of images, 1x1 direct,
 * dW partials, strided dx) and Winograd F(2x2,3x3) against naive forward and
 * backward references, Winograd against the plain im2col path; and
 * bitwise-identical results at 1, 2 and 3 threads. */
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
#include "../engine/ops.h"

/* Finite differences: central, step H on float inputs, loss evaluated from
 * float outputs (accumulated in double). Pass when
 * |num - ana| <= FD_REL * max(|num|, |ana|) + FD_ABS * max(1, max|ana|). */
#define FD_H 1e-2f
#define FD_REL 2e-2
#define FD_ABS 1e-3

static float *randv(rng_t *r, size_t n, double lo, double hi)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * rng_uniform(r));
    return v;
}

static float *zerov(size_t n)
{
    float *v = calloc(n ? n : 1, sizeof(float));
    assert_non_null(v);
    return v;
}

static double dot_fd(const float *y, const float *r, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * (double)r[i];
    return s;
}

/* Perturbs p[0..n) one at a time, evaluating loss(ctx); compares with ana. */
static void grad_check(const char *what, float *p, size_t n, const float *ana, double (*loss)(void *), void *ctx)
{
    double amax = 0.0;
    for (size_t i = 0; i < n; i++)
        amax = fmax(amax, fabs(ana[i]));
    double floor_ = FD_ABS * fmax(1.0, amax), worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = p[i];
        p[i] = keep + FD_H;
        double lp = loss(ctx);
        p[i] = keep - FD_H;
        double lm = loss(ctx);
        p[i] = keep;
        double num = (lp - lm) / (2.0 * (double)FD_H);
        double err = fabs(num - ana[i]), tol = FD_REL * fmax(fabs(num), fabs(ana[i])) + floor_;
        worst = fmax(worst, err / tol);
        if (err > tol)
            fail_msg("%s[%zu]: numeric %.8g, analytic %.8g (error %.3g > tolerance %.3g)", what, i, num, ana[i], err,
                     tol);
    }
    (void)worst;
}

/* Close within rel of the tensor's scale (used where sgemm's accumulation order differs). */
static void assert_close_v(const char *what, const float *got, const float *want, size_t n, double rel)
{
    double amax = 0.0;
    for (size_t i = 0; i < n; i++)
        amax = fmax(amax, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (fabs((double)got[i] - want[i]) > rel * fmax(amax, 1e-30))
            fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, got[i], want[i]);
}

/* ---- conv2d ---------------------------------------------------------------- */

static void conv_ref(const float *x, shape4 xs, const float *w, const float *b, int oc, int k, int s, double *y)
{
    int p = k / 2, oh = (xs.h + 2 * p - k) / s + 1, ow = (xs.w + 2 * p - k) / s + 1;
    for (int n = 0; n < xs.n; n++)
        for (int o = 0; o < oc; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < xs.c; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy < 0 || iy >= xs.h || ix < 0 || ix >= xs.w)
                                    continue;
                                acc += (double)x[(((size_t)n * xs.c + c) * xs.h + iy) * xs.w + ix] *
                                       (double)w[(((size_t)o * xs.c + c) * k + ky) * k + kx];
                            }
                    y[(((size_t)n * oc + o) * oh + oy) * ow + ox] = acc;
                }
}

static void check_conv_fwd(rng_t *r, shape4 xs, int oc, int k, int s, int bias)
{
    shape4 ys = conv2d_out_shape(xs, oc, k, s);
    int p = k / 2;
    assert_int_equal(ys.n, xs.n);
    assert_int_equal(ys.c, oc);
    assert_int_equal(ys.h, (xs.h + 2 * p - k) / s + 1);
    assert_int_equal(ys.w, (xs.w + 2 * p - k) / s + 1);
    size_t nx = shape4_numel(xs), nw = (size_t)oc * xs.c * k * k, ny = shape4_numel(ys);
    float *x = randv(r, nx, -1, 1), *w = randv(r, nw, -1, 1), *b = bias ? randv(r, oc, -1, 1) : NULL;
    float *scratch = randv(r, conv2d_scratch_floats(xs, k, s), -1e3, 1e3); /* garbage: must be overwritten */
    float *y = randv(r, ny, -1e3, 1e3);
    double *ref = malloc(ny * sizeof(double));
    assert_non_null(ref);
    conv2d_fwd(x, xs, w, b, oc, k, s, y, scratch);
    conv_ref(x, xs, w, b, oc, k, s, ref);
    double rmax = 0.0;
    for (size_t i = 0; i < ny; i++)
        rmax = fmax(rmax, fabs(ref[i]));
    for (size_t i = 0; i < ny; i++)
        if (fabs(y[i] - ref[i]) > 1e-5 * fmax(rmax, 1e-30))
            fail_msg("conv fwd N%d C%d %dx%d oc%d k%d s%d bias%d: y[%zu] %.9g vs %.9g", xs.n, xs.c, xs.h, xs.w, oc, k,
                     s, bias, i, y[i], ref[i]);
    free(x), free(w), free(b), free(scratch), free(y), free(ref);
}

static void test_conv_fwd_reference(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 1);
    int sizes[][2] = {{7, 7}, {8, 8}, {5, 6}, {6, 9}};
    for (int ki = 0; ki < 2; ki++)
        for (int s = 1; s <= 2; s++)
            for (int si = 0; si < 4; si++)
                for (int bias = 0; bias <= 1; bias++) {
                    shape4 xs = {2, 3, sizes[si][0], sizes[si][1]};
                    check_conv_fwd(&r, xs, 4, ki ? 3 : 1, s, bias);
                }
    /* a wider one, so the GEMM has real depth */
    shape4 xs = {1, 16, 12, 10};
    check_conv_fwd(&r, xs, 8, 3, 1, 1);
    check_conv_fwd(&r, xs, 8, 3, 2, 0);
}

typedef struct {
    float *x, *w, *b, *y, *r, *scratch;
    shape4 xs;
    int oc, k, s;
    size_t ny;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    conv2d_fwd(c->x, c->xs, c->w, c->b, c->oc, c->k, c->s, c->y, c->scratch);
    return dot_fd(c->y, c->r, c->ny);
}

static void check_conv_grad(rng_t *r, shape4 xs, int oc, int k, int s, int bias)
{
    conv_ctx c = {0};
    c.xs = xs, c.oc = oc, c.k = k, c.s = s;
    shape4 ys = conv2d_out_shape(xs, oc, k, s);
    size_t nx = shape4_numel(xs), nw = (size_t)oc * xs.c * k * k;
    c.ny = shape4_numel(ys);
    c.x = randv(r, nx, -1, 1), c.w = randv(r, nw, -1, 1), c.b = bias ? randv(r, oc, -1, 1) : NULL;
    c.y = zerov(c.ny), c.r = randv(r, c.ny, -1, 1);
    c.scratch = zerov(conv2d_scratch_floats(xs, k, s));
    float *dx = randv(r, nx, -1e3, 1e3), *dw = zerov(nw), *db = zerov(oc);
    conv2d_bwd(c.x, xs, c.w, oc, k, s, c.r, dx, dw, bias ? db : NULL, c.scratch);
    grad_check("conv dx", c.x, nx, dx, conv_loss, &c);
    grad_check("conv dw", c.w, nw, dw, conv_loss, &c);
    if (bias)
        grad_check("conv db", c.b, oc, db, conv_loss, &c);

    /* accumulation: a second call adds the same again; dx is rewritten, not accumulated */
    float *dw1 = malloc(nw * sizeof(float)), *db1 = malloc(oc * sizeof(float)), *dx1 = malloc(nx * sizeof(float));
    memcpy(dw1, dw, nw * sizeof(float)), memcpy(db1, db, oc * sizeof(float)), memcpy(dx1, dx, nx * sizeof(float));
    for (size_t i = 0; i < nx; i++)
        dx[i] = 1e6f; /* garbage: must be fully overwritten */
    conv2d_bwd(c.x, xs, c.w, oc, k, s, c.r, dx, dw, bias ? db : NULL, c.scratch);
    assert_memory_equal(dx, dx1, nx * sizeof(float));
    for (size_t i = 0; i < nw; i++)
        dw1[i] *= 2.0f;
    /* sgemm accumulates into C term by term, so the doubling is exact only up to rounding */
    assert_close_v("conv dw twice", dw, dw1, nw, 1e-5);
    for (int i = 0; i < oc; i++)
        assert_true(db[i] == 2.0f * db1[i]); /* db: double sum, then one += : exact */
    /* dx NULL and db NULL are allowed */
    conv2d_bwd(c.x, xs, c.w, oc, k, s, c.r, NULL, dw, NULL, c.scratch);
    for (size_t i = 0; i < nw; i++)
        dw1[i] *= 1.5f;
    assert_close_v("conv dw thrice", dw, dw1, nw, 1e-5);

    free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(c.scratch);
    free(dx), free(dw), free(db), free(dw1), free(db1), free(dx1);
}

static void test_conv_grad(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 2);
    shape4 a = {2, 3, 5, 6}, b = {1, 2, 6, 6};
    check_conv_grad(&r, a, 4, 3, 1, 1);
    check_conv_grad(&r, a, 3, 3, 2, 0);
    check_conv_grad(&r, b, 3, 1, 1, 1);
    check_conv_grad(&r, b, 2, 1, 2, 1);
    check_conv_grad(&r, a, 2, 3, 2, 1);
}

/* ---- batch norm ------------------------------------------------------------ */

typedef struct {
    float *x, *gamma, *beta, *y, *r, *rm, *rv, *sm, *si;
    shape4 s;
    size_t n;
} bn_ctx;

static double bn_loss(void *p)
{
    bn_ctx *c = p;
    batchnorm_fwd_train(c->x, c->s, c->gamma, c->beta, c->rm, c->rv, 0.1f, 1e-5f, 0, c->y, c->sm, c->si);
    return dot_fd(c->y, c->r, c->n);
}

static void check_bn_grad(rng_t *r, shape4 s)
{
    bn_ctx c = {0};
    c.s = s, c.n = shape4_numel(s);
    int C = s.c;
    c.x = randv(r, c.n, -1, 1), c.gamma = randv(r, C, 0.5, 1.5), c.beta = randv(r, C, -0.5, 0.5);
    c.y = zerov(c.n), c.r = randv(r, c.n, -1, 1), c.rm = zerov(C), c.rv = zerov(C), c.sm = zerov(C),
    c.si = zerov(C);
    float *dx = randv(r, c.n, -1e3, 1e3), *dg = zerov(C), *dbt = zerov(C);
    bn_loss(&c);
    batchnorm_bwd(c.x, s, c.gamma, c.sm, c.si, NULL, c.r, dx, dg, dbt);
    float *dx1 = malloc(c.n * sizeof(float)), *dg1 = malloc(C * sizeof(float)), *db1 = malloc(C * sizeof(float));
    memcpy(dx1, dx, c.n * sizeof(float)), memcpy(dg1, dg, C * sizeof(float)), memcpy(db1, dbt, C * sizeof(float));
    grad_check("bn dx", c.x, c.n, dx, bn_loss, &c);
    grad_check("bn dgamma", c.gamma, C, dg, bn_loss, &c);
    grad_check("bn dbeta", c.beta, C, dbt, bn_loss, &c);

    /* accumulation (exact: each is a double sum added once) and dx rewritten */
    bn_loss(&c);
    for (size_t i = 0; i < c.n; i++)
        dx[i] = -7e5f;
    batchnorm_bwd(c.x, s, c.gamma, c.sm, c.si, NULL, c.r, dx, dg, dbt);
    assert_memory_equal(dx, dx1, c.n * sizeof(float));
    for (int i = 0; i < C; i++) {
        assert_true(dg[i] == 2.0f * dg1[i]);
        assert_true(dbt[i] == 2.0f * db1[i]);
    }
    free(c.x), free(c.gamma), free(c.beta), free(c.y), free(c.r), free(c.rm), free(c.rv), free(c.sm), free(c.si);
    free(dx), free(dg), free(dbt), free(dx1), free(dg1), free(db1);
}

static void test_bn_grad(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 3);
    shape4 a = {2, 3, 3, 4}, b = {4, 2, 1, 1}, c = {1, 1, 3, 3};
    check_bn_grad(&r, a);
    check_bn_grad(&r, b);
    check_bn_grad(&r, c);
}

static void test_bn_running_stats_and_eval(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 4);
    shape4 s = {3, 2, 2, 3};
    size_t n = shape4_numel(s), hw = 6, M = 18;
    float *x = randv(&r, n, -2, 3), *y = zerov(n), *ye = zerov(n);
    float gamma[2] = {1.25f, 0.75f}, beta[2] = {0.5f, -0.25f};
    float rm[2] = {0.3f, -0.2f}, rv[2] = {1.5f, 0.8f}, sm[2], si[2];
    float rm0[2] = {0.3f, -0.2f}, rv0[2] = {1.5f, 0.8f};
    const float mom = 0.1f, eps = 1e-5f;
    batchnorm_fwd_train(x, s, gamma, beta, rm, rv, mom, eps, 0, y, sm, si);
    for (int c = 0; c < 2; c++) {
        double sum = 0.0, ss = 0.0;
        for (int b = 0; b < s.n; b++)
            for (size_t i = 0; i < hw; i++)
                sum += x[(b * 2 + c) * hw + i];
        double mean = sum / M;
        for (int b = 0; b < s.n; b++)
            for (size_t i = 0; i < hw; i++) {
                double d = x[(b * 2 + c) * hw + i] - mean;
                ss += d * d;
            }
        double bvar = ss / M, uvar = ss / (M - 1);
        double want_rm = (1 - 0.1) * rm0[c] + 0.1 * mean, want_rv = (1 - 0.1) * rv0[c] + 0.1 * uvar;
        assert_true(fabs(rm[c] - want_rm) <= 1e-6 * fmax(1.0, fabs(want_rm)));
        assert_true(fabs(rv[c] - want_rv) <= 1e-6 * fmax(1.0, fabs(want_rv)));
        assert_true(fabs(sm[c] - mean) <= 1e-6 * fmax(1.0, fabs(mean)));
        assert_true(fabs(si[c] - 1.0 / sqrt(bvar + 1e-5)) <= 1e-6 / sqrt(bvar + 1e-5));
        /* training output uses the biased variance */
        for (int b = 0; b < s.n; b++)
            for (size_t i = 0; i < hw; i++) {
                size_t j = (b * 2 + c) * hw + i;
                double want = (x[j] - mean) / sqrt(bvar + 1e-5) * gamma[c] + beta[c];
                assert_true(fabs(y[j] - want) <= 1e-5 * fmax(1.0, fabs(want)));
            }
    }
    /* eval uses the running statistics, not the batch's */
    batchnorm_fwd_eval(x, s, gamma, beta, rm, rv, eps, ye);
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < s.n; b++)
            for (size_t i = 0; i < hw; i++) {
                size_t j = (b * 2 + c) * hw + i;
                double want = (x[j] - (double)rm[c]) / sqrt((double)rv[c] + 1e-5) * gamma[c] + beta[c];
                assert_true(fabs(ye[j] - want) <= 1e-5 * fmax(1.0, fabs(want)));
            }
    /* and eval with running = the batch's mean and biased variance reproduces training */
    float bm[2], bv[2];
    for (int c = 0; c < 2; c++)
        bm[c] = sm[c], bv[c] = (float)(1.0 / ((double)si[c] * si[c]) - 1e-5);
    batchnorm_fwd_eval(x, s, gamma, beta, bm, bv, eps, ye);
    assert_close_v("bn eval == train at batch stats", ye, y, n, 1e-5);
    /* running stats untouched by eval */
    float rmk[2] = {rm[0], rm[1]}, rvk[2] = {rv[0], rv[1]};
    batchnorm_fwd_eval(x, s, gamma, beta, rm, rv, eps, ye);
    assert_memory_equal(rm, rmk, sizeof rm);
    assert_memory_equal(rv, rvk, sizeof rv);
    free(x), free(y), free(ye);
}

/* ---- linear ---------------------------------------------------------------- */

typedef struct {
    float *x, *w, *b, *y, *r;
    int n, in, out;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    linear_fwd(c->x, c->n, c->in, c->w, c->b, c->out, c->y);
    return dot_fd(c->y, c->r, (size_t)c->n * c->out);
}

static void check_linear(rng_t *r, int n, int in, int out)
{
    lin_ctx c = {0};
    c.n = n, c.in = in, c.out = out;
    size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    c.x = randv(r, nx, -1, 1), c.w = randv(r, nw, -1, 1), c.b = randv(r, out, -1, 1);
    c.y = randv(r, ny, -1e3, 1e3), c.r = randv(r, ny, -1, 1);
    /* forward against double */
    linear_fwd(c.x, n, in, c.w, c.b, out, c.y);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = c.b[o];
            for (int j = 0; j < in; j++)
                acc += (double)c.x[(size_t)i * in + j] * c.w[(size_t)o * in + j];
            assert_true(fabs(c.y[(size_t)i * out + o] - acc) <= 1e-5 * fmax(1.0, fabs(acc)));
        }
    float *dx = randv(r, nx, -1e3, 1e3), *dw = zerov(nw), *db = zerov(out);
    linear_bwd(c.x, n, in, c.w, out, c.r, dx, dw, db);
    grad_check("linear dx", c.x, nx, dx, lin_loss, &c);
    grad_check("linear dw", c.w, nw, dw, lin_loss, &c);
    grad_check("linear db", c.b, out, db, lin_loss, &c);
    float *dx1 = malloc(nx * sizeof(float)), *dw1 = malloc(nw * sizeof(float)), *db1 = malloc(out * sizeof(float));
    memcpy(dx1, dx, nx * sizeof(float)), memcpy(dw1, dw, nw * sizeof(float)), memcpy(db1, db, out * sizeof(float));
    for (size_t i = 0; i < nx; i++)
        dx[i] = 3e5f;
    linear_bwd(c.x, n, in, c.w, out, c.r, dx, dw, db);
    assert_memory_equal(dx, dx1, nx * sizeof(float));
    for (size_t i = 0; i < nw; i++)
        dw1[i] *= 2.0f;
    assert_close_v("linear dw twice", dw, dw1, nw, 1e-5);
    for (int i = 0; i < out; i++)
        assert_true(db[i] == 2.0f * db1[i]);
    /* no bias forward */
    linear_fwd(c.x, n, in, c.w, NULL, out, c.y);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = 0.0;
            for (int j = 0; j < in; j++)
                acc += (double)c.x[(size_t)i * in + j] * c.w[(size_t)o * in + j];
            assert_true(fabs(c.y[(size_t)i * out + o] - acc) <= 1e-5 * fmax(1.0, fabs(acc)));
        }
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(dx), free(dw), free(db), free(dx1), free(dw1),
        free(db1);
}

/* relu = 1 gives exactly batch norm then relu_fwd; backward with relu_y
 * exactly relu_bwd then batch norm backward (bitwise: the ReLU is fused into
 * the passes, not changed). */
static void test_bn_relu_fused(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 11);
    static const shape4 shapes[] = {{2, 3, 5, 7}, {4, 2, 1, 1}, {1, 1, 3, 3}, {3, 16, 9, 11}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        shape4 s = shapes[k];
        size_t n = shape4_numel(s);
        int C = s.c;
        float *x = randv(&r, n, -2, 2), *dy = randv(&r, n, -1, 1), *g = randv(&r, C, 0.5, 1.5),
              *bt = randv(&r, C, -0.5, 0.5);
        float *y[2], *rm[2], *rv[2], *sm[2], *si[2], *dx[2], *dg[2], *db[2];
        for (int v = 0; v < 2; v++) {
            y[v] = zerov(n), dx[v] = zerov(n), rm[v] = zerov(C), rv[v] = zerov(C), sm[v] = zerov(C);
            si[v] = zerov(C), dg[v] = zerov(C), db[v] = zerov(C);
        }
        /* 0: the two ops; 1: fused */
        batchnorm_fwd_train(x, s, g, bt, rm[0], rv[0], 0.1f, 1e-5f, 0, y[0], sm[0], si[0]);
        relu_fwd(y[0], n, y[0]);
        float *dz = zerov(n);
        relu_bwd(y[0], dy, n, dz);
        batchnorm_bwd(x, s, g, sm[0], si[0], NULL, dz, dx[0], dg[0], db[0]);
        batchnorm_fwd_train(x, s, g, bt, rm[1], rv[1], 0.1f, 1e-5f, 1, y[1], sm[1], si[1]);
        batchnorm_bwd(x, s, g, sm[1], si[1], y[1], dy, dx[1], dg[1], db[1]);
        size_t zeros = 0;
        for (size_t i = 0; i < n; i++) zeros += y[1][i] == 0.0f;
        assert_true(zeros > 0 && zeros < n); /* the mask matters */
        assert_memory_equal(y[0], y[1], n * sizeof(float));
        assert_memory_equal(dx[0], dx[1], n * sizeof(float));
        float *pairs[][2] = {{rm[0], rm[1]}, {rv[0], rv[1]}, {sm[0], sm[1]}, {si[0], si[1]}, {dg[0], dg[1]},
                             {db[0], db[1]}};
        for (size_t p = 0; p < 6; p++) assert_memory_equal(pairs[p][0], pairs[p][1], C * sizeof(float));
        /* without the mask the gradient differs: relu_y is really used */
        batchnorm_bwd(x, s, g, sm[1], si[1], NULL, dy, dz, NULL, NULL);
        assert_memory_not_equal(dz, dx[1], n * sizeof(float));
        for (int v = 0; v < 2; v++)
            free(y[v]), free(dx[v]), free(rm[v]), free(rv[v]), free(sm[v]), free(si[v]), free(dg[v]), free(db[v]);
        free(x), free(dy), free(g), free(bt), free(dz);
    }
}

static void test_linear(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 5);
    check_linear(&r, 4, 7, 5);
    check_linear(&r, 3, 16, 2);
}

/* ---- degenerate shapes ----------------------------------------------------- */

static void test_tiny_shapes(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 6);
    /* 1x1 images: a 3x3 kernel sees only its centre tap; stride 2 keeps 1x1 */
    shape4 one = {1, 1, 1, 1}, one3 = {2, 3, 1, 1}, col1 = {1, 1, 4, 1}, row1 = {1, 1, 1, 5};
    for (int s = 1; s <= 2; s++)
        for (int bias = 0; bias <= 1; bias++) {
            check_conv_fwd(&r, one, 1, 3, s, bias);
            check_conv_fwd(&r, one, 2, 1, s, bias);
            check_conv_fwd(&r, one3, 2, 3, s, bias);
            check_conv_fwd(&r, col1, 1, 3, s, bias);
            check_conv_fwd(&r, row1, 3, 3, s, bias);
        }
    assert_int_equal(conv2d_out_shape(one, 5, 3, 2).h, 1);
    assert_int_equal(conv2d_out_shape(one, 5, 3, 2).w, 1);
    assert_int_equal(conv2d_scratch_floats(one, 3, 1), 0); /* the ops keep their own workspace */
    check_conv_grad(&r, one, 1, 3, 1, 1);
    check_conv_grad(&r, one3, 2, 3, 2, 1);
    check_conv_grad(&r, col1, 1, 3, 2, 0);
    check_conv_grad(&r, row1, 2, 3, 1, 1);
    /* N=1, C=1 batch norm (M = H*W) and 1x1 images across a batch */
    shape4 bn1 = {1, 1, 2, 2}, bn2 = {2, 1, 1, 1};
    check_bn_grad(&r, bn1);
    check_bn_grad(&r, bn2);
    /* M = 1: output is beta, running_var stays finite (PyTorch refuses this in training) */
    {
        float x = 0.7f, g = 2.0f, b = 0.3f, rm = 0.0f, rv = 1.0f, y, sm, si;
        batchnorm_fwd_train(&x, one, &g, &b, &rm, &rv, 0.1f, 1e-5f, 0, &y, &sm, &si);
        assert_true(fabsf(y - 0.3f) < 1e-6f);
        assert_true(isfinite(rv) && isfinite(rm));
        float dy = 1.0f, dx = 5.0f, dg = 0.0f, dbt = 0.0f;
        batchnorm_bwd(&x, one, &g, &sm, &si, NULL, &dy, &dx, &dg, &dbt);
        assert_true(fabsf(dx) < 1e-6f && fabsf(dg) < 1e-6f && dbt == 1.0f);
    }
    check_linear(&r, 1, 1, 1);
    check_linear(&r, 1, 3, 1);
}

/* ---- tiled paths against naive references --------------------------------- */

/* dx, dW, db of conv_ref's convolution for upstream dy, in double. */
static void conv_bwd_ref(const float *x, shape4 xs, const float *w, int oc, int k, int s, const float *dy, double *dx,
                         double *dw, double *db)
{
    int p = k / 2, oh = (xs.h + 2 * p - k) / s + 1, ow = (xs.w + 2 * p - k) / s + 1;
    memset(dx, 0, shape4_numel(xs) * sizeof(double));
    memset(dw, 0, (size_t)oc * xs.c * k * k * sizeof(double));
    memset(db, 0, (size_t)oc * sizeof(double));
    for (int n = 0; n < xs.n; n++)
        for (int o = 0; o < oc; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double g = dy[(((size_t)n * oc + o) * oh + oy) * ow + ox];
                    db[o] += g;
                    for (int c = 0; c < xs.c; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy < 0 || iy >= xs.h || ix < 0 || ix >= xs.w)
                                    continue;
                                size_t xi = (((size_t)n * xs.c + c) * xs.h + iy) * xs.w + ix;
                                size_t wi = (((size_t)o * xs.c + c) * k + ky) * k + kx;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                }
}

/* |got - want| <= rel * max|want| elementwise (want in double). */
static void assert_close_d(const char *what, const float *got, const double *want, size_t n, double rel)
{
    double amax = 0.0;
    for (size_t i = 0; i < n; i++)
        amax = fmax(amax, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (fabs((double)got[i] - want[i]) > rel * fmax(amax, 1e-30))
            fail_msg("%s[%zu]: got %.9g, want %.9g (max %.3g)", what, i, got[i], want[i], amax);
}

/* check_conv_full's tolerance on y and dx (relative to max |want|); F(4x4,3x3) Winograd needs more. */
static double g_conv_tol = 1e-5;

static void check_conv_full(rng_t *r, shape4 xs, int oc, int k, int s, int bias)
{
    shape4 ys = conv2d_out_shape(xs, oc, k, s);
    size_t nx = shape4_numel(xs), nw = (size_t)oc * xs.c * k * k, ny = shape4_numel(ys);
    float *x = randv(r, nx, -1, 1), *w = randv(r, nw, -1, 1), *b = bias ? randv(r, oc, -1, 1) : NULL;
    float *y = randv(r, ny, -1e3, 1e3), *dy = randv(r, ny, -1, 1);
    float *dx = randv(r, nx, -1e3, 1e3), *dw = randv(r, nw, -1, 1), *db = randv(r, oc, -1, 1);
    float *dw0 = malloc(nw * sizeof(float)), *db0 = malloc(oc * sizeof(float));
    double *yr = malloc(ny * sizeof(double)), *dxr = malloc(nx * sizeof(double)), *dwr = malloc(nw * sizeof(double)),
           *dbr = malloc(oc * sizeof(double));
    assert_true(dw0 && db0 && yr && dxr && dwr && dbr);
    memcpy(dw0, dw, nw * sizeof(float)), memcpy(db0, db, oc * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "N%d C%d %dx%d oc%d k%d s%d", xs.n, xs.c, xs.h, xs.w, oc, k, s);

    conv2d_fwd(x, xs, w, b, oc, k, s, y, NULL);
    conv_ref(x, xs, w, b, oc, k, s, yr);
    assert_close_d(what, y, yr, ny, g_conv_tol);

    conv2d_bwd(x, xs, w, oc, k, s, dy, dx, dw, bias ? db : NULL, NULL);
    conv_bwd_ref(x, xs, w, oc, k, s, dy, dxr, dwr, dbr);
    assert_close_d(what, dx, dxr, nx, g_conv_tol);
    for (size_t i = 0; i < nw; i++)
        dwr[i] += dw0[i];
    assert_close_d(what, dw, dwr, nw, 1e-5);
    if (bias) {
        for (int o = 0; o < oc; o++)
            dbr[o] += db0[o];
        assert_close_d(what, db, dbr, (size_t)oc, 1e-6);
    }
    free(x), free(w), free(b), free(y), free(dy), free(dx), free(dw), free(db), free(dw0), free(db0);
    free(yr), free(dxr), free(dwr), free(dbr);
}

static void test_conv_tiles(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 7);
    check_conv_full(&r, (shape4){2, 64, 30, 30}, 8, 3, 1, 1); /* 2 tiles per image, split mid-row */
    check_conv_full(&r, (shape4){1, 64, 60, 60}, 4, 3, 2, 0); /* stride 2, dx in 2 column chunks */
    check_conv_full(&r, (shape4){1, 512, 24, 24}, 8, 1, 1, 1); /* 1x1 direct, 2 tiles */
    check_conv_full(&r, (shape4){16, 32, 4, 4}, 32, 3, 1, 0); /* 2 images per tile, dW in 2 groups */
    check_conv_full(&r, (shape4){16, 64, 4, 4}, 16, 1, 1, 1); /* 1x1 gathered, uneven last tile, 3 groups */
    check_conv_full(&r, (shape4){16, 32, 8, 8}, 24, 1, 1, 1); /* 1x1, 3 images per tile, one sgemm each; 6 groups */
    check_conv_full(&r, (shape4){3, 3, 40, 40}, 8, 3, 2, 1);  /* first-layer-like */
    check_conv_full(&r, (shape4){2, 8, 40, 40}, 4, 3, 1, 0);  /* few channels: dW partials over column tiles */
    check_conv_full(&r, (shape4){2, 16, 9, 9}, 8, 1, 2, 1);   /* 1x1 stride 2 */
    check_conv_full(&r, (shape4){2, 5, 3, 17}, 3, 3, 2, 1);   /* odd sizes */
}

/* Winograd (3x3 stride 1, >= 64 channels in and out), in each mode
 * (F(2x2,3x3), F(4x4,3x3), and the default mix): against the naive reference
 * (forward and the backward, whose dx goes through Winograd too) and against
 * the plain im2col path (ops_set_winograd(0)). F(2x2) keeps within 1e-5 of
 * max |y|; F(4x4) (interpolation in float with 1/6, 1/24, 8) within 3e-5
 * (measured up to ~1.4e-5 at 256 channels). */
static void check_winograd(rng_t *r, shape4 xs, int oc, int bias)
{
    static const int modes[] = {OPS_WINOGRAD_F2, OPS_WINOGRAD_F4, OPS_WINOGRAD_AUTO};
    for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
        const int mode = modes[mi];
        const int f4 = mode == OPS_WINOGRAD_F4 || (mode == OPS_WINOGRAD_AUTO && xs.h >= 8 && xs.w >= 8);
        const double tol = f4 ? 3e-5 : 1e-5;
        ops_set_winograd(mode);
        g_conv_tol = tol;
        check_conv_full(r, xs, oc, 3, 1, bias);
        g_conv_tol = 1e-5;
        shape4 ys = conv2d_out_shape(xs, oc, 3, 1);
        size_t nx = shape4_numel(xs), nw = (size_t)oc * xs.c * 9, ny = shape4_numel(ys);
        float *x = randv(r, nx, -1, 1), *w = randv(r, nw, -1, 1), *b = bias ? randv(r, oc, -1, 1) : NULL;
        float *dy = randv(r, ny, -1, 1), *y0 = zerov(ny), *y1 = zerov(ny), *dx0 = zerov(nx), *dx1 = zerov(nx);
        float *dw0 = zerov(nw), *dw1 = zerov(nw);
        conv2d_fwd(x, xs, w, b, oc, 3, 1, y1, NULL);
        conv2d_bwd(x, xs, w, oc, 3, 1, dy, dx1, dw1, NULL, NULL);
        ops_set_winograd(OPS_WINOGRAD_OFF);
        conv2d_fwd(x, xs, w, b, oc, 3, 1, y0, NULL);
        conv2d_bwd(x, xs, w, oc, 3, 1, dy, dx0, dw0, NULL, NULL);
        ops_set_winograd(OPS_WINOGRAD_AUTO);
        assert_close_v("winograd y vs im2col", y1, y0, ny, tol);
        assert_close_v("winograd dx vs im2col", dx1, dx0, nx, tol);
        assert_memory_equal(dw0, dw1, nw * sizeof(float)); /* dW never goes through Winograd */
        free(x), free(w), free(b), free(dy), free(y0), free(y1), free(dx0), free(dx1), free(dw0), free(dw1);
    }
}

static void test_winograd(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 10);
    check_winograd(&r, (shape4){2, 64, 7, 9}, 64, 1);   /* odd sizes: clipped edge tiles */
    check_winograd(&r, (shape4){3, 64, 13, 5}, 72, 1);  /* 3 tiles a row: partial vectors */
    check_winograd(&r, (shape4){1, 64, 2, 2}, 64, 0);   /* one tile */
    check_winograd(&r, (shape4){1, 64, 3, 3}, 64, 1);
    check_winograd(&r, (shape4){2, 64, 31, 33}, 64, 0); /* F(2x2): 3 blocks, split mid tile row */
    check_winograd(&r, (shape4){1, 256, 10, 10}, 256, 1);
    check_winograd(&r, (shape4){2, 128, 17, 16}, 96, 0);
    check_winograd(&r, (shape4){2, 64, 70, 66}, 64, 1); /* F(4x4): 3 blocks, split mid tile row, W % 4 == 2 */
    check_winograd(&r, (shape4){1, 64, 16, 18}, 64, 0); /* full vectors, a clipped last vector */
    check_winograd(&r, (shape4){2, 64, 8, 8}, 64, 1);   /* F(4x4) from 8x8 in the default mode */
    check_winograd(&r, (shape4){1, 64, 5, 6}, 64, 0);
}

/* ---- thread-count independence --------------------------------------------- */

typedef struct {
    shape4 xs;
    int oc, k, s, bias;
} conv_case;

/* Runs conv fwd+bwd at `threads`; outputs go to the given buffers (dw, db start from dw0, db0). */
static void conv_run(const conv_case *cc, int threads, const float *x, const float *w, const float *b,
                     const float *dy, const float *dw0, const float *db0, float *y, float *dx, float *dw, float *db)
{
    ops_set_threads(threads);
    assert_int_equal(ops_threads(), threads);
    size_t nw = (size_t)cc->oc * cc->xs.c * cc->k * cc->k;
    memcpy(dw, dw0, nw * sizeof(float));
    memcpy(db, db0, (size_t)cc->oc * sizeof(float));
    conv2d_fwd(x, cc->xs, w, b, cc->oc, cc->k, cc->s, y, NULL);
    conv2d_bwd(x, cc->xs, w, cc->oc, cc->k, cc->s, dy, cc->xs.c == 3 ? NULL : dx, dw, b ? db : NULL, NULL);
}

static void test_threads_conv(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 8);
    static const conv_case cases[] = {
        {{4, 64, 28, 28}, 32, 3, 1, 0}, /* 3x3, tiles inside images */
        {{4, 32, 20, 20}, 16, 3, 2, 0}, /* stride 2 */
        {{2, 512, 24, 24}, 32, 1, 1, 0}, /* 1x1 direct */
        {{16, 32, 4, 4}, 64, 1, 1, 1},  /* 1x1 gathered over images */
        {{16, 32, 16, 16}, 64, 1, 1, 0}, /* 1x1, images per tile, one sgemm each */
        {{16, 28, 4, 4}, 28, 3, 1, 0},  /* tiny: images per tile, dW partials */
        {{16, 3, 32, 32}, 8, 3, 2, 1},  /* first layer (no dx) */
        {{4, 16, 8, 8}, 8, 1, 2, 1},    /* 1x1 stride 2 */
        {{2, 8, 64, 64}, 8, 3, 1, 1},   /* few channels, large images */
        {{8, 64, 22, 22}, 64, 3, 1, 1}, /* Winograd, F(2x2): 4 blocks, F(4x4): 2 */
        {{4, 64, 46, 42}, 72, 3, 1, 1}, /* Winograd, F(4x4): 3 blocks, clipped edge tiles */
    };
    const size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t ci = 0; ci < 2 * ncases; ci++) { /* the default Winograd mode, then F(2x2,3x3) only */
        const conv_case *cc = &cases[ci % ncases];
        ops_set_winograd(ci < ncases ? OPS_WINOGRAD_AUTO : OPS_WINOGRAD_F2);
        shape4 ys = conv2d_out_shape(cc->xs, cc->oc, cc->k, cc->s);
        size_t nx = shape4_numel(cc->xs), nw = (size_t)cc->oc * cc->xs.c * cc->k * cc->k, ny = shape4_numel(ys);
        float *x = randv(&r, nx, -1, 1), *w = randv(&r, nw, -1, 1), *b = cc->bias ? randv(&r, cc->oc, -1, 1) : NULL;
        float *dy = randv(&r, ny, -1, 1), *dw0 = randv(&r, nw, -1, 1), *db0 = randv(&r, cc->oc, -1, 1);
        float *y[3], *dx[3], *dw[3], *db[3];
        for (int t = 0; t < 3; t++) {
            y[t] = zerov(ny), dx[t] = zerov(nx), dw[t] = zerov(nw), db[t] = zerov(cc->oc);
            conv_run(cc, t + 1, x, w, b, dy, dw0, db0, y[t], dx[t], dw[t], db[t]);
        }
        for (int t = 1; t < 3; t++) {
            assert_memory_equal(y[0], y[t], ny * sizeof(float));
            assert_memory_equal(dx[0], dx[t], nx * sizeof(float));
            assert_memory_equal(dw[0], dw[t], nw * sizeof(float));
            assert_memory_equal(db[0], db[t], cc->oc * sizeof(float));
        }
        for (int t = 0; t < 3; t++)
            free(y[t]), free(dx[t]), free(dw[t]), free(db[t]);
        free(x), free(w), free(b), free(dy), free(dw0), free(db0);
    }
    ops_set_winograd(OPS_WINOGRAD_AUTO);
    /* the workspace can be released and comes back */
    assert_true(ops_workspace_bytes() > 0);
    ops_workspace_free();
    assert_int_equal(ops_workspace_bytes(), 0);
    ops_set_threads(0);
    assert_true(ops_threads() >= 1);
}

static void test_threads_bn_linear(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 42, 9);
    static const shape4 bs[] = {{16, 32, 16, 16}, {3, 5, 7, 9}, {16, 64, 2, 2}};
    for (size_t si = 0; si < sizeof bs / sizeof bs[0]; si++) {
        shape4 s = bs[si];
        size_t n = shape4_numel(s);
        int C = s.c;
        float *x = randv(&r, n, -2, 3), *dy = randv(&r, n, -1, 1), *g = randv(&r, C, 0.5, 1.5),
              *bt = randv(&r, C, -0.5, 0.5);
        float *rm0 = randv(&r, C, -0.1, 0.1), *rv0 = randv(&r, C, 0.5, 1.5), *dg0 = randv(&r, C, -1, 1),
              *db0 = randv(&r, C, -1, 1);
        float *out[3][8];
        for (int t = 0; t < 3; t++) {
            float **o = out[t];
            o[0] = zerov(n), o[1] = zerov(n), o[2] = zerov(C), o[3] = zerov(C), o[4] = zerov(C), o[5] = zerov(C);
            o[6] = zerov(C), o[7] = zerov(C);
            memcpy(o[2], rm0, C * sizeof(float)), memcpy(o[3], rv0, C * sizeof(float));
            memcpy(o[6], dg0, C * sizeof(float)), memcpy(o[7], db0, C * sizeof(float));
            ops_set_threads(t + 1);
            batchnorm_fwd_train(x, s, g, bt, o[2], o[3], 0.1f, 1e-5f, 1, o[0], o[4], o[5]);
            batchnorm_bwd(x, s, g, o[4], o[5], o[0], dy, o[1], o[6], o[7]);
        }
        for (int t = 1; t < 3; t++) {
            for (int i = 0; i < 2; i++)
                assert_memory_equal(out[0][i], out[t][i], n * sizeof(float));
            for (int i = 2; i < 8; i++)
                assert_memory_equal(out[0][i], out[t][i], C * sizeof(float));
        }
        /* eval mode too */
        float *ye[3];
        for (int t = 0; t < 3; t++) {
            ye[t] = zerov(n);
            ops_set_threads(t + 1);
            batchnorm_fwd_eval(x, s, g, bt, rm0, rv0, 1e-5f, ye[t]);
        }
        assert_memory_equal(ye[0], ye[1], n * sizeof(float));
        assert_memory_equal(ye[0], ye[2], n * sizeof(float));
        for (int t = 0; t < 3; t++) {
            free(ye[t]);
            for (int i = 0; i < 8; i++)
                free(out[t][i]);
        }
        free(x), free(dy), free(g), free(bt), free(rm0), free(rv0), free(dg0), free(db0);
    }
    static const int ls[][3] = {{16, 512, 300}, {16, 64, 7}, {5, 1300, 200}};
    for (size_t li = 0; li < sizeof ls / sizeof ls[0]; li++) {
        int n = ls[li][0], in = ls[li][1], out = ls[li][2];
        size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
        float *x = randv(&r, nx, -1, 1), *w = randv(&r, nw, -1, 1), *b = randv(&r, out, -1, 1);
        float *dy = randv(&r, ny, -1, 1), *dw0 = randv(&r, nw, -1, 1), *db0 = randv(&r, out, -1, 1);
        float *y[3], *dx[3], *dw[3], *db[3];
        for (int t = 0; t < 3; t++) {
            y[t] = zerov(ny), dx[t] = zerov(nx), dw[t] = zerov(nw), db[t] = zerov(out);
            memcpy(dw[t], dw0, nw * sizeof(float)), memcpy(db[t], db0, out * sizeof(float));
            ops_set_threads(t + 1);
            linear_fwd(x, n, in, w, b, out, y[t]);
            linear_bwd(x, n, in, w, out, dy, dx[t], dw[t], db[t]);
        }
        for (int t = 1; t < 3; t++) {
            assert_memory_equal(y[0], y[t], ny * sizeof(float));
            assert_memory_equal(dx[0], dx[t], nx * sizeof(float));
            assert_memory_equal(dw[0], dw[t], nw * sizeof(float));
            assert_memory_equal(db[0], db[t], out * sizeof(float));
        }
        /* and the blocked layer against double */
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) {
                double acc = b[o];
                for (int j = 0; j < in; j++)
                    acc += (double)x[(size_t)i * in + j] * w[(size_t)o * in + j];
                assert_true(fabs(y[0][(size_t)i * out + o] - acc) <= 1e-5 * fmax(1.0, fabs(acc)));
            }
        for (int t = 0; t < 3; t++)
            free(y[t]), free(dx[t]), free(dw[t]), free(db[t]);
        free(x), free(w), free(b), free(dy), free(dw0), free(db0);
    }
    ops_set_threads(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_fwd_reference),
        cmocka_unit_test(test_conv_grad),
        cmocka_unit_test(test_bn_grad),
        cmocka_unit_test(test_bn_running_stats_and_eval),
        cmocka_unit_test(test_bn_relu_fused),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_tiny_shapes),
        cmocka_unit_test(test_conv_tiles),
        cmocka_unit_test(test_winograd),
        cmocka_unit_test(test_threads_conv),
        cmocka_unit_test(test_threads_bn_linear),
    };
    return cmocka_run_group_tests_name("ops_conv", tests, NULL, NULL);
}
