/* backend_cuda.cu: the CUDA backend's table (backend.h): memory on one
 * stream with stream-ordered allocation (cudaMallocAsync / cudaFreeAsync,
 * so a buffer freed while queued work still reads it stays valid until that
 * work is done), sticky errors, linear layers on cuBLAS, and the entry point
 * of bin/libfbcuda.so. Convolutions and batch norm are in cudnn_ops.cu, our
 * own kernels in kernels.cu. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* ---- errors ---- */

int cu_fail(backend *b, const char *what, const char *detail)
{
    cuda_ctx *cx = CX(b);
    if (!cx->failed) {
        cx->failed = 1;
        snprintf(cx->err, sizeof cx->err, "%s: %s", what, detail);
    }
    return 1;
}

int cu_check(backend *b, cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return 0;
    return cu_fail(b, what, cudaGetErrorString(e));
}

int cu_capturing(backend *b, const char *what)
{
    if (!CX(b)->capturing) return 0;
    cu_fail(b, what, "not allowed while a graph is being recorded");
    return 1;
}

static int blas_ok(backend *b, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS) return 1;
    char d[48];
    snprintf(d, sizeof d, "cuBLAS status %d", (int)s);
    cu_fail(b, what, d);
    return 0;
}

/* ---- memory, with the sizes of live allocations for the accounting ---- */

static int track(cuda_ctx *cx, void *p, size_t bytes)
{
    if (cx->map_n == cx->map_cap) {
        size_t nc = cx->map_cap ? 2 * cx->map_cap : 256;
        void **nk = (void **)realloc(cx->keys, nc * sizeof *nk);
        if (!nk) return -1;
        cx->keys = nk;
        size_t *ns = (size_t *)realloc(cx->sizes, nc * sizeof *ns);
        if (!ns) return -1;
        cx->sizes = ns;
        cx->map_cap = nc;
    }
    cx->keys[cx->map_n] = p;
    cx->sizes[cx->map_n++] = bytes;
    cx->in_use += bytes;
    if (cx->in_use > cx->peak) cx->peak = cx->in_use;
    return 0;
}

static void untrack(cuda_ctx *cx, void *p)
{
    for (size_t i = cx->map_n; i-- > 0;)
        if (cx->keys[i] == p) {
            cx->in_use -= cx->sizes[i];
            cx->keys[i] = cx->keys[--cx->map_n];
            cx->sizes[i] = cx->sizes[cx->map_n];
            return;
        }
}

void *cu_malloc(backend *b, size_t bytes)
{
    cuda_ctx *cx = CX(b);
    if (cx->failed || cu_capturing(b, "an allocation")) return NULL;
    void *p = NULL;
    if (cu_check(b, cudaMallocAsync(&p, bytes ? bytes : 1, cx->stream), "cudaMallocAsync")) return NULL;
    if (track(cx, p, bytes)) {
        cudaFreeAsync(p, cx->stream);
        cu_fail(b, "allocation table", "out of host memory");
        return NULL;
    }
    b->memory_epoch++;
    return p;
}

void cu_free(backend *b, void *p)
{
    if (!p) return;
    cuda_ctx *cx = CX(b);
    if (cx->capturing) { /* freed when the recording ends (which this fails) */
        cu_capturing(b, "a release");
        if (cx->late_n == cx->late_cap) {
            size_t nc = cx->late_cap ? 2 * cx->late_cap : 16;
            void **nl = (void **)realloc(cx->late_free, nc * sizeof *nl);
            if (!nl) return; /* (leaked: out of host memory) */
            cx->late_free = nl, cx->late_cap = nc;
        }
        cx->late_free[cx->late_n++] = p;
        return;
    }
    untrack(cx, p);
    b->memory_epoch++;
    cu_check(b, cudaFreeAsync(p, cx->stream), "cudaFreeAsync");
}

void cu_trim(backend *b)
{
    cudaMemPool_t pool;
    int dev = 0;
    if (CX(b)->failed || cu_capturing(b, "cu_trim") ||
        cu_check(b, cudaStreamSynchronize(CX(b)->stream), "cudaStreamSynchronize"))
        return;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess)
        cudaMemPoolTrimTo(pool, 0);
    (void)cudaGetLastError(); /* trimming is only an offer */
}

