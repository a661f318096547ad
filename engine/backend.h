/* backend.h: where the ops of ops.h run. A backend is a table of functions
 * with ops.h's semantics (shapes, "backward writes dx, adds into parameter
 * gradients", NULL to skip a gradient) on buffers it owns: host memory for
 * the CPU backend, GPU memory for the CUDA one. net.c drives a backend and
 * never touches its buffers directly; it moves data with upload/download.
 *
 * The CPU backend (backend_cpu.c) is the reference: each entry calls ops.h.
 * The CUDA backend (engine/cuda/) is built into bin/libfbcuda.so when nvcc
 * and cudnn.h are found and loaded on demand by backend_open("cuda") from
 * beside the running executable (or $FERBENCH_CUDA_LIB), so a CPU build
 * never links CUDA. Every op of the CUDA backend is checked
 * against the CPU one (tests/test_backend.c).
 *
 * Calls are asynchronous on device backends: they return before the work is
 * done, in issue order; download() and sync() wait. Errors (a failed launch,
 * out of memory) are sticky: the first is kept in error() and, on a device,
 * later calls become no-ops until the backend is freed (on the CPU only an
 * allocation can fail).
 * Narrower than ops.h on CUDA: batch norm needs gamma and beta (the network
 * always passes them). */
#ifndef FB_BACKEND_H
#define FB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "optim.h"

/* Arithmetic of the convolutions and linear layers on a device: FP32 with
 * FMA only (no tensor cores; the parity reference), TF32 tensor cores, or
 * (convolutions) BF16 inputs with FP32 accumulation, linear layers then in
 * TF32 (weights, gradients and everything else stay FP32: FP32 master
 * weights). The CPU is FP32 only. */
typedef enum { PREC_FP32 = 0, PREC_TF32 = 1, PREC_BF16 = 2 } precision;

typedef struct {
    int device;        /* CUDA device ordinal */
    precision prec;
    int deterministic; /* only algorithms whose results do not vary between runs */
    int threads;       /* CPU: the ops' team size (<= 0: default) */
    int no_graphs;     /* device: offer no graphs (capture_begin NULL): every pass runs op by op */
    int no_prefetch;   /* device: offer no upload_ahead (NULL): every upload waits its turn on the stream */
} backend_options;

typedef struct backend backend;
struct backend {
    const char *name; /* "cpu", "cuda" */
    char desc[128];   /* e.g. "cpu:2", "cuda:0 NVIDIA H100 80GB HBM3 fp32" */
    backend_options opt;
    int host_memory; /* 1: buffers are host memory the caller may read directly */
    void *ctx;

    /* ---- memory: float buffers (int32 data travels in them too) ---- */
    float *(*alloc)(backend *b, size_t floats); /* zero-filled; NULL on failure */
    void (*release)(backend *b, void *p);
    /* Host memory for what is uploaded again and again (the loader's batches):
     * page-locked on a device, so upload() is a DMA at full bus speed that
     * does not wait for the stream, instead of a staged copy; plain memory on
     * the CPU, and wherever page-locking fails. Any host memory may be
     * uploaded; from this memory the upload reads it later, so it must stay
     * unchanged until the next download() or sync(). Not zeroed. Free it
 * before closing the backend (which frees what is left). */
    void *(*host_alloc)(backend *b, size_t bytes);
    void (*host_free)(backend *b, void *p);
    void (*upload)(backend *b, float *dst, const float *host, size_t floats);
    /* Uploads ahead of need (device backends; NULL on the CPU, and with
     * opt.no_prefetch): starts copying `floats` floats of host memory into a
     * staging buffer on a second stream, so that the copy overlaps the work
     * queued meanwhile (the next batch's inputs during this step) instead
     * of waiting its turn behind it. A later upload() of the same host
     * pointer and length takes the staged copy: the stream waits for it and
     * copies it on the device (~20 us for a batch of fopm, against ~1 ms
     * over the bus). The host memory must stay unchanged until an upload()
     * has taken the copy and a download() or sync() has followed it, or
     * until host_free(), which drops whatever was staged (a later upload()
     * then copies from the host as usual); downloads and syncs keep what is
     * staged. From host_alloc memory the copy is a DMA; from other memory it
     * is read at the call. Staging a buffer that is still staged does
     * nothing. Returns 0, or -1 when nothing was staged (all staging buffers
     * hold copies not yet taken, or an error: see error()). */
    int (*upload_ahead)(backend *b, const float *host, size_t floats);
    void (*download)(backend *b, float *host, const float *src, size_t floats); /* waits */
    void (*sync)(backend *b);
    const char *(*error)(backend *b);                                           /* NULL when fine */
    size_t (*bytes_in_use)(backend *b); /* workspaces and caches the backend keeps itself */
    /* Peak memory: on a device, the most the backend had allocated since
     * reset_peak (weights, activations, gradients, workspaces); on the CPU,
     * the process's peak resident set so far (reset_peak cannot lower it). */
    size_t (*peak_bytes)(backend *b);
    void (*reset_peak)(backend *b);
    void (*destroy)(backend *b);

