/* test_backend.c: every op of a backend B against the CPU reference backend
 * R (backend_cpu_create), forward and backward, through the table only:
 * B's buffers are filled with upload() and read back with download(), so
 * the same test checks the CUDA backend on a GPU machine and, in CI, the
 * harness itself (B = cpu: every NMSE must then be exactly 0).
 *
 *   FB_TEST_DEVICE         B's device: cpu (default), cuda, cuda:N
 *   FB_TEST_PRECISION      fp32 (default) | tf32 | bf16
 *   FB_TEST_DETERMINISTIC  0 (default) | 1
 *   FERBENCH_CUDA_LIB      the CUDA library; unset: $FERBENCH_BIN/libfbcuda.so
 *                          (bin/ when FERBENCH_BIN is unset) if it exists,
 *                          else backend_open's own lookup (beside this
 *                          executable)
 * A B that cannot be opened fails the test (with backend_open's message).
 *
 * Each comparison prints a TAP comment
 *   # op=<op> dir=fwd|bwd tensor=<name> shape=<...> nmse=<v> bound=<b>
 * with NMSE = sum((b - r)^2) / sum(r^2) in double (sum((b - r)^2) when the
 * reference is all zeros). Inputs are seeded uniform random numbers in
 * [-1, 1); outputs start as random junk too (the same on both sides), so an
 * element a backend forgets to write shows up, and "+=" gradients start
 * nonzero. Integer results (maxpool's argmax) and what an op must leave
 * untouched are compared bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/rng.h"
#include "../engine/backend.h"
#include "../engine/ops.h"

/* ---- bounds ---- */

/* Ops whose arithmetic depends on the precision (convolutions, linear).
 * fp32 with FMA math: NMSE <= 1e-10 (the bound); tf32 rounds inputs
 * to 10 mantissa bits (unit roundoff 2^-11), bf16 to 7 (2^-8): bounds ~100x
 * the squared unit roundoff. */
static const double PREC_BOUND[] = {[PREC_FP32] = 1e-10, [PREC_TF32] = 1e-5, [PREC_BF16] = 1e-3};
/* Every other op, at any precision: our own kernels are FP32. */
#define BOUND_FP32 1e-10
/* Ops that only move or select values (copies, crops, max, ReLU): equal. */
#define BOUND_EXACT 0.0

static backend *B, *R; /* under test; the reference (host memory) */
static double prec_bound;
static char open_err[512];
static rng_t rng;

/* ---- dual buffers: the same data on R and on B ---- */

typedef struct {
    size_t n;    /* floats */
    float *r;    /* R's buffer: host memory, read directly */
    float *b;    /* B's buffer */
    float *init; /* host copy of what both started with */
    float *got;  /* host copy of B's buffer, filled by fetch() */
} dual;

#define NONE ((dual *)NULL)
enum { MAXDUAL = 256 };
static dual pool[MAXDUAL]; /* every dual of the running test, released by its teardown */
static int npool;

/* A dual of n floats whose d->init the caller fills before dual_upload(). */
static dual *dual_new(size_t n)
{
    assert_true(npool < MAXDUAL);
    dual *d = &pool[npool++];
    memset(d, 0, sizeof *d);
    d->n = n;
    d->init = malloc((n ? n : 1) * sizeof(float));
    d->got = malloc((n ? n : 1) * sizeof(float));
    d->r = R->alloc(R, n);
    d->b = B->alloc(B, n);
    if (!d->init || !d->got || !d->r || !d->b)
        fail_msg("cannot allocate %zu floats (B: %s)", n, B->error(B) ? B->error(B) : "ok");
    return d;
}
static dual *dual_upload(dual *d)
{
    R->upload(R, d->r, d->init, d->n);
    B->upload(B, d->b, d->init, d->n);
    return d;
}
static dual *dual_from(const float *host, size_t n)
{
    dual *d = dual_new(n);
    memcpy(d->init, host, n * sizeof(float));
    return dual_upload(d);
}
/* n uniform random floats in [lo, hi) */
static dual *dual_rand(size_t n, double lo, double hi)
{
    dual *d = dual_new(n);
    for (size_t i = 0; i < n; i++) d->init[i] = (float)(lo + (hi - lo) * rng_uniform(&rng));
    return dual_upload(d);
}
static dual *rnd(size_t n) { return dual_rand(n, -1.0, 1.0); }

static void release_all(void)
{
    for (int i = 0; i < npool; i++) {
        R->release(R, pool[i].r);
        B->release(B, pool[i].b);
        free(pool[i].init), free(pool[i].got);
    }
    npool = 0;
}

/* RUN(op, args...): the same call on R, then on B. In args, BUF(d) is dual
 * d's buffer on the backend being called (NULL for NONE). */
#define RUN(op, ...)                                                                                                   \
    do {                                                                                                               \
        for (int on_b_ = 0; on_b_ < 2; on_b_++) {                                                                      \
            backend *be_ = on_b_ ? B : R;                                                                              \
            be_->op(be_, __VA_ARGS__);                                                                                 \
        }                                                                                                              \
    } while (0)
#define BUF(d) ((d) ? (on_b_ ? (d)->b : (d)->r) : NULL)
#define BUF_I32(d) ((int32_t *)(void *)BUF(d))
#define BUF_U8(d) ((uint8_t *)(void *)BUF(d))

/* ---- comparing ---- */

static char cur_op[32], cur_shape[128]; /* of the TAP comments */
static int nfail;                       /* failed checks in the running test */

#define SH "[%d,%d,%d,%d]"
#define SHA(s) (s).n, (s).c, (s).h, (s).w

static void begin(const char *op, const char *shape_fmt, ...)
{
    snprintf(cur_op, sizeof cur_op, "%s", op);
    va_list ap;
    va_start(ap, shape_fmt);
    vsnprintf(cur_shape, sizeof cur_shape, shape_fmt, ap);
    va_end(ap);
}

