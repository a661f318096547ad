/* test_kernels_emu.cpp: engine/cuda/kernels.cu's own kernels, compiled
 * unchanged for the host over the CUDA emulation of cuda_emu.h (256 real
 * threads per block, so barriers and the shared-memory trees run for real),
 * each k_* function checked BITWISE against the CPU reference: ops_misc.c,
 * ops_conv.c's linear_bwd and batch norm, and the CPU backend's
 * tape helpers and AdamW (optim.c), or a small reference written here where
 * the CPU has none (bias_add_rows, BF16 casts, fold_bn's documented formula).
 * Any change to kernels.cu is checked by `make test` without a GPU, in the
 * spirit of ggml's test-backend-ops. TAP output: one line per kernel group
 * and configuration, `# ` lines with the first differing elements.
 *
 * Every group runs three times: as on a device; with LAUNCH_IDX forced to
 * its size_t path (emu_idx_limit 0); and with grids of at most 3 blocks
 * (kernels.cu's MAX_BLOCKS and MSE_BLOCKS lowered), so that every grid-stride
 * and per-plane loop wraps at small sizes (a real wrap needs more than
 * 65535*256 elements: too slow here). Shapes: batch > 1, odd sizes, 1x1
 * spatial, sizes on both sides of multiples of 256, planes larger than a
 * block. Outputs start as a sentinel with guard zones on both sides, so an
 * element left unwritten or a write outside the output (or outside a
 * quadrant) shows; gradients that ADD (+=) start from random values. Inputs
 * carry NaNs with payloads, infinities, signed zeros and subnormals (those
 * of sums only finite ones: see with_finite_specials). Then, once: a failed
 * backend (sticky error) runs nothing, empty work launches nothing, and
 * a scratch too small for the partial sums is refused.
 *
 * Bitwise equality is what kernels.cu promises on the host's arithmetic.
 * Four sums (mul_channel_bwd's ds, avgpool_*_fwd, mse, batch norm's) add doubles in a
 * block-tree order instead of the CPU's: with the fixed data here they
 * round to the same float, as kernels.cu's header says they do (a 1-ulp
 * difference there after a change of data would be that, not a bug).
 * Not covered (a GPU run of tests/test_backend.c is): the device's expf /
 * exp / log (the emulation uses the host's libm), and NaN bits produced by
 * arithmetic (the host keeps a NaN operand's payload; a GPU returns its
 * canonical NaN), cuDNN and cuBLAS.
 *
 * Run alone: make build/tests/test_kernels_emu && build/tests/test_kernels_emu
 * (about 6 s on 2 cores; blocks run one after another). */
extern "C" {
#include "../../engine/backend.h"
#include "../../engine/ops.h"
#include "../../engine/optim.h"
}
#include "cuda_emu.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <vector>

/* ---- the two backends ---- */

static cuda_ctx emu_cx;
static backend emu_b; /* kernels.cu over the emulation */
static backend *E = &emu_b;
static backend *cpu; /* the reference (backend_cpu.c) */

/* backend_cuda.cu's cu_fail and cu_check, which kernels.cu calls: the
 * first error is kept (sticky). The test stands in for that file, which
 * needs the whole emulated runtime. */
int cu_fail(backend *b, const char *what, const char *detail)
{
    cuda_ctx *cx = CX(b);
    if (!cx->failed) {
        cx->failed = 1;
        snprintf(cx->err, sizeof cx->err, "%s: %s", what, detail);
    }
    return 1;
}
int cu_check(backend *b, cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return 0;
    char detail[48];
    snprintf(detail, sizeof detail, "emulated CUDA error %d", (int)e);
    return cu_fail(b, what, detail);
}

/* backend_cuda.cu allocates the kernels' scratch once; so does this test. */
static std::vector<double> emu_scratch(K_SCRATCH_DOUBLES);
static void scratch_full(void) { emu_cx.scratch = emu_scratch.data(), emu_cx.scratch_n = emu_scratch.size(); }

/* ---- results ---- */

static int case_failed, diag_left;
static char where[128]; /* the sub-case being run, for diagnostics */

