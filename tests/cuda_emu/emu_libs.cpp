/* emu_libs.cpp: the CUDA runtime calls backend_cuda.cu makes, cuBLAS's
 * Sgemm and cuDNN's legacy convolution and batch-norm API, on the host, so
 * that the whole CUDA backend (the three .cu files of engine/cuda, unchanged) builds into
 * libfbcuda_emu.so and runs test_backend and net_parity against the CPU
 * backend on a machine without a GPU (make test: test_backend_emu.sh).
 *
 * What it checks is the backend's use of the APIs, not the device:
 *   - descriptors: set before use, shapes consistent (x, w, y of a
 *     convolution; BN's 1xCx1x1 parameters), data and compute types;
 *   - pointers: every device operand inside one live cudaMallocAsync
 *     block (emu_strict), no operand overlapping the output or the
 *     workspace, host scalars read as float (cuDNN's rule for float and
 *     bfloat16 data);
 *   - algorithms: several per direction with cuDNN's properties (ALGO_0
 *     and ALGO_3 non-deterministic, an FFT needing more workspace than any
 *     cap, Winograd only for 3x3 stride 1 and refusing bias+ReLU fusion, no
 *     BF16 algorithm for odd channel counts); an algorithm run outside its
 *     shapes, or with less workspace than it needs under the math type set
 *     at the call, is refused as cuDNN refuses it; the heuristics report
 *     no workspace (as their estimates can be low), Find reports the true
 *     need;
 *   - math: FP32 data on a tensor-capable algorithm under tensor-op math
 *     (CUDNN_DEFAULT_MATH or TENSOR_OP) rounds inputs to TF32, as tensor
 *     cores do (searched with FMA math, such an algorithm still reports
 *     DEFAULT_MATH); BF16 outputs round to nearest even; a
 *     non-deterministic algorithm flips the last bit of one output element
 *     on a pseudo-random half of its calls, so a deterministic run that
 *     picked one would not reproduce itself.
 * Each call's computation is stream work (emu_stream_do): run at once, or
 * recorded while a graph is being captured and run at each launch, with the
 * descriptors and host scalars read at the call, as the libraries read them.
 * Results are computed in double from the definitions (cross-correlation,
 * padding, stride, biased batch variance with the unbiased one in the
 * running estimate, PyTorch's convention) and rounded once.
 * Violations print a "# emu:" TAP diagnostic, make the call fail with
 * cuDNN's or cuBLAS's status, and make the process exit 1 at the end. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vector>

#include "include/cublas_v2.h"
#include "include/cudnn.h"

/* ---- set-up of the emulation: at load ---- */

__attribute__((constructor)) static void emu_init(void)
{
    emu_strict = 1;
    /* Few blocks per launch (grid-stride loops do the rest): each emulated
     * block costs a round of 256 host threads. */
    const char *mb = getenv("FB_EMU_MAX_BLOCKS");
    emu_max_blocks = mb && atoi(mb) > 0 ? (size_t)atoi(mb) : 4;
    emu_mse_blocks = emu_max_blocks;
    /* FB_EMU_NO_PINNED=1: the driver grants no page-locked memory (host_alloc falls back to malloc) */
    const char *np = getenv("FB_EMU_NO_PINNED");
    if (np && np[0] == '1') emu_host_alloc_fail = 1 << 30;
}

__attribute__((destructor)) static void emu_fini(void)
{
    emu_pinned_check("exit");
    emu_trim();
    if (emu_violations) {
        printf("# emu: %ld API violation%s (see above)\n", emu_violations, emu_violations == 1 ? "" : "s");
        fflush(stdout);
        _exit(1);
    }
}

/* ---- runtime ---- */

static int device_count(void)
{
    const char *v = getenv("FB_EMU_DEVICES");
    return v ? atoi(v) : 1;
}
static int current_device;
static int pool_tag; /* its address is the handle */

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return "unknown error";
    }
}

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = device_count();
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev)
{
    if (dev < 0 || dev >= device_count()) return cudaErrorInvalidDevice;
    current_device = dev;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *dev)
{
    *dev = current_device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev)
{
    if (dev < 0 || dev >= device_count()) return cudaErrorInvalidDevice;
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "host emulation");
    prop->multiProcessorCount = 4;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *pool, int dev)
{
    if (dev < 0 || dev >= device_count()) return cudaErrorInvalidDevice;
    *pool = &pool_tag;
    return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr, void *value)
{
    return pool == &pool_tag && value ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, size_t)
{
    if (pool != &pool_tag) return cudaErrorInvalidValue;
    emu_trim();
    return cudaSuccess;
}

/* A stream is a byte of its own: its address is the handle (emu_runtime.h: streams). */
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned)
{
    if (!(*s = malloc(1))) return cudaErrorMemoryAllocation;
    emu_stream_register(*s);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (emu_stream_unregister(s)) return cudaErrorInvalidValue;
    free(s);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    if (!emu_stream_live(s)) return cudaErrorInvalidValue;
    if (cudaError_t e = emu_capture_forbids("cudaStreamSynchronize")) return e;
    emu_side_run(s, emu_side_issued(s));
    emu_pinned_check("cudaStreamSynchronize");
    return cudaSuccess;
}

/* An event: where in its stream it was recorded (a side stream's copy
 * count; the main stream's position, which has run already). */
struct emu_event {
    int recorded;
    cudaStream_t stream;
    int side;
    size_t issued;
    uint64_t main_seq;
};

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned)
{
    *e = (cudaEvent_t)calloc(1, sizeof(emu_event));
    return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    if (!e) return cudaErrorInvalidValue;
    free(e);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    if (!e || !emu_stream_live(s)) return cudaErrorInvalidValue;
    if (cudaError_t err = emu_capture_forbids("cudaEventRecord")) return err; /* (the backend records none in graphs) */
    e->recorded = 1, e->stream = s, e->side = emu_stream_is_side(s);
    e->issued = emu_side_issued(s), e->main_seq = emu_main_seq();
    return cudaSuccess;
}