/* B's values of d, downloaded (download waits), with B's error state checked. */
static const float *fetch(dual *d)
{
    B->download(B, d->got, d->b, d->n);
    const char *e = B->error(B);
    if (e) fail_msg("op=%s shape=%s: backend %s failed: %s", cur_op, cur_shape, B->desc, e);
    return d->got;
}

static void verdict(int ok, const char *dir, const char *tensor, const char *what)
{
    if (ok) return;
    nfail++;
    print_error("FAIL op=%s dir=%s tensor=%s shape=%s: %s\n", cur_op, dir, tensor, cur_shape, what);
}

/* NMSE of B's d against R's d. */
static void check(const char *dir, const char *tensor, dual *d, double bound)
{
    const float *got = fetch(d);
    double err = 0.0, ref = 0.0;
    size_t first = d->n;
    for (size_t i = 0; i < d->n; i++) {
        double e = (double)got[i] - (double)d->r[i];
        err += e * e;
        ref += (double)d->r[i] * (double)d->r[i];
        if (e != 0.0 && first == d->n) first = i;
    }
    double nmse = ref > 0.0 ? err / ref : err;
    printf("# op=%s dir=%s tensor=%s shape=%s nmse=%.3g bound=%.3g\n", cur_op, dir, tensor, cur_shape, nmse, bound);
    char what[160];
    snprintf(what, sizeof what, "nmse %.3g > %.3g (first difference at %zu: %.9g, reference %.9g)", nmse, bound, first,
             first < d->n ? got[first] : 0.0, first < d->n ? d->r[first] : 0.0);
    verdict(nmse <= bound, dir, tensor, what); /* NaN fails */
}

/* B's d bit for bit equal to want[i] (R's values, or d->init for what must
 * stay untouched) at every i where keep is NULL or keep[i] != 0. */
static void check_bits(const char *dir, const char *tensor, dual *d, const float *want, const uint8_t *keep)
{
    const float *got = fetch(d);
    size_t bad = 0, count = 0, first = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (keep && !keep[i]) continue;
        count++;
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && !bad++) first = i;
    }
    printf("# op=%s dir=%s tensor=%s shape=%s mismatches=%zu/%zu bound=0\n", cur_op, dir, tensor, cur_shape, bad,
           count);
    char what[96];
    snprintf(what, sizeof what, "%zu of %zu differ (first at %zu)", bad, count, first);
    verdict(bad == 0, dir, tensor, what);
}

static void finish(void)
{
    if (nfail) fail_msg("%d check(s) of %s failed", nfail, cur_op);
}

static int setup(void **state)
{
    (void)state;
    rng_seed(&rng, 20250101, 7);
    nfail = 0;
    return 0;
}
static int teardown(void **state)
{
    (void)state;
    release_all();
    return 0;
}

/* ---- elementwise helpers of the tape ---- */

static void test_elementwise(void **state)
{
    (void)state;
    const size_t n = 1003;
    dual *x = rnd(n), *x2 = rnd(n);
    dual *y;

    begin("fill", "[%zu]", n);
    y = rnd(n);
    RUN(fill, BUF(y), 0.37f, n);
    check("fwd", "y", y, BOUND_EXACT);

    begin("copy", "[%zu]", n);
    y = rnd(n);
    RUN(copy, BUF(y), BUF(x), n);
    check("fwd", "y", y, BOUND_EXACT);

    begin("acc", "[%zu]", n);
    y = rnd(n);
    RUN(acc, BUF(y), BUF(x), n);
    check("fwd", "y", y, BOUND_FP32);

    begin("add", "[%zu]", n);
    y = rnd(n);
    RUN(add, BUF(y), BUF(x), BUF(x2), n);
    check("fwd", "y", y, BOUND_FP32);

    begin("axpb", "[%zu]", n);
    y = rnd(n);
    RUN(axpb, BUF(y), BUF(x), -1.7f, 0.3f, n);
    check("fwd", "y", y, BOUND_FP32);
    finish();
}

/* ---- convolutions ---- */

static const struct conv_case {
    shape4 xs;
    int k, stride, oc, bias;
} CONV[] = {
    {{2, 3, 16, 16}, 3, 2, 8, 1},
    {{2, 8, 16, 16}, 3, 1, 8, 0},
    {{2, 64, 8, 8}, 3, 1, 64, 0}, /* the CPU takes its Winograd path */
    {{2, 16, 8, 8}, 1, 1, 4, 1},
    {{3, 12, 14, 14}, 3, 2, 6, 0},
    {{1, 5, 7, 7}, 3, 1, 3, 1}, /* odd sizes */
};
#define NCONV (sizeof CONV / sizeof CONV[0])

static void conv_begin(const char *op, const struct conv_case *c, const char *extra)
{
    begin(op, "x" SH "k%ds%doc%d%s%s", SHA(c->xs), c->k, c->stride, c->oc, c->bias ? "+bias" : "", extra);
}
static size_t conv_wn(const struct conv_case *c) { return (size_t)c->oc * (size_t)c->xs.c * (size_t)(c->k * c->k); }
static size_t conv_yn(const struct conv_case *c) { return shape4_numel(conv2d_out_shape(c->xs, c->oc, c->k, c->stride)); }

static void test_conv2d_fwd(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCONV; i++) {
        const struct conv_case *c = &CONV[i];
        conv_begin("conv2d", c, "");
        dual *x = rnd(shape4_numel(c->xs)), *w = rnd(conv_wn(c)), *bias = c->bias ? rnd((size_t)c->oc) : NONE;
        dual *y = rnd(conv_yn(c));
        RUN(conv2d_fwd, BUF(x), c->xs, BUF(w), BUF(bias), c->oc, c->k, c->stride, BUF(y));
        check("fwd", "y", y, prec_bound);
    }
    finish();
}