static void diag(const char *fmt, ...)
{
    if (diag_left <= 0) return;
    diag_left--;
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

#define AT(...) snprintf(where, sizeof where, __VA_ARGS__)

static void fail(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    case_failed++;
    diag("%s: %s", where, msg);
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void show(char *s, size_t n, float v) { snprintf(s, n, "0x%08x (%.9g)", bits(v), (double)v); }
static void show(char *s, size_t n, int32_t v) { snprintf(s, n, "%d", (int)v); }
static void show(char *s, size_t n, uint16_t v) { snprintf(s, n, "0x%04x", (unsigned)v); }

/* emu[i] and ref[i] byte for byte; `base` elements of guard zone before
 * index 0 (and as many after n): an index outside [0, n) is a guard. */
template <class T>
static void expect_same(const char *what, const T *emu, const T *ref, size_t n, size_t base = 0)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(&emu[i], &ref[i], sizeof(T)) != 0;
    if (!bad) return;
    fail("%s: %zu of %zu elements differ", what, bad, n - 2 * base);
    for (size_t i = 0, shown = 0; i < n && shown < 3; i++) {
        if (memcmp(&emu[i], &ref[i], sizeof(T)) == 0) continue;
        char a[48], b[48];
        show(a, sizeof a, emu[i]), show(b, sizeof b, ref[i]);
        ptrdiff_t at = (ptrdiff_t)i - (ptrdiff_t)base;
        diag("  %s[%td]%s: emu %s, ref %s", what, at, at < 0 || i >= n - base ? " (guard zone)" : "", a, b);
        shown++;
    }
}

/* ---- buffers: outputs with sentinel guard zones ---- */

enum { GUARD = 8 };
static float sentinel(float *) { return from_bits(0x7fa5a5a5u); } /* a NaN no kernel makes */
static int32_t sentinel(int32_t *) { return 0x5a5a5a5a; }
static uint16_t sentinel(uint16_t *) { return 0xa5a5; }

template <class T> struct gbuf {
    std::vector<T> v;
    explicit gbuf(size_t n) : v(n + 2 * GUARD, sentinel((T *)nullptr)) {}
    explicit gbuf(const std::vector<T> &init) : gbuf(init.size()) { std::copy(init.begin(), init.end(), p()); }
    T *p() { return v.data() + GUARD; }
    size_t n() const { return v.size() - 2 * GUARD; }
};

template <class T> static void expect_same(const char *what, const gbuf<T> &emu, const gbuf<T> &ref)
{
    if (emu.v.size() != ref.v.size()) {
        fail("%s: test bug, buffer sizes differ", what);
        return;
    }
    expect_same(what, emu.v.data(), ref.v.data(), emu.v.size(), GUARD);
}

template <class T> static T *on(gbuf<T> &b, int want) { return want ? b.p() : nullptr; }

/* ---- data: a fixed generator, so every run sees the same numbers ---- */

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint32_t rnd32(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}
static float uni(float lo, float hi) { return lo + (hi - lo) * ((float)(rnd32() >> 8) * 0x1p-24f); }
static std::vector<float> randv(size_t n, float lo = -2.0f, float hi = 2.0f)
{
    std::vector<float> v(n);
    for (auto &x : v) x = uni(lo, hi);
    return v;
}

/* Values that break careless code, at scattered places. */
static const uint32_t SPECIALS[] = {
    0x7fc01234u, /* NaN with a payload */
    0xffc00005u, /* negative NaN */
    0x7f800001u, /* signalling NaN */
    0x7f800000u, 0xff800000u, /* +-Inf */
    0x00000000u, 0x80000000u, /* +-0 */
    0x00000001u, 0x80012345u, /* subnormals */
    0x7f7fffffu, 0xff7fffffu, /* +-FLT_MAX */
    0x0d800000u,              /* 7.9e-31 */
};
static std::vector<float> with_specials(std::vector<float> v)
{
    const size_t ns = sizeof SPECIALS / sizeof *SPECIALS, step = v.size() / 23 + 1;
    for (size_t i = 0, k = 0; i < v.size(); i += step, k++) v[i] = from_bits(SPECIALS[k % ns]);
    return v;
}

/* For sums: with two different NaNs in one sum (or one made there, as
 * Inf - Inf), which payload survives depends on the operand order, which the
 * compiler may swap on the CPU as here; so sums get finite specials only. */
static std::vector<float> with_finite_specials(std::vector<float> v)
{
    static const uint32_t fs[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x80012345u, 0x0d800000u};
    const size_t step = v.size() / 23 + 1;
    for (size_t i = 0, k = 0; i < v.size(); i += step, k++) v[i] = from_bits(fs[k % 5]);
    return v;
}

static const char *shape_str(shape4 s)
{
    static char b[64];
    snprintf(b, sizeof b, "%dx%dx%dx%d", s.n, s.c, s.h, s.w);
    return b;
}

/* Batch > 1, odd, 1x1, multiples of 256 and not, planes larger than a block. */
static const shape4 SHAPES[] = {{2, 3, 4, 6},   {1, 1, 2, 2},  {1, 1, 1, 1},  {2, 4, 7, 9},
                                {3, 5, 12, 10}, {1, 2, 16, 16}, {2, 3, 24, 24}, {1, 2, 2, 200},
                                {2, 16, 3, 3},  {1, 2, 33, 31}};
static const size_t COUNTS[] = {1, 7, 255, 256, 257, 4099};

/* ---- the tape's elementwise helpers, against the CPU backend ---- */

static void t_fill(void)
{
    const float vals[] = {0.0f, -0.0f, 1.5f, from_bits(0x7fc01234u)}; /* +0: the memset path */
    for (size_t n : COUNTS)
        for (float v : vals) {
            AT("n=%zu v=0x%08x", n, bits(v));
            gbuf<float> e(n), r(n);
            k_fill(E, e.p(), v, n), cpu->fill(cpu, r.p(), v, n);
            expect_same("y", e, r);
        }
}

static void t_copy(void)
{
    for (size_t n : COUNTS) {
        AT("n=%zu", n);
        auto x = with_specials(randv(n));
        gbuf<float> e(n), r(n);
        k_copy(E, e.p(), x.data(), n), cpu->copy(cpu, r.p(), x.data(), n);
        expect_same("y", e, r);
        k_copy(E, e.p(), e.p(), n); /* y == x: nothing to do */
        expect_same("y (copy onto itself)", e, r);
    }
}

static void t_acc(void)
{
    for (size_t n : COUNTS) {
        AT("n=%zu", n);
        auto x = with_specials(randv(n)), y0 = randv(n);
        gbuf<float> e(y0), r(y0); /* += onto existing values */
        k_acc(E, e.p(), x.data(), n), cpu->acc(cpu, r.p(), x.data(), n);
        expect_same("y", e, r);
    }
}

static void t_add(void)
{
    for (size_t n : COUNTS) {
        AT("n=%zu", n);
        auto x1 = with_specials(randv(n)), x2 = randv(n);
        gbuf<float> e(n), r(n);
        k_add(E, e.p(), x1.data(), x2.data(), n), cpu->add(cpu, r.p(), x1.data(), x2.data(), n);
        expect_same("y", e, r);
    }
}

static void t_axpb(void)
{
    const float ac[][2] = {{0.3f, -0.7f}, {-1.0f, 0.0f}, {3.0e38f, 1.0f}};
    for (size_t n : COUNTS)
        for (auto &p : ac) {
            AT("n=%zu a=%g c=%g", n, (double)p[0], (double)p[1]);
            auto x = with_specials(randv(n));
            gbuf<float> e(n), r(n);
            k_axpb(E, e.p(), x.data(), p[0], p[1], n), cpu->axpb(cpu, r.p(), x.data(), p[0], p[1], n);
            expect_same("y", e, r);
        }
}

/* ---- activations ---- */

static void t_relu(void)
{
    for (shape4 s : SHAPES) {
        size_t n = shape4_numel(s);
        AT("n=%zu", n);
        auto x = with_specials(randv(n)), dy = with_specials(randv(n));
        gbuf<float> e(n), r(n);
        k_relu_fwd(E, x.data(), n, e.p()), relu_fwd(x.data(), n, r.p());
        expect_same("relu_fwd y", e, r);
        gbuf<float> de(n), dr(n);
        k_relu_bwd(E, x.data(), dy.data(), n, de.p()), relu_bwd(x.data(), dy.data(), n, dr.p());
        expect_same("relu_bwd dx", de, dr);
    }
}

static void t_sigmoid(void)
{
    for (shape4 s : SHAPES) {
        size_t n = shape4_numel(s);
        AT("n=%zu", n);
        auto x = randv(n, -20.0f, 20.0f);
        x = with_specials(x);
        if (n > 3) x[1] = 90.0f, x[2] = -90.0f, x[3] = 1e-8f;
        gbuf<float> e(n), r(n);
        k_sigmoid_fwd(E, x.data(), n, e.p()), sigmoid_fwd(x.data(), n, r.p());
        expect_same("sigmoid_fwd y", e, r);
        auto y = randv(n, 0.0f, 1.0f), dy = with_specials(randv(n));
        gbuf<float> de(n), dr(n);
        k_sigmoid_bwd(E, y.data(), dy.data(), n, de.p()), sigmoid_bwd(y.data(), dy.data(), n, dr.p());
        expect_same("sigmoid_bwd dx", de, dr);
    }
}

/* ---- resampling ---- */

/* Few distinct values (ties), signed zeros and NaNs with distinct payloads:
 * the first maximum must win and the first NaN of a window propagate. */
static std::vector<float> pool_input(size_t n)
{
    static const uint32_t odd[] = {0x7fc00001u, 0xffc00002u, 0x7fc00003u, 0x80000000u, 0x00000000u, 0xff800000u};
    std::vector<float> x(n);
    for (auto &v : x) {
        uint32_t r = rnd32() % 16;
        v = r < 6 ? from_bits(odd[r]) : (float)((int)(r % 5) - 2) * 0.5f;
    }
    return x;
}

static void t_maxpool(void)
{
    for (shape4 s : SHAPES) {
        shape4 ys = {s.n, s.c, s.h / 2, s.w / 2};
        size_t n = shape4_numel(s), m = shape4_numel(ys);
        AT("x %s", shape_str(s));
        auto x = pool_input(n);
        gbuf<float> ye(m), yr(m);
        gbuf<int32_t> ae(m), ar(m);
        k_maxpool2_fwd(E, x.data(), s, ye.p(), ae.p()), maxpool2_fwd(x.data(), s, yr.p(), ar.p());
        expect_same("maxpool2_fwd y", ye, yr);
        expect_same("maxpool2_fwd argmax", ae, ar);
        auto dy = with_specials(randv(m)); /* -0 among them: dx gets 0 + dy, as the CPU */
        gbuf<float> de(n), dr(n);
        k_maxpool2_bwd(E, ar.p(), dy.data(), ys, de.p(), s), maxpool2_bwd(ar.p(), dy.data(), ys, dr.p(), s);
        expect_same("maxpool2_bwd dx", de, dr);
    }
}

static void t_upsample(void)
{
    for (shape4 s : SHAPES) {
        size_t n = shape4_numel(s);
        AT("x %s", shape_str(s));
        auto x = with_specials(randv(n)), dy = with_finite_specials(randv(4 * n)); /* bwd adds 4 */
        gbuf<float> ye(4 * n), yr(4 * n), de(n), dr(n);
        k_upsample2_fwd(E, x.data(), s, ye.p()), upsample2_fwd(x.data(), s, yr.p());
        expect_same("upsample2_fwd y", ye, yr);
        k_upsample2_bwd(E, dy.data(), s, de.p()), upsample2_bwd(dy.data(), s, dr.p());
        expect_same("upsample2_bwd dx", de, dr);
    }
}

/* ---- concat: a has C channels, c has cc (0 included) ---- */

static void t_concat(void)
{
    for (shape4 s : SHAPES)
        for (int cc : {2, 0}) {
            int ca = s.n == 1 && s.c == 1 ? 0 : s.c; /* a with no channels too */
            size_t hw = (size_t)s.h * s.w, na = (size_t)s.n * ca * hw, nc = (size_t)s.n * cc * hw, ny = na + nc;
            AT("a %dx%dx%dx%d, c %d channels", s.n, ca, s.h, s.w, cc);
            auto a = randv(na), c = randv(nc), dy = with_specials(randv(ny));
            gbuf<float> ye(ny), yr(ny);
            k_concat_fwd(E, a.data(), ca, c.data(), cc, s.n, s.h, s.w, ye.p());
            concat_fwd(a.data(), ca, c.data(), cc, s.n, s.h, s.w, yr.p());
            expect_same("concat_fwd y", ye, yr);
            for (int want = 0; want < 4; want++) { /* da, dc or both may be NULL */
                AT("a %dx%dx%dx%d, c %d channels, da %s, dc %s", s.n, ca, s.h, s.w, cc, want & 1 ? "on" : "NULL",
                   want & 2 ? "on" : "NULL");
                gbuf<float> dae(na), dar(na), dce(nc), dcr(nc);
                k_concat_bwd(E, dy.data(), ca, cc, s.n, s.h, s.w, on(dae, want & 1), on(dce, want & 2));
                concat_bwd(dy.data(), ca, cc, s.n, s.h, s.w, on(dar, want & 1), on(dcr, want & 2));
                expect_same("concat_bwd da", dae, dar);
                expect_same("concat_bwd dc", dce, dcr);
            }
        }
}

/* ---- quadrants ---- */

static void t_quadrants(void)
{
    for (shape4 s : SHAPES)
        for (int q = 0; q < 4; q++) {
            int hh = s.h / 2, hw = s.w / 2, r0 = q & 2 ? hh : 0, c0 = q & 1 ? hw : 0;
            size_t n = shape4_numel(s), m = (size_t)s.n * s.c * hh * hw;
            AT("x %s q=%d", shape_str(s), q);
            auto x = with_specials(randv(n)), y = with_specials(randv(m)), x0 = randv(n);
            gbuf<float> ye(m), yr(m);
            k_quadrant_crop(E, x.data(), s, q, ye.p()), quadrant_crop(x.data(), s, q, yr.p());
            expect_same("quadrant_crop y", ye, yr);
            gbuf<float> xe(x0), xr(x0); /* the rest of x must keep its values */
            k_quadrant_assemble(E, y.data(), s, q, xe.p()), quadrant_assemble(y.data(), s, q, xr.p());
            expect_same("quadrant_assemble x", xe, xr);
            size_t outside = 0;
            for (size_t i = 0; i < n; i++) {
                int j = (int)(i % s.w), r = (int)(i / s.w % s.h);
                int in = r >= r0 && r < r0 + hh && j >= c0 && j < c0 + hw;
                if (!in && bits(xe.p()[i]) != bits(x0[i])) outside++;
            }
            if (outside) fail("quadrant_assemble wrote %zu elements outside quadrant %d", outside, q);
        }
}

/* ---- broadcast products (NULL gradients in every combination) ---- */

static void t_mul_spatial(void)
{
    for (shape4 s : SHAPES) {
        size_t n = shape4_numel(s), na = (size_t)s.n * s.h * s.w;
        auto r = with_specials(randv(n)), a = randv(na), dy = with_finite_specials(randv(n));
        AT("r %s", shape_str(s));
        gbuf<float> ye(n), yr(n);
        k_mul_spatial_fwd(E, r.data(), s, a.data(), ye.p()), mul_spatial_fwd(r.data(), s, a.data(), yr.p());
        expect_same("mul_spatial_fwd y", ye, yr);
        r = randv(n); /* da is a sum */
        for (int want = 0; want < 4; want++) {
            AT("r %s dr %s da %s", shape_str(s), want & 1 ? "on" : "NULL", want & 2 ? "on" : "NULL");
            gbuf<float> dre(n), drr(n), dae(na), dar(na);
            k_mul_spatial_bwd(E, r.data(), s, a.data(), dy.data(), on(dre, want & 1), on(dae, want & 2));
            mul_spatial_bwd(r.data(), s, a.data(), dy.data(), on(drr, want & 1), on(dar, want & 2));
            expect_same("mul_spatial_bwd dr", dre, drr);
            expect_same("mul_spatial_bwd da", dae, dar);
        }
    }
}

static void t_mul_channel(void)
{
    for (shape4 s : SHAPES) {
        size_t n = shape4_numel(s), ns = (size_t)s.n * s.c;
        auto r = with_specials(randv(n)), sv = randv(ns), dy = with_finite_specials(randv(n));
        AT("r %s", shape_str(s));
        gbuf<float> ye(n), yr(n);
        k_mul_channel_fwd(E, r.data(), s, sv.data(), ye.p()), mul_channel_fwd(r.data(), s, sv.data(), yr.p());
        expect_same("mul_channel_fwd y", ye, yr);
        r = randv(n); /* ds is a sum */
        for (int want = 0; want < 4; want++) {
            AT("r %s dr %s ds %s", shape_str(s), want & 1 ? "on" : "NULL", want & 2 ? "on" : "NULL");
            gbuf<float> dre(n), drr(n), dse(ns), dsr(ns);
            k_mul_channel_bwd(E, r.data(), s, sv.data(), dy.data(), on(dre, want & 1), on(dse, want & 2));
            mul_channel_bwd(r.data(), s, sv.data(), dy.data(), on(drr, want & 1), on(dsr, want & 2));
            expect_same("mul_channel_bwd dr", dre, drr);
            expect_same("mul_channel_bwd ds", dse, dsr);
        }
    }
}

/* ---- pooling to vectors ---- */

static void t_avgpool_global(void)
{
    for (shape4 s : SHAPES) {
        size_t n = shape4_numel(s), ns = (size_t)s.n * s.c;
        AT("x %s", shape_str(s));
        auto x = randv(n), dy = with_specials(randv(ns));
        gbuf<float> ye(ns), yr(ns), de(n), dr(n);
        k_avgpool_global_fwd(E, x.data(), s, ye.p()), avgpool_global_fwd(x.data(), s, yr.p());
        expect_same("avgpool_global_fwd y", ye, yr);
        k_avgpool_global_bwd(E, dy.data(), s, de.p()), avgpool_global_bwd(dy.data(), s, dr.p());
        expect_same("avgpool_global_bwd dx", de, dr);
    }
}

static void t_avgpool_block(void)
{
    for (shape4 s : SHAPES)
        for (int g : {1, 2, 3, 4}) {
            size_t n = shape4_numel(s), m = (size_t)s.n * s.c * g * g;
            if (s.h % g || s.w % g || m > 60) continue; /* a block per cell, 10 barriers each: keep few */
            AT("x %s g=%d", shape_str(s), g);
            auto x = randv(n), dy = with_specials(randv(m));
            gbuf<float> ye(m), yr(m), de(n), dr(n);
            k_avgpool_block_fwd(E, x.data(), s, g, ye.p()), avgpool_block_fwd(x.data(), s, g, yr.p());
            expect_same("avgpool_block_fwd y", ye, yr);
            k_avgpool_block_bwd(E, dy.data(), s, g, de.p()), avgpool_block_bwd(dy.data(), s, g, dr.p());
            expect_same("avgpool_block_bwd dx", de, dr);
        }
    /* Outside ops.h's contract, as kernels.cu documents it: cells of no
     * pixel (g > H) give NaN forward, as the CPU, and dx = 0 backward (the
     * CPU would divide by zero there, so no comparison with it). */
    shape4 s = {1, 2, 2, 2};
    size_t n = shape4_numel(s), m = (size_t)s.n * s.c * 9;
    AT("x %s g=3 (> H)", shape_str(s));
    auto x = randv(n), dy = randv(m);
    gbuf<float> ye(m), yr(m), de(n), dr(std::vector<float>(n, 0.0f));
    k_avgpool_block_fwd(E, x.data(), s, 3, ye.p()), avgpool_block_fwd(x.data(), s, 3, yr.p());
    expect_same("avgpool_block_fwd y", ye, yr);
    k_avgpool_block_bwd(E, dy.data(), s, 3, de.p());
    expect_same("avgpool_block_bwd dx (all +0)", de, dr);
}

/* ---- linear helpers ---- */

static const int ROWS[][2] = {{1, 1}, {3, 7}, {300, 5}, {2, 1000}, {5, 257}};

/* y[i,o] += bias[o]: the CPU has no separate step (its sgemm adds the bias
 * rows), so the reference is that line. */
static void t_bias_add_rows(void)
{
    for (auto &nr : ROWS) {
        int n = nr[0], out = nr[1];
        size_t m = (size_t)n * out;
        AT("n=%d out=%d", n, out);
        auto y0 = randv(m), bias = with_specials(randv(out));
        gbuf<float> e(y0), r(y0);
        k_bias_add_rows(E, e.p(), bias.data(), n, out);
        for (size_t i = 0; i < m; i++) r.p()[i] += bias[i % out];
        expect_same("y", e, r);
    }
}

/* dbias[o] += sum over rows, as linear_bwd's bias gradient (in 0: no x, w). */
static void t_bias_grad_rows(void)
{
    for (auto &nr : ROWS) {
        int n = nr[0], out = nr[1];
        AT("n=%d out=%d", n, out);
        auto dy = with_finite_specials(randv((size_t)n * out)), d0 = randv(out);
        gbuf<float> e(d0), r(d0);
        k_bias_grad_rows(E, dy.data(), n, out, e.p());
        linear_bwd(NULL, n, 0, NULL, out, dy.data(), NULL, NULL, r.p());
        expect_same("dbias", e, r);
    }
}

/* ---- losses ---- */

static void ce_case(int n, int k, float scale, const std::vector<int32_t> &lab, const std::vector<float> &lg,
                    int with_dl)
{
    size_t nk = (size_t)(n > 0 ? n : 0) * (size_t)(k > 0 ? k : 0);
    gbuf<float> de(nk), dr(nk), le(1), lr(1);
    k_softmax_ce(E, lg.data(), n, k, lab.data(), scale, on(de, with_dl), le.p());
    lr.p()[0] = softmax_ce(lg.data(), n, k, lab.data(), scale, on(dr, with_dl));
    expect_same("loss", le, lr);
    expect_same("dlogits", de, dr);
}

static void t_softmax_ce(void)
{
    const int NK[][2] = {{1, 1}, {1, 3}, {5, 7}, {256, 7}, {300, 7}, {513, 10}};
    for (auto &p : NK) {
        int n = p[0], k = p[1];
        auto lg = randv((size_t)n * k, -10.0f, 10.0f);
        lg[0] = 80.0f;
        if (lg.size() > 2 * (size_t)k) lg[k] = -80.0f, lg[k + 1] = -INFINITY; /* row 1 */
        std::vector<int32_t> lab(n);
        for (auto &l : lab) l = (int32_t)(rnd32() % (uint32_t)k);
        for (int with_dl = 0; with_dl < 2; with_dl++) {
            AT("n=%d k=%d%s", n, k, with_dl ? "" : " dlogits NULL");
            ce_case(n, k, 0.4f, lab, lg, with_dl);
        }
        AT("n=%d k=%d scale 1", n, k);
        ce_case(n, k, 1.0f, lab, lg, 1);
        for (int32_t bad : {k, -1}) { /* loss NaN, dlogits untouched */
            auto lb = lab;
            lb[n - 1] = bad;
            AT("n=%d k=%d label %d", n, k, bad);
            ce_case(n, k, 0.4f, lb, lg, 1);
        }
    }
    std::vector<int32_t> lab(1, 0);
    std::vector<float> lg(1, 0.0f);
    AT("n=0"), ce_case(0, 3, 1.0f, lab, lg, 1);
    AT("k=0"), ce_case(1, 0, 1.0f, lab, lg, 1);
}

static void t_mse(void)
{
    for (size_t n : {(size_t)1, (size_t)255, (size_t)256, (size_t)257, (size_t)1000, (size_t)20000})
        for (int with_da = 0; with_da < 2; with_da++) {
            AT("n=%zu%s", n, with_da ? "" : " da NULL");
            auto a = randv(n), t = randv(n);
            gbuf<float> de(n), dr(n), le(1), lr(1);
            k_mse(E, a.data(), t.data(), n, 0.6f, on(de, with_da), le.p());
            lr.p()[0] = mse(a.data(), t.data(), n, 0.6f, on(dr, with_da));
            expect_same("loss", le, lr);
            expect_same("da", de, dr);
        }
    AT("n=0"); /* NaN, nothing else written */
    gbuf<float> de(4), dr(4), le(1), lr(1);
    k_mse(E, NULL, NULL, 0, 1.0f, de.p(), le.p());
    lr.p()[0] = mse(NULL, NULL, 0, 1.0f, dr.p());
    expect_same("loss", le, lr);
    expect_same("da", de, dr);
}

/* ---- batch norm in training mode (+ ReLU) ----
 * Against batchnorm_fwd_train and batchnorm_bwd, bitwise: statistics,
 * running statistics, output, gradients (the statistics come from one pass
 * from a shifted origin and the double sums run in another order: below
 * float rounding with this data, as kernels.cu says). Backward runs from
 * the kernel's own forward, its output as relu_y on both sides. */
static void bn_case(shape4 s, int relu, float offset)
{
    const size_t n = shape4_numel(s), C = (size_t)s.c;
    auto x = with_finite_specials(randv(n)), dy = with_finite_specials(randv(n));
    for (auto &v : x) v += offset;
    auto g = randv(C, 0.5f, 1.5f), bt = randv(C, -0.5f, 0.5f), rm0 = randv(C), rv0 = randv(C, 0.5f, 1.5f);
    gbuf<float> ye(n), yr(n), sme(C), smr(C), sie(C), sir(C), rme(rm0), rmr(rm0), rve(rv0), rvr(rv0);
    k_bn_fwd_train(E, x.data(), s, g.data(), bt.data(), rme.p(), rve.p(), 0.1f, 1e-5f, relu, ye.p(), sme.p(),
                   sie.p());
    batchnorm_fwd_train(x.data(), s, g.data(), bt.data(), rmr.p(), rvr.p(), 0.1f, 1e-5f, relu, yr.p(), smr.p(),
                        sir.p());
    expect_same("save_mean", sme, smr), expect_same("save_invstd", sie, sir);
    expect_same("running_mean", rme, rmr), expect_same("running_var", rve, rvr);
    expect_same("y", ye, yr);
    for (int want = 1; want < 4; want++) { /* dx, and dgamma with dbeta, each on or NULL (not both NULL) */
        gbuf<float> dxe(n), dxr(n), dge(g), dgr(g), dbe(bt), dbr(bt); /* gradients ADD: start from values */
        const float *ry = relu ? ye.p() : NULL;
        k_bn_bwd(E, x.data(), s, g.data(), sme.p(), sie.p(), ry, dy.data(), on(dxe, want & 1), on(dge, want & 2),
                 on(dbe, want & 2));
        batchnorm_bwd(x.data(), s, g.data(), sme.p(), sie.p(), ry, dy.data(), on(dxr, want & 1), on(dgr, want & 2),
                      on(dbr, want & 2));
        expect_same("dx", dxe, dxr), expect_same("dgamma", dge, dgr), expect_same("dbeta", dbe, dbr);
    }
}

static void t_bn_train(void)
{
    for (shape4 s : SHAPES)
        for (int relu = 0; relu < 2; relu++) {
            AT("x %s%s", shape_str(s), relu ? " +relu" : "");
            bn_case(s, relu, 0.0f);
        }
    /* a mean far from 0 (the shift keeps the variance from cancelling), and
     * channels of more than one chunk */
    for (shape4 s : {shape4{3, 2, 37, 41}, shape4{2, 3, 64, 40}}) {
        AT("x %s +relu, offset 1000", shape_str(s));
        bn_case(s, 1, 1000.0f);
    }
}

/* ---- AdamW: the CPU backend's (adamw_range on the masked elements) ---- */

static void t_adamw(void)
{
    adamw_config custom = {0.01, 0.8, 0.95, 1e-6, 0.1};
    for (size_t n : {(size_t)1, (size_t)300, (size_t)5000})
        for (long step : {1L, 37L}) {
            const adamw_config *cfg = step == 1 ? &custom : nullptr;
            adamw_config paper = adamw_paper();
            adamw_coef k = adamw_coefs(step, step == 1 ? 0.01 : 0.002, cfg ? cfg : &paper);
            AT("n=%zu step=%ld", n, step);
            auto w0 = randv(n), g = with_specials(randv(n)), m0 = randv(n, -0.1f, 0.1f), v0 = randv(n, 0.0f, 1e-3f);
            for (size_t i = 0; i < n; i += 7) g[i] *= 1e-6f; /* small, and 0 */
            if (n > 5) g[5] = 0.0f;
            std::vector<uint8_t> mask(n);
            for (size_t i = 0; i < n; i++) { /* runs of 0 and of nonzero bytes (any nonzero is trainable) */
                static const uint8_t on_vals[] = {1, 2, 255};
                mask[i] = (i / 5) % 3 == 0 ? 0 : on_vals[i % 3];
            }
            if (n == 1) mask[0] = 1;
            gbuf<float> we(w0), wr(w0), me(m0), mr(m0), ve(v0), vr(v0);
            k_adamw(E, we.p(), g.data(), me.p(), ve.p(), mask.data(), n, &k);
            cpu->adamw(cpu, wr.p(), g.data(), mr.p(), vr.p(), mask.data(), n, &k);
            expect_same("w", we, wr);
            expect_same("m", me, mr);
            expect_same("v", ve, vr);
            size_t touched = 0;
            for (size_t i = 0; i < n; i++)
                if (!mask[i] && (bits(we.p()[i]) != bits(w0[i]) || bits(me.p()[i]) != bits(m0[i]) ||
                                 bits(ve.p()[i]) != bits(v0[i])))
                    touched++;
            if (touched) fail("%zu elements with mask 0 changed", touched);
        }
}

/* ---- BF16: the definitions, written here ---- */

static float bf2f(uint16_t h) { return from_bits((uint32_t)h << 16); }

/* The nearer of the two BF16 values around f, the even one on a tie; past
 * the largest finite value the upper neighbour is Inf, counted as 2^128;
 * NaN -> quiet NaN with the sign and the payload's top bits. */
static uint16_t ref_bf16(float f)
{
    uint32_t u = bits(f);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x0040u);
    if (isinf(f)) return (uint16_t)(u >> 16);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1); /* toward zero, away from zero */
    double vhi = (hi & 0x7fffu) == 0x7f80u ? copysign(ldexp(1.0, 128), (double)f) : (double)bf2f(hi);
    double dlo = fabs((double)f - (double)bf2f(lo)), dhi = fabs(vhi - (double)f);
    return dlo < dhi || (dlo == dhi && !(lo & 1u)) ? lo : hi;
}