    /* ---- elementwise helpers of the tape ---- */
    void (*fill)(backend *b, float *y, float v, size_t n);
    void (*copy)(backend *b, float *y, const float *x, size_t n);             /* no overlap */
    void (*acc)(backend *b, float *y, const float *x, size_t n);               /* y += x */
    void (*add)(backend *b, float *y, const float *x1, const float *x2, size_t n); /* y = x1 + x2 */
    void (*axpb)(backend *b, float *y, const float *x, float a, float c, size_t n); /* y = a x + c */

    /* ---- the ops of ops.h, same arguments (minus scratch) ---- */
    void (*conv2d_fwd)(backend *b, const float *x, shape4 xs, const float *w, const float *bias, int oc, int k,
                       int stride, float *y);
    void (*conv2d_bwd)(backend *b, const float *x, shape4 xs, const float *w, int oc, int k, int stride,
                       const float *dy, float *dx, float *dw, float *dbias);
    /* Eval-mode conv -> batch norm (running statistics) -> optional ReLU, in
     * one step where the backend can fuse them (y must not alias x). */
    void (*conv2d_bn_eval)(backend *b, const float *x, shape4 xs, const float *w, int oc, int k, int stride,
                           const float *gamma, const float *beta, const float *mean, const float *var, float eps,
                           int relu, float *y);
    /* Training-mode batch norm, with the ReLU that follows it fused in
     * (relu != 0). Backward through both gets the forward's output as relu_y
     * (NULL: there was no ReLU) and counts dy where it is > 0. */
    void (*bn_fwd_train)(backend *b, const float *x, shape4 s, const float *gamma, const float *beta,
                         float *running_mean, float *running_var, float momentum, float eps, int relu, float *y,
                         float *save_mean, float *save_invstd);
    void (*bn_fwd_eval)(backend *b, const float *x, shape4 s, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, float eps, float *y);
    void (*bn_bwd)(backend *b, const float *x, shape4 s, const float *gamma, const float *save_mean,
                   const float *save_invstd, const float *relu_y, const float *dy, float *dx, float *dgamma,
                   float *dbeta);
    void (*relu_fwd)(backend *b, const float *x, size_t n, float *y);
    void (*relu_bwd)(backend *b, const float *y, const float *dy, size_t n, float *dx);
    void (*sigmoid_fwd)(backend *b, const float *x, size_t n, float *y);
    void (*sigmoid_bwd)(backend *b, const float *y, const float *dy, size_t n, float *dx);
    void (*maxpool2_fwd)(backend *b, const float *x, shape4 xs, float *y, int32_t *argmax);
    void (*maxpool2_bwd)(backend *b, const int32_t *argmax, const float *dy, shape4 ys, float *dx, shape4 xs);
    void (*upsample2_fwd)(backend *b, const float *x, shape4 xs, float *y);
    void (*upsample2_bwd)(backend *b, const float *dy, shape4 xs, float *dx);
    void (*concat_fwd)(backend *b, const float *a, int ca, const float *c, int cc, int n, int h, int w, float *y);
    void (*concat_bwd)(backend *b, const float *dy, int ca, int cc, int n, int h, int w, float *da, float *dc);
    void (*quadrant_crop)(backend *b, const float *x, shape4 xs, int q, float *y);
    void (*quadrant_assemble)(backend *b, const float *y, shape4 xs, int q, float *x);
    void (*mul_spatial_fwd)(backend *b, const float *r, shape4 rs, const float *a, float *y);
    void (*mul_spatial_bwd)(backend *b, const float *r, shape4 rs, const float *a, const float *dy, float *dr,
                            float *da);
    void (*mul_channel_fwd)(backend *b, const float *r, shape4 rs, const float *s, float *y);
    void (*mul_channel_bwd)(backend *b, const float *r, shape4 rs, const float *s, const float *dy, float *dr,
                            float *ds);
    void (*avgpool_global_fwd)(backend *b, const float *x, shape4 xs, float *y);
    void (*avgpool_global_bwd)(backend *b, const float *dy, shape4 xs, float *dx);
    void (*avgpool_block_fwd)(backend *b, const float *x, shape4 xs, int g, float *y);
    void (*avgpool_block_bwd)(backend *b, const float *dy, shape4 xs, int g, float *dx);
    void (*linear_fwd)(backend *b, const float *x, int n, int in, const float *w, const float *bias, int out,
                       float *y);
    void (*linear_bwd)(backend *b, const float *x, int n, int in, const float *w, int out, const float *dy,
                       float *dx, float *dw, float *dbias);
    /* Losses write their value to *loss (a backend buffer of one float)
     * instead of returning it, so a device need not wait. */
    void (*softmax_ce)(backend *b, const float *logits, int n, int k, const int32_t *labels, float scale,
                       float *dlogits, float *loss);
    void (*mse)(backend *b, const float *a, const float *target, size_t n, float scale, float *da, float *loss);