/* dx written (or skipped: the network's first layer), dw and dbias added
 * onto nonzero values. */
static void test_conv2d_bwd(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCONV; i++)
        for (int with_dx = 1; with_dx >= 0; with_dx--) {
            const struct conv_case *c = &CONV[i];
            conv_begin("conv2d", c, with_dx ? "" : ",dx=NULL");
            dual *x = rnd(shape4_numel(c->xs)), *w = rnd(conv_wn(c)), *dy = rnd(conv_yn(c));
            dual *dx = with_dx ? rnd(shape4_numel(c->xs)) : NONE, *dw = rnd(conv_wn(c));
            dual *db = c->bias ? rnd((size_t)c->oc) : NONE;
            RUN(conv2d_bwd, BUF(x), c->xs, BUF(w), c->oc, c->k, c->stride, BUF(dy), BUF(dx), BUF(dw), BUF(db));
            if (dx) check("bwd", "dx", dx, prec_bound);
            check("bwd", "dw", dw, prec_bound);
            if (db) check("bwd", "dbias", db, prec_bound);
        }
    finish();
}

static void test_conv2d_bn_eval(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCONV; i++)
        for (int relu = 0; relu <= 1; relu++) {
            const struct conv_case *c = &CONV[i];
            begin("conv2d_bn_eval", "x" SH "k%ds%doc%d,relu%d", SHA(c->xs), c->k, c->stride, c->oc, relu);
            const size_t oc = (size_t)c->oc;
            dual *x = rnd(shape4_numel(c->xs)), *w = rnd(conv_wn(c)), *g = rnd(oc), *be = rnd(oc), *mean = rnd(oc);
            dual *var = dual_rand(oc, 0.5, 1.5), *y = rnd(conv_yn(c));
            RUN(conv2d_bn_eval, BUF(x), c->xs, BUF(w), c->oc, c->k, c->stride, BUF(g), BUF(be), BUF(mean), BUF(var),
                1e-5f, relu, BUF(y));
            check("fwd", "y", y, prec_bound);
        }
    finish();
}

/* ---- batch norm ---- */

/* The last two reduce each channel over more than one block on CUDA (more
 * than 4096 values: 8192, and 4551 in chunks that do not divide it). */
static const shape4 BN[] = {{4, 8, 5, 5}, {2, 16, 7, 7}, {8, 4, 32, 32}, {3, 5, 37, 41}};
#define NBN (sizeof BN / sizeof BN[0])

static void test_bn_fwd_train(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2 * NBN; i++) {
        const shape4 s = BN[i / 2];
        const int relu = (int)(i % 2);
        const size_t c = (size_t)s.c, n = shape4_numel(s);
        begin("bn_fwd_train", SH "%s", SHA(s), relu ? "+relu" : "");
        dual *x = rnd(n), *g = rnd(c), *be = rnd(c), *rm = rnd(c), *rv = dual_rand(c, 0.5, 1.5);
        dual *y = rnd(n), *sm = rnd(c), *si = rnd(c);
        RUN(bn_fwd_train, BUF(x), s, BUF(g), BUF(be), BUF(rm), BUF(rv), 0.1f, 1e-5f, relu, BUF(y), BUF(sm),
            BUF(si));
        check("fwd", "y", y, BOUND_FP32);
        check("fwd", "save_mean", sm, BOUND_FP32);
        check("fwd", "save_invstd", si, BOUND_FP32);
        check("fwd", "running_mean", rm, BOUND_FP32);
        check("fwd", "running_var", rv, BOUND_FP32);
    }
    finish();
}

static void test_bn_fwd_eval(void **state)
{
    (void)state;
    for (size_t i = 0; i < NBN; i++) {
        const shape4 s = BN[i];
        const size_t c = (size_t)s.c, n = shape4_numel(s);
        begin("bn_fwd_eval", SH, SHA(s));
        dual *x = rnd(n), *g = rnd(c), *be = rnd(c), *rm = rnd(c), *rv = dual_rand(c, 0.5, 1.5), *y = rnd(n);
        RUN(bn_fwd_eval, BUF(x), s, BUF(g), BUF(be), BUF(rm), BUF(rv), 1e-5f, BUF(y));
        check("fwd", "y", y, BOUND_FP32);
    }
    finish();
}

/* From the reference's saved statistics and output (both sides get the
 * same), so the backward is checked on its own. */
static void test_bn_bwd(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2 * NBN; i++) {
        const shape4 s = BN[i / 2];
        const int relu = (int)(i % 2);
        const size_t c = (size_t)s.c, n = shape4_numel(s);
        begin("bn_bwd", SH "%s", SHA(s), relu ? "+relu" : "");
        dual *x = rnd(n), *g = rnd(c), *be = rnd(c), *rm = rnd(c), *rv = dual_rand(c, 0.5, 1.5);
        dual *y = rnd(n), *sm = rnd(c), *si = rnd(c);
        R->bn_fwd_train(R, x->r, s, g->r, be->r, rm->r, rv->r, 0.1f, 1e-5f, relu, y->r, sm->r, si->r);
        dual *mean = dual_from(sm->r, c), *invstd = dual_from(si->r, c), *yr = relu ? dual_from(y->r, n) : NULL;
        dual *dy = rnd(n), *dx = rnd(n), *dg = rnd(c), *db = rnd(c);
        RUN(bn_bwd, BUF(x), s, BUF(g), BUF(mean), BUF(invstd), BUF(yr), BUF(dy), BUF(dx), BUF(dg), BUF(db));
        check("bwd", "dx", dx, BOUND_FP32);
        check("bwd", "dgamma", dg, BOUND_FP32);
        check("bwd", "dbeta", db, BOUND_FP32);
    }
    finish();
}

/* ---- elementwise activations: backward from the reference's outputs ---- */