/* Every sign and exponent with mantissas at the edges and low halves just
 * below, at and above the halfway point; then random floats. */
static std::vector<float> bf16_inputs(void)
{
    std::vector<float> x;
    static const uint32_t mant[] = {0x00, 0x01, 0x3f, 0x40, 0x7e, 0x7f};
    static const uint32_t low[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff};
    for (uint32_t se = 0; se < 512; se++)
        for (uint32_t mt : mant)
            for (uint32_t lw : low) x.push_back(from_bits(se << 23 | mt << 16 | lw));
    for (int i = 0; i < 3001; i++) x.push_back(from_bits(rnd32()));
    return x;
}

static void t_to_bf16(void)
{
    auto x = bf16_inputs();
    size_t n = x.size();
    AT("n=%zu", n);
    gbuf<uint16_t> e(n), r(n);
    k_to_bf16(E, x.data(), n, e.p());
    for (size_t i = 0; i < n; i++) r.p()[i] = ref_bf16(x[i]);
    expect_same("y", e, r);
}

static void t_from_bf16(void)
{
    std::vector<uint16_t> h(65536);
    for (size_t i = 0; i < h.size(); i++) h[i] = (uint16_t)i; /* every BF16 value */
    AT("all 65536 values");
    gbuf<float> e(h.size()), r(h.size());
    k_from_bf16(E, h.data(), h.size(), e.p());
    for (size_t i = 0; i < h.size(); i++) r.p()[i] = bf2f(h[i]);
    expect_same("y", e, r);
}

