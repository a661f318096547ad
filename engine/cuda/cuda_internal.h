/* cuda_internal.h: what the three files of the CUDA backend share.
 *   backend_cuda.cu  memory, streams, errors, cuBLAS (linear), the table
 *   cudnn_ops.cu     every cuDNN call: convolutions, batch norm, fused
 *                    conv+BN+ReLU for eval; algorithm cache; workspace
 *   kernels.cu       our own kernels: elementwise, resampling, crop and
 *                    assemble, broadcast products, pooling, losses, AdamW
 * Everything runs on one stream (cx->stream) in issue order. Kernels that
 * reduce do so in a fixed order (no atomics), so results are bitwise
 * reproducible run to run; cuDNN/cuBLAS are when opt.deterministic is set. */
#ifndef FB_CUDA_INTERNAL_H
#define FB_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

typedef struct cudnn_state cudnn_state; /* cudnn_ops.cu */

typedef struct {
    cudaStream_t stream;
    cublasHandle_t blas;
    cudnn_state *dnn;
    int sm_count;
    char err[256];
    int failed;
    size_t in_use, peak; /* bytes: our allocations (buffers and workspaces) */
    /* sizes of live allocations, for release(): a small open-addressing map */
    void **keys;
    size_t *sizes;
    size_t map_cap, map_n;
} cuda_ctx;

static inline cuda_ctx *CX(backend *b) { return (cuda_ctx *)b->ctx; }

/* Records the first error (sticky); returns 1 if this call failed. */
int cu_fail(backend *b, const char *what, const char *detail);
int cu_check(backend *b, cudaError_t e, const char *what);
/* Device memory through the backend's accounting (NULL on failure, error set). */
void *cu_malloc(backend *b, size_t bytes);
void cu_free(backend *b, void *p);
/* Waits for the stream and hands the pool's unused memory back to the
 * device, so that cuDNN's algorithm search (which allocates its own
 * buffers) sees all the free memory there is. */
void cu_trim(backend *b);

/* ---- cudnn_ops.cu ---- */
int dnn_create(backend *b);
void dnn_destroy(backend *b);
size_t dnn_bytes(backend *b);
void dnn_conv_fwd(backend *b, const float *x, shape4 xs, const float *w, const float *bias, int oc, int k,
                  int stride, float *y);
void dnn_conv_bwd(backend *b, const float *x, shape4 xs, const float *w, int oc, int k, int stride,
                  const float *dy, float *dx, float *dw, float *dbias);
void dnn_conv_bn_eval(backend *b, const float *x, shape4 xs, const float *w, int oc, int k, int stride,
                      const float *gamma, const float *beta, const float *mean, const float *var, float eps,
                      int relu, float *y);
void dnn_bn_fwd_train(backend *b, const float *x, shape4 s, const float *gamma, const float *beta,
                      float *running_mean, float *running_var, float momentum, float eps, float *y,
                      float *save_mean, float *save_invstd);
void dnn_bn_fwd_eval(backend *b, const float *x, shape4 s, const float *gamma, const float *beta,
                     const float *running_mean, const float *running_var, float eps, float *y);
void dnn_bn_bwd(backend *b, const float *x, shape4 s, const float *gamma, const float *save_mean,
                const float *save_invstd, const float *dy, float *dx, float *dgamma, float *dbeta);

/* ---- kernels.cu: each launches on cx->stream and checks the launch ---- */
void k_fill(backend *b, float *y, float v, size_t n);
void k_copy(backend *b, float *y, const float *x, size_t n);
void k_acc(backend *b, float *y, const float *x, size_t n);
void k_add(backend *b, float *y, const float *x1, const float *x2, size_t n);
void k_axpb(backend *b, float *y, const float *x, float a, float c, size_t n);
void k_relu_fwd(backend *b, const float *x, size_t n, float *y);
void k_relu_bwd(backend *b, const float *y, const float *dy, size_t n, float *dx);
void k_sigmoid_fwd(backend *b, const float *x, size_t n, float *y);
void k_sigmoid_bwd(backend *b, const float *y, const float *dy, size_t n, float *dx);
void k_maxpool2_fwd(backend *b, const float *x, shape4 xs, float *y, int32_t *argmax);
void k_maxpool2_bwd(backend *b, const int32_t *argmax, const float *dy, shape4 ys, float *dx, shape4 xs);
void k_upsample2_fwd(backend *b, const float *x, shape4 xs, float *y);
void k_upsample2_bwd(backend *b, const float *dy, shape4 xs, float *dx);
void k_concat_fwd(backend *b, const float *a, int ca, const float *c, int cc, int n, int h, int w, float *y);
void k_concat_bwd(backend *b, const float *dy, int ca, int cc, int n, int h, int w, float *da, float *dc);
void k_quadrant_crop(backend *b, const float *x, shape4 xs, int q, float *y);
void k_quadrant_assemble(backend *b, const float *y, shape4 xs, int q, float *x);
void k_mul_spatial_fwd(backend *b, const float *r, shape4 rs, const float *a, float *y);
void k_mul_spatial_bwd(backend *b, const float *r, shape4 rs, const float *a, const float *dy, float *dr, float *da);
void k_mul_channel_fwd(backend *b, const float *r, shape4 rs, const float *s, float *y);
void k_mul_channel_bwd(backend *b, const float *r, shape4 rs, const float *s, const float *dy, float *dr, float *ds);
void k_avgpool_global_fwd(backend *b, const float *x, shape4 xs, float *y);
void k_avgpool_global_bwd(backend *b, const float *dy, shape4 xs, float *dx);
void k_avgpool_block_fwd(backend *b, const float *x, shape4 xs, int g, float *y);
void k_avgpool_block_bwd(backend *b, const float *dy, shape4 xs, int g, float *dx);
/* y[n,out] += bias[out] broadcast; dbias[out] += sum over n of dy[n,out] */
void k_bias_add_rows(backend *b, float *y, const float *bias, int n, int out);
void k_bias_grad_rows(backend *b, const float *dy, int n, int out, float *dbias);
void k_softmax_ce(backend *b, const float *logits, int n, int k, const int32_t *labels, float scale, float *dlogits,
                  float *loss);
void k_mse(backend *b, const float *a, const float *target, size_t n, float scale, float *da, float *loss);
void k_adamw(backend *b, float *w, const float *grad, float *m, float *v, const uint8_t *mask, size_t total,
             const adamw_coef *k);
/* FP32 <-> BF16 (round to nearest even), and BN folded into conv weights for
 * eval: wf[o,...] = w[o,...] * gamma[o] / sqrt(var[o] + eps),
 * bf[o] = beta[o] - mean[o] * gamma[o] / sqrt(var[o] + eps). */
void k_to_bf16(backend *b, const float *x, size_t n, uint16_t *y);
void k_from_bf16(backend *b, const uint16_t *x, size_t n, float *y);
void k_acc_bf16(backend *b, float *y, const uint16_t *x, size_t n); /* y += float(x) */
void k_fold_bn(backend *b, const float *w, int oc, size_t per_oc, const float *gamma, const float *beta,
               const float *mean, const float *var, float eps, float *wf, float *bf);

#endif
