/* emu_runtime.h: the CUDA runtime, launch geometry and intrinsics that
 * engine/cuda/ uses, emulated on the host (cuda_emu.cpp). Two users:
 *   cuda_emu.h        kernels.cu alone, for test_kernels_emu (a partial cuda_ctx)
 *   include/          the whole backend (backend_cuda.cu, cudnn_ops.cu,
 *                     kernels.cu) over emulated cuda_runtime.h, cublas_v2.h and
 *                     cudnn.h: libfbcuda_emu.so (emu_libs.cpp)
 * How launches run: cuda_emu.cpp. */
#ifndef FB_EMU_RUNTIME_H
#define FB_EMU_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <functional>

/* ---- launch geometry (1-D: kernels.cu uses .x only) ---- */
struct emu_dim3 {
    unsigned x, y, z;
};
extern thread_local emu_dim3 threadIdx, blockIdx;
extern emu_dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static /* blocks run one at a time */

/* ---- the runtime kernels.cu calls ---- */
typedef int cudaError_t;
typedef void *cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9,
       cudaErrorInvalidDevice = 101 };
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
                     cudaMemcpyDeviceToDevice = 3 };


cudaError_t cudaGetLastError(void); /* the last launch's configuration error, then cleared */
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t s);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
/* Page-locked host memory. On a GPU a copy from it runs later, on the
 * stream; here it runs at once, so the emulation keeps a hash of every such
 * source and emu_pinned_check (called where the stream is synchronised)
 * reports one that changed before the synchronisation: a race on a GPU. */
enum { cudaHostAllocDefault = 0 };
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void *p);
extern int emu_host_alloc_fail;          /* the next N cudaHostAlloc calls fail */
extern long emu_pinned_live;             /* cudaHostAlloc blocks not yet freed */
/* Checks and forgets the pending copies from page-locked memory; returns how
 * many sources had changed (each reported as a violation). */
int emu_pinned_check(const char *at);

/* ---- streams ----
 * Launches and the libraries' calls carry no stream here: they run at once,
 * in issue order, as on one stream. The streams cudaStreamCreateWithFlags
 * makes (include/cuda_runtime.h) are registered; one that has carried only
 * host-to-device copies and events (a backend's copy stream) is a side
 * stream: its copies are queued and run only when some stream waits for an
 * event recorded after them, or it (or the device: cudaFreeHost) is
 * synchronised, which is the latest a GPU could run them. So a read of a
 * copy's destination without a wait for its event sees the old bytes, and
 * a page-locked source changed before the copy ran is reported. A copy
 * into device memory that a device-to-device copy read after the side
 * stream's last wait for the main one is reported too (on a GPU the write
 * may land first). Any other use of a stream (allocation, memset, device
 * copies, a library's stream, capture) makes it an ordinary one. */
void emu_stream_register(cudaStream_t s);
int emu_stream_unregister(cudaStream_t s); /* runs its queue; -1 if s was not live */
int emu_stream_live(cudaStream_t s);
void emu_stream_ordinary(cudaStream_t s);
int emu_stream_is_side(cudaStream_t s);
size_t emu_side_issued(cudaStream_t s);                   /* copies queued on s so far */
void emu_side_run(cudaStream_t s, size_t upto);          /* runs s's queue up to copy number upto */
void emu_side_saw_main(cudaStream_t s, uint64_t main_seq); /* s waited for the main stream at main_seq */
uint64_t emu_main_seq(void);                             /* the main stream's position (device reads so far) */
void emu_side_run_all(void);

/* ---- stream capture (CUDA graphs) ----
 * Between cudaStreamBeginCapture and cudaStreamEndCapture the stream's work
 * (launches, memsets, device-to-device copies, the emulated cuDNN and cuBLAS
 * calls) is recorded, not run; cudaGraphLaunch runs the recording. As on a
 * GPU, a synchronisation or a copy to or from the host while capturing fails
 * with cudaErrorStreamCaptureUnsupported and invalidates the capture (later
 * work then fails with cudaErrorStreamCaptureInvalidated and EndCapture
 * returns no graph); stricter than CUDA, so is an allocation or a free (the
 * backend promises none). A launch of a graph after any device allocation
 * that was live when it was recorded has been freed is reported as a
 * violation: its recorded pointers may dangle. */
