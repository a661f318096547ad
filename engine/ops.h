/* ops.h: the operations of MODEL.md, forward and backward, on NCHW float32
 * buffers: the CPU reference; backend.h carries the same list to the CUDA backend).
 *
 * Shapes are explicit. Forward writes its output. Backward writes the input
 * gradients (dx, and the broadcast operands' da / ds of the products) in full
 * and ADDS (+=) into parameter gradients (conv, batch norm and linear weights
 * and biases), so gradients of shared parameters accumulate; callers zero them
 * once per step. Gradient pointers of inputs may be NULL to skip them; gamma
 * and beta may be NULL (1 and 0). Scratch comes back holding junk.
 * Scratch needs are stated per op; nothing allocates on the hot path except
 * where noted.
 *
 * Threads: the ops run on a team of ops_threads() threads (OpenMP) and their
 * results are bitwise identical for any thread count: work is split into
 * tasks fixed by the shapes alone, each task sums in a fixed order, and sums
 * across tasks are combined in task order. OpenBLAS is kept at one thread
 * (each sgemm runs inside one task). Calls from several threads at once are
 * safe (conv2d_* take turns on their workspace); from inside an OpenMP
 * parallel region an op runs on its calling thread. */
#ifndef FB_OPS_H
#define FB_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct { int n, c, h, w; } shape4;

/* ---- threads and workspace ----
 * ops_set_threads(n): the team size of every later op (n <= 0: the default,
 * OMP_NUM_THREADS if set, else every available core; at most 256); it also
 * (re)sets OpenBLAS to one thread. ops_threads(): the current team size.
 * conv2d_* keep per-thread workspaces (column tiles, a few MiB per thread at
 * most) and one shared buffer, grown on demand and kept for later calls, so a
 * training loop allocates only while shapes grow; ops_workspace_bytes() tells
 * their size, ops_workspace_free() releases them (next use re-allocates). */
void ops_set_threads(int n);
int ops_threads(void);
/* Winograd for 3x3 stride-1 convolutions with at least 64 input and 64 output
 * channels (forward, and the backward's dx):
 * OPS_WINOGRAD_AUTO (1, the default; any other nonzero value too):
 * F(4x4,3x3) on images of at least 8x8 (within ~1.5e-5 of im2col, relative
 * to the output's max), F(2x2,3x3) on smaller ones;
 * OPS_WINOGRAD_F2: F(2x2,3x3) only (within ~1e-6 relative of im2col);
 * OPS_WINOGRAD_F4: F(4x4,3x3) at every size; 0 (OPS_WINOGRAD_OFF): im2col +
 * sgemm everywhere (the plain reference path). Either way results do not
 * depend on the thread count. */
enum { OPS_WINOGRAD_OFF = 0, OPS_WINOGRAD_AUTO = 1, OPS_WINOGRAD_F2 = 2, OPS_WINOGRAD_F4 = 3 };
void ops_set_winograd(int mode);
int ops_winograd(void); /* the mode in force */
size_t ops_workspace_bytes(void);
void ops_workspace_free(void);

static inline size_t shape4_numel(shape4 s) { return (size_t)s.n * (size_t)s.c * (size_t)s.h * (size_t)s.w; }

/* ---- convolution: kernel k (odd), stride s, padding k/2, optional bias ----
 * x [N,C,H,W], w [OC,C,k,k], b [OC] or NULL -> y [N,OC,OH,OW], OH = (H + 2*(k/2) - k)/s + 1.
 * scratch: unused (the ops' own workspace serves, see above) and may be NULL;
 * conv2d_scratch_floats() returns 0. Both are kept for source compatibility. */
size_t conv2d_scratch_floats(shape4 xs, int k, int stride);
static inline shape4 conv2d_out_shape(shape4 xs, int oc, int k, int stride)
{
    shape4 y = {xs.n, oc, (xs.h + 2 * (k / 2) - k) / stride + 1, (xs.w + 2 * (k / 2) - k) / stride + 1};
    return y;
}
void conv2d_fwd(const float *x, shape4 xs, const float *w, const float *b, int oc, int k, int stride, float *y,
                float *scratch);
/* dx may be NULL (first layer); db may be NULL when there is no bias. */
void conv2d_bwd(const float *x, shape4 xs, const float *w, int oc, int k, int stride, const float *dy, float *dx,
                float *dw, float *db, float *scratch);