/* Work issued on s after this waits for e's point: a side stream's copies
 * up to it run now (the latest a GPU could run them); a side stream that
 * waits for the main stream notes how far it has seen. An event never
 * recorded is no dependency, as in CUDA. */
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags)
{
    if (!e || flags || !emu_stream_live(s)) return cudaErrorInvalidValue;
    if (cudaError_t err = emu_capture_forbids("cudaStreamWaitEvent")) return err;
    if (!e->recorded) return cudaSuccess;
    if (e->side) emu_side_run(e->stream, e->issued);
    else if (emu_stream_is_side(s)) emu_side_saw_main(s, e->main_seq);
    return cudaSuccess;
}

/* ---- shared helpers ---- */

static float bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t float_to_bf16(float f) /* round to nearest even; NaN stays NaN */
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float to_tf32(float f) /* 10-bit mantissa, round to nearest even */
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return f;
    u += 0xfffu + ((u >> 13) & 1u);
    u &= ~0x1fffu;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int overlap(const void *a, size_t na, const void *b, size_t nb)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return na && nb && x < y + nb && y < x + na;
}

/* An operand of `bytes` at p must be device memory (named for the diagnostic). */
static int device_operand(const char *api, const char *name, const void *p, size_t bytes)
{
    if (!bytes) return 1;
    if (!p) {
        emu_violation("%s: %s is NULL", api, name);
        return 0;
    }
    if (emu_is_device(p, bytes)) return 1;
    emu_violation("%s: %s (%zu bytes at %p) is not inside one live device allocation", api, name, bytes, p);
    return 0;
}

static int no_overlap(const char *api, const char *a, const void *pa, size_t na, const char *b, const void *pb,
                      size_t nb)
{
    if (!overlap(pa, na, pb, nb)) return 1;
    emu_violation("%s: %s and %s overlap", api, a, b);
    return 0;
}

/* ---- cuBLAS ---- */

struct emu_cublas {
    cudaStream_t stream;
    cublasMath_t math;
    void *ws; /* cublasSetWorkspace's (cublasSetStream forgets it, as cuBLAS does) */
};

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = (cublasHandle_t)calloc(1, sizeof(emu_cublas));
    if (!*h) return CUBLAS_STATUS_ALLOC_FAILED;
    (*h)->math = CUBLAS_DEFAULT_MATH;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    emu_stream_ordinary(s);
    h->stream = s;
    h->ws = NULL;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !device_operand("cublasSetWorkspace", "workspace", ws, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
    h->ws = bytes ? ws : NULL;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_PEDANTIC_MATH && mode != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

/* C [m,n] = alpha op(A) [m,k] op(B) [k,n] + beta C, column-major. */
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    const char *api = "cublasSgemm";
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!emu_stream_live(h->stream)) emu_violation("%s: the handle has no live stream (cublasSetStream)", api);
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m; /* A as stored */
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) {
        emu_violation("%s: m %d n %d k %d with lda %d ldb %d ldc %d", api, m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!m || !n) return CUBLAS_STATUS_SUCCESS;
    if (!alpha || !beta || !emu_is_host(alpha, sizeof *alpha) || !emu_is_host(beta, sizeof *beta)) {
        emu_violation("%s: alpha and beta must be host scalars (pointer mode host)", api);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    size_t na = k ? ((size_t)lda * (ac - 1) + ar) * 4 : 0, nb = k ? ((size_t)ldb * (bc - 1) + br) * 4 : 0;
    size_t nc = ((size_t)ldc * (n - 1) + m) * 4;
    if (!device_operand(api, "A", A, na) || !device_operand(api, "B", B, nb) || !device_operand(api, "C", C, nc) ||
        !no_overlap(api, "A", A, na, "C", C, nc) || !no_overlap(api, "B", B, nb, "C", C, nc))
        return CUBLAS_STATUS_INVALID_VALUE;
    /* without a workspace of the caller's, cuBLAS allocates one while capturing */
    if (!h->ws && emu_capture_forbids("cublasSgemm without cublasSetWorkspace")) return CUBLAS_STATUS_EXECUTION_FAILED;
    const int tf32 = h->math == CUBLAS_TF32_TENSOR_OP_MATH;
    const double al = *alpha, be = *beta;
    cudaError_t e = emu_stream_do(api, [=] {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double s = 0;
                for (int l = 0; l < k; l++) {
                    float a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
                    float b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
                    if (tf32) a = to_tf32(a), b = to_tf32(b);
                    s += (double)a * b;
                }
                float *c = &C[i + (size_t)j * ldc];
                *c = (float)(al * s + (be != 0 ? be * *c : 0.0));
            }
    });
    return e ? CUBLAS_STATUS_EXECUTION_FAILED : CUBLAS_STATUS_SUCCESS;
}

/* ---- cuDNN: handles and descriptors ---- */

struct emu_cudnn {
    cudaStream_t stream;
};
struct emu_tensor {
    int set;
    cudnnDataType_t type;
    int n, c, h, w;
};
struct emu_filter {
    int set;
    cudnnDataType_t type;
    int k, c, h, w;
};
struct emu_conv {
    int set;
    int ph, pw, u, v, dh, dw;
    cudnnConvolutionMode_t mode;
    cudnnDataType_t compute;
    cudnnMathType_t math;
};
struct emu_act {
    int set;
    cudnnActivationMode_t mode;
};

/* A call's work on the stream: run now, or recorded into the graph being
 * captured (inputs, descriptors and host scalars are read at the call, as
 * cuDNN reads them). */
static cudnnStatus_t run(const char *api, std::function<void()> work)
{
    return emu_stream_do(api, std::move(work)) ? CUDNN_STATUS_EXECUTION_FAILED : CUDNN_STATUS_SUCCESS;
}

const char *cudnnGetErrorString(cudnnStatus_t s)
{
    switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    default: return "CUDNN_STATUS_(emulated, other)";
    }
}