enum { cudaErrorStreamCaptureUnsupported = 900, cudaErrorStreamCaptureInvalidated = 901 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
typedef struct emu_graph *cudaGraph_t;
typedef struct emu_graph_exec *cudaGraphExec_t;
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
extern long emu_graphs_live;              /* graphs and executable graphs not yet destroyed */
extern unsigned long emu_graph_launches;
/* Stream work: runs now, or is recorded while capturing. Returns 0, or the
 * capture error (then nothing is run or recorded). */
cudaError_t emu_stream_do(const char *what, std::function<void()> work);
/* The capture error for a call that must not be made while capturing
 * (cudaSuccess when not capturing); it invalidates the capture. */
cudaError_t emu_capture_forbids(const char *what);

void __syncthreads(void);
int __syncthreads_or(int v);

/* ---- intrinsics: IEEE round-to-nearest operations on the host ---- */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline float __int_as_float(int i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}
static inline float __uint_as_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline uint32_t __float_as_uint(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- launches ---- */
extern size_t emu_idx_limit;             /* default 2^31, as kernels.cu's LAUNCH_IDX */
extern size_t emu_max_blocks;            /* default 65535 */
extern size_t emu_mse_blocks;            /* default 1024 */
extern size_t emu_bn_chunk;              /* default 4096: values of a channel one batch-norm block sums */
extern unsigned long emu_launches;
void emu_trim(void);                     /* frees the blocks kept for reuse (cudaMemPoolTrimTo) */
extern long emu_live_allocs;             /* cudaMallocAsync blocks not yet freed */
/* With emu_strict (the whole-backend emulation), memory operations check
 * their pointers: device ranges must lie inside a live allocation, host
 * ranges outside every one; a violation is reported with a TAP diagnostic
 * and returns cudaErrorInvalidValue. */
extern int emu_strict;
/* 1 when [p, p + bytes) lies inside one live device allocation. */
int emu_is_device(const void *p, size_t bytes);
/* 1 when [p, p + bytes) overlaps no live device allocation. */
int emu_is_host(const void *p, size_t bytes);
/* Prints "# emu: <what>" (a TAP diagnostic) and counts it in emu_violations. */
void emu_violation(const char *fmt, ...);
extern long emu_violations;
#define MAX_BLOCKS emu_max_blocks
#define MSE_BLOCKS emu_mse_blocks
#define BN_CHUNK emu_bn_chunk

/* Runs body once per thread of each of `grid` blocks of `threads`; a bad
 * configuration (as CUDA's: no blocks, more than 2^31-1, more than 1024
 * threads) runs nothing and is reported by cudaGetLastError. */
void emu_launch(const char *name, unsigned grid, unsigned threads, std::function<void()> body);

/* kernels.cu's LAUNCH and LAUNCH_IDX, on the emulation. */
#define LAUNCH(kern, grid, ...)                                                \
    do {                                                                       \
        emu_launch(#kern, (grid), THREADS, [=] { kern(__VA_ARGS__); });        \
        cu_check(b, cudaGetLastError(), #kern);                                \
    } while (0)

#define LAUNCH_IDX(big, kern, grid, ...)                                                 \
    do {                                                                                 \
        if ((size_t)(big) < emu_idx_limit)                                               \
            emu_launch(#kern, (grid), THREADS, [=] { kern<uint32_t>(__VA_ARGS__); });    \
        else                                                                             \
            emu_launch(#kern, (grid), THREADS, [=] { kern<size_t>(__VA_ARGS__); });      \
        cu_check(b, cudaGetLastError(), #kern);                                          \
    } while (0)


#endif
