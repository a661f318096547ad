/* cuda_internal.h: what the three files of the CUDA backend share.
 *   backend_cuda.cu  memory, streams, errors, cuBLAS (linear), the table
 *   cudnn_ops.cu     every cuDNN call: convolutions, eval batch norm, fused
 *                    conv+BN+ReLU for eval; algorithm cache; workspace
 *   kernels.cu       our own kernels: elementwise, resampling, crop and
 *                    assemble, broadcast products, pooling, training batch
 *                    norm (+ReLU), losses, AdamW
 *                    (declared in kernels.h)
 * Everything runs on one stream (cx->stream) in issue order, but for
 * upload_ahead's host-to-device copies (cx->copy_stream, ordered by events). Kernels that
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
#include "kernels.h" /* kernels.cu's k_* (apart: the host emulation tests/cuda_emu/ needs no CUDA header) */

typedef struct cudnn_state cudnn_state; /* cudnn_ops.cu */

/* Staging buffers of upload_ahead: a training batch's four inputs, for the
 * step running and the one after it. */
enum { CU_STAGES = 8 };
typedef struct {
    const float *host; /* what the pending copy holds */
    size_t floats, cap;
    float *buf;
    cudaEvent_t ready, free; /* recorded on the copy / the main stream */
    int pending, free_recorded;
} cu_stage;

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
    /* host_alloc's page-locked blocks (others came from malloc) */
    void **pinned;
    size_t pinned_n, pinned_cap;
    /* graph capture: on while recording; releases asked for meanwhile wait
     * for its end (they fail the recording, which must not free what it uses) */
    int capturing;
    void **late_free;
    size_t late_n, late_cap;
    void *blas_ws; /* cuBLAS's workspace, ours so that a recording never allocates one */
    double *scratch; /* kernels.cu's (K_SCRATCH_DOUBLES), for the same reason */
    size_t scratch_n;
    /* upload_ahead: a second stream for host-to-device copies and the
     * staging buffers they land in (made at its first call). A stage is
     * pending from its copy until an upload() takes it; its buffer may be
     * written again once the main stream's copy out of it is done (free). */
    cudaStream_t copy_stream;
    cu_stage stages[CU_STAGES];
} cuda_ctx;

static inline cuda_ctx *CX(backend *b) { return (cuda_ctx *)b->ctx; }

/* 1 (with the recording failed) when a graph is being recorded: for the
 * calls that must not be made then (what: the call). */
int cu_capturing(backend *b, const char *what);
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
void dnn_bn_fwd_eval(backend *b, const float *x, shape4 s, const float *gamma, const float *beta,
                     const float *running_mean, const float *running_var, float eps, float *y);

#endif