static void test_relu(void **state)
{
    (void)state;
    const size_t n = 4099;
    begin("relu", "[%zu]", n);
    dual *x = rnd(n), *y = rnd(n);
    RUN(relu_fwd, BUF(x), n, BUF(y));
    check("fwd", "y", y, BOUND_EXACT);
    dual *yr = dual_from(y->r, n), *dy = rnd(n), *dx = rnd(n);
    RUN(relu_bwd, BUF(yr), BUF(dy), n, BUF(dx));
    check("bwd", "dx", dx, BOUND_EXACT);
    finish();
}

static void test_sigmoid(void **state)
{
    (void)state;
    const size_t n = 4099;
    begin("sigmoid", "[%zu]", n);
    dual *x = rnd(n), *y = rnd(n);
    RUN(sigmoid_fwd, BUF(x), n, BUF(y));
    check("fwd", "y", y, BOUND_FP32);
    dual *yr = dual_from(y->r, n), *dy = rnd(n), *dx = rnd(n);
    RUN(sigmoid_bwd, BUF(yr), BUF(dy), n, BUF(dx));
    check("bwd", "dx", dx, BOUND_FP32);
    finish();
}

/* ---- resampling ---- */

static void test_maxpool2(void **state)
{
    (void)state;
    const shape4 xs = {2, 3, 6, 8}, ys = {2, 3, 3, 4};
    const size_t nx = shape4_numel(xs), ny = shape4_numel(ys);
    begin("maxpool2", SH, SHA(xs));
    dual *x = rnd(nx), *y = rnd(ny), *am = rnd(ny);
    RUN(maxpool2_fwd, BUF(x), xs, BUF(y), BUF_I32(am));
    check("fwd", "y", y, BOUND_EXACT);
    check_bits("fwd", "argmax", am, am->r, NULL);
    dual *amr = dual_from(am->r, ny), *dy = rnd(ny), *dx = rnd(nx); /* dx is zeroed inside */
    RUN(maxpool2_bwd, BUF_I32(amr), BUF(dy), ys, BUF(dx), xs);
    check("bwd", "dx", dx, BOUND_EXACT);
    finish();
}

static void test_upsample2(void **state)
{
    (void)state;
    const shape4 xs = {2, 3, 5, 7};
    const size_t nx = shape4_numel(xs), ny = 4 * nx;
    begin("upsample2", SH, SHA(xs));
    dual *x = rnd(nx), *y = rnd(ny);
    RUN(upsample2_fwd, BUF(x), xs, BUF(y));
    check("fwd", "y", y, BOUND_EXACT);
    dual *dy = rnd(ny), *dx = rnd(nx);
    RUN(upsample2_bwd, BUF(dy), xs, BUF(dx));
    check("bwd", "dx", dx, BOUND_FP32);
    finish();
}

/* ---- two-input ops; their backward with both gradients, then each alone ---- */

static const char *const GRADS[] = {"", ",grad2=NULL", ",grad1=NULL"};

static void test_concat(void **state)
{
    (void)state;
    const int n = 2, ca = 3, cc = 5, h = 5, w = 6;
    const size_t hw = (size_t)h * w, na = (size_t)n * ca * hw, nc = (size_t)n * cc * hw;
    begin("concat", "a[%d,%d,%d,%d]c[%d,%d,%d,%d]", n, ca, h, w, n, cc, h, w);
    dual *a = rnd(na), *c = rnd(nc), *y = rnd(na + nc);
    RUN(concat_fwd, BUF(a), ca, BUF(c), cc, n, h, w, BUF(y));
    check("fwd", "y", y, BOUND_EXACT);
    for (int v = 0; v < 3; v++) {
        begin("concat", "a[%d,%d,%d,%d]c[%d,%d,%d,%d]%s", n, ca, h, w, n, cc, h, w, GRADS[v]);
        dual *dy = rnd(na + nc), *da = v != 2 ? rnd(na) : NONE, *dc = v != 1 ? rnd(nc) : NONE;
        RUN(concat_bwd, BUF(dy), ca, cc, n, h, w, BUF(da), BUF(dc));
        if (da) check("bwd", "da", da, BOUND_EXACT);
        if (dc) check("bwd", "dc", dc, BOUND_EXACT);
    }
    finish();
}

/* keep[i] = 1 where element i of x [xs] lies outside quadrant q. */
static void outside_quadrant(shape4 xs, int q, uint8_t *keep)
{
    const int r0 = (q / 2) * (xs.h / 2), c0 = (q % 2) * (xs.w / 2);
    for (size_t i = 0; i < shape4_numel(xs); i++) {
        int row = (int)(i / (size_t)xs.w % (size_t)xs.h), col = (int)(i % (size_t)xs.w);
        keep[i] = !(row >= r0 && row < r0 + xs.h / 2 && col >= c0 && col < c0 + xs.w / 2);
    }
}

static void test_quadrants(void **state)
{
    (void)state;
    enum { N = 2, C = 3, H = 8, W = 10 };
    const shape4 xs = {N, C, H, W};
    const size_t nx = shape4_numel(xs), ny = nx / 4;
    for (int q = 0; q < 4; q++) {
        begin("quadrant_crop", SH ",q%d", SHA(xs), q);
        dual *x = rnd(nx), *y = rnd(ny);
        RUN(quadrant_crop, BUF(x), xs, q, BUF(y));
        check("fwd", "y", y, BOUND_EXACT);

        begin("quadrant_assemble", SH ",q%d", SHA(xs), q);
        dual *src = rnd(ny), *dst = rnd(nx); /* prefilled: the other quadrants stay */
        RUN(quadrant_assemble, BUF(src), xs, q, BUF(dst));
        check("fwd", "x", dst, BOUND_EXACT);
        uint8_t keep[N * C * H * W];
        outside_quadrant(xs, q, keep);
        check_bits("fwd", "x_other_quadrants", dst, dst->init, keep);
    }
    finish();
}

