/* kernels.cu: the CUDA backend's own kernels (see cuda_internal.h): the
 * elementwise helpers of the tape, activations, resampling, concat,
 * quadrants, broadcast products, pooling to vectors, training batch norm
 * (+ReLU), the two losses, AdamW, BF16 conversion and BN folding. Semantics are ops.h's, as ops_misc.c
 * implements them: NCHW float32, same index conventions, backward writes (=)
 * input gradients in full, NULL gradient pointers are skipped.
 *
 * Every function launches on cx->stream, returns at once when the backend
 * has failed (sticky error) or there is nothing to do, and checks its
 * launches. Reproducibility: no atomics; every output element is written by
 * one thread, and every sum runs in an order fixed by the shapes alone (a
 * thread's own loop, then a fixed shared-memory tree), so results are
 * bitwise identical run to run.
 *
 * Parity with the CPU: nvcc contracts a*b + c into an FMA by default while
 * the CPU build (gcc -std=c11, x86-64 without FMA) rounds the product first,
 * so wherever a product feeds an addition the kernels spell the operations
 * with __fmul_rn / __fadd_rn (and their double twins), which are never
 * contracted. Sums in float run in the CPU's order; sums in double run in a
 * different order only where a block tree reduces them (mul_channel_bwd's
 * ds, avgpool_*_fwd, mse, batch norm), which changes nothing above ~1e-16
 * relative before the result is rounded to float. Batch norm in training
 * also differs from the CPU by design (its section says how).
 *
 * Also compiled for the host by tests/cuda_emu/ (a logic test: 256 threads
 * per block emulated with real threads, every k_* checked bitwise against
 * the CPU reference); with FB_CUDA_EMU its cuda_emu.h stands in for CUDA and
 * supplies LAUNCH, LAUNCH_IDX and the grid limits. With FB_CUDA_EMU_FULL too,
 * the whole backend is built over the emulation (libfbcuda_emu.so). */
#if defined(FB_CUDA_EMU) && !defined(FB_CUDA_EMU_FULL) /* kernels alone */
#include "cuda_emu.h"
#else /* on CUDA, or the whole backend emulated (tests/cuda_emu/include/) */
#include "cuda_internal.h"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

static constexpr int THREADS = 256;          /* every launch; a power of two (block_sum) */
#ifndef FB_CUDA_EMU /* the emulation lowers these so that its small tests wrap grid-stride loops */
static constexpr size_t MAX_BLOCKS = 65535;   /* grid-stride loops cover the rest */
static constexpr size_t MSE_BLOCKS = 1024;    /* most partial sums mse takes */
#endif

/* Blocks of THREADS for n independent items, capped (grid-stride loops). */
static unsigned grid_for(size_t n)
{
    size_t g = (n + THREADS - 1) / THREADS;
    if (g < 1) g = 1;
    return (unsigned)(g < MAX_BLOCKS ? g : MAX_BLOCKS);
}

/* Blocks for `items` that each get a whole block (per-plane reductions). */
static unsigned grid_items(size_t items)
{
    return (unsigned)(items < 1 ? 1 : items < MAX_BLOCKS ? items : MAX_BLOCKS);
}

/* Nothing to launch: the backend has failed, or there are no elements. */
static int skip(backend *b, size_t n) { return CX(b)->failed || n == 0; }

