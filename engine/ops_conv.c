/* ops_conv.c: convolution (im2col + sgemm), batch norm and linear of ops.h,
 * the CPU reference. GEMMs go through CBLAS (Debian's reference libblas). */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- convolution --------------------------------------------------------- */

static int conv_out_dim(int in, int k, int stride) { return (in + 2 * (k / 2) - k) / stride + 1; }

size_t conv2d_scratch_floats(shape4 xs, int k, int stride)
{
    size_t oh = (size_t)conv_out_dim(xs.h, k, stride), ow = (size_t)conv_out_dim(xs.w, k, stride);
    return (size_t)xs.c * (size_t)k * (size_t)k * oh * ow;
}

shape4 conv2d_out_shape(shape4 xs, int oc, int k, int stride)
{
    shape4 y = {xs.n, oc, conv_out_dim(xs.h, k, stride), conv_out_dim(xs.w, k, stride)};
    return y;
}

/* col[(c*k + ky)*k + kx][oy*OW + ox] = x[c][oy*s - p + ky][ox*s - p + kx], 0 outside. */
static void im2col(const float *x, int c, int h, int w, int k, int s, int oh, int ow, float *col)
{
    int p = k / 2;
    for (int ci = 0; ci < c; ci++) {
        const float *xc = x + (size_t)ci * h * w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(ci * k + ky) * k + kx) * oh * ow;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * s - p + ky;
                    float *r = row + (size_t)oy * ow;
                    if (iy < 0 || iy >= h) {
                        memset(r, 0, (size_t)ow * sizeof(float));
                        continue;
                    }
                    const float *xr = xc + (size_t)iy * w;
                    for (int ox = 0; ox < ow; ox++) {
                        int ix = ox * s - p + kx;
                        r[ox] = (ix >= 0 && ix < w) ? xr[ix] : 0.0f;
                    }
                }
            }
        }
    }
}

/* The adjoint of im2col: dx (already initialised) += scatter of col. */
static void col2im_add(const float *col, int c, int h, int w, int k, int s, int oh, int ow, float *dx)
{
    int p = k / 2;
    for (int ci = 0; ci < c; ci++) {
        float *dc = dx + (size_t)ci * h * w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((size_t)(ci * k + ky) * k + kx) * oh * ow;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= h)
                        continue;
                    const float *r = row + (size_t)oy * ow;
                    float *dr = dc + (size_t)iy * w;
                    for (int ox = 0; ox < ow; ox++) {
                        int ix = ox * s - p + kx;
                        if (ix >= 0 && ix < w)
                            dr[ix] += r[ox];
                    }
                }
            }
        }
    }
}

void conv2d_fwd(const float *x, shape4 xs, const float *w, const float *b, int oc, int k, int stride, float *y,
                float *scratch)
{
    shape4 ys = conv2d_out_shape(xs, oc, k, stride);
    int K = xs.c * k * k, P = ys.h * ys.w;
    size_t xstride = (size_t)xs.c * xs.h * xs.w, ystride = (size_t)oc * P;
    int direct = (k == 1 && stride == 1); /* col is the image itself */
    for (int n = 0; n < xs.n; n++) {
        const float *xn = x + n * xstride;
        float *yn = y + n * ystride;
        const float *col = xn;
        if (!direct) {
            im2col(xn, xs.c, xs.h, xs.w, k, stride, ys.h, ys.w, scratch);
            col = scratch;
        }
        float beta = 0.0f;
        if (b) {
            for (int o = 0; o < oc; o++)
                for (int i = 0; i < P; i++)
                    yn[(size_t)o * P + i] = b[o];
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, P, K, 1.0f, w, K, col, P, beta, yn, P);
    }
}