static void test_mul_spatial(void **state)
{
    (void)state;
    const shape4 rs = {2, 3, 6, 5};
    const size_t nr = shape4_numel(rs), na = (size_t)rs.n * rs.h * rs.w;
    begin("mul_spatial", "r" SH, SHA(rs));
    dual *r = rnd(nr), *a = rnd(na), *y = rnd(nr);
    RUN(mul_spatial_fwd, BUF(r), rs, BUF(a), BUF(y));
    check("fwd", "y", y, BOUND_FP32);
    for (int v = 0; v < 3; v++) {
        begin("mul_spatial", "r" SH "%s", SHA(rs), GRADS[v]);
        dual *dy = rnd(nr), *dr = v != 2 ? rnd(nr) : NONE, *da = v != 1 ? rnd(na) : NONE;
        RUN(mul_spatial_bwd, BUF(r), rs, BUF(a), BUF(dy), BUF(dr), BUF(da));
        if (dr) check("bwd", "dr", dr, BOUND_FP32);
        if (da) check("bwd", "da", da, BOUND_FP32);
    }
    finish();
}

static void test_mul_channel(void **state)
{
    (void)state;
    const shape4 rs = {2, 3, 6, 5};
    const size_t nr = shape4_numel(rs), ns = (size_t)rs.n * rs.c;
    begin("mul_channel", "r" SH, SHA(rs));
    dual *r = rnd(nr), *s = rnd(ns), *y = rnd(nr);
    RUN(mul_channel_fwd, BUF(r), rs, BUF(s), BUF(y));
    check("fwd", "y", y, BOUND_FP32);
    for (int v = 0; v < 3; v++) {
        begin("mul_channel", "r" SH "%s", SHA(rs), GRADS[v]);
        dual *dy = rnd(nr), *dr = v != 2 ? rnd(nr) : NONE, *ds = v != 1 ? rnd(ns) : NONE;
        RUN(mul_channel_bwd, BUF(r), rs, BUF(s), BUF(dy), BUF(dr), BUF(ds));
        if (dr) check("bwd", "dr", dr, BOUND_FP32);
        if (ds) check("bwd", "ds", ds, BOUND_FP32);
    }
    finish();
}

/* ---- pooling to vectors ---- */

static void test_avgpool_global(void **state)
{
    (void)state;
    const shape4 xs = {2, 5, 6, 7};
    const size_t nx = shape4_numel(xs), ny = (size_t)xs.n * xs.c;
    begin("avgpool_global", SH, SHA(xs));
    dual *x = rnd(nx), *y = rnd(ny);
    RUN(avgpool_global_fwd, BUF(x), xs, BUF(y));
    check("fwd", "y", y, BOUND_FP32);
    dual *dy = rnd(ny), *dx = rnd(nx);
    RUN(avgpool_global_bwd, BUF(dy), xs, BUF(dx));
    check("bwd", "dx", dx, BOUND_FP32);
    finish();
}

static void test_avgpool_block(void **state)
{
    (void)state;
    const shape4 xs = {2, 3, 8, 8};
    const int g = 2;
    const size_t nx = shape4_numel(xs), ny = (size_t)xs.n * xs.c * g * g;
    begin("avgpool_block", SH ",g%d", SHA(xs), g);
    dual *x = rnd(nx), *y = rnd(ny);
    RUN(avgpool_block_fwd, BUF(x), xs, g, BUF(y));
    check("fwd", "y", y, BOUND_FP32);
    dual *dy = rnd(ny), *dx = rnd(nx);
    RUN(avgpool_block_bwd, BUF(dy), xs, g, BUF(dx));
    check("bwd", "dx", dx, BOUND_FP32);
    finish();
}

/* ---- linear ---- */

static void test_linear(void **state)
{
    (void)state;
    const int n = 5, in = 37, out = 7;
    for (int with_bias = 1; with_bias >= 0; with_bias--) {
        begin("linear", "x[%d,%d]out%d%s", n, in, out, with_bias ? "+bias" : "");
        dual *x = rnd((size_t)n * in), *w = rnd((size_t)out * in), *b = with_bias ? rnd((size_t)out) : NONE;
        dual *y = rnd((size_t)n * out);
        RUN(linear_fwd, BUF(x), n, in, BUF(w), BUF(b), out, BUF(y));
        check("fwd", "y", y, prec_bound);
        dual *dy = rnd((size_t)n * out), *dx = rnd((size_t)n * in), *dw = rnd((size_t)out * in);
        dual *db = with_bias ? rnd((size_t)out) : NONE;
        RUN(linear_bwd, BUF(x), n, in, BUF(w), out, BUF(dy), BUF(dx), BUF(dw), BUF(db));
        check("bwd", "dx", dx, prec_bound);
        check("bwd", "dw", dw, prec_bound);
        if (db) check("bwd", "dbias", db, prec_bound);
    }
    finish();
}

/* ---- losses: the value lands in a one-float buffer ---- */

static void test_softmax_ce(void **state)
{
    (void)state;
    const int n = 9, k = 7;
    begin("softmax_ce", "[%d,%d]", n, k);
    int32_t labels[9];
    for (int i = 0; i < n; i++) labels[i] = (int32_t)rng_below(&rng, (uint64_t)k);
    /* int32 labels travel in a float buffer, as net_loss sends them */
    dual *lab = dual_from((const float *)(const void *)labels, (size_t)n);
    dual *logits = rnd((size_t)n * k), *dl = rnd((size_t)n * k), *loss = rnd(1);
    RUN(softmax_ce, BUF(logits), n, k, BUF_I32(lab), 0.4f, BUF(dl), BUF(loss));
    check("fwd", "loss", loss, BOUND_FP32);
    check("bwd", "dlogits", dl, BOUND_FP32);
    finish();
}

