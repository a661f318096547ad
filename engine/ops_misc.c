/* ops_misc.c: the parameter-free ops of ops.h (everything except conv2d_*,
 * batchnorm_* and linear_*): activations, resampling, concat, quadrants,
 * broadcast products, pooling to vectors and the two losses.
 *
 * Conventions (ops.h): NCHW float32; forward writes its output; backward
 * writes (=, not +=) the input gradients in full, zeroing where needed. None
 * of these ops has parameters, so nothing here accumulates.
 * Where a backward has two input gradients (concat, mul_*), either pointer
 * may be NULL to skip it. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ---- elementwise ---- */

void relu_fwd(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* From the output: y > 0 exactly where x > 0 (the subgradient at 0 is 0). */
void relu_bwd(const float *y, const float *dy, size_t n, float *dx)
{
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* Stable for large |x|: exp is only taken of a non-positive argument. */
void sigmoid_fwd(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (v >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            y[i] = e / (1.0f + e);
        }
    }
}

void sigmoid_bwd(const float *y, const float *dy, size_t n, float *dx)
{
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

/* ---- resampling ---- */

/* Ties: the first maximum in row-major window order wins (as PyTorch). A NaN
 * in the window is propagated (as PyTorch): it is selected and never replaced. */
void maxpool2_fwd(const float *x, shape4 xs, float *y, int32_t *argmax)
{
    int oh = xs.h / 2, ow = xs.w / 2;
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)xs.h * (size_t)xs.w;
        size_t xbase = p * (size_t)xs.h * (size_t)xs.w;
        float *yp = y + p * (size_t)oh * (size_t)ow;
        int32_t *ap = argmax + p * (size_t)oh * (size_t)ow;
        for (int i = 0; i < oh; i++) {
            for (int j = 0; j < ow; j++) {
                size_t best = (size_t)(2 * i) * (size_t)xs.w + (size_t)(2 * j);
                float bv = xp[best];
                for (int di = 0; di < 2; di++) {
                    for (int dj = 0; dj < 2; dj++) {
                        size_t idx = (size_t)(2 * i + di) * (size_t)xs.w + (size_t)(2 * j + dj);
                        float v = xp[idx];
                        if (!isnan(bv) && (v > bv || isnan(v))) {
                            bv = v;
                            best = idx;
                        }
                    }
                }
                yp[(size_t)i * (size_t)ow + (size_t)j] = bv;
                ap[(size_t)i * (size_t)ow + (size_t)j] = (int32_t)(xbase + best);
            }
        }
    }
}

void maxpool2_bwd(const int32_t *argmax, const float *dy, shape4 ys, float *dx, shape4 xs)
{
    memset(dx, 0, shape4_numel(xs) * sizeof(float));
    size_t n = shape4_numel(ys);
    for (size_t i = 0; i < n; i++) dx[argmax[i]] += dy[i];
}

void upsample2_fwd(const float *x, shape4 xs, float *y)
{
    size_t planes = (size_t)xs.n * (size_t)xs.c;
    size_t ow = 2 * (size_t)xs.w;
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
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * (sa + sb);
        if (sa) memcpy(yi, a + (size_t)i * sa, sa * sizeof(float));
        if (sb) memcpy(yi + sa, b + (size_t)i * sb, sb * sizeof(float));
    }
}

void concat_bwd(const float *dy, int ca, int cb, int n, int h, int w, float *da, float *db)
{
    size_t hw = (size_t)h * (size_t)w, sa = (size_t)ca * hw, sb = (size_t)cb * hw;
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
    size_t hw = (size_t)rs.h * (size_t)rs.w;
    for (int n = 0; n < rs.n; n++) {
        const float *an = a + (size_t)n * hw;
        for (int c = 0; c < rs.c; c++) {
            size_t off = ((size_t)n * (size_t)rs.c + (size_t)c) * hw;
            for (size_t i = 0; i < hw; i++) y[off + i] = r[off + i] * an[i];
        }
    }
}

/* da [N,1,H,W] = sum over channels of dy * r (written, not accumulated). */
void mul_spatial_bwd(const float *r, shape4 rs, const float *a, const float *dy, float *dr, float *da)
{
    size_t hw = (size_t)rs.h * (size_t)rs.w;
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
    for (size_t p = 0; p < planes; p++) {
        float sv = s[p];
        for (size_t i = 0; i < hw; i++) y[p * hw + i] = r[p * hw + i] * sv;
    }
}

/* ds [N,C] = sum over H,W of dy * r (written, not accumulated; double sum). */
void mul_channel_bwd(const float *r, shape4 rs, const float *s, const float *dy, float *dr, float *ds)
{
    size_t hw = (size_t)rs.h * (size_t)rs.w, planes = (size_t)rs.n * (size_t)rs.c;
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
    for (size_t p = 0; p < planes; p++) {
        double acc = 0.0;
        for (size_t i = 0; i < hw; i++) acc += x[p * hw + i];
        y[p] = (float)(acc / (double)hw);
    }
}

void avgpool_global_bwd(const float *dy, shape4 xs, float *dx)
{
    size_t hw = (size_t)xs.h * (size_t)xs.w, planes = (size_t)xs.n * (size_t)xs.c;
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
    for (size_t p = 0; p < planes; p++) {
        float *xp = dx + p * (size_t)xs.h * (size_t)xs.w;
        const float *yp = dy + p * (size_t)g * (size_t)g;
        for (int i = 0; i < xs.h; i++)
            for (int j = 0; j < xs.w; j++)
                xp[(size_t)i * (size_t)xs.w + (size_t)j] = (float)((double)yp[(size_t)(i / bh) * (size_t)g + (size_t)(j / bw)] * inv);
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
 * n == 0 returns NAN (mean of nothing) and writes nothing. */
float mse(const float *a, const float *target, size_t n, float scale, float *da)
{
    if (n == 0) return NAN;
    double acc = 0.0, f = 2.0 * (double)scale / (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)target[i];
        acc += d * d;
        if (da) da[i] = (float)(f * d);
    }
    return (float)(acc / (double)n);
}