static float *cu_alloc(backend *b, size_t n)
{
    float *p = (float *)cu_malloc(b, n * sizeof(float));
    if (p && cu_check(b, cudaMemsetAsync(p, 0, n * sizeof(float), CX(b)->stream), "cudaMemsetAsync")) return NULL;
    return p;
}

static void cu_release(backend *b, void *p) { cu_free(b, p); }

/* Page-locked where the driver grants it, else malloc (page-locking is an
 * offer: its failure is not the backend's error). */
static void *cu_host_alloc(backend *b, size_t bytes)
{
    cuda_ctx *cx = CX(b);
    void *p = NULL;
    if (cx->pinned_n == cx->pinned_cap) {
        size_t nc = cx->pinned_cap ? 2 * cx->pinned_cap : 16;
        void **np = (void **)realloc(cx->pinned, nc * sizeof *np);
        if (!np) return NULL;
        cx->pinned = np, cx->pinned_cap = nc;
    }
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) == cudaSuccess) {
        cx->pinned[cx->pinned_n++] = p;
        return p;
    }
    (void)cudaGetLastError();
    return malloc(bytes ? bytes : 1);
}

static void stages_drop(backend *b);

static void cu_host_free(backend *b, void *p)
{
    if (!p) return;
    cuda_ctx *cx = CX(b);
    stages_drop(b); /* whatever they copied from, p's address may come back for other data */
    for (size_t i = 0; i < cx->pinned_n; i++)
        if (cx->pinned[i] == p) {
            cx->pinned[i] = cx->pinned[--cx->pinned_n];
            cudaFreeHost(p); /* waits for the device: no copy from p is left */
            return;
        }
    free(p); /* (a copy from pageable memory read it at the call) */
}

/* ---- uploads ahead of need: a copy stream, staging buffers, events ----
 * copy stream:  [wait free_k] H2D host -> stage_k [record ready_k]
 * main stream:  ... [wait ready_k] D2D stage_k -> dst [record free_k] ...
 * so a copy overlaps whatever the main stream runs meanwhile, and stage_k
 * is not written again before the main stream has copied it out. */

static int stages_make(backend *b)
{
    cuda_ctx *cx = CX(b);
    if (cu_check(b, cudaStreamCreateWithFlags(&cx->copy_stream, cudaStreamNonBlocking), "cudaStreamCreate (copies)"))
        return -1;
    for (int k = 0; k < CU_STAGES; k++)
        if (cu_check(b, cudaEventCreateWithFlags(&cx->stages[k].ready, cudaEventDisableTiming), "cudaEventCreate") ||
            cu_check(b, cudaEventCreateWithFlags(&cx->stages[k].free, cudaEventDisableTiming), "cudaEventCreate"))
            return -1;
    return 0;
}

/* Forgets the copies not taken. One may still be in flight (from pageable memory, cudaMemcpyAsync returns
 * before its transfer ends), and nothing on the main stream waits for it: so wait here, before its buffer
 * can be regrown (freed on the main stream) or refilled. */
static void stages_drop(backend *b)
{
    cuda_ctx *cx = CX(b);
    int any = 0;
    for (int k = 0; k < CU_STAGES; k++) any |= cx->stages[k].pending, cx->stages[k].pending = 0;
    if (any && !cx->failed) cu_check(b, cudaStreamSynchronize(cx->copy_stream), "cudaStreamSynchronize (copies)");
}

static int cu_upload_ahead(backend *b, const float *host, size_t n)
{
    cuda_ctx *cx = CX(b);
    if (cx->failed || !n || !host || cu_capturing(b, "upload_ahead")) return -1;
    if (!cx->copy_stream && stages_make(b)) return -1;
    cu_stage *st = NULL;
    for (int k = 0; k < CU_STAGES; k++) {
        cu_stage *s = &cx->stages[k];
        if (s->pending && s->host == host && s->floats == n) return 0; /* already on its way */
        if (!s->pending && (!st || (st->cap < n && s->cap >= n))) st = s; /* a free one, big enough if any is */
    }
    if (!st) return -1;
    if (st->cap < n) {
        cu_free(b, st->buf);
        st->cap = 0;
        if (!(st->buf = (float *)cu_malloc(b, n * sizeof(float)))) return -1;
        st->cap = n;
        st->free_recorded = 0;
    }
    if (!st->free_recorded) { /* a new buffer: allocated on the main stream, so order the copy after that */
        if (cu_check(b, cudaEventRecord(st->free, cx->stream), "cudaEventRecord")) return -1;
        st->free_recorded = 1;
    }
    if (cu_check(b, cudaStreamWaitEvent(cx->copy_stream, st->free, 0), "cudaStreamWaitEvent") ||
        cu_check(b, cudaMemcpyAsync(st->buf, host, n * sizeof(float), cudaMemcpyHostToDevice, cx->copy_stream),
                 "upload_ahead") ||
        cu_check(b, cudaEventRecord(st->ready, cx->copy_stream), "cudaEventRecord"))
        return -1;
    st->host = host, st->floats = n, st->pending = 1;
    return 0;
}