static void test_mse(void **state)
{
    (void)state;
    const size_t n = 100003;
    begin("mse", "[%zu]", n);
    dual *a = rnd(n), *t = rnd(n), *da = rnd(n), *loss = rnd(1);
    RUN(mse, BUF(a), BUF(t), n, 0.6f, BUF(da), BUF(loss));
    check("fwd", "loss", loss, BOUND_FP32);
    check("bwd", "da", da, BOUND_FP32);
    finish();
}

/* ---- AdamW: three steps; elements whose mask byte is 0 stay as they were ---- */

static void test_adamw(void **state)
{
    (void)state;
    enum { TOTAL = 1001, MFLOATS = (TOTAL + 3) / 4 }; /* the mask: TOTAL bytes in whole floats */
    const size_t total = TOTAL, mfloats = MFLOATS;
    _Alignas(float) uint8_t mask[MFLOATS * sizeof(float)] = {0};
    uint8_t frozen[TOTAL];
    for (size_t i = 0; i < total; i++) {
        mask[i] = !(i % 7 == 3 || (i >= 200 && i < 260) || i >= total - 5);
        frozen[i] = !mask[i];
    }
    dual *m8 = dual_from((const float *)(const void *)mask, mfloats);
    dual *w = rnd(total), *m = rnd(total), *v = dual_rand(total, 0.0, 1.0);
    for (long step = 1; step <= 3; step++) {
        begin("adamw", "[%zu],step%ld", total, step);
        dual *g = rnd(total);
        const adamw_config cfg = {2e-3, 0.9, 0.99, 1e-8, 1e-4};
        const adamw_coef k = adamw_coefs(step, cfg.lr, &cfg);
        RUN(adamw, BUF(w), BUF(g), BUF(m), BUF(v), BUF_U8(m8), total, &k);
        check("fwd", "w", w, BOUND_FP32);
        check("fwd", "m", m, BOUND_FP32);
        check("fwd", "v", v, BOUND_FP32);
        check_bits("fwd", "w_masked", w, w->init, frozen);
        check_bits("fwd", "m_masked", m, m->init, frozen);
        check_bits("fwd", "v_masked", v, v->init, frozen);
    }
    finish();
}

/* ---- host_alloc: upload memory (page-locked on a device) ---- */

/* Two buffers from host_alloc uploaded, downloaded into a third, the bytes
 * equal (int data too, as the labels travel); a buffer is rewritten only
 * after a download (the contract), and an empty request is a valid pointer. */
static void test_host_alloc(void **state)
{
    (void)state;
    const size_t n = 70001; /* odd, over a page */
    float *h = B->host_alloc(B, n * sizeof *h), *back = B->host_alloc(B, n * sizeof *back);
    int32_t *lab = B->host_alloc(B, 5 * sizeof *lab);
    void *none = B->host_alloc(B, 0);
    assert_non_null(h), assert_non_null(back), assert_non_null(lab), assert_non_null(none);
    float *d = B->alloc(B, n), *dl = B->alloc(B, 5);
    assert_non_null(d), assert_non_null(dl);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) h[i] = (float)(i * 7 % 1000) - 500.0f + 0.25f * round;
        for (int i = 0; i < 5; i++) lab[i] = i * 3 + round;
        B->upload(B, d, h, n);
        B->upload(B, dl, (const float *)(const void *)lab, 5);
        B->download(B, back, d, n); /* waits: h and lab may be rewritten after this */
        assert_memory_equal(back, h, n * sizeof *h);
        int32_t lb[5];
        B->download(B, (float *)(void *)lb, dl, 5);
        assert_memory_equal(lb, lab, sizeof lb);
    }
    B->release(B, d), B->release(B, dl);
    backend_host_free(B, h), backend_host_free(B, back), backend_host_free(B, lab), backend_host_free(B, none);
    backend_host_free(B, NULL);
    assert_null(B->error(B));
}

/* ---- upload_ahead: a copy started early on a second stream, taken by the
 * upload() of the same host buffer; what the contract allows the host to do
 * meanwhile, what a sync keeps and host_free drops, and the count of taken
 * copies. On the emulated CUDA a copy runs only when the main stream waits
 * for it, so a missing wait shows as stale bytes here. ---- */

static void fill_pattern(float *h, size_t n, int r)
{
    for (size_t i = 0; i < n; i++) h[i] = (float)((int)((i * 131 + (size_t)r * 17) % 997) - 498) * 0.125f + (float)r;
}

static void expect_axpb(const float *got, const float *h, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != 2.0f * h[i] + 1.0f) fail_msg("%s: element %zu is %g, want %g", what, i, got[i], 2.0f * h[i] + 1.0f);
}