static void t_acc_bf16(void)
{
    for (size_t n : {(size_t)1, (size_t)257, (size_t)65536}) {
        AT("n=%zu", n);
        std::vector<uint16_t> h(n);
        for (auto &v : h) v = (uint16_t)rnd32();
        auto y0 = randv(n);
        gbuf<float> e(y0), r(y0); /* += */
        k_acc_bf16(E, e.p(), h.data(), n);
        for (size_t i = 0; i < n; i++) r.p()[i] += bf2f(h[i]);
        expect_same("y", e, r);
    }
}

/* A convolution's epilogue: the steps it replaces (the cast from BF16, y +
 * bias rounded once, the CPU's relu_fwd), bit for bit; k_bias_act on FP32
 * in place, k_bf16_epilogue from BF16. Each case runs on every shape, with
 * and without bias (finite specials: one NaN per sum at most) and ReLU. */
static void for_each_epilogue(const std::function<void(shape4, const float *bias, int relu)> &body)
{
    const shape4 S[] = {{1, 1, 1, 1}, {2, 3, 5, 7}, {3, 17, 9, 9}, {1, 300, 1, 1}};
    for (const shape4 &ys : S)
        for (int with_bias = 0; with_bias < 2; with_bias++)
            for (int relu = 0; relu < 2; relu++) {
                AT("y [%d,%d,%d,%d] bias %s relu %d", ys.n, ys.c, ys.h, ys.w, with_bias ? "on" : "NULL", relu);
                auto bias = with_finite_specials(randv((size_t)ys.c));
                body(ys, with_bias ? bias.data() : nullptr, relu);
            }
}