static void cu_upload(backend *b, float *dst, const float *host, size_t n)
{
    cuda_ctx *cx = CX(b);
    if (cx->failed || !n || cu_capturing(b, "upload")) return;
    for (int k = 0; k < CU_STAGES && cx->copy_stream; k++) {
        cu_stage *s = &cx->stages[k];
        if (!s->pending || s->host != host || s->floats != n) continue;
        s->pending = 0;
        b->prefetched++;
        if (!cu_check(b, cudaStreamWaitEvent(cx->stream, s->ready, 0), "cudaStreamWaitEvent") &&
            !cu_check(b, cudaMemcpyAsync(dst, s->buf, n * sizeof(float), cudaMemcpyDeviceToDevice, cx->stream),
                      "upload (staged)"))
            cu_check(b, cudaEventRecord(s->free, cx->stream), "cudaEventRecord");
        return;
    }
    cu_check(b, cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, cx->stream), "upload");
}

static void cu_sync(backend *b)
{
    cuda_ctx *cx = CX(b);
    if (cx->failed || cu_capturing(b, "sync")) return;
    if (!cu_check(b, cudaStreamSynchronize(cx->stream), "cudaStreamSynchronize") && cx->copy_stream)
        cu_check(b, cudaStreamSynchronize(cx->copy_stream), "cudaStreamSynchronize (copies)"); /* staged stay so */
}

/* Waits for the main stream, so every copy an upload() took is done (what is staged for the next step
 * may still be on its way). */
static void cu_download(backend *b, float *host, const float *src, size_t n)
{
    if (CX(b)->failed || !n || cu_capturing(b, "download")) return;
    if (!cu_check(b, cudaMemcpyAsync(host, src, n * sizeof(float), cudaMemcpyDeviceToHost, CX(b)->stream),
                  "download"))
        cu_check(b, cudaStreamSynchronize(CX(b)->stream), "cudaStreamSynchronize");
}

/* ---- graphs ---- */

static int cu_capture_begin(backend *b)
{
    cuda_ctx *cx = CX(b);
    if (cx->failed || cx->capturing) return -1;
    cudaError_t e = cudaStreamBeginCapture(cx->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(b->graph_note, sizeof b->graph_note, "cudaStreamBeginCapture: %s", cudaGetErrorString(e));
        return -1;
    }
    cx->capturing = 1;
    b->graph_note[0] = '\0';
    return 0;
}

static void *cu_capture_end(backend *b)
{
    cuda_ctx *cx = CX(b);
    if (!cx->capturing) return NULL;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ex = NULL;
    cudaError_t e = cudaStreamEndCapture(cx->stream, &g);
    cx->capturing = 0;
    if (!cx->failed && e == cudaSuccess && g) e = cudaGraphInstantiate(&ex, g, 0);
    if (g) cudaGraphDestroy(g);
    for (size_t i = 0; i < cx->late_n; i++) cu_free(b, cx->late_free[i]);
    cx->late_n = 0;
    if (!cx->failed && e == cudaSuccess && ex) return ex;
    /* the recording failed, not the backend: note why, clear the error */
    snprintf(b->graph_note, sizeof b->graph_note, "%s", cx->failed ? cx->err : cudaGetErrorString(e));
    if (ex) cudaGraphExecDestroy(ex);
    (void)cudaGetLastError();
    cx->failed = 0;
    cx->err[0] = '\0';
    return NULL;
}

static void cu_graph_launch(backend *b, void *graph)
{
    if (CX(b)->failed) return;
    cu_check(b, cudaGraphLaunch((cudaGraphExec_t)graph, CX(b)->stream), "cudaGraphLaunch");
}