static void test_upload_ahead(void **state)
{
    (void)state;
    if (!B->upload_ahead) {
        assert_true(B->host_memory || B->opt.no_prefetch || !strcmp(B->name, "cpu")); /* the CPU copies at once */
        printf("# %s: no upload_ahead (uploads are copies at the call)\n", B->name);
        return;
    }
    const size_t n = 50001;
    float *h[2] = {B->host_alloc(B, n * sizeof(float)), B->host_alloc(B, n * sizeof(float))};
    float *got = malloc(n * sizeof *got), *d = B->alloc(B, n), *d2 = B->alloc(B, n);
    assert_non_null(h[0]), assert_non_null(h[1]), assert_non_null(got), assert_non_null(d), assert_non_null(d2);

    /* a pipeline, as ferbench's loops: batch r is uploaded (taking its staged copy), work reads it, batch r+1
     * is written and staged meanwhile; a buffer is rewritten only after the download that followed its upload */
    const unsigned long taken = B->prefetched;
    fill_pattern(h[0], n, 0);
    assert_int_equal(B->upload_ahead(B, h[0], n), 0);
    assert_int_equal(B->upload_ahead(B, h[0], n), 0); /* already staged: not copied twice */
    for (int r = 0; r < 6; r++) {
        float *cur = h[r % 2], *next = h[(r + 1) % 2];
        B->upload(B, d, cur, n);
        B->axpb(B, d2, d, 2.0f, 1.0f, n);
        fill_pattern(next, n, r + 1);
        assert_int_equal(B->upload_ahead(B, next, n), 0);
        B->download(B, got, d2, n);
        expect_axpb(got, cur, n, "pipelined upload");
    }
    B->upload(B, d, h[0], n); /* take the last one: nothing is left staged */
    B->download(B, got, d, n);
    assert_memory_equal(got, h[0], n * sizeof *got);
    assert_int_equal(B->prefetched - taken, 7); /* every upload took its staged copy (a download keeps them) */

    /* a sync keeps what is staged: the upload after it takes the copy */
    fill_pattern(h[1], n, 100);
    assert_int_equal(B->upload_ahead(B, h[1], n), 0);
    B->sync(B);
    B->upload(B, d, h[1], n);
    B->download(B, got, d, n);
    assert_memory_equal(got, h[1], n * sizeof *got);
    assert_int_equal(B->prefetched - taken, 8);

    /* another length from the same pointer is not the staged copy */
    fill_pattern(h[1], n, 300);
    assert_int_equal(B->upload_ahead(B, h[1], n), 0);
    B->upload(B, d, h[1], n - 1);
    B->download(B, got, d, n - 1);
    assert_memory_equal(got, h[1], (n - 1) * sizeof *got);
    assert_int_equal(B->prefetched - taken, 8);
    B->upload(B, d, h[1], n); /* (taken: the staging buffers are free again) */
    B->download(B, got, d, n);
    assert_memory_equal(got, h[1], n * sizeof *got);
    assert_int_equal(B->prefetched - taken, 9);

    /* staging buffers run out: -1, and nothing breaks */
    float *small = B->host_alloc(B, 200 * sizeof(float));
    assert_non_null(small);
    fill_pattern(small, 200, 7);
    int staged = 0;
    while (staged < 64 && B->upload_ahead(B, small + staged, 100 + (size_t)staged) == 0) staged++;
    assert_true(staged >= 4 && staged < 64); /* a training batch's four inputs at least; then -1 */
    assert_null(B->error(B));
    B->upload(B, d, small + 1, 101);
    B->download(B, got, d, 101);
    assert_memory_equal(got, small + 1, 101 * sizeof *got);
    assert_int_equal(B->prefetched - taken, 10);

    /* host_free drops what was staged (from it or not): its address may come back with other bytes, and
     * every staging buffer is free again */
    fill_pattern(h[0], n, 400);
    assert_int_equal(B->upload_ahead(B, h[0], n), 0); /* the one left free: all are staged now */
    assert_int_equal(B->upload_ahead(B, h[1], n), -1);
    backend_host_free(B, h[0]);
    h[0] = B->host_alloc(B, n * sizeof(float));
    assert_non_null(h[0]);
    fill_pattern(h[0], n, 500);
    B->upload(B, d, h[0], n);
    B->download(B, got, d, n);
    assert_memory_equal(got, h[0], n * sizeof *got);
    assert_int_equal(B->prefetched - taken, 10);
    for (int k = 0; k < staged; k++) assert_int_equal(B->upload_ahead(B, h[1] + k, 100), 0);
    B->sync(B);
    backend_host_free(B, small);

    /* copies from pageable memory (read at the call, landing later) dropped by host_free, then every staging
     * buffer regrown (freed): the drop must wait for them (the emulation reports a copy into freed memory) */
    float *pageable = malloc(4 * n * sizeof(float));
    assert_non_null(pageable);
    fill_pattern(pageable, 4 * n, 600);
    for (int k = 0; k < staged; k++) assert_int_equal(B->upload_ahead(B, pageable + k, 2 * n), 0);
    backend_host_free(B, B->host_alloc(B, 16));
    for (int k = 0; k < staged; k++) assert_int_equal(B->upload_ahead(B, pageable + k, 3 * n), 0);
    B->upload(B, d, pageable + 1, n); /* (another length: a plain upload) */
    B->download(B, got, d, n);
    assert_memory_equal(got, pageable + 1, n * sizeof *got);
    backend_host_free(B, B->host_alloc(B, 16));
    free(pageable);

    B->release(B, d), B->release(B, d2);
    backend_host_free(B, h[0]), backend_host_free(B, h[1]);
    free(got);
    assert_null(B->error(B));
}

/* ---- graphs: recorded calls run only when launched, and again at each
 * launch on the buffers' current contents; a failed recording leaves the
 * backend clean; memory_epoch moves with every allocation and release ---- */

