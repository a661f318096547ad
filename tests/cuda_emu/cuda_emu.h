/* cuda_emu.h: the pieces of CUDA that engine/cuda/kernels.cu uses, on the
 * host, so that its kernels run unchanged (g++ -x c++ -DFB_CUDA_EMU) in a
 * logic test on machines without a GPU or CUDA headers (test_kernels_emu.cpp).
 *
 * A launch runs its blocks one after another on THREADS real threads (a pool
 * kept for the whole run): threadIdx/blockIdx are per-thread, __syncthreads
 * is a barrier of the block, __shared__ arrays are statics (one block at a
 * time, so they are the block's), and every block ends with a barrier.
 * Memory is host memory; stream operations happen at once. The __*_rn
 * intrinsics are plain IEEE operations (the host does not contract them
 * into FMAs: the test is compiled with -ffp-contract=off), and expf, exp,
 * log are the host's libm: the emulation checks the kernels' logic (indices,
 * order of operations, reductions, barriers), not the device's math library.
 *
 * Knobs for the test: emu_idx_limit (LAUNCH_IDX takes the 32-bit path below
 * it; 0 forces size_t), emu_max_blocks / emu_mse_blocks (kernels.cu's
 * MAX_BLOCKS / MSE_BLOCKS: small values make grid-stride loops wrap in small
 * tests), emu_launches (kernels run so far), emu_malloc_fail and
 * emu_live_allocs (scratch memory). */
#ifndef FB_CUDA_EMU_H
#define FB_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <functional>

#include "../../engine/cuda/kernels.h"

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
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9 };
enum cudaMemcpyKind { cudaMemcpyDeviceToDevice = 3 };

/* The part of cuda_internal.h's cuda_ctx that kernels.cu reads. */
typedef struct {
    cudaStream_t stream;
    int failed;
    char err[256];
} cuda_ctx;
static inline cuda_ctx *CX(backend *b) { return (cuda_ctx *)b->ctx; }
/* As backend_cuda.cu: records the first error (sticky); 1 if e is one. */
int cu_check(backend *b, cudaError_t e, const char *what);

cudaError_t cudaGetLastError(void); /* the last launch's configuration error, then cleared */
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t s);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);

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
extern unsigned long emu_launches;
extern int emu_malloc_fail;              /* 1: the next cudaMallocAsync fails */
extern long emu_live_allocs;             /* cudaMallocAsync blocks not yet freed */
#define MAX_BLOCKS emu_max_blocks
#define MSE_BLOCKS emu_mse_blocks

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