static void cu_graph_free(backend *b, void *graph)
{
    (void)b;
    if (graph) cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

static const char *cu_error(backend *b) { return CX(b)->failed ? CX(b)->err : NULL; }
static size_t cu_bytes(backend *b) { return dnn_bytes(b); }
static size_t cu_peak(backend *b) { return CX(b)->peak; }
static void cu_reset_peak(backend *b) { CX(b)->peak = CX(b)->in_use; }

static void cu_destroy(backend *b)
{
    if (!b) return;
    cuda_ctx *cx = CX(b);
    if (cx) {
        if (cx->stream) cudaStreamSynchronize(cx->stream);
        if (cx->copy_stream) {
            cudaStreamSynchronize(cx->copy_stream);
            cudaStreamDestroy(cx->copy_stream);
            for (int k = 0; k < CU_STAGES; k++) {
                if (cx->stages[k].ready) cudaEventDestroy(cx->stages[k].ready);
                if (cx->stages[k].free) cudaEventDestroy(cx->stages[k].free);
            }
        }
        dnn_destroy(b);
        if (cx->blas) cublasDestroy(cx->blas);
        for (size_t i = 0; i < cx->map_n; i++) cudaFreeAsync(cx->keys[i], cx->stream);
        if (cx->stream) {
            cudaStreamSynchronize(cx->stream);
            cudaStreamDestroy(cx->stream);
        }
        for (size_t i = 0; i < cx->pinned_n; i++) cudaFreeHost(cx->pinned[i]);
        free(cx->pinned);
        free(cx->late_free);
        free(cx->keys);
        free(cx->sizes);
        free(cx);
    }
    free(b);
}

/* cuBLAS's workspace: ours (set after cublasSetStream, which resets it), so
 * that cuBLAS never allocates one while a graph is being recorded. The
 * linear layers are small; 4 MiB is cuBLAS's recommendation before Hopper. */
#define BLAS_WORKSPACE ((size_t)4 << 20)

/* ---- linear layers: row-major x [n,in], w [out,in], y [n,out] seen by
 * column-major cuBLAS as x^T, w^T, y^T ---- */

static void cu_linear_fwd(backend *b, const float *x, int n, int in, const float *w, const float *bias, int out,
                          float *y)
{
    if (CX(b)->failed) return;
    const float one = 1.0f, zero = 0.0f;
    /* y^T [out,n] = w [out,in] . x^T [in,n] */
    if (!blas_ok(b, cublasSgemm(CX(b)->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in, x, in, &zero, y, out),
                 "cublasSgemm (linear)"))
        return;
    if (bias) k_bias_add_rows(b, y, bias, n, out);
}

static void cu_linear_bwd(backend *b, const float *x, int n, int in, const float *w, int out, const float *dy,
                          float *dx, float *dw, float *dbias)
{
    if (CX(b)->failed) return;
    const float one = 1.0f, zero = 0.0f;
    cublasHandle_t h = CX(b)->blas;
    /* dx^T [in,n] = w^T [in,out] . dy^T [out,n] */
    if (dx && !blas_ok(b, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy, out, &zero, dx, in),
                       "cublasSgemm (linear dx)"))
        return;
    /* dw^T [in,out] += x^T [in,n] . dy [n,out] */
    if (dw && !blas_ok(b, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy, out, &one, dw, in),
                       "cublasSgemm (linear dw)"))
        return;
    if (dbias) k_bias_grad_rows(b, dy, n, out, dbias);
}

/* ---- the table ---- */