#ifndef FB_CUDA_EMU /* the emulation's LAUNCH and LAUNCH_IDX run the kernel on host threads */
/* Launches kern<<<grid, THREADS>>> on the stream and checks the launch. */
#define LAUNCH(kern, grid, ...)                                                \
    do {                                                                       \
        kern<<<(grid), THREADS, 0, CX(b)->stream>>>(__VA_ARGS__);              \
        cu_check(b, cudaGetLastError(), #kern);                                \
    } while (0)

/* The same with the kernel's index type chosen by the largest index it forms
 * (`big` elements): 32-bit arithmetic (cheap division) below 2^31, where
 * i + grid stride cannot wrap, else size_t. */
#define LAUNCH_IDX(big, kern, grid, ...)                                                      \
    do {                                                                                      \
        if ((size_t)(big) < ((size_t)1 << 31))                                                \
            kern<uint32_t><<<(grid), THREADS, 0, CX(b)->stream>>>(__VA_ARGS__);               \
        else                                                                                  \
            kern<size_t><<<(grid), THREADS, 0, CX(b)->stream>>>(__VA_ARGS__);                 \
        cu_check(b, cudaGetLastError(), #kern);                                               \
    } while (0)
#endif

/* Grid-stride loop over [0, n) in index type I. */
#define FOR_EACH(I, i, n) \
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < (n); i += (I)gridDim.x * (I)blockDim.x)

static __device__ __forceinline__ float qnan(void) { return __int_as_float(0x7fc00000); } /* glibc's NAN */

/* Sum of every thread's v over the block (blockDim.x == THREADS) by a fixed
 * tree; the result is valid in thread 0 (all threads must call). */
static __device__ double block_sum(double v)
{
    __shared__ double sh[THREADS];
    unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned s = THREADS / 2u; s > 0; s >>= 1) {
        if (t < s) sh[t] = __dadd_rn(sh[t], sh[t + s]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads(); /* sh may be reused by the caller's next round */
    return r;
}

/* ---- elementwise helpers of the tape ---- */

/* y[i] = v */
static __global__ void fill_kernel(float *y, float v, size_t n)
{
    FOR_EACH(size_t, i, n) y[i] = v;
}
/* y[i] += x[i] */
static __global__ void acc_kernel(float *y, const float *x, size_t n)
{
    FOR_EACH(size_t, i, n) y[i] = __fadd_rn(y[i], x[i]);
}
/* y[i] = x1[i] + x2[i] */
static __global__ void add_kernel(float *y, const float *x1, const float *x2, size_t n)
{
    FOR_EACH(size_t, i, n) y[i] = __fadd_rn(x1[i], x2[i]);
}
/* y[i] = a * x[i] + c (product rounded first, as the CPU) */
static __global__ void axpb_kernel(float *y, const float *x, float a, float c, size_t n)
{
    FOR_EACH(size_t, i, n) y[i] = __fadd_rn(__fmul_rn(a, x[i]), c);
}

void k_fill(backend *b, float *y, float v, size_t n)
{
    if (skip(b, n)) return;
    if (v == 0.0f && !signbit(v)) { /* +0.0f: all bytes zero */
        cu_check(b, cudaMemsetAsync(y, 0, n * sizeof(float), CX(b)->stream), "k_fill");
        return;
    }
    LAUNCH(fill_kernel, grid_for(n), y, v, n);
}

void k_copy(backend *b, float *y, const float *x, size_t n)
{
    if (skip(b, n) || y == x) return;
    cu_check(b, cudaMemcpyAsync(y, x, n * sizeof(float), cudaMemcpyDeviceToDevice, CX(b)->stream), "k_copy");
}

void k_acc(backend *b, float *y, const float *x, size_t n)
{
    if (skip(b, n)) return;
    LAUNCH(acc_kernel, grid_for(n), y, x, n);
}

void k_add(backend *b, float *y, const float *x1, const float *x2, size_t n)
{
    if (skip(b, n)) return;
    LAUNCH(add_kernel, grid_for(n), y, x1, x2, n);
}

void k_axpb(backend *b, float *y, const float *x, float a, float c, size_t n)
{
    if (skip(b, n)) return;
    LAUNCH(axpb_kernel, grid_for(n), y, x, a, c, n);
}

/* ---- activations ---- */

/* y = x > 0 ? x : 0 (NaN -> 0, as the CPU) */
static __global__ void relu_fwd_kernel(const float *x, size_t n, float *y)
{
    FOR_EACH(size_t, i, n)
    {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}
/* dx = y > 0 ? dy : 0, from the output */
static __global__ void relu_bwd_kernel(const float *y, const float *dy, size_t n, float *dx)
{
    FOR_EACH(size_t, i, n)
    {
        float g = dy[i];
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}
/* y = 1 / (1 + exp(-x)), exp only of -|x| */
static __global__ void sigmoid_fwd_kernel(const float *x, size_t n, float *y)
{
    FOR_EACH(size_t, i, n)
    {
        float v = x[i], e = expf(-fabsf(v));
        y[i] = __fdiv_rn(v >= 0.0f ? 1.0f : e, __fadd_rn(1.0f, e));
    }
}
/* dx = (dy * y) * (1 - y), from the output */
static __global__ void sigmoid_bwd_kernel(const float *y, const float *dy, size_t n, float *dx)
{
    FOR_EACH(size_t, i, n)
    {
        float s = y[i];
        dx[i] = __fmul_rn(__fmul_rn(dy[i], s), __fsub_rn(1.0f, s));
    }
}

void k_relu_fwd(backend *b, const float *x, size_t n, float *y)
{
    if (skip(b, n)) return;
    LAUNCH(relu_fwd_kernel, grid_for(n), x, n, y);
}

void k_relu_bwd(backend *b, const float *y, const float *dy, size_t n, float *dx)
{
    if (skip(b, n)) return;
    LAUNCH(relu_bwd_kernel, grid_for(n), y, dy, n, dx);
}

void k_sigmoid_fwd(backend *b, const float *x, size_t n, float *y)
{
    if (skip(b, n)) return;
    LAUNCH(sigmoid_fwd_kernel, grid_for(n), x, n, y);
}

void k_sigmoid_bwd(backend *b, const float *y, const float *dy, size_t n, float *dx)
{
    if (skip(b, n)) return;
    LAUNCH(sigmoid_bwd_kernel, grid_for(n), y, dy, n, dx);
}

/* ---- resampling ---- */

/* x [P,H,W] (P = N*C) -> y [P,OH,OW], OH = H/2, OW = W/2; argmax = flat index
 * into x. Window order x[2i][2j], x[2i][2j+1], x[2i+1][2j], x[2i+1][2j+1]; a
 * candidate replaces the best when the best is not NaN and it is larger or
 * NaN (first maximum wins, NaN propagates), as ops_misc.c. */
template <typename I>
static __global__ void maxpool2_fwd_kernel(const float *x, I h, I w, I oh, I ow, I total, float *y, int32_t *argmax)
{
    FOR_EACH(I, e, total)
    {
        I j = e % ow, t = e / ow, i = t % oh, p = t / oh;
        I i0 = (p * h + 2 * i) * w + 2 * j;
        const I ci[3] = {i0 + 1, i0 + w, i0 + w + 1};
        float bv = x[i0];
        I best = i0;
        for (int k = 0; k < 3; k++) {
            float v = x[ci[k]];
            if (bv == bv && (v > bv || v != v)) bv = v, best = ci[k];
        }
        y[e] = bv;
        argmax[e] = (int32_t)best;
    }
}

/* dx [P,H,W] in full from dy [P,OH,OW]: each x element lies in at most one
 * window, so it is dy of that window where argmax points at it, else 0
 * (0 + dy, as the CPU's zero-then-add, so -0 becomes +0). */
template <typename I>
static __global__ void maxpool2_bwd_kernel(const int32_t *argmax, const float *dy, I yh, I yw, I h, I w, I total,
                                           float *dx)
{
    FOR_EACH(I, e, total)
    {
        I j = e % w, t = e / w, i = t % h, p = t / h;
        float v = 0.0f;
        if (i / 2 < yh && j / 2 < yw) {
            I yi = (p * yh + i / 2) * yw + j / 2;
            if ((long long)argmax[yi] == (long long)e) v = __fadd_rn(0.0f, dy[yi]);
        }
        dx[e] = v;
    }
}

/* x [P,H,W] -> y [P,2H,2W], y[p,i,j] = x[p,i/2,j/2] */
template <typename I>
static __global__ void upsample2_fwd_kernel(const float *x, I h, I w, I total, float *y)
{
    FOR_EACH(I, e, total)
    {
        I j = e % (2 * w), t = e / (2 * w), i = t % (2 * h), p = t / (2 * h);
        y[e] = x[(p * h + i / 2) * w + j / 2];
    }
}

/* dy [P,2H,2W] -> dx [P,H,W]: (top-left + top-right) + (bottom-left + bottom-right) */
template <typename I>
static __global__ void upsample2_bwd_kernel(const float *dy, I h, I w, I total, float *dx)
{
    FOR_EACH(I, e, total)
    {
        I j = e % w, t = e / w, i = t % h, p = t / h;
        const float *r0 = dy + (p * 2 * h + 2 * i) * (2 * w) + 2 * j, *r1 = r0 + 2 * w;
        dx[e] = __fadd_rn(__fadd_rn(r0[0], r0[1]), __fadd_rn(r1[0], r1[1]));
    }
}

void k_maxpool2_fwd(backend *b, const float *x, shape4 xs, float *y, int32_t *argmax)
{
    size_t oh = (size_t)(xs.h / 2), ow = (size_t)(xs.w / 2);
    size_t total = (size_t)xs.n * (size_t)xs.c * oh * ow;
    if (skip(b, total)) return;
    LAUNCH_IDX(shape4_numel(xs), maxpool2_fwd_kernel, grid_for(total), x, xs.h, xs.w, oh, ow, total, y, argmax);
}

void k_maxpool2_bwd(backend *b, const int32_t *argmax, const float *dy, shape4 ys, float *dx, shape4 xs)
{
    size_t total = shape4_numel(xs);
    if (skip(b, total)) return;
    LAUNCH_IDX(total, maxpool2_bwd_kernel, grid_for(total), argmax, dy, ys.h, ys.w, xs.h, xs.w, total, dx);
}

void k_upsample2_fwd(backend *b, const float *x, shape4 xs, float *y)
{
    size_t total = 4 * shape4_numel(xs);
    if (skip(b, total)) return;
    LAUNCH_IDX(total, upsample2_fwd_kernel, grid_for(total), x, xs.h, xs.w, total, y);
}

void k_upsample2_bwd(backend *b, const float *dy, shape4 xs, float *dx)
{
    size_t total = shape4_numel(xs);
    if (skip(b, total)) return;
    LAUNCH_IDX(4 * total, upsample2_bwd_kernel, grid_for(total), dy, xs.h, xs.w, total, dx);
}

/* ---- channel concat: y [N, CA+CC, H, W] = cat[a [N,CA,H,W], c [N,CC,H,W]] ---- */

/* sa = CA*H*W, sc = CC*H*W per image; total = N*(sa+sc) */
template <typename I>
static __global__ void concat_fwd_kernel(const float *a, I sa, const float *c, I sc, I total, float *y)
{
    FOR_EACH(I, e, total)
    {
        I i = e / (sa + sc), o = e % (sa + sc);
        y[e] = o < sa ? a[i * sa + o] : c[i * sc + (o - sa)];
    }
}

/* da, dc written in full (either may be NULL) */
template <typename I>
static __global__ void concat_bwd_kernel(const float *dy, I sa, I sc, I total, float *da, float *dc)
{
    FOR_EACH(I, e, total)
    {
        I i = e / (sa + sc), o = e % (sa + sc);
        if (o < sa) {
            if (da) da[i * sa + o] = dy[e];
        } else if (dc) {
            dc[i * sc + (o - sa)] = dy[e];
        }
    }
}

void k_concat_fwd(backend *b, const float *a, int ca, const float *c, int cc, int n, int h, int w, float *y)
{
    if (n <= 0 || h <= 0 || w <= 0 || ca < 0 || cc < 0) return;
    size_t hw = (size_t)h * (size_t)w, sa = (size_t)ca * hw, sc = (size_t)cc * hw, total = (size_t)n * (sa + sc);
    if (skip(b, total)) return;
    LAUNCH_IDX(total, concat_fwd_kernel, grid_for(total), a, sa, c, sc, total, y);
}

void k_concat_bwd(backend *b, const float *dy, int ca, int cc, int n, int h, int w, float *da, float *dc)
{
    if (n <= 0 || h <= 0 || w <= 0 || ca < 0 || cc < 0 || (!da && !dc)) return;
    size_t hw = (size_t)h * (size_t)w, sa = (size_t)ca * hw, sc = (size_t)cc * hw, total = (size_t)n * (sa + sc);
    if (skip(b, total)) return;
    LAUNCH_IDX(total, concat_bwd_kernel, grid_for(total), dy, sa, sc, total, da, dc);
}

/* ---- quadrants: q = 0 TL, 1 TR, 2 BL, 3 BR of x [P,H,W]; y [P,H/2,W/2] ---- */

/* y[p,i,j] = x[p, r0+i, c0+j] */
template <typename I>
static __global__ void quadrant_crop_kernel(const float *x, I h, I w, I hh, I hw, I r0, I c0, I total, float *y)
{
    FOR_EACH(I, e, total)
    {
        I j = e % hw, t = e / hw, i = t % hh, p = t / hh;
        y[e] = x[(p * h + r0 + i) * w + c0 + j];
    }
}

/* x[p, r0+i, c0+j] = y[p,i,j]; the rest of x is left alone */
template <typename I>
static __global__ void quadrant_assemble_kernel(const float *y, I h, I w, I hh, I hw, I r0, I c0, I total, float *x)
{
    FOR_EACH(I, e, total)
    {
        I j = e % hw, t = e / hw, i = t % hh, p = t / hh;
        x[(p * h + r0 + i) * w + c0 + j] = y[e];
    }
}

void k_quadrant_crop(backend *b, const float *x, shape4 xs, int q, float *y)
{
    size_t hh = (size_t)(xs.h / 2), hw = (size_t)(xs.w / 2);
    size_t r0 = (q & 2) ? hh : 0, c0 = (q & 1) ? hw : 0;
    size_t total = (size_t)xs.n * (size_t)xs.c * hh * hw;
    if (skip(b, total)) return;
    LAUNCH_IDX(shape4_numel(xs), quadrant_crop_kernel, grid_for(total), x, xs.h, xs.w, hh, hw, r0, c0, total, y);
}

void k_quadrant_assemble(backend *b, const float *y, shape4 xs, int q, float *x)
{
    size_t hh = (size_t)(xs.h / 2), hw = (size_t)(xs.w / 2);
    size_t r0 = (q & 2) ? hh : 0, c0 = (q & 1) ? hw : 0;
    size_t total = (size_t)xs.n * (size_t)xs.c * hh * hw;
    if (skip(b, total)) return;
    LAUNCH_IDX(shape4_numel(xs), quadrant_assemble_kernel, grid_for(total), y, xs.h, xs.w, hh, hw, r0, c0, total,
               x);
}

/* ---- broadcast products ---- */

/* y [N,C,H,W] = r * a, a [N,1,H,W]: y[e] = r[e] * a[n, s], n = e / (C*HW), s = e % HW */
template <typename I>
static __global__ void mul_spatial_fwd_kernel(const float *r, I chw, I hw, const float *a, I total, float *y)
{
    FOR_EACH(I, e, total) y[e] = __fmul_rn(r[e], a[(e / chw) * hw + e % hw]);
}

/* One thread per (n, s) of a [N,1,H,W]: dr[n,c,s] = dy * a[n,s]; da[n,s] =
 * sum over c = 0.. of dy * r in float, from 0, each product rounded (the
 * CPU's order). total = N*HW. */
template <typename I>
static __global__ void mul_spatial_bwd_kernel(const float *r, I c, I hw, const float *a, const float *dy, I total,
                                              float *dr, float *da)
{
    FOR_EACH(I, e, total)
    {
        I n = e / hw, s = e % hw;
        float av = a[e], acc = 0.0f;
        for (I k = 0; k < c; k++) {
            I off = (n * c + k) * hw + s;
            float g = dy[off];
            if (dr) dr[off] = __fmul_rn(g, av);
            if (da) acc = __fadd_rn(acc, __fmul_rn(g, r[off]));
        }
        if (da) da[e] = acc;
    }
}

/* y [N,C,H,W] = r * s, s [N,C]: y[e] = r[e] * s[e / HW] */
template <typename I>
static __global__ void mul_channel_fwd_kernel(const float *r, I hw, const float *s, I total, float *y)
{
    FOR_EACH(I, e, total) y[e] = __fmul_rn(r[e], s[e / hw]);
}

/* One block per plane p of [N*C]: dr = dy * s[p]; ds[p] = (float) sum over
 * the plane of (double)dy * (double)r (exact products; the double sum by
 * thread stride then the block tree). */
static __global__ void mul_channel_bwd_kernel(const float *r, size_t hw, const float *s, const float *dy,
                                              size_t planes, float *dr, float *ds)
{
    for (size_t p = blockIdx.x; p < planes; p += gridDim.x) {
        const size_t o = p * hw;
        float sv = s[p];
        double acc = 0.0;
        for (size_t i = threadIdx.x; i < hw; i += blockDim.x) {
            float g = dy[o + i];
            if (dr) dr[o + i] = __fmul_rn(g, sv);
            if (ds) acc = __dadd_rn(acc, __dmul_rn((double)g, (double)r[o + i]));
        }
        if (ds) {
            double sum = block_sum(acc);
            if (threadIdx.x == 0) ds[p] = (float)sum;
        }
    }
}

void k_mul_spatial_fwd(backend *b, const float *r, shape4 rs, const float *a, float *y)
{
    size_t total = shape4_numel(rs), hw = (size_t)rs.h * (size_t)rs.w;
    if (skip(b, total)) return;
    LAUNCH_IDX(total, mul_spatial_fwd_kernel, grid_for(total), r, (size_t)rs.c * hw, hw, a, total, y);
}

void k_mul_spatial_bwd(backend *b, const float *r, shape4 rs, const float *a, const float *dy, float *dr, float *da)
{
    size_t hw = (size_t)rs.h * (size_t)rs.w, total = (size_t)rs.n * hw; /* one thread per pixel of a */
    if (skip(b, total) || (!dr && !da)) return;
    LAUNCH_IDX(shape4_numel(rs) > total ? shape4_numel(rs) : total, mul_spatial_bwd_kernel, grid_for(total), r,
               (size_t)rs.c, hw, a, dy, total, dr, da);
}

void k_mul_channel_fwd(backend *b, const float *r, shape4 rs, const float *s, float *y)
{
    size_t total = shape4_numel(rs), hw = (size_t)rs.h * (size_t)rs.w;
    if (skip(b, total)) return;
    LAUNCH_IDX(total, mul_channel_fwd_kernel, grid_for(total), r, hw, s, total, y);
}

void k_mul_channel_bwd(backend *b, const float *r, shape4 rs, const float *s, const float *dy, float *dr, float *ds)
{
    size_t planes = (size_t)rs.n * (size_t)rs.c, hw = (size_t)rs.h * (size_t)rs.w;
    if (skip(b, planes) || (!dr && !ds)) return;
    LAUNCH(mul_channel_bwd_kernel, grid_items(planes), r, hw, s, dy, planes, dr, ds);
}

/* ---- pooling to vectors (sums in double) ---- */

/* One block per plane: y[p] = (float)(sum of x over the plane / HW) */
static __global__ void avgpool_global_fwd_kernel(const float *x, size_t hw, size_t planes, float *y)
{
    for (size_t p = blockIdx.x; p < planes; p += gridDim.x) {
        double acc = 0.0;
        for (size_t i = threadIdx.x; i < hw; i += blockDim.x) acc = __dadd_rn(acc, (double)x[p * hw + i]);
        double sum = block_sum(acc);
        if (threadIdx.x == 0) y[p] = (float)__ddiv_rn(sum, (double)hw);
    }
}

/* dx [P,H,W] = (float)(dy[p] / HW) */
template <typename I>
static __global__ void avgpool_global_bwd_kernel(const float *dy, I hw, I total, float *dx)
{
    FOR_EACH(I, e, total) dx[e] = (float)__ddiv_rn((double)dy[e / hw], (double)hw);
}

/* One block per output cell (p, bi, bj) of y [P,g,g]: the mean of the
 * bh x bw cell of x [P,H,W], times inv = 1 / (bh*bw) in double. */
static __global__ void avgpool_block_fwd_kernel(const float *x, size_t h, size_t w, size_t g, size_t bh, size_t bw,
                                                double inv, size_t cells, float *y)
{
    for (size_t c = blockIdx.x; c < cells; c += gridDim.x) {
        size_t p = c / (g * g), cell = c % (g * g), bi = cell / g, bj = cell % g;
        const float *xp = x + p * h * w + (bi * bh) * w + bj * bw;
        double acc = 0.0;
        for (size_t t = threadIdx.x; t < bh * bw; t += blockDim.x)
            acc = __dadd_rn(acc, (double)xp[(t / bw) * w + t % bw]);
        double sum = block_sum(acc);
        if (threadIdx.x == 0) y[c] = (float)__dmul_rn(sum, inv);
    }
}

/* dx [P,H,W] = (float)(dy[p, i/bh, j/bw] * inv); pixels outside the g*bh x
 * g*bw area (H or W not a multiple of g: outside ops.h's contract) get 0. */
template <typename I>
static __global__ void avgpool_block_bwd_kernel(const float *dy, I h, I w, I g, I bh, I bw, double inv, I total,
                                                float *dx)
{
    FOR_EACH(I, e, total)
    {
        I j = e % w, t = e / w, i = t % h, p = t / h;
        I bi = i / bh, bj = j / bw;
        dx[e] = bi < g && bj < g ? (float)__dmul_rn((double)dy[(p * g + bi) * g + bj], inv) : 0.0f;
    }
}

void k_avgpool_global_fwd(backend *b, const float *x, shape4 xs, float *y)
{
    size_t planes = (size_t)xs.n * (size_t)xs.c, hw = (size_t)xs.h * (size_t)xs.w;
    if (skip(b, planes)) return;
    LAUNCH(avgpool_global_fwd_kernel, grid_items(planes), x, hw, planes, y);
}

void k_avgpool_global_bwd(backend *b, const float *dy, shape4 xs, float *dx)
{
    size_t total = shape4_numel(xs), hw = (size_t)xs.h * (size_t)xs.w;
    if (skip(b, total)) return;
    LAUNCH_IDX(total, avgpool_global_bwd_kernel, grid_for(total), dy, hw, total, dx);
}

void k_avgpool_block_fwd(backend *b, const float *x, shape4 xs, int g, float *y)
{
    if (g <= 0) return;
    size_t bh = (size_t)(xs.h / g), bw = (size_t)(xs.w / g);
    size_t cells = (size_t)xs.n * (size_t)xs.c * (size_t)g * (size_t)g;
    if (skip(b, cells)) return;
    const double inv = 1.0 / ((double)bh * (double)bw); /* as ops_misc.c (bh*bw == 0: NaN out, as the CPU) */
    LAUNCH(avgpool_block_fwd_kernel, grid_items(cells), x, (size_t)xs.h, (size_t)xs.w, (size_t)g, bh, bw, inv, cells,
           y);
}

void k_avgpool_block_bwd(backend *b, const float *dy, shape4 xs, int g, float *dx)
{
    if (g <= 0) return;
    size_t total = shape4_numel(xs);
    if (skip(b, total)) return;
    int bh = xs.h / g, bw = xs.w / g;
    if (bh <= 0 || bw <= 0) { /* no cell covers any pixel (the CPU would divide by zero) */
        k_fill(b, dx, 0.0f, total);
        return;
    }
    const double inv = 1.0 / ((double)bh * (double)bw);
    LAUNCH_IDX(total, avgpool_block_bwd_kernel, grid_for(total), dy, xs.h, xs.w, g, bh, bw, inv, total, dx);
}

/* ---- linear helpers: y [n,out] ---- */

/* y[i,o] += bias[o] */
template <typename I>
static __global__ void bias_add_rows_kernel(float *y, const float *bias, I out, I total)
{
    FOR_EACH(I, e, total) y[e] = __fadd_rn(y[e], bias[e % out]);
}

/* One thread per o: dbias[o] += (float) sum over i = 0.. of dy[i,o] in double
 * (linear_bwd's order). */
static __global__ void bias_grad_rows_kernel(const float *dy, size_t n, size_t out, float *dbias)
{
    FOR_EACH(size_t, o, out)
    {
        double s = 0.0;
        for (size_t i = 0; i < n; i++) s = __dadd_rn(s, (double)dy[i * out + o]);
        dbias[o] = __fadd_rn(dbias[o], (float)s);
    }
}

void k_bias_add_rows(backend *b, float *y, const float *bias, int n, int out)
{
    if (n <= 0 || out <= 0) return;
    size_t total = (size_t)n * (size_t)out;
    if (skip(b, total)) return;
    LAUNCH_IDX(total, bias_add_rows_kernel, grid_for(total), y, bias, out, total);
}

void k_bias_grad_rows(backend *b, const float *dy, int n, int out, float *dbias)
{
    if (n <= 0 || out <= 0 || !dbias || skip(b, (size_t)out)) return; /* n <= 0: untouched, as linear_bwd */
    LAUNCH(bias_grad_rows_kernel, grid_for((size_t)out), dy, (size_t)n, (size_t)out, dbias);
}

/* ---- batch norm in training mode, with the ReLU that follows it ----
 *
 * Our own kernels rather than cuDNN's, for the ReLU: fused into the forward
 * (no pass of its own) and into backward (the mask read from the output
 * where the reduction and dx read dy anyway: no relu_bwd pass, no product
 * written and read again). The arithmetic is batchnorm_fwd_train /
 * batchnorm_bwd's (ops_conv.c), in double, with two differences, both
 * below float rounding but for the rare element that lands on a tie:
 *   - the statistics come from one pass: sums of d = x - K and d^2, K the
 *     channel's first value (a shift that keeps E[d^2] - E[d]^2 from
 *     cancelling unless the spread is ~1e-8 of |mean - K|), where the CPU
 *     makes two passes (the mean, then squared deviations);
 *   - sums run over BN_CHUNK-value chunks of a channel (a fixed tree each),
 *     then over the chunks in order: an order fixed by the shape.
 * Scratch (cx->scratch): the chunks' partial sums [C][P][2], then per
 * channel the double mean and 1/std (forward) or sum dy, sum dy*xhat and
 * gamma * invstd / M (backward). */

#ifndef FB_CUDA_EMU
static constexpr size_t BN_CHUNK = 4096; /* values of a channel one block sums (16 per thread) */
#endif

/* Chunks per channel for M values, or 0 if C channels do not fit the scratch. */
static size_t bn_chunks(backend *b, size_t M, size_t C)
{
    size_t cap = CX(b)->scratch_n, p = (M + BN_CHUNK - 1) / BN_CHUNK;
    if (cap < 5 * C) return 0;
    size_t most = (cap - 3 * C) / (2 * C); /* >= 1; and p >= 1, as M >= 1 */
    return p < most ? p : most;
}

/* The block's sums of every thread's a and of its q, valid in thread 0, in
 * a fixed two-level order (16 runs of 16 threads, then the 16 runs): three
 * barriers for both sums where two block_sum trees take eighteen. */
static_assert(THREADS == 256, "block_sum2 sums 16 runs of 16");
static __device__ void block_sum2(double *a, double *q)
{
    __shared__ double sa[THREADS], sq[THREADS];
    const unsigned t = threadIdx.x;
    sa[t] = *a, sq[t] = *q;
    __syncthreads();
    if (t < 16) { /* run t: threads 16t .. 16t+15, its sum left in its first slot */
        double x = sa[16 * t], y = sq[16 * t];
        for (unsigned i = 1; i < 16; i++) x = __dadd_rn(x, sa[16 * t + i]), y = __dadd_rn(y, sq[16 * t + i]);
        sa[16 * t] = x, sq[16 * t] = y;
    }
    __syncthreads();
    if (t == 0) {
        double x = sa[0], y = sq[0];
        for (unsigned r = 1; r < 16; r++) x = __dadd_rn(x, sa[16 * r]), y = __dadd_rn(y, sq[16 * r]);
        *a = x, *q = y;
    }
    __syncthreads(); /* sa, sq may be reused by the caller's next round */
}

/* dy, or 0 where a ReLU's output is not > 0 (relu_bwd's values) */
static __device__ __forceinline__ float through_relu(const float *relu_y, const float *dy, size_t i)
{
    return relu_y && !(relu_y[i] > 0.0f) ? 0.0f : dy[i];
}

/* Per (channel c, chunk p), one block for each in turn: part[2(cP+p)] and
 * part[2(cP+p)+1] are, over the chunk's values j in [pL, min(pL+L, M)) of
 * channel c (value j: image j / hw, position j % hw), forward (dy NULL):
 * sum d and sum d^2, d = x - x[first of c]; backward: sum g and
 * sum g * (x - mean), g = dy through the ReLU if relu_y is given. */
template <typename I>
static __global__ void bn_reduce_kernel(const float *x, const float *dy, const float *relu_y, I hw, I chw, I M, I C,
                                        I P, I L, const float *mean, double *part)
{
    for (I blk = (I)blockIdx.x; blk < C * P; blk += (I)gridDim.x) {
        const I c = blk / P, p = blk - c * P, j1 = p * L + L < M ? p * L + L : M;
        double a = 0.0, q = 0.0;
        if (!dy) {
            const double K = (double)x[c * hw];
            for (I j = p * L + (I)threadIdx.x; j < j1; j += (I)blockDim.x) {
                const I n = j / hw, off = c * hw + n * chw + (j - n * hw);
                double d = __dsub_rn((double)x[off], K);
                a = __dadd_rn(a, d);
                q = __dadd_rn(q, __dmul_rn(d, d));
            }
        } else {
            const double m = (double)mean[c];
            for (I j = p * L + (I)threadIdx.x; j < j1; j += (I)blockDim.x) {
                const I n = j / hw, off = c * hw + n * chw + (j - n * hw);
                double gv = (double)through_relu(relu_y, dy, off);
                a = __dadd_rn(a, gv);
                q = __dadd_rn(q, __dmul_rn(gv, __dsub_rn((double)x[off], m)));
            }
        }
        block_sum2(&a, &q);
        if (threadIdx.x == 0) part[2 * blk] = a, part[2 * blk + 1] = q;
    }
}

/* Channel c's two sums over its P chunks, valid in thread 0: thread t adds
 * chunks t, t + THREADS, ..., then block_sum2 (an order fixed by P). A
 * block per channel rather than a thread: P is ~200 at batch 16 and 224
 * pixels, too long a chain of dependent loads for one thread. */
static __device__ void chunk_sums(const double *part, size_t c, size_t P, double *s1, double *s2)
{
    double a = 0.0, q = 0.0;
    for (size_t p = threadIdx.x; p < P; p += blockDim.x) {
        a = __dadd_rn(a, part[2 * (c * P + p)]);
        q = __dadd_rn(q, part[2 * (c * P + p) + 1]);
    }
    block_sum2(&a, &q);
    *s1 = a, *s2 = q;
}

/* One block per channel: its sums, then (thread 0) as bn_train_channel:
 * mean, biased variance (normalising), unbiased (running_var), running
 * statistics updated, mean and 1/std saved as floats and kept in double in
 * chan[2c], chan[2c+1] for the output. */
static __global__ void bn_stats_kernel(const double *part, size_t C, size_t P, size_t M, const float *x, size_t hw,
                                       float momentum, float eps, float *running_mean, float *running_var,
                                       float *save_mean, float *save_invstd, double *chan)
{
    for (size_t c = blockIdx.x; c < C; c += gridDim.x) {
        double s1, s2;
        chunk_sums(part, c, P, &s1, &s2);
        if (threadIdx.x != 0) continue; /* every thread has passed the barriers of this round */
        const double Md = (double)M, m1 = __ddiv_rn(s1, Md), mean = __dadd_rn((double)x[c * hw], m1);
        double ss = __dsub_rn(s2, __dmul_rn(s1, m1)); /* sum (x - mean)^2 */
        if (ss < 0.0) ss = 0.0;                       /* rounding; NaN stays NaN */
        const double var = __ddiv_rn(ss, Md);
        const double invstd = __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(var, (double)eps)));
        const double uvar = M > 1 ? __ddiv_rn(ss, Md - 1.0) : var;
        const double keep = __dsub_rn(1.0, (double)momentum);
        if (running_mean)
            running_mean[c] = (float)__dadd_rn(__dmul_rn(keep, (double)running_mean[c]), __dmul_rn((double)momentum, mean));
        if (running_var)
            running_var[c] = (float)__dadd_rn(__dmul_rn(keep, (double)running_var[c]), __dmul_rn((double)momentum, uvar));
        if (save_mean) save_mean[c] = (float)mean;
        if (save_invstd) save_invstd[c] = (float)invstd;
        chan[2 * c] = mean, chan[2 * c + 1] = invstd;
    }
}

/* y = (float)(((x - mean) * invstd) * gamma + beta) in double (the
 * statistics unrounded, as the CPU), ReLU'd with relu_fwd's test */
template <typename I>
static __global__ void bn_apply_kernel(const float *x, I hw, I C, const double *chan, const float *gamma,
                                       const float *beta, int relu, I total, float *y)
{
    FOR_EACH(I, e, total)
    {
        const I c = (e / hw) % C;
        double t = __dmul_rn(__dmul_rn(__dsub_rn((double)x[e], chan[2 * c]), chan[2 * c + 1]), (double)gamma[c]);
        float v = (float)__dadd_rn(t, (double)beta[c]);
        y[e] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

/* One block per channel (backward): its sums sdy and sum g (x - mean), then
 * (thread 0) sdyx = that * invstd into dgamma / dbeta (+=, in float as the
 * CPU) and chan[3c..3c+2] with k = gamma * invstd / M. */
static __global__ void bn_grad_kernel(const double *part, size_t C, size_t P, size_t M, const float *gamma,
                                      const float *invstd, float *dgamma, float *dbeta, double *chan)
{
    for (size_t c = blockIdx.x; c < C; c += gridDim.x) {
        double sdy, sdyx;
        chunk_sums(part, c, P, &sdy, &sdyx);
        if (threadIdx.x != 0) continue;
        const double is = (double)invstd[c];
        sdyx = __dmul_rn(sdyx, is);
        if (dgamma) dgamma[c] = __fadd_rn(dgamma[c], (float)sdyx);
        if (dbeta) dbeta[c] = __fadd_rn(dbeta[c], (float)sdy);
        chan[3 * c] = sdy, chan[3 * c + 1] = sdyx;
        chan[3 * c + 2] = __ddiv_rn(__dmul_rn((double)gamma[c], is), (double)M);
    }
}

/* dx = (float)(k * ((M * g - sdy) - xhat * sdyx)), g as in bn_reduce_kernel */
template <typename I>
static __global__ void bn_dx_kernel(const float *x, const float *dy, const float *relu_y, I hw, I C, I M,
                                    const float *mean, const float *invstd, const double *chan, I total, float *dx)
{
    FOR_EACH(I, e, total)
    {
        const I c = (e / hw) % C;
        double xhat = __dmul_rn(__dsub_rn((double)x[e], (double)mean[c]), (double)invstd[c]);
        double g = (double)through_relu(relu_y, dy, e);
        double t = __dsub_rn(__dsub_rn(__dmul_rn((double)M, g), chan[3 * c]), __dmul_rn(xhat, chan[3 * c + 1]));
        dx[e] = (float)__dmul_rn(chan[3 * c + 2], t);
    }
}

/* The reduction's geometry, or 0 (error set) when the channels do not fit. */
typedef struct {
    size_t hw, chw, M, C, P, L, total;
} bn_geom;

static int bn_setup(backend *b, shape4 s, const char *what, bn_geom *g)
{
    g->hw = (size_t)s.h * (size_t)s.w, g->C = (size_t)s.c, g->chw = g->C * g->hw, g->M = (size_t)s.n * g->hw;
    g->total = shape4_numel(s);
    g->P = bn_chunks(b, g->M, g->C);
    if (!g->P) {
        char d[96];
        snprintf(d, sizeof d, "%zu channels: more than the kernels' scratch holds", g->C);
        cu_fail(b, what, d);
        return 0;
    }
    g->L = (g->M + g->P - 1) / g->P;
    return 1;
}

void k_bn_fwd_train(backend *b, const float *x, shape4 s, const float *gamma, const float *beta,
                    float *running_mean, float *running_var, float momentum, float eps, int relu, float *y,
                    float *save_mean, float *save_invstd)
{
    bn_geom g;
    if (skip(b, shape4_numel(s))) return;
    if (!gamma || !beta) {
        cu_fail(b, "batch norm", "needs gamma and beta");
        return;
    }
    if (!bn_setup(b, s, "batch norm", &g)) return;
    double *part = CX(b)->scratch, *chan = part + 2 * g.C * g.P;
    LAUNCH_IDX(g.total, bn_reduce_kernel, grid_items(g.C * g.P), x, (const float *)NULL, (const float *)NULL, g.hw,
               g.chw, g.M, g.C, g.P, g.L, (const float *)NULL, part);
    LAUNCH(bn_stats_kernel, grid_items(g.C), (const double *)part, g.C, g.P, g.M, x, g.hw, momentum, eps, running_mean,
           running_var, save_mean, save_invstd, chan);
    LAUNCH_IDX(g.total, bn_apply_kernel, grid_for(g.total), x, g.hw, g.C, (const double *)chan, gamma, beta, relu,
               g.total, y);
}

void k_bn_bwd(backend *b, const float *x, shape4 s, const float *gamma, const float *save_mean,
              const float *save_invstd, const float *relu_y, const float *dy, float *dx, float *dgamma, float *dbeta)
{
    bn_geom g;
    if (skip(b, shape4_numel(s)) || (!dx && !dgamma && !dbeta)) return;
    if (!gamma || !save_mean || !save_invstd) {
        cu_fail(b, "batch norm backward", "needs gamma and the saved statistics");
        return;
    }
    if (!bn_setup(b, s, "batch norm backward", &g)) return;
    double *part = CX(b)->scratch, *chan = part + 2 * g.C * g.P;
    LAUNCH_IDX(g.total, bn_reduce_kernel, grid_items(g.C * g.P), x, dy, relu_y, g.hw, g.chw, g.M, g.C, g.P, g.L,
               save_mean, part);
    LAUNCH(bn_grad_kernel, grid_items(g.C), (const double *)part, g.C, g.P, g.M, gamma, save_invstd, dgamma, dbeta,
           chan);
    if (dx)
        LAUNCH_IDX(g.total, bn_dx_kernel, grid_for(g.total), x, dy, relu_y, g.hw, g.C, g.M, save_mean, save_invstd,
                   (const double *)chan, g.total, dx);
}

/* ---- losses ---- */

/* One block. softmax_ce of ops_misc.c: labels checked first (any outside
 * [0,k), or n <= 0 or k <= 0: *loss = NaN and dlogits untouched); then one
 * thread per row, in double: lse = m + log(sum exp(z - m)), row loss
 * lse - z[label], dlogits = (float)(f * (exp(z - lse) - onehot)) with
 * f = scale / n. The row losses are added by thread 0 in row order (the
 * CPU's order exactly), *loss = (float)(total / n). */
static __global__ void softmax_ce_kernel(const float *logits, int n, int k, const int32_t *labels, double f,
                                         float *dlogits, float *loss)
{
    __shared__ double row[THREADS];
    const int t = (int)threadIdx.x;
    if (n <= 0 || k <= 0) {
        if (t == 0) *loss = qnan();
        return;
    }
    int bad = 0;
    for (int i = t; i < n; i += THREADS)
        if (labels[i] < 0 || labels[i] >= k) bad = 1;
    if (__syncthreads_or(bad)) {
        if (t == 0) *loss = qnan();
        return;
    }
    double total = 0.0;
    for (int base = 0; base < n; base += THREADS) {
        int i = base + t;
        if (i < n) {
            const float *z = logits + (size_t)i * (size_t)k;
            const int lab = labels[i];
            double m = z[0];
            for (int j = 1; j < k; j++)
                if (z[j] > m) m = z[j];
            double se = 0.0;
            for (int j = 0; j < k; j++) se = __dadd_rn(se, exp(__dsub_rn((double)z[j], m)));
            double lse = __dadd_rn(m, log(se));
            row[t] = __dsub_rn(lse, (double)z[lab]);
            if (dlogits) {
                float *d = dlogits + (size_t)i * (size_t)k;
                for (int j = 0; j < k; j++) {
                    double p = exp(__dsub_rn((double)z[j], lse));
                    d[j] = (float)__dmul_rn(f, __dsub_rn(p, j == lab ? 1.0 : 0.0));
                }
            }
        }
        __syncthreads();
        if (t == 0) {
            int rows = n - base < THREADS ? n - base : THREADS;
            for (int r = 0; r < rows; r++) total = __dadd_rn(total, row[r]);
        }
        __syncthreads();
    }
    if (t == 0) *loss = (float)__ddiv_rn(total, (double)n);
}

void k_softmax_ce(backend *b, const float *logits, int n, int k, const int32_t *labels, float scale, float *dlogits,
                  float *loss)
{
    if (CX(b)->failed) return;
    /* n <= 0 still launches: the kernel writes NaN to *loss, as the CPU returns it */
    const double f = n > 0 ? (double)scale / (double)n : 0.0;
    LAUNCH(softmax_ce_kernel, 1, logits, n, k, labels, f, dlogits, loss);
}

/* mse, pass 1 (fixed grid of nb blocks): each thread sums (a - t)^2 in
 * double over its grid-stride elements, the block tree gives part[block];
 * da[i] = (float)(f * d) with f = 2 * scale / n. */
static __global__ void mse_partial_kernel(const float *a, const float *target, size_t n, double f, float *da,
                                          double *part)
{
    double acc = 0.0;
    FOR_EACH(size_t, i, n)
    {
        double d = __dsub_rn((double)a[i], (double)target[i]);
        acc = __dadd_rn(acc, __dmul_rn(d, d));
        if (da) da[i] = (float)__dmul_rn(f, d);
    }
    double sum = block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = sum;
}

/* mse, pass 2 (one block): the nb partials by thread stride then the tree;
 * *loss = (float)(sum / n), NaN for n == 0 (as the CPU). */
static __global__ void mse_final_kernel(const double *part, unsigned nb, size_t n, float *loss)
{
    double acc = 0.0;
    for (unsigned i = threadIdx.x; i < nb; i += blockDim.x) acc = __dadd_rn(acc, part[i]);
    double sum = block_sum(acc);
    if (threadIdx.x == 0) *loss = n ? (float)__ddiv_rn(sum, (double)n) : qnan();
}

void k_mse(backend *b, const float *a, const float *target, size_t n, float scale, float *da, float *loss)
{
    if (CX(b)->failed) return;
    if (n == 0) { /* mean of nothing: NaN, nothing else written */
        LAUNCH(mse_final_kernel, 1, (const double *)NULL, 0u, (size_t)0, loss);
        return;
    }
    /* The grid depends on n alone, so the summation order (and the result)
     * is the same on every run and every device. */
    size_t nb = (n + THREADS - 1) / THREADS;
    if (nb > MSE_BLOCKS) nb = MSE_BLOCKS;
    if (nb > CX(b)->scratch_n) { /* never on CUDA: the scratch holds more than MSE_BLOCKS */
        cu_fail(b, "k_mse", "the kernels' scratch is smaller than the partial sums");
        return;
    }
    const double f = 2.0 * (double)scale / (double)n; /* as ops_misc.c */
    double *part = CX(b)->scratch;                   /* free again once the final kernel has run: one stream */
    LAUNCH(mse_partial_kernel, (unsigned)nb, a, target, n, f, da, part);
    LAUNCH(mse_final_kernel, 1, (const double *)part, (unsigned)nb, n, loss);
}

/* ---- AdamW: optim.c's adamw_range on elements whose mask byte is set ---- */

/* Per element, in float, each operation rounded (no FMA), in optim.c's order:
 * w *= decay; m = m*b1 + g*a1; v = v*b2 + (g*g)*a2;
 * denom = sqrt(v)/bc2_sqrt + eps; w -= step_size * (m / denom). */
static __global__ void adamw_kernel(float *w, const float *grad, float *m, float *v, const uint8_t *mask, size_t total,
                                    float decay, float b1, float b2, float a1, float a2, float step_size,
                                    float bc2_sqrt, float eps)
{
    FOR_EACH(size_t, i, total)
    {
        if (!mask[i]) continue; /* the CPU backend's test: any nonzero byte is trainable */
        const float g = grad[i];
        float wi = __fmul_rn(w[i], decay);
        float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(g, a1));
        float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(g, g), a2));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        wi = __fsub_rn(wi, __fmul_rn(step_size, __fdiv_rn(mi, denom)));
        m[i] = mi;
        v[i] = vi;
        w[i] = wi;
    }
}

void k_adamw(backend *b, float *w, const float *grad, float *m, float *v, const uint8_t *mask, size_t total,
             const adamw_coef *k)
{
    if (skip(b, total)) return;
    LAUNCH(adamw_kernel, grid_for(total), w, grad, m, v, mask, total, k->decay, k->b1, k->b2, k->a1, k->a2,
           k->step_size, k->bc2_sqrt, k->eps);
}

/* ---- BF16 and BN folding ---- */

/* float -> bf16 bits, round to nearest even; NaN stays NaN (quiet, sign kept) */
static __device__ __forceinline__ uint16_t f2bf(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16); /* Inf and overflow to Inf come out right */
}
static __device__ __forceinline__ float bf2f(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

/* y[i] = bf16(x[i]) */
static __global__ void to_bf16_kernel(const float *x, size_t n, uint16_t *y)
{
    FOR_EACH(size_t, i, n) y[i] = f2bf(x[i]);
}
/* y[i] = float(x[i]) (exact) */
static __global__ void from_bf16_kernel(const uint16_t *x, size_t n, float *y)
{
    FOR_EACH(size_t, i, n) y[i] = bf2f(x[i]);
}
/* y[i] += float(x[i]) */
static __global__ void acc_bf16_kernel(float *y, const uint16_t *x, size_t n)
{
    FOR_EACH(size_t, i, n) y[i] = __fadd_rn(y[i], bf2f(x[i]));
}

/* A convolution's epilogue in one pass: y[e] = act(float(x[e]) + bias[(e /
 * hw) % c]) for y [N,C,H,W], the sum rounded once (bias NULL: nothing
 * added), act relu_fwd's (v > 0 ? v : 0) or none. x is the BF16 output of a
 * BF16 convolution (cast, bias, ReLU: three passes saved) or the FP32 output
 * itself, in place (bias and ReLU: one pass saved). */
static __device__ __forceinline__ float as_float(float v) { return v; }
static __device__ __forceinline__ float as_float(uint16_t h) { return bf2f(h); }
template <typename I, typename T>
static __device__ __forceinline__ void bias_act(const T *x, I hw, I c, const float *bias, int relu, I total,
                                                float *y)
{
    FOR_EACH(I, e, total)
    {
        float v = as_float(x[e]);
        if (bias) v = __fadd_rn(v, bias[(e / hw) % c]);
        y[e] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}
template <typename I>
static __global__ void bf16_epilogue_kernel(const uint16_t *x, I hw, I c, const float *bias, int relu, I total,
                                            float *y)
{
    bias_act<I>(x, hw, c, bias, relu, total, y);
}
template <typename I>
static __global__ void bias_act_kernel(float *y, I hw, I c, const float *bias, int relu, I total)
{
    bias_act<I>(y, hw, c, bias, relu, total, y);
}

/* w [OC, per_oc] -> wf = w * scale[o], bf[o] = shift[o], with
 * batchnorm_fwd_eval's scale and shift (ops_conv.c, in double):
 * invstd = 1 / sqrt(var + eps), scale = (float)(g * invstd),
 * shift = (float)(beta - mean * g * invstd); gamma, beta NULL: 1, 0. */
static __device__ __forceinline__ double bn_invstd(const float *var, float eps, size_t o)
{
    return __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn((double)var[o], (double)eps)));
}
static __global__ void fold_bn_kernel(const float *w, size_t oc, size_t per_oc, const float *gamma,
                                      const float *beta, const float *mean, const float *var, float eps, float *wf,
                                      float *bf)
{
    FOR_EACH(size_t, e, oc * per_oc)
    {
        size_t o = e / per_oc;
        double g = gamma ? (double)gamma[o] : 1.0;
        float scale = (float)__dmul_rn(g, bn_invstd(var, eps, o));
        wf[e] = __fmul_rn(w[e], scale);
    }
    if (bf) {
        FOR_EACH(size_t, o, oc)
        {
            double g = gamma ? (double)gamma[o] : 1.0, bt = beta ? (double)beta[o] : 0.0;
            bf[o] = (float)__dsub_rn(bt, __dmul_rn(__dmul_rn((double)mean[o], g), bn_invstd(var, eps, o)));
        }
    }
}