    /* ---- graphs (CUDA graphs; NULL where the backend has none: the CPU) ----
     * A pass that repeats exactly (the same calls with the same arguments)
     * can be recorded once and launched again as one unit, which spares
     * the host the work of issuing each call. Between capture_begin and
     * capture_end the calls are recorded, NOT run: nothing may be uploaded,
     * downloaded, synchronised, allocated or released then (such a call
     * fails the recording). capture_begin returns 0, or -1 if recording is
     * impossible now (then run the calls directly). capture_end returns the
     * graph, or NULL when the recording failed: its error is then cleared
     * (the backend is usable) and the caller runs the calls directly; what
     * went wrong is in graph_note. A graph bakes in every pointer it was
     * recorded with: launch it only while memory_epoch is unchanged. */
    int (*capture_begin)(backend *b);
    void *(*capture_end)(backend *b);
    void (*graph_launch)(backend *b, void *graph); /* asynchronous, like any call */
    void (*graph_free)(backend *b, void *graph);
    char graph_note[256]; /* why the last recording failed ("" if none did) */
    /* Changes whenever the backend allocates or releases device memory. */
    unsigned long memory_epoch;
    /* upload() calls that took a copy upload_ahead had made (a check that prefetching works). */
    unsigned long prefetched;

    /* ---- AdamW: optim.c's adamw_range with the coefficients k of one step
     * (adamw_coefs, rounded once on the host) over the flat buffers, on the
     * elements whose mask byte is nonzero (trainable); mask is a backend
     * buffer of total bytes (rounded up to floats). ---- */
    void (*adamw)(backend *b, float *w, const float *grad, float *m, float *v, const uint8_t *mask, size_t total,
                  const adamw_coef *k);
};

/* "cpu" or "cuda" / "cuda:N" (opt->device is then N), or "cpu-staged": the
 * CPU backend posing as a device (host_memory 0, device-aligned parameters
 * required; backend_cpu.c), which runs net.c's device paths without a GPU
 * and gives "cpu"'s results bit for bit. Returns NULL with a
 * message in err when the device is unknown, this build has no CUDA backend
 * (bin/libfbcuda.so missing: it is built when nvcc and cudnn.h are found),
 * or no usable GPU is present. */
backend *backend_open(const char *device, const backend_options *opt, char *err, size_t errlen);
void backend_close(backend *b);
/* host_alloc / host_free as data_loader_opts' allocator (ctx: the backend). */
void *backend_host_alloc(void *be, size_t bytes);
void backend_host_free(void *be, void *p);
/* The CPU backend itself (backend_open("cpu") returns one of these). */
backend *backend_cpu_create(const backend_options *opt);

/* OpenBLAS chooses its sgemm kernels by CPU (Haswell on AVX2, SkylakeX / Cooperlake on AVX-512...) and their
 * summation orders differ in the last bits, so one seed would train different weights on different machines.
 * Called first in main: on a CPU with AVX2 and FMA, unless OPENBLAS_CORETYPE is already set (the user's
 * choice wins), it sets OPENBLAS_CORETYPE=Haswell and re-executes the program, because OpenBLAS reads it when
 * it is loaded, before main. Every AVX2 machine then computes the same bits. Returns only when nothing was
 * done (or exec failed: OpenBLAS's own choice then stands). The backend's description names the kernels. */
void cpu_pin_blas_kernels(char **argv);
/* Parses "fp32" | "tf32" | "bf16"; -1 otherwise. */
int precision_parse(const char *s, precision *out);
static inline const char *precision_name(precision p)
{
    return p == PREC_TF32 ? "tf32" : p == PREC_BF16 ? "bf16" : "fp32";
}

/* Entry point of bin/libfbcuda.so (engine/cuda/backend_cuda.cu). */
typedef backend *(*backend_cuda_create_fn)(const backend_options *opt, char *err, size_t errlen);
#define BACKEND_CUDA_SYMBOL "fb_backend_cuda_create"

#endif