void conv2d_bwd(const float *x, shape4 xs, const float *w, int oc, int k, int stride, const float *dy, float *dx,
                float *dw, float *db, float *scratch)
{
    shape4 ys = conv2d_out_shape(xs, oc, k, stride);
    int K = xs.c * k * k, P = ys.h * ys.w;
    size_t xstride = (size_t)xs.c * xs.h * xs.w, ystride = (size_t)oc * P;
    int direct = (k == 1 && stride == 1);
    if (db) { /* summed over N, OH, OW in double, added once */
        for (int o = 0; o < oc; o++) {
            double s = 0.0;
            for (int n = 0; n < xs.n; n++) {
                const float *d = dy + n * ystride + (size_t)o * P;
                for (int i = 0; i < P; i++)
                    s += d[i];
            }
            db[o] += (float)s;
        }
    }
    for (int n = 0; n < xs.n; n++) {
        const float *xn = x + n * xstride;
        const float *dyn = dy + n * ystride;
        if (dw) {
            const float *col = xn;
            if (!direct) {
                im2col(xn, xs.c, xs.h, xs.w, k, stride, ys.h, ys.w, scratch);
                col = scratch;
            }
            /* dW[OC,K] += dY[OC,P] col[K,P]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, K, P, 1.0f, dyn, P, col, P, 1.0f, dw, K);
        }
        if (dx) {
            float *dxn = dx + n * xstride;
            if (direct) {
                /* dx[C,HW] = W[OC,C]^T dY[OC,HW] */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, oc, 1.0f, w, K, dyn, P, 0.0f, dxn, P);
            } else {
                /* dcol[K,P] = W[OC,K]^T dY[OC,P], reusing the scratch (col is no longer needed) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, oc, 1.0f, w, K, dyn, P, 0.0f, scratch,
                            P);
                memset(dxn, 0, xstride * sizeof(float));
                col2im_add(scratch, xs.c, xs.h, xs.w, k, stride, ys.h, ys.w, dxn);
            }
        }
    }
}

/* ---- batch norm ---------------------------------------------------------- */

void batchnorm_fwd_train(const float *x, shape4 s, const float *gamma, const float *beta, float *running_mean,
                         float *running_var, float momentum, float eps, float *y, float *save_mean, float *save_invstd)
{
    size_t hw = (size_t)s.h * s.w, cs = (size_t)s.c * hw, M = (size_t)s.n * hw;
    for (int c = 0; c < s.c; c++) {
        double sum = 0.0;
        for (int n = 0; n < s.n; n++) {
            const float *xp = x + n * cs + c * hw;
            for (size_t i = 0; i < hw; i++)
                sum += xp[i];
        }
        double mean = sum / (double)M;
        double ss = 0.0;
        for (int n = 0; n < s.n; n++) {
            const float *xp = x + n * cs + c * hw;
            for (size_t i = 0; i < hw; i++) {
                double d = xp[i] - mean;
                ss += d * d;
            }
        }
        double var = ss / (double)M;
        double invstd = 1.0 / sqrt(var + (double)eps);
        /* M == 1: PyTorch refuses to train; the unbiased variance is undefined, keep the biased one (0). */
        double uvar = M > 1 ? ss / (double)(M - 1) : var;
        double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
        for (int n = 0; n < s.n; n++) {
            const float *xp = x + n * cs + c * hw;
            float *yp = y + n * cs + c * hw;
            for (size_t i = 0; i < hw; i++)
                yp[i] = (float)((xp[i] - mean) * invstd * g + bt);
        }
        if (running_mean)
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + (double)momentum * mean);
        if (running_var)
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + (double)momentum * uvar);
        if (save_mean)
            save_mean[c] = (float)mean;
        if (save_invstd)
            save_invstd[c] = (float)invstd;
    }
}

void batchnorm_fwd_eval(const float *x, shape4 s, const float *gamma, const float *beta, const float *running_mean,
                        const float *running_var, float eps, float *y)
{
    size_t hw = (size_t)s.h * s.w, cs = (size_t)s.c * hw;
    for (int c = 0; c < s.c; c++) {
        double invstd = 1.0 / sqrt((double)running_var[c] + (double)eps);
        double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
        float scale = (float)(g * invstd), shift = (float)(bt - running_mean[c] * g * invstd);
        for (int n = 0; n < s.n; n++) {
            const float *xp = x + n * cs + c * hw;
            float *yp = y + n * cs + c * hw;
            for (size_t i = 0; i < hw; i++)
                yp[i] = xp[i] * scale + shift;
        }
    }
}

void batchnorm_bwd(const float *x, shape4 s, const float *gamma, const float *save_mean, const float *save_invstd,
                   const float *dy, float *dx, float *dgamma, float *dbeta)
{
    size_t hw = (size_t)s.h * s.w, cs = (size_t)s.c * hw, M = (size_t)s.n * hw;
    for (int c = 0; c < s.c; c++) {
        double mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int n = 0; n < s.n; n++) {
            const float *xp = x + n * cs + c * hw, *dp = dy + n * cs + c * hw;
            for (size_t i = 0; i < hw; i++) {
                sdy += dp[i];
                sdyx += dp[i] * ((xp[i] - mean) * invstd);
            }
        }
        if (dgamma)
            dgamma[c] += (float)sdyx;
        if (dbeta)
            dbeta[c] += (float)sdy;
        if (dx) {
            double g = gamma ? gamma[c] : 1.0;
            double k = g * invstd / (double)M;
            for (int n = 0; n < s.n; n++) {
                const float *xp = x + n * cs + c * hw, *dp = dy + n * cs + c * hw;
                float *dxp = dx + n * cs + c * hw;
                for (size_t i = 0; i < hw; i++) {
                    double xhat = (xp[i] - mean) * invstd;
                    dxp[i] = (float)(k * ((double)M * dp[i] - sdy - xhat * sdyx));
                }
            }
        }
    }
}

/* ---- linear -------------------------------------------------------------- */

void linear_fwd(const float *x, int n, int in, const float *w, const float *b, int out, float *y)
{
    float beta = 0.0f;
    if (b) {
        for (int i = 0; i < n; i++)
            memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    /* y[N,OUT] = x[N,IN] w[OUT,IN]^T (+ b) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, beta, y, out);
}

void linear_bwd(const float *x, int n, int in, const float *w, int out, const float *dy, float *dx, float *dw,
                float *db)
{
    if (dw) /* dw[OUT,IN] += dy[N,OUT]^T x[N,IN] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db) {
        for (int o = 0; o < out; o++) {
            double s = 0.0;
            for (int i = 0; i < n; i++)
                s += dy[(size_t)i * out + o];
            db[o] += (float)s;
        }
    }
    if (dx) /* dx[N,IN] = dy[N,OUT] w[OUT,IN] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}
