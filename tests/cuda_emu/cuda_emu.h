/* cuda_emu.h: the pieces of CUDA that engine/cuda/kernels.cu uses, on the
 * host, so that its kernels run unchanged (g++ -x c++ -DFB_CUDA_EMU) in a
 * logic test on machines without a GPU or CUDA headers (test_kernels_emu.cpp).
 *
 * A launch runs its blocks one after another on the calling thread, the
 * threads of a block as fibers (cuda_emu.cpp): threadIdx/blockIdx are
 * per-thread, __syncthreads is a barrier of the block, __shared__ arrays
 * are statics (one block at a time, so they are the block's).
 * Memory is host memory; stream operations happen at once. The __*_rn
 * intrinsics are plain IEEE operations (the host does not contract them
 * into FMAs: the test is compiled with -ffp-contract=off), and expf, exp,
 * log are the host's libm: the emulation checks the kernels' logic (indices,
 * order of operations, reductions, barriers), not the device's math library.
 *
 * Knobs for the test: emu_idx_limit (LAUNCH_IDX takes the 32-bit path below
 * it; 0 forces size_t), emu_max_blocks / emu_mse_blocks / emu_bn_chunk
 * (kernels.cu's MAX_BLOCKS / MSE_BLOCKS / BN_CHUNK: small values make
 * grid-stride loops wrap and channels split in small tests), emu_launches (kernels run so far) and
 * emu_live_allocs (device memory not yet freed: kernels allocate none). */
#ifndef FB_CUDA_EMU_H
#define FB_CUDA_EMU_H

#include "../../engine/cuda/kernels.h"

#include "emu_runtime.h" /* the runtime, launches, intrinsics (and the C headers they need) */

/* The part of cuda_internal.h's cuda_ctx that kernels.cu reads. */
typedef struct {
    cudaStream_t stream;
    int failed;
    char err[256];
    double *scratch; /* the backend's K_SCRATCH_DOUBLES (the test may give less) */
    size_t scratch_n;
} cuda_ctx;
static inline cuda_ctx *CX(backend *b) { return (cuda_ctx *)b->ctx; }
/* As backend_cuda.cu: records the first error (sticky); 1 if e is one. */
int cu_check(backend *b, cudaError_t e, const char *what);
int cu_fail(backend *b, const char *what, const char *detail);

#endif