/* r = act(t + bias[c]), as the unfused steps compute it */
static void epilogue_ref(std::vector<float> t, shape4 ys, const float *bias, int relu, float *r)
{
    size_t n = t.size(), hw = (size_t)ys.h * ys.w;
    for (size_t i = 0; bias && i < n; i++) t[i] += bias[(i / hw) % (size_t)ys.c];
    if (relu) relu_fwd(t.data(), n, r);
    else std::copy(t.begin(), t.end(), r);
}

static void t_bias_act(void)
{
    for_each_epilogue([](shape4 ys, const float *bias, int relu) {
        size_t n = shape4_numel(ys);
        auto y0 = with_specials(randv(n));
        gbuf<float> e(y0), r(n);
        unsigned long before = emu_launches;
        k_bias_act(E, e.p(), ys, bias, relu);
        if (!bias && !relu && emu_launches != before) fail("a launch with nothing to do");
        epilogue_ref(y0, ys, bias, relu, r.p());
        expect_same("y", e, r);
    });
}

static void t_bf16_epilogue(void)
{
    for_each_epilogue([](shape4 ys, const float *bias, int relu) {
        size_t n = shape4_numel(ys);
        std::vector<uint16_t> h(n);
        for (auto &v : h) v = (uint16_t)rnd32(); /* every class: NaN, Inf, subnormals, -0 */
        if (n > 2) h[0] = 0x8000u, h[1] = 0x7fc0u, h[2] = 0xff80u;
        gbuf<float> e(n), r(n);
        k_bf16_epilogue(E, h.data(), ys, bias, relu, e.p());
        std::vector<float> t(n);
        for (size_t i = 0; i < n; i++) t[i] = bf2f(h[i]);
        epilogue_ref(t, ys, bias, relu, r.p());
        expect_same("y", e, r);
    });
}

