/* ops_misc.c: the parameter-free ops of ops.h (everything except conv2d_*,
 * batchnorm_* and linear_*): activations, resampling, concat, quadrants,
 * broadcast products, pooling to vectors and the two losses.
 *
 * Conventions (ops.h): NCHW float32; forward writes its output; backward
 * writes (=, not +=) the input gradients in full, zeroing where needed. None
 * of these ops has parameters, so nothing here accumulates.
 * Where a backward has two input gradients (concat, mul_*), either pointer
 * may be NULL to skip it.
 *
 * Threads (OpenMP, ops_threads()): elementwise ops split the elements, the
 * others split planes (or images); every output element, and every sum (per
 * plane, per pixel over channels), is computed by one thread in the same
 * order as single-threaded, so results do not depend on the thread count.
 * The one sum over a whole tensor (mse) adds fixed-size chunk partials in
 * chunk order. Small tensors stay on the calling thread. */
#include "ops.h"

#include <math.h>
#include <string.h>

#ifndef _OPENMP
#error "engine/ops_misc.c needs OpenMP: compile with -fopenmp"
#endif
#define OMP(...) _Pragma(#__VA_ARGS__)

typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
static const v4i even = {0, 2, 4, 6}, odd = {1, 3, 5, 7};
static inline v4 ld4(const float *p)
{
    v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st4(float *p, v4 v) { memcpy(p, &v, sizeof v); }

/* Threads for `tasks` independent pieces worth `work` elements in all: one
 * below ~32k elements (a fork/join costs more than it saves). */
static int team(size_t tasks, size_t work)
{
    if (tasks < 2 || work < ((size_t)1 << 15))
        return 1;
    int nt = ops_threads();
    return tasks < (size_t)nt ? (int)tasks : nt;
}

/* ---- elementwise ---- */

void relu_fwd(const float *x, size_t n, float *y)
{
    int nt = team(n, n);
OMP(omp parallel for simd num_threads(nt) schedule(static) if (parallel: nt > 1))
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* From the output: y > 0 exactly where x > 0 (the subgradient at 0 is 0). */
void relu_bwd(const float *y, const float *dy, size_t n, float *dx)
{
    int nt = team(n, n);
OMP(omp parallel for simd num_threads(nt) schedule(static) if (parallel: nt > 1))
    for (size_t i = 0; i < n; i++) {
        float g = dy[i]; /* read unconditionally: the select vectorises */
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

/* Stable for large |x|: exp is only taken of a non-positive argument. */
void sigmoid_fwd(const float *x, size_t n, float *y)
{
    int nt = team(n, 8 * n);
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t i = 0; i < n; i++) { /* branch-free: e = exp(-|v|) is exp(-v) for v >= 0, exp(v) below */
        float v = x[i], e = expf(-fabsf(v));
        y[i] = (v >= 0.0f ? 1.0f : e) / (1.0f + e);
    }
}

void sigmoid_bwd(const float *y, const float *dy, size_t n, float *dx)
{
    int nt = team(n, n);
OMP(omp parallel for simd num_threads(nt) schedule(static) if (parallel: nt > 1))
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

/* ---- resampling ---- */

/* Ties: the first maximum in row-major window order wins (as PyTorch). A NaN
 * in the window is propagated (as PyTorch): it is selected and never replaced. */
void maxpool2_fwd(const float *x, shape4 xs, float *y, int32_t *argmax)
{
    int oh = xs.h / 2, ow = xs.w / 2;
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    int nt = team(planes, shape4_numel(xs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)xs.h * (size_t)xs.w;
        size_t xbase = p * (size_t)xs.h * (size_t)xs.w;
        float *yp = y + p * (size_t)oh * (size_t)ow;
        int32_t *ap = argmax + p * (size_t)oh * (size_t)ow;
        for (int i = 0; i < oh; i++) {
            const float *r0 = xp + (size_t)(2 * i) * (size_t)xs.w, *r1 = r0 + xs.w;
            int32_t b0 = (int32_t)(xbase + (size_t)(2 * i) * (size_t)xs.w), b1 = b0 + xs.w;
            float *yr = yp + (size_t)i * (size_t)ow;
            int32_t *ar = ap + (size_t)i * (size_t)ow;
            /* The window in order r0[2j], r0[2j+1], r1[2j], r1[2j+1]; a candidate
             * replaces the best when the best is not NaN and it is larger or NaN.
             * Four windows at a time in SSE vectors (branch-free), then the rest. */
            int j = 0;
            for (; j + 4 <= ow; j += 4) {
                v4 a = ld4(r0 + 2 * j), b = ld4(r0 + 2 * j + 4), c = ld4(r1 + 2 * j), d = ld4(r1 + 2 * j + 4);
                v4 cand[3] = {__builtin_shuffle(a, b, odd), __builtin_shuffle(c, d, even), __builtin_shuffle(c, d, odd)};
                v4 bv = __builtin_shuffle(a, b, even);
                v4i j2 = {2 * j, 2 * j + 2, 2 * j + 4, 2 * j + 6};
                v4i best = b0 + j2, ci[3] = {b0 + j2 + 1, b1 + j2, b1 + j2 + 1};
                for (int t = 0; t < 3; t++) {
                    v4 v = cand[t];
                    v4i take = (bv == bv) & ((v > bv) | (v != v));
                    bv = (v4)((take & (v4i)v) | (~take & (v4i)bv));
                    best = (take & ci[t]) | (~take & best);
                }
                st4(yr + j, bv);
                memcpy(ar + j, &best, sizeof best);
            }
            for (; j < ow; j++) {
                float bv = r0[2 * j];
                int32_t best = b0 + 2 * j;
                const float cv[3] = {r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
                const int32_t ci[3] = {b0 + 2 * j + 1, b1 + 2 * j, b1 + 2 * j + 1};
                for (int t = 0; t < 3; t++)
                    if (!isnan(bv) && (cv[t] > bv || isnan(cv[t]))) bv = cv[t], best = ci[t];
                yr[j] = bv;
                ar[j] = best;
            }
        }
    }
}

/* argmax as maxpool2_fwd writes it: each plane's indices point into the same
 * plane of x, so planes are independent. */
void maxpool2_bwd(const int32_t *argmax, const float *dy, shape4 ys, float *dx, shape4 xs)
{
    size_t planes = (size_t)xs.n * (size_t)xs.c, xp = (size_t)xs.h * (size_t)xs.w, yp = (size_t)ys.h * (size_t)ys.w;
    int nt = team(planes, shape4_numel(xs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        memset(dx + p * xp, 0, xp * sizeof(float));
        for (size_t i = p * yp; i < (p + 1) * yp; i++) dx[argmax[i]] += dy[i];
    }
}

void upsample2_fwd(const float *x, shape4 xs, float *y)
{
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    size_t ow = 2 * (size_t)xs.w;
    int nt = team(planes, 4 * shape4_numel(xs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)xs.h * (size_t)xs.w;
        float *yp = y + p * 4 * (size_t)xs.h * (size_t)xs.w;
        for (int i = 0; i < xs.h; i++) {
            float *r0 = yp + (size_t)(2 * i) * ow;
            for (int j = 0; j < xs.w; j++) {
                float v = xp[(size_t)i * (size_t)xs.w + (size_t)j];
                r0[2 * j] = v;
                r0[2 * j + 1] = v;
            }
            memcpy(r0 + ow, r0, ow * sizeof(float));
        }
    }
}

void upsample2_bwd(const float *dy, shape4 xs, float *dx)
{
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    size_t ow = 2 * (size_t)xs.w;
    int nt = team(planes, 4 * shape4_numel(xs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        const float *yp = dy + p * 4 * (size_t)xs.h * (size_t)xs.w;
        float *xp = dx + p * (size_t)xs.h * (size_t)xs.w;
        for (int i = 0; i < xs.h; i++) {
            const float *r0 = yp + (size_t)(2 * i) * ow, *r1 = r0 + ow;
            for (int j = 0; j < xs.w; j++)
                xp[(size_t)i * (size_t)xs.w + (size_t)j] = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
        }
    }
}

/* ---- channel concat ---- */

void concat_fwd(const float *a, int ca, const float *b, int cb, int n, int h, int w, float *y)
{
    size_t hw = (size_t)h * (size_t)w, sa = (size_t)ca * hw, sb = (size_t)cb * hw;
    int nt = team(n > 0 ? (size_t)n : 0, (size_t)(n > 0 ? n : 0) * (sa + sb));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * (sa + sb);
        if (sa) memcpy(yi, a + (size_t)i * sa, sa * sizeof(float));
        if (sb) memcpy(yi + sa, b + (size_t)i * sb, sb * sizeof(float));
    }
}

void concat_bwd(const float *dy, int ca, int cb, int n, int h, int w, float *da, float *db)
{
    size_t hw = (size_t)h * (size_t)w, sa = (size_t)ca * hw, sb = (size_t)cb * hw;
    int nt = team(n > 0 ? (size_t)n : 0, (size_t)(n > 0 ? n : 0) * (sa + sb));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (int i = 0; i < n; i++) {
        const float *yi = dy + (size_t)i * (sa + sb);
        if (da && sa) memcpy(da + (size_t)i * sa, yi, sa * sizeof(float));
        if (db && sb) memcpy(db + (size_t)i * sb, yi + sa, sb * sizeof(float));
    }
}

/* ---- quadrants ---- */

void quadrant_crop(const float *x, shape4 xs, int q, float *y)
{
    int hh = xs.h / 2, hw = xs.w / 2;
    size_t r0 = (q & 2) ? (size_t)hh : 0, c0 = (q & 1) ? (size_t)hw : 0;
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    int nt = team(planes, shape4_numel(xs) / 4);
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)xs.h * (size_t)xs.w;
        float *yp = y + p * (size_t)hh * (size_t)hw;
        for (int i = 0; i < hh; i++)
            memcpy(yp + (size_t)i * (size_t)hw, xp + (r0 + (size_t)i) * (size_t)xs.w + c0, (size_t)hw * sizeof(float));
    }
}

void quadrant_assemble(const float *y, shape4 xs, int q, float *x)
{
    int hh = xs.h / 2, hw = xs.w / 2;
    size_t r0 = (q & 2) ? (size_t)hh : 0, c0 = (q & 1) ? (size_t)hw : 0;
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    int nt = team(planes, shape4_numel(xs) / 4);
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        float *xp = x + p * (size_t)xs.h * (size_t)xs.w;
        const float *yp = y + p * (size_t)hh * (size_t)hw;
        for (int i = 0; i < hh; i++)
            memcpy(xp + (r0 + (size_t)i) * (size_t)xs.w + c0, yp + (size_t)i * (size_t)hw, (size_t)hw * sizeof(float));
    }
}

/* ---- broadcast products ---- */

void mul_spatial_fwd(const float *r, shape4 rs, const float *a, float *y)
{
    size_t hw = (size_t)rs.h * (size_t)rs.w, planes = (size_t)rs.n * (size_t)rs.c;
    int nt = team(planes, shape4_numel(rs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        const float *an = a + (p / (size_t)rs.c) * hw;
        for (size_t i = 0; i < hw; i++) y[p * hw + i] = r[p * hw + i] * an[i];
    }
}

/* da [N,1,H,W] = sum over channels of dy * r (written, not accumulated). */
void mul_spatial_bwd(const float *r, shape4 rs, const float *a, const float *dy, float *dr, float *da)
{
    size_t hw = (size_t)rs.h * (size_t)rs.w;
    int nt = team(rs.n > 0 ? (size_t)rs.n : 0, shape4_numel(rs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (int n = 0; n < rs.n; n++) {
        const float *an = a + (size_t)n * hw;
        float *dan = da ? da + (size_t)n * hw : NULL;
        if (dan) memset(dan, 0, hw * sizeof(float));
        for (int c = 0; c < rs.c; c++) {
            size_t off = ((size_t)n * (size_t)rs.c + (size_t)c) * hw;
            for (size_t i = 0; i < hw; i++) {
                if (dr) dr[off + i] = dy[off + i] * an[i];
                if (dan) dan[i] += dy[off + i] * r[off + i];
            }
        }
    }
}

void mul_channel_fwd(const float *r, shape4 rs, const float *s, float *y)
{
    size_t hw = (size_t)rs.h * (size_t)rs.w, planes = (size_t)rs.n * (size_t)rs.c;
    int nt = team(planes, shape4_numel(rs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        float sv = s[p];
        for (size_t i = 0; i < hw; i++) y[p * hw + i] = r[p * hw + i] * sv;
    }
}

/* ds [N,C] = sum over H,W of dy * r (written, not accumulated; double sum). */
void mul_channel_bwd(const float *r, shape4 rs, const float *s, const float *dy, float *dr, float *ds)
{
    size_t hw = (size_t)rs.h * (size_t)rs.w, planes = (size_t)rs.n * (size_t)rs.c;
    int nt = team(planes, 2 * shape4_numel(rs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        float sv = s[p];
        double acc = 0.0;
        for (size_t i = 0; i < hw; i++) {
            if (dr) dr[p * hw + i] = dy[p * hw + i] * sv;
            acc += (double)dy[p * hw + i] * (double)r[p * hw + i];
        }
        if (ds) ds[p] = (float)acc;
    }
}

/* ---- pooling to vectors (sums in double) ---- */

void avgpool_global_fwd(const float *x, shape4 xs, float *y)
{
    size_t hw = (size_t)xs.h * (size_t)xs.w, planes = (size_t)xs.n * (size_t)xs.c;
    int nt = team(planes, shape4_numel(xs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        double acc = 0.0;
        for (size_t i = 0; i < hw; i++) acc += x[p * hw + i];
        y[p] = (float)(acc / (double)hw);
    }
}

void avgpool_global_bwd(const float *dy, shape4 xs, float *dx)
{
    size_t hw = (size_t)xs.h * (size_t)xs.w, planes = (size_t)xs.n * (size_t)xs.c;
    int nt = team(planes, shape4_numel(xs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        float g = (float)((double)dy[p] / (double)hw);
        for (size_t i = 0; i < hw; i++) dx[p * hw + i] = g;
    }
}

void avgpool_block_fwd(const float *x, shape4 xs, int g, float *y)
{
    int bh = xs.h / g, bw = xs.w / g;
    double inv = 1.0 / ((double)bh * (double)bw);
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    int nt = team(planes, shape4_numel(xs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)xs.h * (size_t)xs.w;
        float *yp = y + p * (size_t)g * (size_t)g;
        for (int bi = 0; bi < g; bi++) {
            for (int bj = 0; bj < g; bj++) {
                double acc = 0.0;
                for (int i = bi * bh; i < (bi + 1) * bh; i++)
                    for (int j = bj * bw; j < (bj + 1) * bw; j++) acc += xp[(size_t)i * (size_t)xs.w + (size_t)j];
                yp[(size_t)bi * (size_t)g + (size_t)bj] = (float)(acc * inv);
            }
        }
    }
}

void avgpool_block_bwd(const float *dy, shape4 xs, int g, float *dx)
{
    int bh = xs.h / g, bw = xs.w / g;
    double inv = 1.0 / ((double)bh * (double)bw);
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    int nt = team(planes, shape4_numel(xs));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t p = 0; p < planes; p++) {
        float *xp = dx + p * (size_t)xs.h * (size_t)xs.w;
        const float *yp = dy + p * (size_t)g * (size_t)g;
        for (int i = 0; i < xs.h; i++) {
            float *xr = xp + (size_t)i * (size_t)xs.w;
            const float *yr = yp + (size_t)(i / bh) * (size_t)g;
            for (int bj = 0; bj < g; bj++) {
                float v = (float)((double)yr[bj] * inv);
                for (int j = bj * bw; j < (bj + 1) * bw; j++) xr[j] = v;
            }
        }
    }
}

/* ---- losses ---- */

/* Mean over the batch of -log softmax(logits)[label], via log-sum-exp in
 * double. dlogits (may be NULL) = scale * (softmax - onehot) / n.
 * Invalid input (n <= 0, k <= 0, or any label outside [0, k)) is reported by
 * returning NAN, checked before anything is written: dlogits is untouched. */
float softmax_ce(const float *logits, int n, int k, const int *labels, float scale, float *dlogits)
{
    if (n <= 0 || k <= 0) return NAN;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k) return NAN;
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)k;
        double m = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > m) m = z[j];
        double se = 0.0;
        for (int j = 0; j < k; j++) se += exp((double)z[j] - m);
        double lse = m + log(se);
        total += lse - (double)z[labels[i]];
        if (dlogits) {
            float *d = dlogits + (size_t)i * (size_t)k;
            double f = (double)scale / (double)n;
            for (int j = 0; j < k; j++) {
                double p = exp((double)z[j] - lse);
                d[j] = (float)(f * (p - (j == labels[i] ? 1.0 : 0.0)));
            }
        }
    }
    return (float)(total / (double)n);
}

/* Mean over all n elements of (a - t)^2; da (may be NULL) = scale*2*(a - t)/n.
 * n == 0 returns NAN (mean of nothing) and writes nothing. The sum: chunks
 * of MSE_CHUNK elements (more for huge n: at most MSE_MAXCHUNKS chunks),
 * each summed in order, then the chunk sums in order. */
enum { MSE_CHUNK = 1 << 14, MSE_MAXCHUNKS = 1024 };

float mse(const float *a, const float *target, size_t n, float scale, float *da)
{
    if (n == 0) return NAN;
    double part[MSE_MAXCHUNKS], f = 2.0 * (double)scale / (double)n;
    size_t chunk = MSE_CHUNK;
    if ((n + chunk - 1) / chunk > MSE_MAXCHUNKS) chunk = (n + MSE_MAXCHUNKS - 1) / MSE_MAXCHUNKS;
    size_t nch = (n + chunk - 1) / chunk;
    int nt = team(nch, n);
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (size_t ch = 0; ch < nch; ch++) {
        size_t i0 = ch * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        double acc = 0.0;
        for (size_t i = i0; i < i1; i++) {
            double d = (double)a[i] - (double)target[i];
            acc += d * d;
            if (da) da[i] = (float)(f * d);
        }
        part[ch] = acc;
    }
    double acc = 0.0;
    for (size_t ch = 0; ch < nch; ch++) acc += part[ch];
    return (float)(acc / (double)n);
}