template <class T> static cudnnStatus_t create(T **d)
{
    if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    *d = (T *)calloc(1, sizeof(T));
    return *d ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR;
}
template <class T> static cudnnStatus_t destroy(T *d)
{
    free(d);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *h) { return create(h); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) { return h ? destroy(h) : CUDNN_STATUS_NOT_INITIALIZED; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s)
{
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    emu_stream_ordinary(s);
    h->stream = s;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t d) { return destroy(d); }

static int known_type(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_BFLOAT16; }
static size_t type_size(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT ? 4 : 2; }

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n,
                                         int c, int h, int w)
{
    if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    if (f != CUDNN_TENSOR_NCHW || !known_type(t) || n <= 0 || c <= 0 || h <= 0 || w <= 0) {
        emu_violation("cudnnSetTensor4dDescriptor: format %d type %d dims [%d,%d,%d,%d]", (int)f, (int)t, n, c, h, w);
        return CUDNN_STATUS_BAD_PARAM;
    }
    *d = {1, t, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k,
                                         int c, int h, int w)
{
    if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    if (f != CUDNN_TENSOR_NCHW || !known_type(t) || k <= 0 || c <= 0 || h <= 0 || w <= 0) {
        emu_violation("cudnnSetFilter4dDescriptor: format %d type %d dims [%d,%d,%d,%d]", (int)f, (int)t, k, c, h, w);
        return CUDNN_STATUS_BAD_PARAM;
    }
    *d = {1, t, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute)
{
    if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dil_h <= 0 || dil_w <= 0 ||
        (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) || !known_type(compute)) {
        emu_violation("cudnnSetConvolution2dDescriptor: pad %d,%d stride %d,%d dilation %d,%d mode %d", pad_h, pad_w,
                      u, v, dil_h, dil_w, (int)mode);
        return CUDNN_STATUS_BAD_PARAM;
    }
    cudnnMathType_t keep = d->set ? d->math : CUDNN_DEFAULT_MATH; /* cuDNN keeps the math type */
    *d = {1, pad_h, pad_w, u, v, dil_h, dil_w, mode, compute, keep};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m)
{
    if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    if (m != CUDNN_DEFAULT_MATH && m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
        m != CUDNN_FMA_MATH)
        return CUDNN_STATUS_BAD_PARAM;
    d->math = m;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t d, cudnnActivationMode_t m,
                                           cudnnNanPropagation_t, double)
{
    if (!d) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    if (m != CUDNN_ACTIVATION_RELU && m != CUDNN_ACTIVATION_IDENTITY && m != CUDNN_ACTIVATION_SIGMOID)
        return CUDNN_STATUS_BAD_PARAM;
    d->set = 1, d->mode = m;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- convolutions: geometry ---- */

struct geom {
    int n, c, h, w;  /* x */
    int k, r, s;     /* w [k,c,r,s] */
    int oh, ow;      /* y [n,k,oh,ow] */
    int ph, pw, u, v, dh, dw, flip;
    cudnnDataType_t type;
    int tf32; /* FP32 data on a tensor-op algorithm (set by exec_checks): inputs rounded to TF32 */
};

/* The geometry of (x, w, conv, y), or a violation (and 0) where cuDNN would refuse it. */
static int conv_geom(const char *api, cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                     cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd, geom *g)
{
    if (!xd || !wd || !cd || !yd || !xd->set || !wd->set || !cd->set || !yd->set) {
        emu_violation("%s: a descriptor is NULL or was never set", api);
        return 0;
    }
    if (xd->type != wd->type || xd->type != yd->type || cd->compute != CUDNN_DATA_FLOAT) {
        emu_violation("%s: data types x %d, w %d, y %d, compute %d", api, (int)xd->type, (int)wd->type,
                      (int)yd->type, (int)cd->compute);
        return 0;
    }
    *g = {xd->n, xd->c, xd->h, xd->w, wd->k, wd->h, wd->w, 0, 0, cd->ph, cd->pw, cd->u, cd->v, cd->dh, cd->dw,
          cd->mode == CUDNN_CONVOLUTION, xd->type, 0};
    g->oh = (g->h + 2 * g->ph - ((g->r - 1) * g->dh + 1)) / g->u + 1;
    g->ow = (g->w + 2 * g->pw - ((g->s - 1) * g->dw + 1)) / g->v + 1;
    if (wd->c != xd->c || g->oh <= 0 || g->ow <= 0 || yd->n != xd->n || yd->c != wd->k || yd->h != g->oh ||
        yd->w != g->ow) {
        emu_violation("%s: x [%d,%d,%d,%d], w [%d,%d,%d,%d] give y [%d,%d,%d,%d], the descriptor says [%d,%d,%d,%d]",
                      api, xd->n, xd->c, xd->h, xd->w, wd->k, wd->c, wd->h, wd->w, xd->n, wd->k, g->oh, g->ow, yd->n,
                      yd->c, yd->h, yd->w);
        return 0;
    }
    return 1;
}

static size_t x_elems(const geom &g) { return (size_t)g.n * g.c * g.h * g.w; }
static size_t w_elems(const geom &g) { return (size_t)g.k * g.c * g.r * g.s; }
static size_t y_elems(const geom &g) { return (size_t)g.n * g.k * g.oh * g.ow; }

/* ---- convolutions: the emulated algorithms ---- */

enum { FWD, BWD_DATA, BWD_FILTER };

struct algo_info {
    int algo;
    int det;      /* deterministic */
    int tensor;   /* can use tensor cores (reports TENSOR_OP_MATH where the math type allows) */
    int fusable;  /* fwd: bias + activation fusion */
    double speed; /* relative time of the emulated "measurement" */
    int kind;     /* workspace and support rules: 0 none, 1 im2col, 2 FFT (huge), 3 Winograd (3x3 stride 1) */
};

static const algo_info fwd_algos[] = {
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, 1, 0, 1, 1.5, 0},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, 1, 1, 1, 1.0, 1},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, 1, 0, 1, 1.2, 1},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT, 1, 0, 1, 0.5, 2},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, 1, 1, 0, 0.8, 3},
};
static const algo_info bwd_data_algos[] = {
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, 0, 0, 0, 0.7, 0},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, 1, 1, 0, 1.0, 1},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, 1, 0, 0, 0.6, 2},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, 1, 1, 0, 0.9, 3},
};
static const algo_info bwd_filter_algos[] = {
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, 0, 0, 0, 0.6, 0},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, 1, 1, 0, 1.0, 1},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, 0, 0, 0, 0.8, 1},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, 1, 0, 0, 0.5, 2},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED, 1, 1, 0, 1.1, 3},
};