/* ---- BN folding: kernels.cu's documented arithmetic, and batchnorm_fwd_eval ---- */

static void fold_case(int oc, size_t per, int with_gb, int with_bf)
{
    std::vector<float> w(oc * per), g = randv(oc, -2.0f, 2.0f), be = randv(oc), mu = randv(oc),
                                    var = randv(oc, 0.0f, 3.0f);
    for (auto &v : w) v = uni(0.1f, 2.0f) * (rnd32() & 1 ? -1.0f : 1.0f); /* no zeros: see below */
    var[0] = 0.0f;
    const float eps = 1e-5f, *gp = with_gb ? g.data() : nullptr, *bp = with_gb ? be.data() : nullptr;
    gbuf<float> wfe(oc * per), wfr(oc * per), bfe(oc), bfr(oc);
    k_fold_bn(E, w.data(), oc, per, gp, bp, mu.data(), var.data(), eps, wfe.p(), on(bfe, with_bf));
    /* kernels.cu: in double invstd = 1/sqrt(var + eps), scale = (float)(g*invstd),
     * shift = (float)(beta - (mean*g)*invstd); wf = w*scale in float. */
    for (int o = 0; o < oc; o++) {
        double invstd = 1.0 / sqrt((double)var[o] + (double)eps);
        double gg = gp ? (double)gp[o] : 1.0, bt = bp ? (double)bp[o] : 0.0;
        float scale = (float)(gg * invstd);
        for (size_t j = 0; j < per; j++) wfr.p()[o * per + j] = w[o * per + j] * scale;
        if (with_bf) bfr.p()[o] = (float)(bt - (double)mu[o] * gg * invstd);
    }
    expect_same("wf", wfe, wfr);
    expect_same("bf", bfe, bfr);
    /* The same numbers from batchnorm_fwd_eval: y = x*scale + shift, so with
     * mean 0 and no beta (shift +0) y = w*scale (w has no zeros), and on x = 0
     * y = shift (nonzero here). */
    std::vector<float> zeros(oc, 0.0f);
    gbuf<float> ye(oc * per);
    if (per) {
        batchnorm_fwd_eval(w.data(), shape4{1, oc, (int)per, 1}, gp, nullptr, zeros.data(), var.data(), eps, ye.p());
        expect_same("wf (against batchnorm_fwd_eval)", wfe, ye);
    }
    if (with_bf) {
        gbuf<float> yb(oc);
        batchnorm_fwd_eval(zeros.data(), shape4{1, oc, 1, 1}, gp, bp, mu.data(), var.data(), eps, yb.p());
        expect_same("bf (against batchnorm_fwd_eval)", bfe, yb);
    }
}

static void t_fold_bn(void)
{
    const struct {
        int oc;
        size_t per;
    } S[] = {{1, 1}, {5, 27}, {3, 1}, {300, 9}, {7, 0}};
    for (auto &s : S)
        for (int mode = 0; mode < 3; mode++) {
            int with_gb = mode != 1, with_bf = mode != 2;
            AT("oc=%d per_oc=%zu gamma/beta %s bf %s", s.oc, s.per, with_gb ? "on" : "NULL", with_bf ? "on" : "NULL");
            fold_case(s.oc, s.per, with_gb, with_bf);
        }
}

/* ---- the runtime contract: sticky errors, empty work, the kernels' scratch ---- */

/* Every k_* once, with a little work each. */
static void call_every_kernel(float *out, int32_t *iout, uint16_t *hout)
{
    static float in[64];
    static int32_t lab[4], am[4];
    static uint8_t mask[4] = {1, 1, 1, 1};
    static uint16_t hin[4];
    const shape4 s = {1, 1, 2, 2}, y1 = {1, 1, 1, 1};
    adamw_config c = adamw_paper();
    adamw_coef k = adamw_coefs(1, 0.002, &c);
    k_fill(E, out, 1.0f, 4), k_fill(E, out, 0.0f, 4), k_copy(E, out, in, 4), k_acc(E, out, in, 4);
    k_add(E, out, in, in, 4), k_axpb(E, out, in, 2.0f, 1.0f, 4);
    k_relu_fwd(E, in, 4, out), k_relu_bwd(E, in, in, 4, out), k_sigmoid_fwd(E, in, 4, out);
    k_sigmoid_bwd(E, in, in, 4, out), k_maxpool2_fwd(E, in, s, out, iout), k_maxpool2_bwd(E, am, in, y1, out, s);
    k_upsample2_fwd(E, in, s, out), k_upsample2_bwd(E, in, s, out);
    k_concat_fwd(E, in, 1, in, 1, 1, 2, 2, out), k_concat_bwd(E, in, 1, 1, 1, 2, 2, out, out + 4);
    k_quadrant_crop(E, in, s, 0, out), k_quadrant_assemble(E, in, s, 3, out);
    k_mul_spatial_fwd(E, in, s, in, out), k_mul_spatial_bwd(E, in, s, in, in, out, out + 4);
    k_mul_channel_fwd(E, in, s, in, out), k_mul_channel_bwd(E, in, s, in, in, out, out + 4);
    k_avgpool_global_fwd(E, in, s, out), k_avgpool_global_bwd(E, in, s, out);
    k_avgpool_block_fwd(E, in, s, 1, out), k_avgpool_block_bwd(E, in, s, 1, out);
    k_bias_add_rows(E, out, in, 2, 2), k_bias_grad_rows(E, in, 2, 2, out);
    k_softmax_ce(E, in, 2, 2, lab, 1.0f, out, out + 4), k_mse(E, in, in, 4, 1.0f, out, out + 4);
    k_adamw(E, out, in, out + 4, out + 8, mask, 4, &k);
    k_to_bf16(E, in, 4, hout), k_from_bf16(E, hin, 4, out), k_acc_bf16(E, out, hin, 4);
    k_fold_bn(E, in, 2, 2, in, in, in, in, 1e-5f, out, out + 4);
    k_bf16_epilogue(E, hin, s, in, 1, out), k_bias_act(E, out, s, in, 1);
    k_bn_fwd_train(E, in, s, in, in, out, out + 4, 0.1f, 1e-5f, 1, out + 8, out + 12, out + 13);
    k_bn_bwd(E, in, s, in, in, in, in, in, out, out + 4, out + 5);
}