static void fill_table(backend *b)
{
    b->alloc = cu_alloc, b->release = cu_release, b->upload = cu_upload, b->download = cu_download;
    b->host_alloc = cu_host_alloc, b->host_free = cu_host_free;
    b->sync = cu_sync, b->error = cu_error, b->bytes_in_use = cu_bytes, b->peak_bytes = cu_peak;
    b->reset_peak = cu_reset_peak;
    b->destroy = cu_destroy;
    if (!b->opt.no_graphs) {
        b->capture_begin = cu_capture_begin, b->capture_end = cu_capture_end;
        b->graph_launch = cu_graph_launch, b->graph_free = cu_graph_free;
    }
    if (!b->opt.no_prefetch) b->upload_ahead = cu_upload_ahead;
    b->fill = k_fill, b->copy = k_copy, b->acc = k_acc, b->add = k_add, b->axpb = k_axpb;
    b->conv2d_fwd = dnn_conv_fwd, b->conv2d_bwd = dnn_conv_bwd, b->conv2d_bn_eval = dnn_conv_bn_eval;
    b->bn_fwd_train = k_bn_fwd_train, b->bn_fwd_eval = dnn_bn_fwd_eval, b->bn_bwd = k_bn_bwd;
    b->relu_fwd = k_relu_fwd, b->relu_bwd = k_relu_bwd, b->sigmoid_fwd = k_sigmoid_fwd;
    b->sigmoid_bwd = k_sigmoid_bwd, b->maxpool2_fwd = k_maxpool2_fwd, b->maxpool2_bwd = k_maxpool2_bwd;
    b->upsample2_fwd = k_upsample2_fwd, b->upsample2_bwd = k_upsample2_bwd, b->concat_fwd = k_concat_fwd;
    b->concat_bwd = k_concat_bwd, b->quadrant_crop = k_quadrant_crop, b->quadrant_assemble = k_quadrant_assemble;
    b->mul_spatial_fwd = k_mul_spatial_fwd, b->mul_spatial_bwd = k_mul_spatial_bwd;
    b->mul_channel_fwd = k_mul_channel_fwd, b->mul_channel_bwd = k_mul_channel_bwd;
    b->avgpool_global_fwd = k_avgpool_global_fwd, b->avgpool_global_bwd = k_avgpool_global_bwd;
    b->avgpool_block_fwd = k_avgpool_block_fwd, b->avgpool_block_bwd = k_avgpool_block_bwd;
    b->linear_fwd = cu_linear_fwd, b->linear_bwd = cu_linear_bwd, b->softmax_ce = k_softmax_ce, b->mse = k_mse;
    b->adamw = k_adamw;
}

extern "C" backend *fb_backend_cuda_create(const backend_options *opt, char *err, size_t errlen)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(err, errlen, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        return NULL;
    }
    if (opt->device >= count) {
        snprintf(err, errlen, "cuda:%d: there %s only %d CUDA device%s", opt->device, count == 1 ? "is" : "are", count,
                 count == 1 ? "" : "s");
        return NULL;
    }
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(opt->device)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&prop, opt->device)) != cudaSuccess) {
        snprintf(err, errlen, "cuda:%d: %s", opt->device, cudaGetErrorString(e));
        return NULL;
    }
    backend *b = (backend *)calloc(1, sizeof *b);
    cuda_ctx *cx = (cuda_ctx *)calloc(1, sizeof *cx);
    if (!b || !cx) {
        free(b), free(cx);
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    b->name = "cuda";
    b->opt = *opt;
    b->ctx = cx;
    b->host_memory = 0;
    snprintf(b->desc, sizeof b->desc, "cuda:%d %.64s %s%s", opt->device, prop.name, precision_name(opt->prec),
             opt->deterministic ? " deterministic" : "");
    cx->sm_count = prop.multiProcessorCount;
    fill_table(b);
    /* Keep freed memory in the stream-ordered pool instead of returning it at
     * every synchronisation (a training step frees and reallocates small
     * scratch buffers). */
    cudaMemPool_t pool;
    uint64_t keep = UINT64_MAX;
    if (cudaDeviceGetDefaultMemPool(&pool, opt->device) == cudaSuccess)
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    (void)cudaGetLastError(); /* a failure above only costs speed: do not let a later launch take the blame */
    if (!cu_check(b, cudaStreamCreateWithFlags(&cx->stream, cudaStreamNonBlocking), "cudaStreamCreate") &&
        blas_ok(b, cublasCreate(&cx->blas), "cublasCreate") &&
        blas_ok(b, cublasSetStream(cx->blas, cx->stream), "cublasSetStream") &&
        blas_ok(b, cublasSetMathMode(cx->blas, opt->prec == PREC_FP32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_TF32_TENSOR_OP_MATH),
                "cublasSetMathMode") &&
        (cx->blas_ws = cu_malloc(b, BLAS_WORKSPACE)) &&
        blas_ok(b, cublasSetWorkspace(cx->blas, cx->blas_ws, BLAS_WORKSPACE), "cublasSetWorkspace") &&
        (cx->scratch = (double *)cu_malloc(b, K_SCRATCH_DOUBLES * sizeof(double))))
        dnn_create(b);
    cx->scratch_n = cx->scratch ? K_SCRATCH_DOUBLES : 0;
    if (cx->failed) {
        snprintf(err, errlen, "cuda:%d: %s", opt->device, cx->err);
        cu_destroy(b);
        return NULL;
    }
    return b;
}