static void test_graphs(void **state)
{
    (void)state;
    const size_t n = 1000;
    unsigned long ep = B->memory_epoch;
    float *x = B->alloc(B, n), *y = B->alloc(B, n), *z = B->alloc(B, n);
    assert_non_null(x), assert_non_null(y), assert_non_null(z);
    assert_true(B->memory_epoch != ep);
    float *h = malloc(n * sizeof *h), *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    assert_non_null(h), assert_non_null(got), assert_non_null(want);
    if (!B->capture_begin) { /* the CPU: no graphs */
        assert_null(B->capture_end), assert_null(B->graph_launch), assert_null(B->graph_free);
    } else {
        assert_non_null(B->capture_end), assert_non_null(B->graph_launch), assert_non_null(B->graph_free);
        ep = B->memory_epoch;
        assert_int_equal(B->capture_begin(B), 0);
        B->relu_fwd(B, x, n, y);             /* y = relu(x) */
        B->axpb(B, z, y, 2.0f, 1.0f, n);    /* z = 2 y + 1 */
        void *g = B->capture_end(B);
        assert_non_null(g);
        assert_null(B->error(B));
        assert_true(B->memory_epoch == ep); /* recording allocates nothing */
        B->download(B, got, z, n);
        for (size_t i = 0; i < n; i++) assert_true(got[i] == 0.0f); /* recorded, not run */
        for (int round = 0; round < 2; round++) {
            for (size_t i = 0; i < n; i++) {
                h[i] = (float)((int)(i * 37 % 101) - 50) * (round ? -0.5f : 0.25f);
                want[i] = 2.0f * (h[i] > 0 ? h[i] : 0.0f) + 1.0f;
            }
            B->upload(B, x, h, n);
            B->graph_launch(B, g);
            B->download(B, got, z, n);
            assert_memory_equal(got, want, n * sizeof *got);
        }
        B->graph_free(B, g);
        /* a recording that allocates fails, cleanly: no error left, nothing leaked, nothing run */
        assert_int_equal(B->capture_begin(B), 0);
        B->fill(B, z, 7.0f, n);
        assert_null(B->alloc(B, 10));
        B->release(B, y); /* released when the recording ends */
        assert_null(B->capture_end(B));
        assert_null(B->error(B));
        assert_true(B->graph_note[0] != '\0');
        printf("# a failed recording: %s\n", B->graph_note);
        B->download(B, got, z, n);
        assert_memory_equal(got, want, n * sizeof *got); /* the fill never ran */
        y = NULL;
        /* so do uploads and downloads while recording */
        assert_int_equal(B->capture_begin(B), 0);
        B->download(B, got, z, n);
        assert_null(B->capture_end(B));
        assert_null(B->error(B));
        B->fill(B, z, 3.0f, n); /* and the backend works directly afterwards */
        B->download(B, got, z, n);
        for (size_t i = 0; i < n; i++) assert_true(got[i] == 3.0f);
    }
    ep = B->memory_epoch;
    B->release(B, x), B->release(B, y), B->release(B, z);
    assert_true(B->memory_epoch != ep);
    free(h), free(got), free(want);
    assert_null(B->error(B));
}

/* ---- after everything: no sticky error ---- */

static void test_no_error(void **state)
{
    (void)state;
    B->sync(B);
    const char *e = B->error(B);
    if (e) fail_msg("backend %s reports an error: %s", B->desc, e);
    assert_null(R->error(R));
}

static void test_backend_open(void **state)
{
    (void)state;
    printf("# %s\n", open_err);
    fail_msg("%s", open_err);
}

/* ---- main ---- */

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* Opens B and R from the environment; 0, or -1 with open_err set. */
static int open_backends(void)
{
    const char *dev = env_or("FB_TEST_DEVICE", "cpu"), *prec = env_or("FB_TEST_PRECISION", "fp32");
    const char *det = env_or("FB_TEST_DETERMINISTIC", "0");
    backend_options opt = {0};
    if (precision_parse(prec, &opt.prec) != 0) {
        snprintf(open_err, sizeof open_err, "FB_TEST_PRECISION=%s: expected fp32, tf32 or bf16", prec);
        return -1;
    }
    if (strcmp(det, "0") != 0 && strcmp(det, "1") != 0) {
        snprintf(open_err, sizeof open_err, "FB_TEST_DETERMINISTIC=%s: expected 0 or 1", det);
        return -1;
    }
    opt.deterministic = det[0] == '1';
    /* backend_open looks for libfbcuda.so beside the executable; the tests
     * live in build/tests, the library in $FERBENCH_BIN (tests/run.sh) */
    if (strcmp(dev, "cpu") != 0 && !getenv("FERBENCH_CUDA_LIB")) {
        char lib[400];
        snprintf(lib, sizeof lib, "%s/libfbcuda.so", env_or("FERBENCH_BIN", "bin"));
        if (access(lib, R_OK) == 0) setenv("FERBENCH_CUDA_LIB", lib, 1);
    }
    char err[400] = "";
    if (!(B = backend_open(dev, &opt, err, sizeof err))) {
        snprintf(open_err, sizeof open_err, "backend_open(\"%s\", %s): %s", dev, prec, err);
        return -1;
    }
    if (!(R = backend_cpu_create(NULL)) || !R->host_memory) {
        snprintf(open_err, sizeof open_err, "cannot create the CPU reference backend");
        return -1;
    }
    prec_bound = PREC_BOUND[opt.prec];
    printf("# B=%s R=%s precision=%s deterministic=%d\n", B->desc, R->desc, precision_name(opt.prec),
           opt.deterministic);
    return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_elementwise), T(test_conv2d_fwd),     T(test_conv2d_bwd), T(test_conv2d_bn_eval),
        T(test_bn_fwd_train), T(test_bn_fwd_eval),   T(test_bn_bwd),     T(test_relu),
        T(test_sigmoid),     T(test_maxpool2),       T(test_upsample2),  T(test_concat),
        T(test_quadrants),   T(test_mul_spatial),    T(test_mul_channel), T(test_avgpool_global),
        T(test_avgpool_block), T(test_linear),       T(test_softmax_ce), T(test_mse),
        T(test_adamw),       T(test_host_alloc),     T(test_upload_ahead), T(test_graphs),
        T(test_no_error),
    };
    int rc;
    /* FB_TEST_ONLY=PATTERN: only the tests whose names match (cmocka's filter: * and ? wildcards) */
    if (getenv("FB_TEST_ONLY")) cmocka_set_test_filter(getenv("FB_TEST_ONLY"));
    if (open_backends() != 0) {
        const struct CMUnitTest failed[] = {cmocka_unit_test(test_backend_open)};
        rc = cmocka_run_group_tests_name("backend", failed, NULL, NULL);
    } else {
        rc = cmocka_run_group_tests_name("backend", tests, NULL, NULL);
    }
    backend_close(B);
    backend_close(R);
    return rc;
}