static void t_sticky_error(void)
{
    AT("backend failed");
    gbuf<float> out(16), out0(16);
    gbuf<int32_t> iout(4), iout0(4);
    gbuf<uint16_t> hout(4), hout0(4);
    unsigned long before = emu_launches;
    emu_cx.failed = 1;
    call_every_kernel(out.p(), iout.p(), hout.p());
    emu_cx.failed = 0;
    if (emu_launches != before) fail("%lu kernels ran on a failed backend", emu_launches - before);
    expect_same("out", out, out0), expect_same("int out", iout, iout0), expect_same("bf16 out", hout, hout0);
    /* and the same calls on a healthy backend do run (a check of the check) */
    call_every_kernel(out.p(), iout.p(), hout.p());
    if (emu_launches == before) fail("no kernel ran on a healthy backend");
}

/* No elements, no launch and nothing written (the losses write their NaN). */
static void t_empty(void)
{
    AT("empty sizes");
    gbuf<float> out(4), out0(4);
    gbuf<int32_t> iout(4), iout0(4);
    const shape4 z = {0, 3, 4, 4}, thin = {1, 1, 1, 5}; /* no planes; maxpool of 1 row: no output */
    float in[16] = {0};
    unsigned long before = emu_launches;
    k_fill(E, out.p(), 1.0f, 0), k_copy(E, out.p(), in, 0), k_acc(E, out.p(), in, 0);
    k_add(E, out.p(), in, in, 0), k_axpb(E, out.p(), in, 1.0f, 1.0f, 0), k_relu_fwd(E, in, 0, out.p());
    k_maxpool2_fwd(E, in, thin, out.p(), iout.p()), k_maxpool2_fwd(E, in, z, out.p(), iout.p());
    k_upsample2_fwd(E, in, z, out.p()), k_concat_fwd(E, in, 0, in, 0, 1, 4, 4, out.p());
    k_concat_bwd(E, in, 1, 1, 1, 4, 4, NULL, NULL), k_quadrant_crop(E, in, thin, 0, out.p());
    k_quadrant_assemble(E, in, thin, 0, out.p()), k_mul_spatial_bwd(E, in, thin, in, in, NULL, NULL);
    k_mul_channel_bwd(E, in, thin, in, in, NULL, NULL), k_avgpool_global_fwd(E, in, z, out.p());
    k_avgpool_block_fwd(E, in, thin, 0, out.p()), k_avgpool_block_bwd(E, in, thin, 0, out.p());
    k_bias_add_rows(E, out.p(), in, 0, 4), k_bias_add_rows(E, out.p(), in, 4, 0);
    k_bias_grad_rows(E, in, 0, 4, out.p()), k_bias_grad_rows(E, in, 4, 4, NULL);
    k_fold_bn(E, in, 0, 4, in, in, in, in, 1e-5f, out.p(), out.p());
    k_bf16_epilogue(E, (const uint16_t *)iout.p(), z, in, 1, out.p()), k_bias_act(E, out.p(), z, in, 1);
    k_bn_fwd_train(E, in, z, in, in, out.p(), out.p(), 0.1f, 1e-5f, 1, out.p(), out.p(), out.p());
    k_bn_bwd(E, in, z, in, in, in, in, in, out.p(), out.p(), out.p());
    k_bn_bwd(E, in, thin, in, in, in, in, in, NULL, NULL, NULL); /* no gradient wanted */
    if (emu_launches != before) fail("%lu kernels ran with nothing to do", emu_launches - before);
    expect_same("out", out, out0), expect_same("argmax", iout, iout0);
}

/* The kernels' scratch too small for the partial sums (never with the
 * backend's K_SCRATCH_DOUBLES, which holds mse's MSE_BLOCKS and 4096
 * channels' batch norm): refused with a reason, nothing run or written. */
static void t_scratch_too_small(void)
{
    auto a = randv(3000);
    const shape4 s = {2, 3, 10, 10};
    gbuf<float> da(3000), da0(3000), loss(1), loss0(1), y(600), y0(600), st(3), st0(3);
    struct {
        const char *what, *err;
        size_t cap; /* doubles of scratch offered */
        std::function<void()> call;
    } cases[] = {
        {"k_mse, 12 partial sums in 11", "k_mse", 11, [&] { k_mse(E, a.data(), a.data(), 3000, 1.0f, da.p(), loss.p()); }},
        {"k_bn_fwd_train, 3 channels in 14", "3 channels", 14,
         [&] {
             k_bn_fwd_train(E, a.data(), s, a.data(), a.data(), st.p(), st.p(), 0.1f, 1e-5f, 1, y.p(), st.p(),
                            st.p());
         }},
        {"k_bn_bwd, 3 channels in 14", "3 channels", 14,
         [&] { k_bn_bwd(E, a.data(), s, a.data(), a.data(), a.data(), NULL, a.data(), y.p(), st.p(), st.p()); }},
    };
    for (auto &c : cases) {
        AT("%s", c.what);
        emu_cx.scratch_n = c.cap;
        unsigned long before = emu_launches;
        c.call();
        if (!emu_cx.failed || !strstr(emu_cx.err, c.err)) fail("no error naming \"%s\" (err \"%s\")", c.err, emu_cx.err);
        if (emu_launches != before) fail("%lu kernels ran", emu_launches - before);
        emu_cx.failed = 0, emu_cx.err[0] = 0;
    }
    scratch_full();
    expect_same("da", da, da0), expect_same("loss", loss, loss0), expect_same("y", y, y0);
    expect_same("statistics", st, st0);
}

/* The emulation's check of copies from page-locked memory (which run later
 * on a GPU): a source rewritten before the synchronisation is reported, an
 * unchanged or pageable one is not; a refused cudaHostAlloc returns NULL. */
static void t_pinned_race(void)
{
    AT("cudaHostAlloc sources of cudaMemcpyAsync");
    const long violations0 = emu_violations;
    const size_t n = 1024, bytes = n * sizeof(float);
    void *h = nullptr, *h2 = &h;
    if (cudaHostAlloc(&h, bytes, cudaHostAllocDefault) != cudaSuccess || !h) {
        fail("cudaHostAlloc failed");
        return;
    }
    float *hf = (float *)h;
    for (size_t i = 0; i < n; i++) hf[i] = (float)i;
    gbuf<float> d(n);
    std::vector<float> pageable(n, 1.0f);
    cudaMemcpyAsync(d.p(), h, bytes, cudaMemcpyHostToDevice, nullptr);
    cudaMemcpyAsync(d.p(), pageable.data(), bytes, cudaMemcpyHostToDevice, nullptr);
    pageable[3] = 2.0f; /* pageable sources are read before the call returns: no race */
    if (emu_pinned_check("t_pinned_race") != 0) fail("an unchanged page-locked source was reported");
    cudaMemcpyAsync(d.p(), h, bytes, cudaMemcpyHostToDevice, nullptr);
    hf[n - 1] = -1.0f;
    printf("# (the report below is expected)\n");
    if (emu_pinned_check("t_pinned_race") != 1) fail("a source rewritten before the synchronisation went unreported");
    if (emu_pinned_check("t_pinned_race") != 0) fail("a checked copy was reported again");
    emu_host_alloc_fail = 1;
    if (cudaHostAlloc(&h2, 16, cudaHostAllocDefault) != cudaErrorMemoryAllocation || h2)
        fail("a refused cudaHostAlloc did not return cudaErrorMemoryAllocation and NULL");
    if (cudaFreeHost(h) != cudaSuccess || emu_pinned_live != 0) fail("cudaFreeHost left %ld blocks", emu_pinned_live);
    emu_violations = violations0; /* the one expected report */
}

/* Stream capture: work recorded between cudaStreamBeginCapture and
 * cudaStreamEndCapture runs only when the graph is launched, on the
 * buffers' contents then; a copy to the host invalidates the capture; a
 * launch after an allocation live at the recording has been freed is
 * reported and refused. */