static const algo_info *algo_table(int dir, int *count)
{
    if (dir == FWD) return *count = (int)(sizeof fwd_algos / sizeof *fwd_algos), fwd_algos;
    if (dir == BWD_DATA) return *count = (int)(sizeof bwd_data_algos / sizeof *bwd_data_algos), bwd_data_algos;
    return *count = (int)(sizeof bwd_filter_algos / sizeof *bwd_filter_algos), bwd_filter_algos;
}

static const algo_info *find_algo(int dir, int algo)
{
    int n;
    const algo_info *t = algo_table(dir, &n);
    for (int i = 0; i < n; i++)
        if (t[i].algo == algo) return &t[i];
    return NULL;
}

/* Whether the algorithm runs this geometry: BF16 needs even channel counts;
 * FFT and Winograd need stride 1 (Winograd also 3x3), no dilation. */
static int supports(const algo_info *a, const geom &g)
{
    if (g.type == CUDNN_DATA_BFLOAT16 && (g.c % 2 || g.k % 2)) return 0;
    if (a->kind >= 2 && (g.u != 1 || g.v != 1 || g.dh != 1 || g.dw != 1)) return 0;
    if (a->kind == 3 && (g.r != 3 || g.s != 3)) return 0;
    return 1;
}

/* Whether the algorithm runs on tensor cores under math type m for this data. */
static int uses_tensor_ops(const algo_info *a, const geom &g, cudnnMathType_t m)
{
    (void)g; /* BF16 and FP32 (as TF32) alike: DEFAULT_MATH permits tensor cores for both */
    return a->tensor && m != CUDNN_FMA_MATH;
}

/* Workspace need in bytes (more with tensor ops: the layouts they convert to). */
static size_t ws_need(const algo_info *a, const geom &g, cudnnMathType_t m)
{
    size_t need = 0;
    if (a->kind == 1) need = (size_t)g.c * g.r * g.s * g.oh * g.ow * 4;
    if (a->kind == 2) need = (size_t)1 << 30; /* more than any workspace cap */
    if (a->kind == 3) need = (size_t)16 * (g.c + g.k) * ((g.oh + 1) / 2) * ((g.ow + 1) / 2) * 4;
    if (uses_tensor_ops(a, g, m)) need = 2 * need + 4096;
    return need;
}

static uint32_t shape_hash(const geom &g, int dir, int algo)
{
    uint32_t hsh = 2166136261u;
    int v[] = {g.n, g.c, g.h, g.w, g.k, g.r, g.u, dir, algo};
    for (int x : v) hsh = (hsh ^ (uint32_t)x) * 16777619u;
    return hsh;
}

/* The perf results of a search, as cuDNN fills them (successful ones
 * first, fastest first; heuristics: in the table's fixed order, memory 0).
 * P is one of the three perf structs. */
template <class P>
static cudnnStatus_t search(const char *api, int dir, int heuristic, cudnnTensorDescriptor_t xd,
                            cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                            cudnnTensorDescriptor_t yd, int req, int *got, P *r)
{
    geom g;
    if (!got || !r || req <= 0) return CUDNN_STATUS_BAD_PARAM;
    if (!conv_geom(api, xd, wd, cd, yd, &g)) return CUDNN_STATUS_BAD_PARAM;
    int n;
    const algo_info *t = algo_table(dir, &n);
    std::vector<P> all;
    for (int i = 0; i < n; i++) {
        P p;
        memset(&p, 0, sizeof p);
        p.algo = (decltype(p.algo))t[i].algo;
        p.status = supports(&t[i], g) ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
        p.determinism = t[i].det ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
        int tc = uses_tensor_ops(&t[i], g, cd->math);
        /* searched with FMA math, a tensor-capable algorithm still reports
         * DEFAULT_MATH: run with that, it would use TF32 */
        p.mathType = tc ? CUDNN_TENSOR_OP_MATH
                        : t[i].tensor || cd->math != CUDNN_FMA_MATH ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
        p.memory = heuristic ? 0 : ws_need(&t[i], g, cd->math);
        p.time = p.status ? -1.0f : (float)(t[i].speed * (1.0 + (shape_hash(g, dir, t[i].algo) % 1000) / 2000.0));
        all.push_back(p);
    }
    if (!heuristic)
        for (size_t i = 1; i < all.size(); i++) /* insertion sort: successes by time, then failures */
            for (size_t j = i; j > 0; j--) {
                P &a = all[j - 1], &b = all[j];
                int swap = a.status != CUDNN_STATUS_SUCCESS && b.status == CUDNN_STATUS_SUCCESS;
                if (a.status == b.status && a.status == CUDNN_STATUS_SUCCESS && b.time < a.time) swap = 1;
                if (!swap) break;
                P tmp = a;
                a = b, b = tmp;
            }
    *got = 0;
    for (size_t i = 0; i < all.size() && *got < req; i++) r[(*got)++] = all[i];
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t, cudnnTensorDescriptor_t xd,
                                                   cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                                                   cudnnTensorDescriptor_t yd, int req, int *got,
                                                   cudnnConvolutionFwdAlgoPerf_t *r)
{
    return search("cudnnFindConvolutionForwardAlgorithm", FWD, 0, xd, wd, cd, yd, req, got, r);
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t xd,
                                                     cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                                                     cudnnTensorDescriptor_t yd, int req, int *got,
                                                     cudnnConvolutionFwdAlgoPerf_t *r)
{
    return search("cudnnGetConvolutionForwardAlgorithm_v7", FWD, 1, xd, wd, cd, yd, req, got, r);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t, cudnnFilterDescriptor_t wd,
                                                        cudnnTensorDescriptor_t dyd, cudnnConvolutionDescriptor_t cd,
                                                        cudnnTensorDescriptor_t dxd, int req, int *got,
                                                        cudnnConvolutionBwdDataAlgoPerf_t *r)
{
    return search("cudnnFindConvolutionBackwardDataAlgorithm", BWD_DATA, 0, dxd, wd, cd, dyd, req, got, r);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, cudnnFilterDescriptor_t wd,
                                                          cudnnTensorDescriptor_t dyd,
                                                          cudnnConvolutionDescriptor_t cd,
                                                          cudnnTensorDescriptor_t dxd, int req, int *got,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *r)
{
    return search("cudnnGetConvolutionBackwardDataAlgorithm_v7", BWD_DATA, 1, dxd, wd, cd, dyd, req, got, r);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t, cudnnTensorDescriptor_t xd,
                                                          cudnnTensorDescriptor_t dyd,
                                                          cudnnConvolutionDescriptor_t cd,
                                                          cudnnFilterDescriptor_t dwd, int req, int *got,
                                                          cudnnConvolutionBwdFilterAlgoPerf_t *r)
{
    return search("cudnnFindConvolutionBackwardFilterAlgorithm", BWD_FILTER, 0, xd, dwd, cd, dyd, req, got, r);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t xd,
                                                            cudnnTensorDescriptor_t dyd,
                                                            cudnnConvolutionDescriptor_t cd,
                                                            cudnnFilterDescriptor_t dwd, int req, int *got,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t *r)
{
    return search("cudnnGetConvolutionBackwardFilterAlgorithm_v7", BWD_FILTER, 1, xd, dwd, cd, dyd, req, got, r);
}