void k_to_bf16(backend *b, const float *x, size_t n, uint16_t *y)
{
    if (skip(b, n)) return;
    LAUNCH(to_bf16_kernel, grid_for(n), x, n, y);
}

void k_from_bf16(backend *b, const uint16_t *x, size_t n, float *y)
{
    if (skip(b, n)) return;
    LAUNCH(from_bf16_kernel, grid_for(n), x, n, y);
}

void k_acc_bf16(backend *b, float *y, const uint16_t *x, size_t n)
{
    if (skip(b, n)) return;
    LAUNCH(acc_bf16_kernel, grid_for(n), y, x, n);
}

void k_bf16_epilogue(backend *b, const uint16_t *x, shape4 ys, const float *bias, int relu, float *y)
{
    size_t total = shape4_numel(ys), hw = (size_t)ys.h * (size_t)ys.w;
    if (skip(b, total)) return;
    LAUNCH_IDX(total, bf16_epilogue_kernel, grid_for(total), x, hw, (size_t)ys.c, bias, relu, total, y);
}

void k_bias_act(backend *b, float *y, shape4 ys, const float *bias, int relu)
{
    size_t total = shape4_numel(ys), hw = (size_t)ys.h * (size_t)ys.w;
    if (skip(b, total) || (!bias && !relu)) return;
    LAUNCH_IDX(total, bias_act_kernel, grid_for(total), y, hw, (size_t)ys.c, bias, relu, total);
}

void k_fold_bn(backend *b, const float *w, int oc, size_t per_oc, const float *gamma, const float *beta,
               const float *mean, const float *var, float eps, float *wf, float *bf)
{
    if (oc <= 0 || skip(b, (size_t)oc)) return;
    size_t total = (size_t)oc * per_oc;
    LAUNCH(fold_bn_kernel, grid_for(total > (size_t)oc ? total : (size_t)oc), w, (size_t)oc, per_oc, gamma, beta,
           mean, var, eps, wf, bf);
}
