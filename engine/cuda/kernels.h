/* kernels.h: the CUDA backend's own kernels (kernels.cu), as the backend
 * (backend_cuda.cu, cudnn_ops.cu, through cuda_internal.h) calls them. It
 * needs no CUDA header: tests/cuda_emu/ compiles kernels.cu for the host and
 * checks every function here against the CPU reference bit for bit. */
#ifndef FB_CUDA_KERNELS_H
#define FB_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

/* Device scratch (doubles) the backend gives the kernels (cx->scratch) for
 * the partial sums of mse and batch norm: 1 MiB, allocated once, so that no
 * kernel allocates (graph recording forbids it). Used by one call at a time:
 * everything runs on one stream. */
#define K_SCRATCH_DOUBLES ((size_t)1 << 17)

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
/* Training-mode batch norm with its ReLU fused (relu != 0; backward through
 * it given relu_y, the forward's output), ops.h's batchnorm_fwd_train /
 * batchnorm_bwd; gamma and beta are required, and backward needs the saved
 * statistics. */
void k_bn_fwd_train(backend *b, const float *x, shape4 s, const float *gamma, const float *beta,
                    float *running_mean, float *running_var, float momentum, float eps, int relu, float *y,
                    float *save_mean, float *save_invstd);
void k_bn_bwd(backend *b, const float *x, shape4 s, const float *gamma, const float *save_mean,
              const float *save_invstd, const float *relu_y, const float *dy, float *dx, float *dgamma, float *dbeta);
void k_adamw(backend *b, float *w, const float *grad, float *m, float *v, const uint8_t *mask, size_t total,
             const adamw_coef *k);
/* FP32 <-> BF16 (round to nearest even), and BN folded into conv weights for
 * eval: wf[o,...] = w[o,...] * gamma[o] / sqrt(var[o] + eps),
 * bf[o] = beta[o] - mean[o] * gamma[o] / sqrt(var[o] + eps). */
void k_to_bf16(backend *b, const float *x, size_t n, uint16_t *y);
void k_from_bf16(backend *b, const uint16_t *x, size_t n, float *y);
void k_acc_bf16(backend *b, float *y, const uint16_t *x, size_t n); /* y += float(x) */
/* y [N,C,H,W] = act(float(x) + bias[c]): a BF16 convolution's output cast
 * back, its bias (NULL: none) and ReLU (relu != 0) in one pass. */
void k_bf16_epilogue(backend *b, const uint16_t *x, shape4 ys, const float *bias, int relu, float *y);
/* The same in place on an FP32 output: y = act(y + bias[c]); nothing to do without bias and ReLU. */
void k_bias_act(backend *b, float *y, shape4 ys, const float *bias, int relu);
void k_fold_bn(backend *b, const float *w, int oc, size_t per_oc, const float *gamma, const float *beta,
               const float *mean, const float *var, float eps, float *wf, float *bf);

#endif