static cudnnStatus_t workspace(const char *api, int dir, cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                               cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd, int algo, size_t *bytes)
{
    geom g;
    if (!bytes || !conv_geom(api, xd, wd, cd, yd, &g)) return CUDNN_STATUS_BAD_PARAM;
    const algo_info *a = find_algo(dir, algo);
    if (!a) return CUDNN_STATUS_BAD_PARAM;
    if (!supports(a, g)) return CUDNN_STATUS_NOT_SUPPORTED;
    *bytes = ws_need(a, g, cd->math);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t xd,
                                                      cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                                                      cudnnTensorDescriptor_t yd, cudnnConvolutionFwdAlgo_t a,
                                                      size_t *bytes)
{
    return workspace("cudnnGetConvolutionForwardWorkspaceSize", FWD, xd, wd, cd, yd, a, bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t wd,
                                                           cudnnTensorDescriptor_t dyd,
                                                           cudnnConvolutionDescriptor_t cd,
                                                           cudnnTensorDescriptor_t dxd,
                                                           cudnnConvolutionBwdDataAlgo_t a, size_t *bytes)
{
    return workspace("cudnnGetConvolutionBackwardDataWorkspaceSize", BWD_DATA, dxd, wd, cd, dyd, a, bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t xd,
                                                             cudnnTensorDescriptor_t dyd,
                                                             cudnnConvolutionDescriptor_t cd,
                                                             cudnnFilterDescriptor_t dwd,
                                                             cudnnConvolutionBwdFilterAlgo_t a, size_t *bytes)
{
    return workspace("cudnnGetConvolutionBackwardFilterWorkspaceSize", BWD_FILTER, xd, dwd, cd, dyd, a, bytes);
}

/* ---- convolutions: execution ---- */

/* Element i of a tensor of type t, as the algorithm reads it. */
static double load(const void *p, size_t i, cudnnDataType_t t, int tf32)
{
    float f = t == CUDNN_DATA_FLOAT ? ((const float *)p)[i] : bf16_to_float(((const uint16_t *)p)[i]);
    return tf32 ? to_tf32(f) : f;
}

static std::vector<double> load_all(const void *p, size_t n, cudnnDataType_t t, int tf32)
{
    std::vector<double> v(n);
    for (size_t i = 0; i < n; i++) v[i] = load(p, i, t, tf32);
    return v;
}

/* out = alpha r + beta out (out not read when beta is 0), rounded once to
 * the tensor's type. A non-deterministic algorithm flips the last bit of
 * the first nonzero element on a pseudo-random half of its calls (a hash of
 * the call count: a second run in the same process gets another pattern). */
static void store_all(void *out, const std::vector<double> &r, cudnnDataType_t t, float alpha, float beta, int det)
{
    static uint64_t nondet_calls;
    int flip = 0;
    if (!det) {
        uint64_t z = ++nondet_calls * 0x9e3779b97f4a7c15ull; /* splitmix64's finaliser */
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        flip = (int)((z ^ (z >> 31)) & 1);
    }
    for (size_t i = 0; i < r.size(); i++) {
        double prev = beta != 0 ? load(out, i, t, 0) : 0.0;
        float f = (float)((double)alpha * r[i] + (beta != 0 ? (double)beta * prev : 0.0));
        if (flip && f != 0) {
            uint32_t u;
            memcpy(&u, &f, sizeof u);
            u ^= 1u;
            memcpy(&f, &u, sizeof f);
            flip = 0;
        }
        if (t == CUDNN_DATA_FLOAT)
            ((float *)out)[i] = f;
        else
            ((uint16_t *)out)[i] = float_to_bf16(f);
    }
}

/* The x index that output (oh, ow) and filter tap (kr, ks) read, or -1 in the padding. */
static inline long tap(const geom &g, int oh, int ow, int kr, int ks)
{
    int rr = g.flip ? g.r - 1 - kr : kr, ss = g.flip ? g.s - 1 - ks : ks;
    int ih = oh * g.u - g.ph + rr * g.dh, iw = ow * g.v - g.pw + ss * g.dw;
    if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return -1;
    return (long)ih * g.w + iw;
}

/* The checks every execution makes: algorithm known and supported, the
 * workspace large enough for the math type now set, operands on the
 * device, the output overlapping neither the inputs nor the workspace. */
static cudnnStatus_t exec_checks(const char *api, int dir, int algo, geom &g, cudnnMathType_t math, void *ws,
                                 size_t ws_bytes, const void *in1, size_t n1, const void *in2, size_t n2, void *out,
                                 size_t nout, const void *alpha, const void *beta, const algo_info **info)
{
    const algo_info *a = find_algo(dir, algo);
    if (!a) {
        emu_violation("%s: algorithm %d is not one of this direction's", api, algo);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (!supports(a, g)) {
        emu_violation("%s: algorithm %d does not support this shape or type", api, algo);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    size_t need = ws_need(a, g, math);
    if (ws_bytes < need) {
        emu_violation("%s: algorithm %d needs %zu bytes of workspace with math type %d, got %zu", api, algo, need,
                      (int)math, ws_bytes);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (!alpha || !beta || !emu_is_host(alpha, 4) || !emu_is_host(beta, 4)) {
        emu_violation("%s: alpha and beta must be host floats", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    size_t es = type_size(g.type);
    if (!device_operand(api, "input 1", in1, n1 * es) || !device_operand(api, "input 2", in2, n2 * es) ||
        !device_operand(api, "output", out, nout * es) || !device_operand(api, "workspace", ws, ws_bytes) ||
        !no_overlap(api, "output", out, nout * es, "input 1", in1, n1 * es) ||
        !no_overlap(api, "output", out, nout * es, "input 2", in2, n2 * es) ||
        !no_overlap(api, "output", out, nout * es, "workspace", ws, ws_bytes) ||
        !no_overlap(api, "input 1", in1, n1 * es, "workspace", ws, ws_bytes) ||
        !no_overlap(api, "input 2", in2, n2 * es, "workspace", ws, ws_bytes))
        return CUDNN_STATUS_BAD_PARAM;
    if (ws && need) memset(ws, 0xa5, need); /* scratch: nothing may rely on what was there */
    g.tf32 = g.type == CUDNN_DATA_FLOAT && uses_tensor_ops(a, g, math);
    *info = a;
    return CUDNN_STATUS_SUCCESS;
}

/* y [n,k,oh,ow] = correlation of x with w (double). */
static std::vector<double> conv_forward(const geom &g, const std::vector<double> &x, const std::vector<double> &w)
{
    std::vector<double> y(y_elems(g), 0.0);
    for (int n = 0; n < g.n; n++)
        for (int k = 0; k < g.k; k++) {
            double *yp = &y[((size_t)n * g.k + k) * g.oh * g.ow];
            for (int c = 0; c < g.c; c++) {
                const double *xp = &x[((size_t)n * g.c + c) * g.h * g.w];
                for (int kr = 0; kr < g.r; kr++)
                    for (int ks = 0; ks < g.s; ks++) {
                        double wv = w[(((size_t)k * g.c + c) * g.r + kr) * g.s + ks];
                        for (int oh = 0; oh < g.oh; oh++)
                            for (int ow = 0; ow < g.ow; ow++) {
                                long t = tap(g, oh, ow, kr, ks);
                                if (t >= 0) yp[oh * g.ow + ow] += wv * xp[t];
                            }
                    }
            }
        }
    return y;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha, cudnnTensorDescriptor_t xd, const void *x,
                                      cudnnFilterDescriptor_t wd, const void *w, cudnnConvolutionDescriptor_t cd,
                                      cudnnConvolutionFwdAlgo_t algo, void *ws, size_t ws_bytes, const void *beta,
                                      cudnnTensorDescriptor_t yd, void *y)
{
    const char *api = "cudnnConvolutionForward";
    geom g;
    const algo_info *a;
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    if (!conv_geom(api, xd, wd, cd, yd, &g)) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = exec_checks(api, FWD, algo, g, cd->math, ws, ws_bytes, x, x_elems(g), w, w_elems(g), y,
                                   y_elems(g), alpha, beta, &a);
    if (st) return st;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    return run(api, [=] {
        std::vector<double> r = conv_forward(g, load_all(x, x_elems(g), g.type, g.tf32), load_all(w, w_elems(g), g.type, g.tf32));
        store_all(y, r, g.type, al, be, a->det);
    });
}

/* y = act(alpha1 conv(x, w) + alpha2 z + bias): cuDNN's rules: ReLU or
 * identity (identity only with IMPLICIT_PRECOMP_GEMM), bias [1,k,1,1] in
 * the data type, z shaped as y (it may be y itself); the emulated Winograd
 * refuses the fusion (NOT_SUPPORTED). */
cudnnStatus_t cudnnConvolutionBiasActivationForward(
    cudnnHandle_t h, const void *alpha1, cudnnTensorDescriptor_t xd, const void *x, cudnnFilterDescriptor_t wd,
    const void *w, cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t algo, void *ws, size_t ws_bytes,
    const void *alpha2, cudnnTensorDescriptor_t zd, const void *z, cudnnTensorDescriptor_t bd, const void *bias,
    cudnnActivationDescriptor_t act, cudnnTensorDescriptor_t yd, void *y)
{
    const char *api = "cudnnConvolutionBiasActivationForward";
    geom g;
    const algo_info *a;
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    if (!conv_geom(api, xd, wd, cd, yd, &g)) return CUDNN_STATUS_BAD_PARAM;
    if (!act || !act->set || !bd || !bd->set || !zd || !zd->set) {
        emu_violation("%s: activation, bias or z descriptor not set", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (act->mode != CUDNN_ACTIVATION_RELU &&
        !(act->mode == CUDNN_ACTIVATION_IDENTITY && algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM))
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (bd->n != 1 || bd->c != g.k || bd->h != 1 || bd->w != 1 || bd->type != g.type || zd->n != yd->n ||
        zd->c != yd->c || zd->h != yd->h || zd->w != yd->w || zd->type != g.type) {
        emu_violation("%s: bias [%d,%d,%d,%d] or z [%d,%d,%d,%d] does not fit y [%d,%d,%d,%d]", api, bd->n, bd->c,
                      bd->h, bd->w, zd->n, zd->c, zd->h, zd->w, yd->n, yd->c, yd->h, yd->w);
        return CUDNN_STATUS_BAD_PARAM;
    }
    const algo_info *fa = find_algo(FWD, algo);
    if (fa && !fa->fusable) return CUDNN_STATUS_NOT_SUPPORTED;
    float zero = 0.0f;
    cudnnStatus_t st = exec_checks(api, FWD, algo, g, cd->math, ws, ws_bytes, x, x_elems(g), w, w_elems(g), y,
                                   y_elems(g), alpha1, &zero, &a);
    if (st) return st;
    if (!alpha2 || !emu_is_host(alpha2, 4)) {
        emu_violation("%s: alpha2 must be a host float", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    size_t es = type_size(g.type);
    if (!device_operand(api, "bias", bias, (size_t)g.k * es) ||
        (*(const float *)alpha2 != 0 && !device_operand(api, "z", z, y_elems(g) * es)))
        return CUDNN_STATUS_BAD_PARAM;
    const double a1 = *(const float *)alpha1, a2 = *(const float *)alpha2;
    const int relu = act->mode == CUDNN_ACTIVATION_RELU;
    return run(api, [=] {
        std::vector<double> r = conv_forward(g, load_all(x, x_elems(g), g.type, g.tf32), load_all(w, w_elems(g), g.type, g.tf32));
        size_t plane = (size_t)g.oh * g.ow;
        for (size_t i = 0; i < r.size(); i++) {
            double v = a1 * r[i] + (a2 != 0 ? a2 * load(z, i, g.type, 0) : 0.0) + load(bias, (i / plane) % g.k, g.type, 0);
            r[i] = relu && v < 0 ? 0.0 : v;
        }
        store_all(y, r, g.type, 1.0f, 0.0f, a->det);
    });
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha, cudnnFilterDescriptor_t wd,
                                           const void *w, cudnnTensorDescriptor_t dyd, const void *dy,
                                           cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t algo,
                                           void *ws, size_t ws_bytes, const void *beta,
                                           cudnnTensorDescriptor_t dxd, void *dx)
{
    const char *api = "cudnnConvolutionBackwardData";
    geom g;
    const algo_info *a;
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    if (!conv_geom(api, dxd, wd, cd, dyd, &g)) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = exec_checks(api, BWD_DATA, algo, g, cd->math, ws, ws_bytes, w, w_elems(g), dy, y_elems(g), dx,
                                   x_elems(g), alpha, beta, &a);
    if (st) return st;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    return run(api, [=] {
        std::vector<double> wv = load_all(w, w_elems(g), g.type, g.tf32), dyv = load_all(dy, y_elems(g), g.type, g.tf32);
        std::vector<double> r(x_elems(g), 0.0);
        for (int n = 0; n < g.n; n++)
            for (int k = 0; k < g.k; k++) {
                const double *dyp = &dyv[((size_t)n * g.k + k) * g.oh * g.ow];
                for (int c = 0; c < g.c; c++) {
                    double *dxp = &r[((size_t)n * g.c + c) * g.h * g.w];
                    for (int kr = 0; kr < g.r; kr++)
                        for (int ks = 0; ks < g.s; ks++) {
                            double wk = wv[(((size_t)k * g.c + c) * g.r + kr) * g.s + ks];
                            for (int oh = 0; oh < g.oh; oh++)
                                for (int ow = 0; ow < g.ow; ow++) {
                                    long t = tap(g, oh, ow, kr, ks);
                                    if (t >= 0) dxp[t] += wk * dyp[oh * g.ow + ow];
                                }
                        }
                }
            }
        store_all(dx, r, g.type, al, be, a->det);
    });
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha, cudnnTensorDescriptor_t xd,
                                             const void *x, cudnnTensorDescriptor_t dyd, const void *dy,
                                             cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdFilterAlgo_t algo,
                                             void *ws, size_t ws_bytes, const void *beta,
                                             cudnnFilterDescriptor_t dwd, void *dw)
{
    const char *api = "cudnnConvolutionBackwardFilter";
    geom g;
    const algo_info *a;
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    if (!conv_geom(api, xd, dwd, cd, dyd, &g)) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = exec_checks(api, BWD_FILTER, algo, g, cd->math, ws, ws_bytes, x, x_elems(g), dy, y_elems(g),
                                   dw, w_elems(g), alpha, beta, &a);
    if (st) return st;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    return run(api, [=] {
        std::vector<double> xv = load_all(x, x_elems(g), g.type, g.tf32), dyv = load_all(dy, y_elems(g), g.type, g.tf32);
        std::vector<double> r(w_elems(g), 0.0);
        for (int n = 0; n < g.n; n++)
            for (int k = 0; k < g.k; k++) {
                const double *dyp = &dyv[((size_t)n * g.k + k) * g.oh * g.ow];
                for (int c = 0; c < g.c; c++) {
                    const double *xp = &xv[((size_t)n * g.c + c) * g.h * g.w];
                    for (int kr = 0; kr < g.r; kr++)
                        for (int ks = 0; ks < g.s; ks++) {
                            double s = 0;
                            for (int oh = 0; oh < g.oh; oh++)
                                for (int ow = 0; ow < g.ow; ow++) {
                                    long t = tap(g, oh, ow, kr, ks);
                                    if (t >= 0) s += xp[t] * dyp[oh * g.ow + ow];
                                }
                            r[(((size_t)k * g.c + c) * g.r + kr) * g.s + ks] += s;
                        }
                }
            }
        store_all(dw, r, g.type, al, be, a->det);
    });
}

/* ---- tensors: bias gradient and broadcast add (FP32 only here) ---- */

static int float_tensor(const char *api, const char *name, cudnnTensorDescriptor_t d)
{
    if (d && d->set && d->type == CUDNN_DATA_FLOAT) return 1;
    emu_violation("%s: %s descriptor unset or not FP32", api, name);
    return 0;
}

static size_t elems(cudnnTensorDescriptor_t d) { return (size_t)d->n * d->c * d->h * d->w; }

cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t h, const void *alpha, cudnnTensorDescriptor_t dyd,
                                           const void *dy, const void *beta, cudnnTensorDescriptor_t dbd, void *db)
{
    const char *api = "cudnnConvolutionBackwardBias";
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    if (!float_tensor(api, "dy", dyd) || !float_tensor(api, "db", dbd)) return CUDNN_STATUS_BAD_PARAM;
    if (dbd->n != 1 || dbd->c != dyd->c || dbd->h != 1 || dbd->w != 1) {
        emu_violation("%s: db [%d,%d,%d,%d] for dy with %d channels", api, dbd->n, dbd->c, dbd->h, dbd->w, dyd->c);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (!device_operand(api, "dy", dy, elems(dyd) * 4) || !device_operand(api, "db", db, elems(dbd) * 4) ||
        !no_overlap(api, "dy", dy, elems(dyd) * 4, "db", db, elems(dbd) * 4) || !emu_is_host(alpha, 4) ||
        !emu_is_host(beta, 4))
        return CUDNN_STATUS_BAD_PARAM;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const emu_tensor D = *dyd;
    return run(api, [=] {
        std::vector<double> r(D.c, 0.0);
        size_t plane = (size_t)D.h * D.w;
        for (int n = 0; n < D.n; n++)
            for (int c = 0; c < D.c; c++)
                for (size_t i = 0; i < plane; i++) r[c] += ((const float *)dy)[((size_t)n * D.c + c) * plane + i];
        store_all(db, r, CUDNN_DATA_FLOAT, al, be, 1);
    });
}

/* ---- batch norm (spatial, FP32) ---- */

/* x and y (dx, dy) shaped alike, the parameters [1,c,1,1], all FP32. */
static int bn_checks(const char *api, cudnnBatchNormMode_t mode, cudnnTensorDescriptor_t xd,
                     cudnnTensorDescriptor_t yd, cudnnTensorDescriptor_t bnd, double eps)
{
    if (mode != CUDNN_BATCHNORM_SPATIAL) {
        emu_violation("%s: mode %d (only spatial is emulated)", api, (int)mode);
        return 0;
    }
    if (!float_tensor(api, "x", xd) || !float_tensor(api, "y", yd) || !float_tensor(api, "parameter", bnd)) return 0;
    if (xd->n != yd->n || xd->c != yd->c || xd->h != yd->h || xd->w != yd->w || bnd->n != 1 || bnd->c != xd->c ||
        bnd->h != 1 || bnd->w != 1) {
        emu_violation("%s: x [%d,%d,%d,%d], y [%d,%d,%d,%d], parameters [%d,%d,%d,%d]", api, xd->n, xd->c, xd->h,
                      xd->w, yd->n, yd->c, yd->h, yd->w, bnd->n, bnd->c, bnd->h, bnd->w);
        return 0;
    }
    if (!(eps >= 0.0)) { /* CUDNN_BN_MIN_EPSILON is 0 in cuDNN 9 */
        emu_violation("%s: epsilon %g", api, eps);
        return 0;
    }
    return 1;
}

cudnnStatus_t cudnnBatchNormalizationForwardInference(cudnnHandle_t h, cudnnBatchNormMode_t mode, const void *alpha,
                                                      const void *beta, cudnnTensorDescriptor_t xd, const void *x,
                                                      cudnnTensorDescriptor_t yd, void *y,
                                                      cudnnTensorDescriptor_t bnd, const void *scale,
                                                      const void *bias, const void *mean, const void *var,
                                                      double eps)
{
    const char *api = "cudnnBatchNormalizationForwardInference";
    if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
    if (!bn_checks(api, mode, xd, yd, bnd, eps)) return CUDNN_STATUS_BAD_PARAM;
    size_t nx = elems(xd) * 4, nc = (size_t)xd->c * 4;
    if (!device_operand(api, "x", x, nx) || !device_operand(api, "y", y, nx) ||
        !device_operand(api, "scale", scale, nc) || !device_operand(api, "bias", bias, nc) ||
        !device_operand(api, "mean", mean, nc) || !device_operand(api, "variance", var, nc) ||
        !emu_is_host(alpha, 4) || !emu_is_host(beta, 4) || !no_overlap(api, "x", x, nx, "y", y, nx))
        return CUDNN_STATUS_BAD_PARAM;
    const double al = *(const float *)alpha, be = *(const float *)beta;
    const emu_tensor X = *xd;
    return run(api, [=] {
        size_t plane = (size_t)X.h * X.w;
        const float *xf = (const float *)x, *g = (const float *)scale, *b = (const float *)bias;
        const float *mu = (const float *)mean, *va = (const float *)var;
        float *yf = (float *)y;
        for (int c = 0; c < X.c; c++) {
            double inv = 1.0 / sqrt((double)va[c] + eps);
            for (int n = 0; n < X.n; n++)
                for (size_t i = 0; i < plane; i++) {
                    size_t j = ((size_t)n * X.c + c) * plane + i;
                    double v = g[c] * (xf[j] - mu[c]) * inv + b[c];
                    yf[j] = (float)(al * v + (be != 0 ? be * yf[j] : 0.0));
                }
        }
    });
}