static void t_graph(void)
{
    AT("capture and launch");
    const long violations0 = emu_violations;
    const size_t n = 300;
    std::vector<float> x = randv(n);
    gbuf<float> y(n), untouched(n), want(n);
    cudaGraph_t g = nullptr;
    cudaGraphExec_t ex = nullptr;
    if (cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        fail("cudaStreamBeginCapture failed");
        return;
    }
    k_relu_fwd(E, x.data(), n, y.p());
    if (cudaStreamEndCapture(nullptr, &g) != cudaSuccess || !g || cudaGraphInstantiate(&ex, g, 0) != cudaSuccess) {
        fail("recording a launch failed");
        return;
    }
    cudaGraphDestroy(g);
    expect_same("y after the recording (nothing ran)", y, untouched);
    for (int round = 0; round < 2; round++) {
        std::vector<float> nx = randv(n, -1.0f - round, 1.0f);
        std::copy(nx.begin(), nx.end(), x.begin()); /* in place: the graph holds x's pointer */
        relu_fwd(x.data(), n, want.p());
        if (cudaGraphLaunch(ex, nullptr) != cudaSuccess) fail("cudaGraphLaunch failed");
        expect_same("y after a launch (this round's x)", y, want);
    }
    cudaGraphExecDestroy(ex);
    /* a copy to the host while capturing */
    float h[4];
    cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeThreadLocal);
    if (cudaMemcpyAsync(h, y.p(), sizeof h, cudaMemcpyDeviceToHost, nullptr) != cudaErrorStreamCaptureUnsupported)
        fail("a copy to the host while capturing was not refused");
    if (cudaMemsetAsync(y.p(), 0, sizeof h, nullptr) != cudaErrorStreamCaptureInvalidated)
        fail("work after an invalidated capture was accepted");
    g = (cudaGraph_t)&h;
    if (cudaStreamEndCapture(nullptr, &g) != cudaErrorStreamCaptureInvalidated || g)
        fail("an invalidated capture gave a graph");
    expect_same("y after the invalidated capture", y, want);
    /* a launch whose recording used freed memory */
    void *d = nullptr;
    cudaMallocAsync(&d, 64, nullptr);
    cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeThreadLocal);
    cudaMemsetAsync(d, 0, 64, nullptr);
    cudaStreamEndCapture(nullptr, &g);
    cudaGraphInstantiate(&ex, g, 0);
    cudaGraphDestroy(g);
    cudaFreeAsync(d, nullptr);
    printf("# (the report below is expected)\n");
    if (cudaGraphLaunch(ex, nullptr) != cudaErrorInvalidValue || emu_violations != violations0 + 1)
        fail("a launch after a recorded allocation was freed was not reported and refused");
    cudaGraphExecDestroy(ex);
    if (emu_graphs_live != 0) fail("%ld graphs left", emu_graphs_live);
    emu_violations = violations0; /* the one expected report */
}

/* ---- the run ---- */

struct test_case {
    const char *name;
    void (*fn)(void);
};
static const test_case KERNEL_CASES[] = {
    {"k_fill", t_fill},
    {"k_copy", t_copy},
    {"k_acc (+=)", t_acc},
    {"k_add", t_add},
    {"k_axpb", t_axpb},
    {"k_relu_fwd, k_relu_bwd", t_relu},
    {"k_sigmoid_fwd, k_sigmoid_bwd", t_sigmoid},
    {"k_maxpool2_fwd, k_maxpool2_bwd (ties, NaN, -0)", t_maxpool},
    {"k_upsample2_fwd, k_upsample2_bwd", t_upsample},
    {"k_concat_fwd, k_concat_bwd (NULL gradients)", t_concat},
    {"k_quadrant_crop, k_quadrant_assemble (nothing outside the quadrant)", t_quadrants},
    {"k_mul_spatial_fwd, k_mul_spatial_bwd (NULL gradients)", t_mul_spatial},
    {"k_mul_channel_fwd, k_mul_channel_bwd (NULL gradients)", t_mul_channel},
    {"k_avgpool_global_fwd, k_avgpool_global_bwd", t_avgpool_global},
    {"k_avgpool_block_fwd, k_avgpool_block_bwd", t_avgpool_block},
    {"k_bias_add_rows (+=)", t_bias_add_rows},
    {"k_bias_grad_rows (+=, as linear_bwd)", t_bias_grad_rows},
    {"k_softmax_ce (loss, dlogits, bad labels)", t_softmax_ce},
    {"k_mse", t_mse},
    {"k_adamw (mask)", t_adamw},
    {"k_to_bf16 (nearest even, NaN, Inf, overflow)", t_to_bf16},
    {"k_from_bf16", t_from_bf16},
    {"k_acc_bf16 (+=)", t_acc_bf16},
    {"k_bias_act (bias, ReLU, in place)", t_bias_act},
    {"k_bf16_epilogue (cast, bias, ReLU)", t_bf16_epilogue},
    {"k_fold_bn", t_fold_bn},
    {"k_bn_fwd_train, k_bn_bwd (ReLU fused; NULL gradients)", t_bn_train},
};
static const test_case RUNTIME_CASES[] = {
    {"failed backend (sticky error): every k_* is a no-op", t_sticky_error},
    {"nothing to do: no launch, nothing written", t_empty},
    {"kernels' scratch too small: refused with a reason, nothing run", t_scratch_too_small},
    {"page-locked memory: a source rewritten before the synchronisation is reported", t_pinned_race},
    {"graphs: recorded work runs at each launch; capture errors; stale launches refused", t_graph},
};

struct config {
    const char *tag;
    size_t idx_limit, max_blocks, mse_blocks, bn_chunk;
};
static const config CONFIGS[] = {
    {"", (size_t)1 << 31, 65535, 1024, 4096},
    {" [size_t indices: emu_idx_limit 0]", 0, 65535, 1024, 4096},
    {" [grids of <= 3 blocks: loops wrap; BN chunks of 37 values]", (size_t)1 << 31, 3, 3, 37},
};

static int tap_n, tap_failed;

static void run(const test_case &c, const char *tag)
{
    case_failed = 0, diag_left = 12, where[0] = 0;
    emu_cx.failed = 0, emu_cx.err[0] = 0;
    c.fn();
    if (emu_cx.failed) case_failed++, diag("backend error: %s", emu_cx.err);
    if (emu_live_allocs) case_failed++, diag("%ld device allocations left (kernels.cu allocates none)", emu_live_allocs);
    printf("%s %d - %s%s\n", case_failed ? "not ok" : "ok", ++tap_n, c.name, tag);
    fflush(stdout);
    tap_failed += case_failed != 0;
}

int main(void)
{
    const size_t nk = sizeof KERNEL_CASES / sizeof *KERNEL_CASES, nc = sizeof CONFIGS / sizeof *CONFIGS;
    const size_t nr = sizeof RUNTIME_CASES / sizeof *RUNTIME_CASES;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("1..%zu\n", nk * nc + nr);
    cpu = backend_cpu_create(NULL);
    if (!cpu) {
        printf("Bail out! no CPU backend\n");
        return 1;
    }
    emu_b.name = "cuda-emu";
    emu_b.ctx = &emu_cx;
    scratch_full();
    for (const config &cf : CONFIGS) {
        emu_idx_limit = cf.idx_limit, emu_max_blocks = cf.max_blocks, emu_mse_blocks = cf.mse_blocks;
        emu_bn_chunk = cf.bn_chunk;
        for (const test_case &c : KERNEL_CASES) run(c, cf.tag);
    }
    emu_idx_limit = CONFIGS[0].idx_limit, emu_max_blocks = CONFIGS[0].max_blocks;
    emu_mse_blocks = CONFIGS[0].mse_blocks, emu_bn_chunk = CONFIGS[0].bn_chunk;
    for (const test_case &c : RUNTIME_CASES) run(c, "");
    printf("# %lu kernel launches emulated\n", emu_launches);
    cpu->destroy(cpu);
    return tap_failed ? 1 : 0;
}