/* ---- batch norm over (N,H,W) per channel, eps, momentum as PyTorch ----
 * Training normalises with the biased batch variance and updates running_var
 * with the unbiased one; save_mean / save_invstd [C] are kept for backward.
 * relu != 0: a ReLU follows in the same pass (y = relu_fwd of the result).
 * Backward through it passes that output as relu_y (NULL: no ReLU): dy then
 * counts where relu_y > 0, as relu_bwd would give it. */
void batchnorm_fwd_train(const float *x, shape4 s, const float *gamma, const float *beta, float *running_mean,
                         float *running_var, float momentum, float eps, int relu, float *y, float *save_mean,
                         float *save_invstd);
void batchnorm_fwd_eval(const float *x, shape4 s, const float *gamma, const float *beta, const float *running_mean,
                        const float *running_var, float eps, float *y);
void batchnorm_bwd(const float *x, shape4 s, const float *gamma, const float *save_mean, const float *save_invstd,
                   const float *relu_y, const float *dy, float *dx, float *dgamma, float *dbeta);

/* ---- elementwise ---- */
void relu_fwd(const float *x, size_t n, float *y);
void relu_bwd(const float *y, const float *dy, size_t n, float *dx);          /* from the output */
void sigmoid_fwd(const float *x, size_t n, float *y);
void sigmoid_bwd(const float *y, const float *dy, size_t n, float *dx);       /* from the output */

/* ---- resampling ---- */
/* 2x2 max pool, stride 2 (H, W even): y [N,C,H/2,W/2]; argmax [numel(y)] index into x. */
void maxpool2_fwd(const float *x, shape4 xs, float *y, int32_t *argmax);
void maxpool2_bwd(const int32_t *argmax, const float *dy, shape4 ys, float *dx, shape4 xs);  /* dx zeroed inside */
/* nearest-neighbour x2: y [N,C,2H,2W] */
void upsample2_fwd(const float *x, shape4 xs, float *y);
void upsample2_bwd(const float *dy, shape4 xs, float *dx);                     /* xs: the input's shape */

/* ---- channel concat: y = cat[a, b] along C ---- */
void concat_fwd(const float *a, int ca, const float *b, int cb, int n, int h, int w, float *y);
void concat_bwd(const float *dy, int ca, int cb, int n, int h, int w, float *da, float *db);

/* ---- quadrants (q = 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; H, W even) ---- */
void quadrant_crop(const float *x, shape4 xs, int q, float *y);                 /* y [N,C,H/2,W/2] */
void quadrant_assemble(const float *y, shape4 xs, int q, float *x);             /* writes quadrant q of x */

/* ---- broadcast products ---- */
/* y = r * a with a [N,1,H,W] broadcast over channels. */
void mul_spatial_fwd(const float *r, shape4 rs, const float *a, float *y);
void mul_spatial_bwd(const float *r, shape4 rs, const float *a, const float *dy, float *dr, float *da);
/* y = r * s with s [N,C] broadcast over H, W. */
void mul_channel_fwd(const float *r, shape4 rs, const float *s, float *y);
void mul_channel_bwd(const float *r, shape4 rs, const float *s, const float *dy, float *dr, float *ds);

/* ---- pooling to vectors ---- */
void avgpool_global_fwd(const float *x, shape4 xs, float *y);                   /* y [N,C] */
void avgpool_global_bwd(const float *dy, shape4 xs, float *dx);
/* block mean of (H/g x W/g) cells -> y [N,C,g,g] (H, W multiples of g) */
void avgpool_block_fwd(const float *x, shape4 xs, int g, float *y);
void avgpool_block_bwd(const float *dy, shape4 xs, int g, float *dx);

/* ---- linear: x [N,IN], w [OUT,IN], b [OUT] -> y [N,OUT] ---- */
void linear_fwd(const float *x, int n, int in, const float *w, const float *b, int out, float *y);
void linear_bwd(const float *x, int n, int in, const float *w, int out, const float *dy, float *dx, float *dw,
                float *db);

/* ---- losses (means as PyTorch's defaults); each returns the loss and writes
 * d(loss)/d(input) scaled by `scale` (the loss weight) ---- */
float softmax_ce(const float *logits, int n, int k, const int *labels, float scale, float *dlogits);
float mse(const float *a, const float *target, size_t n, float scale, float *da);

#endif
