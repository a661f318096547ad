/* cudnn_ops.cu: every cuDNN call of the CUDA backend (the legacy
 * convolution and batch-norm API, still in cuDNN 9).
 *
 * Convolutions: NCHW, cross-correlation, padding k/2, FP32 compute.
 *   fp32  FP32 tensors, CUDNN_FMA_MATH only (no tensor cores): the parity
 *         reference against the CPU
 *   tf32  FP32 tensors, tensor-core math allowed (TF32)
 *   bf16  inputs and weights cast to BF16 (kernels.cu), BF16 output cast
 *         back to FP32; weight gradients land in FP32 (master weights)
 * Algorithms: searched once per (direction, shape, precision), cached: by
 * cudnnFind* (the fastest that fits the workspace cap and whose math type
 * matches the precision) or, with --deterministic, by cuDNN's heuristics
 * (the first deterministic one: the same choice in every run). In bf16 a
 * shape without a BF16 algorithm runs in FP32 with TF32 math. One shared
 * workspace grows to the largest chosen algorithm's need.
 * Batch norm (eval, on its own; the network folds it into the convolution
 * instead): CUDNN_BATCHNORM_SPATIAL, FP32. Training batch norm runs in our
 * own kernels (kernels.cu), which fuse the ReLU that follows it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#define WORKSPACE_CAP ((size_t)512 << 20) /* bytes: no algorithm may need more */

enum { DIR_FWD, DIR_BWD_DATA, DIR_BWD_FILTER };

typedef struct {
    int dir, prec, det, n, c, h, w, oc, k, stride; /* the key */
    int algo;
    cudnnMathType_t math;
    size_t ws;
    int f32;     /* bf16 only: no BF16 algorithm for this shape, it runs in FP32 tensors with TF32 math */
    int unfused; /* eval: cuDNN refused to fuse bias + ReLU with this algorithm */
} algo_entry;

struct cudnn_state {
    cudnnHandle_t h;
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnActivationDescriptor_t relu;
    void *ws;
    size_t ws_size;
    algo_entry *algos;
    int nalgos, cap_algos;
    uint16_t *bx, *bw, *by; /* BF16 copies: input (or dy), weights, output (or dx / dw) */
    size_t bx_cap, bw_cap, by_cap;
    float *fw, *fb; /* BN folded into conv weights and bias (eval) */
    size_t fw_cap, fb_cap;
};

static cudnn_state *DNN(backend *b) { return CX(b)->dnn; }

static int ok(backend *b, cudnnStatus_t s, const char *what)
{
    if (s == CUDNN_STATUS_SUCCESS) return 1;
    cu_fail(b, what, cudnnGetErrorString(s));
    return 0;
}

/* A device buffer of at least need elements of size elem (contents dropped). */
static int grow(backend *b, void **buf, size_t *cap, size_t need, size_t elem)
{
    if (*cap >= need && *buf) return 1;
    cu_free(b, *buf);
    *cap = 0;
    if (!(*buf = cu_malloc(b, (need ? need : 1) * elem))) return 0;
    *cap = need;
    return 1;
}

int dnn_create(backend *b)
{
    cudnn_state *d = (cudnn_state *)calloc(1, sizeof *d);
    if (!d) return cu_fail(b, "cudnn", "out of host memory"), -1;
    CX(b)->dnn = d;
    if (!ok(b, cudnnCreate(&d->h), "cudnnCreate") || !ok(b, cudnnSetStream(d->h, CX(b)->stream), "cudnnSetStream") ||
        !ok(b, cudnnCreateTensorDescriptor(&d->xd), "descriptor") ||
        !ok(b, cudnnCreateTensorDescriptor(&d->yd), "descriptor") ||
        !ok(b, cudnnCreateTensorDescriptor(&d->bd), "descriptor") ||
        !ok(b, cudnnCreateFilterDescriptor(&d->wd), "descriptor") ||
        !ok(b, cudnnCreateConvolutionDescriptor(&d->cd), "descriptor") ||
        !ok(b, cudnnCreateActivationDescriptor(&d->relu), "descriptor") ||
        !ok(b, cudnnSetActivationDescriptor(d->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0),
            "activation descriptor"))
        return -1;
    return 0;
}

void dnn_destroy(backend *b)
{
    cudnn_state *d = DNN(b);
    if (!d) return;
    if (d->relu) cudnnDestroyActivationDescriptor(d->relu);
    if (d->cd) cudnnDestroyConvolutionDescriptor(d->cd);
    if (d->wd) cudnnDestroyFilterDescriptor(d->wd);
    if (d->bd) cudnnDestroyTensorDescriptor(d->bd);
    if (d->yd) cudnnDestroyTensorDescriptor(d->yd);
    if (d->xd) cudnnDestroyTensorDescriptor(d->xd);
    if (d->h) cudnnDestroy(d->h);
    cu_free(b, d->ws);
    cu_free(b, d->bx), cu_free(b, d->bw), cu_free(b, d->by);
    cu_free(b, d->fw), cu_free(b, d->fb);
    free(d->algos);
    free(d);
    CX(b)->dnn = NULL;
}

size_t dnn_bytes(backend *b)
{
    cudnn_state *d = DNN(b);
    if (!d) return 0;
    return d->ws_size + 2 * (d->bx_cap + d->bw_cap + d->by_cap) + 4 * (d->fw_cap + d->fb_cap);
}

/* ---- descriptors ---- */

static int set_tensor(backend *b, cudnnTensorDescriptor_t t, cudnnDataType_t dt, int n, int c, int h, int w)
{
    return ok(b, cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NCHW, dt, n, c, h, w), "cudnnSetTensor4dDescriptor");
}

static cudnnDataType_t data_type(backend *b) { return b->opt.prec == PREC_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT; }
/* The math type searched with: fp32 FMA only; tf32 CUDNN_DEFAULT_MATH, which
 * permits TF32 tensor cores on Ampere and later for FP32 tensors (PyTorch's
 * setting for allow_tf32, so the peer searches the same set); bf16 tensor
 * ops. Each algorithm then runs with the math type its search result gives. */
static cudnnMathType_t math_type(backend *b)
{
    return b->opt.prec == PREC_FP32 ? CUDNN_FMA_MATH : b->opt.prec == PREC_TF32 ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH;
}

/* x [n,c,h,w] (xd), w [oc,c,k,k] (wd), conv (cd), y (yd) in data type dt. */
static int set_conv(backend *b, shape4 xs, int oc, int k, int stride, cudnnDataType_t dt)
{
    cudnn_state *d = DNN(b);
    shape4 ys = conv2d_out_shape(xs, oc, k, stride);
    return set_tensor(b, d->xd, dt, xs.n, xs.c, xs.h, xs.w) && set_tensor(b, d->yd, dt, ys.n, ys.c, ys.h, ys.w) &&
           ok(b, cudnnSetFilter4dDescriptor(d->wd, dt, CUDNN_TENSOR_NCHW, oc, xs.c, k, k), "cudnnSetFilter4dDescriptor") &&
           ok(b, cudnnSetConvolution2dDescriptor(d->cd, k / 2, k / 2, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT),
              "cudnnSetConvolution2dDescriptor") &&
           ok(b, cudnnSetConvolutionMathType(d->cd, math_type(b)), "cudnnSetConvolutionMathType");
}

/* ---- algorithm choice ---- */

/* Whether a search result may be used: it ran, fits, is not a tensor-op
 * result in fp32 (which then runs with CUDNN_FMA_MATH, see prepare), and is
 * deterministic when asked. */
static int usable(backend *b, cudnnStatus_t st, size_t mem, cudnnDeterminism_t det, cudnnMathType_t math)
{
    if (st != CUDNN_STATUS_SUCCESS || mem > WORKSPACE_CAP) return 0;
    if (b->opt.deterministic && det != CUDNN_DETERMINISTIC) return 0;
    if (b->opt.prec == PREC_FP32 && math != CUDNN_FMA_MATH && math != CUDNN_DEFAULT_MATH) return 0;
    return 1;
}

/* The first usable entry of r[0..got) (any of cuDNN's three perf structs) into key. */
#define PICK(r, got)                                                                                   \
    for (int i_ = 0; i_ < (got) && !*found; i_++)                                                      \
        if (usable(b, r[i_].status, r[i_].memory, r[i_].determinism, r[i_].mathType))                  \
            key->algo = (int)r[i_].algo, key->math = r[i_].mathType, key->ws = r[i_].memory, *found = 1

/* The heuristics' perf results are estimates: the workspace the chosen
 * algorithm needs is asked for separately, with the math type it will run
 * with (as the frameworks do), and the larger of the two is kept. */
static cudnnStatus_t heuristic_workspace(backend *b, int dir, algo_entry *key)
{
    cudnn_state *d = DNN(b);
    size_t ws = 0;
    cudnnStatus_t st =
        cudnnSetConvolutionMathType(d->cd, b->opt.prec == PREC_FP32 ? CUDNN_FMA_MATH : key->math);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (dir == DIR_FWD)
        st = cudnnGetConvolutionForwardWorkspaceSize(d->h, d->xd, d->wd, d->cd, d->yd,
                                                     (cudnnConvolutionFwdAlgo_t)key->algo, &ws);
    else if (dir == DIR_BWD_DATA)
        st = cudnnGetConvolutionBackwardDataWorkspaceSize(d->h, d->wd, d->yd, d->cd, d->xd,
                                                          (cudnnConvolutionBwdDataAlgo_t)key->algo, &ws);
    else
        st = cudnnGetConvolutionBackwardFilterWorkspaceSize(d->h, d->xd, d->yd, d->cd, d->wd,
                                                            (cudnnConvolutionBwdFilterAlgo_t)key->algo, &ws);
    if (st == CUDNN_STATUS_SUCCESS && ws > key->ws) key->ws = ws;
    return st;
}

/* Searches an algorithm for the prepared descriptors. Normally cudnnFind*
 * (each candidate timed, the fastest usable kept). With --deterministic,
 * cuDNN's heuristics instead (cudnnGet*_v7): timings vary between runs, so
 * Find could pick another deterministic algorithm, with other bits, in the
 * next process; the heuristics' order is fixed for a GPU and cuDNN. */
static cudnnStatus_t search(backend *b, int dir, algo_entry *key, int *found)
{
    cudnn_state *d = DNN(b);
    enum { MAXR = 16 };
    int got = 0;
    const int heur = b->opt.deterministic;
    cudnnStatus_t st;
    *found = 0;
    if (!heur) cu_trim(b); /* Find allocates its own buffers: give it the pool's idle memory */
    if (dir == DIR_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[MAXR];
        st = heur ? cudnnGetConvolutionForwardAlgorithm_v7(d->h, d->xd, d->wd, d->cd, d->yd, MAXR, &got, r)
                  : cudnnFindConvolutionForwardAlgorithm(d->h, d->xd, d->wd, d->cd, d->yd, MAXR, &got, r);
        if (st == CUDNN_STATUS_SUCCESS) PICK(r, got);
    } else if (dir == DIR_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[MAXR];
        st = heur ? cudnnGetConvolutionBackwardDataAlgorithm_v7(d->h, d->wd, d->yd, d->cd, d->xd, MAXR, &got, r)
                  : cudnnFindConvolutionBackwardDataAlgorithm(d->h, d->wd, d->yd, d->cd, d->xd, MAXR, &got, r);
        if (st == CUDNN_STATUS_SUCCESS) PICK(r, got);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[MAXR];
        st = heur ? cudnnGetConvolutionBackwardFilterAlgorithm_v7(d->h, d->xd, d->yd, d->cd, d->wd, MAXR, &got, r)
                  : cudnnFindConvolutionBackwardFilterAlgorithm(d->h, d->xd, d->yd, d->cd, d->wd, MAXR, &got, r);
        if (st == CUDNN_STATUS_SUCCESS) PICK(r, got);
    }
    if (st == CUDNN_STATUS_SUCCESS && heur && *found) st = heuristic_workspace(b, dir, key);
    return st;
}
#undef PICK

static algo_entry *cached(cudnn_state *d, const algo_entry *key)
{
    for (int i = 0; i < d->nalgos; i++) {
        algo_entry *e = &d->algos[i];
        if (e->dir == key->dir && e->prec == key->prec && e->det == key->det && e->n == key->n && e->c == key->c &&
            e->h == key->h && e->w == key->w && e->oc == key->oc && e->k == key->k && e->stride == key->stride)
            return e;
    }
    return NULL;
}

/* The algorithm of (dir, shape) into *out, searched on first use (the
 * descriptors must be set for this precision: set_conv). In bf16, a shape
 * with no BF16 algorithm (odd channel counts can have none) runs in FP32
 * tensors with TF32 math instead (out->f32). 0 after an error. */
static int algo_for(backend *b, int dir, shape4 xs, int oc, int k, int stride, algo_entry *out)
{
    cudnn_state *d = DNN(b);
    algo_entry key = {dir, (int)b->opt.prec, b->opt.deterministic, xs.n, xs.c, xs.h, xs.w, oc, k, stride, 0,
                      CUDNN_DEFAULT_MATH, 0, 0, 0};
    const algo_entry *e = cached(d, &key);
    if (e) {
        *out = *e;
        return 1;
    }
    int found;
    cudnnStatus_t st = search(b, dir, &key, &found);
    if (!found && b->opt.prec == PREC_BF16) {
        if (!set_conv(b, xs, oc, k, stride, CUDNN_DATA_FLOAT)) return 0;
        key.f32 = 1;
        st = search(b, dir, &key, &found);
    }
    if (!ok(b, st, b->opt.deterministic ? "cudnnGetConvolution*Algorithm_v7" : "cudnnFindConvolution*Algorithm"))
        return 0;
    if (!found) {
        char what[160];
        snprintf(what, sizeof what, "no %s%s convolution algorithm for x [%d,%d,%d,%d], %d outputs, k %d, stride %d",
                 precision_name(b->opt.prec), b->opt.deterministic ? " deterministic" : "", xs.n, xs.c, xs.h, xs.w,
                 oc, k, stride);
        cu_fail(b, "cudnn", what);
        return 0;
    }
    if (d->nalgos == d->cap_algos) {
        int nc = d->cap_algos ? 2 * d->cap_algos : 64;
        algo_entry *na = (algo_entry *)realloc(d->algos, (size_t)nc * sizeof *na);
        if (!na) return cu_fail(b, "cudnn", "out of host memory"), 0;
        d->algos = na;
        d->cap_algos = nc;
    }
    d->algos[d->nalgos++] = key;
    *out = key;
    return 1;
}

/* The descriptors for (shape, direction) in the data type and math type the
 * chosen algorithm runs with, and a workspace big enough for it. */
static int prepare(backend *b, int dir, shape4 xs, int oc, int k, int stride, algo_entry *e)
{
    cudnn_state *d = DNN(b);
    if (CX(b)->failed || !set_conv(b, xs, oc, k, stride, data_type(b)) || !algo_for(b, dir, xs, oc, k, stride, e))
        return 0;
    if (e->f32 && !set_conv(b, xs, oc, k, stride, CUDNN_DATA_FLOAT)) return 0;
    cudnnMathType_t m = b->opt.prec == PREC_FP32 ? CUDNN_FMA_MATH : e->math; /* fp32: never TF32 */
    if (!ok(b, cudnnSetConvolutionMathType(d->cd, m), "cudnnSetConvolutionMathType")) return 0;
    if (e->ws > d->ws_size) {
        /* the old workspace may still be in use by queued work: free is stream-ordered in cu_free */
        cu_free(b, d->ws);
        d->ws_size = 0;
        if (!(d->ws = cu_malloc(b, e->ws))) return 0;
        d->ws_size = e->ws;
    }
    return 1;
}

/* Whether this call runs in BF16 (bf16, and the shape has a BF16 algorithm). */
static int in_bf16(backend *b, const algo_entry *e) { return b->opt.prec == PREC_BF16 && !e->f32; }

/* BF16 copies of n floats into a grown buffer. */
static const uint16_t *to_bf16(backend *b, uint16_t **buf, size_t *cap, const float *x, size_t n)
{
    if (!grow(b, (void **)buf, cap, n, sizeof(uint16_t))) return NULL;
    k_to_bf16(b, x, n, *buf);
    return *buf;
}

static const float one = 1.0f, zero = 0.0f;

/* y = act(conv(x, w) + bias) (bias NULL: none; relu: ReLU), any precision,
 * the descriptors prepared here: the conv, then one pass of ours for bias
 * and ReLU (k_bias_act, in place), or in BF16 for the cast back to FP32
 * with them (k_bf16_epilogue). */
static int conv_core(backend *b, const float *x, shape4 xs, const float *w, const float *bias, int relu, int oc,
                     int k, int stride, float *y)
{
    cudnn_state *d = DNN(b);
    algo_entry e;
    if (!prepare(b, DIR_FWD, xs, oc, k, stride, &e)) return 0;
    cudnnConvolutionFwdAlgo_t algo = (cudnnConvolutionFwdAlgo_t)e.algo;
    shape4 ys = conv2d_out_shape(xs, oc, k, stride);
    size_t ny = shape4_numel(ys);
    if (!in_bf16(b, &e)) {
        if (!ok(b, cudnnConvolutionForward(d->h, &one, d->xd, x, d->wd, w, d->cd, algo, d->ws, d->ws_size, &zero,
                                           d->yd, y),
                "cudnnConvolutionForward"))
            return 0;
        k_bias_act(b, y, ys, bias, relu);
        return 1;
    }
    const uint16_t *bx = to_bf16(b, &d->bx, &d->bx_cap, x, shape4_numel(xs));
    const uint16_t *bw = to_bf16(b, &d->bw, &d->bw_cap, w, (size_t)oc * xs.c * k * k);
    if (!bx || !bw || !grow(b, (void **)&d->by, &d->by_cap, ny, sizeof(uint16_t))) return 0;
    if (!ok(b, cudnnConvolutionForward(d->h, &one, d->xd, bx, d->wd, bw, d->cd, algo, d->ws, d->ws_size, &zero, d->yd,
                                       d->by),
            "cudnnConvolutionForward"))
        return 0;
    k_bf16_epilogue(b, d->by, ys, bias, relu, y);
    return 1;
}

void dnn_conv_fwd(backend *b, const float *x, shape4 xs, const float *w, const float *bias, int oc, int k,
                  int stride, float *y)
{
    conv_core(b, x, xs, w, bias, 0, oc, k, stride, y);
}

/* In BF16: dy goes to `bx` (cast once, for both directions), x to `by`
 * then dx comes out of `by`; dW comes out in BF16 (`bw`) and is added to the
 * FP32 gradient, then `bw` holds the BF16 weights for dx. */
void dnn_conv_bwd(backend *b, const float *x, shape4 xs, const float *w, int oc, int k, int stride,
                  const float *dy, float *dx, float *dw, float *dbias)
{
    cudnn_state *d = DNN(b);
    shape4 ys = conv2d_out_shape(xs, oc, k, stride);
    size_t nx = shape4_numel(xs), ny = shape4_numel(ys), nw = (size_t)oc * xs.c * k * k;
    if (CX(b)->failed) return;
    if (dbias) { /* sum of dy over (n, h, w), added */
        if (!set_tensor(b, d->bd, CUDNN_DATA_FLOAT, 1, oc, 1, 1) ||
            !set_tensor(b, d->yd, CUDNN_DATA_FLOAT, ys.n, ys.c, ys.h, ys.w) ||
            !ok(b, cudnnConvolutionBackwardBias(d->h, &one, d->yd, dy, &one, d->bd, dbias),
                "cudnnConvolutionBackwardBias"))
            return;
    }
    const uint16_t *bdy = NULL;
    algo_entry e;
    if (dw) {
        if (!prepare(b, DIR_BWD_FILTER, xs, oc, k, stride, &e)) return;
        cudnnConvolutionBwdFilterAlgo_t algo = (cudnnConvolutionBwdFilterAlgo_t)e.algo;
        if (!in_bf16(b, &e)) {
            if (!ok(b, cudnnConvolutionBackwardFilter(d->h, &one, d->xd, x, d->yd, dy, d->cd, algo, d->ws, d->ws_size,
                                                      &one, d->wd, dw),
                    "cudnnConvolutionBackwardFilter"))
                return;
        } else {
            const uint16_t *bxx = to_bf16(b, &d->by, &d->by_cap, x, nx);
            if (!bxx || !(bdy = to_bf16(b, &d->bx, &d->bx_cap, dy, ny)) ||
                !grow(b, (void **)&d->bw, &d->bw_cap, nw, sizeof(uint16_t)) ||
                !ok(b, cudnnConvolutionBackwardFilter(d->h, &one, d->xd, bxx, d->yd, bdy, d->cd, algo, d->ws,
                                                      d->ws_size, &zero, d->wd, d->bw),
                    "cudnnConvolutionBackwardFilter"))
                return;
            k_acc_bf16(b, dw, d->bw, nw);
        }
    }
    if (dx) {
        if (!prepare(b, DIR_BWD_DATA, xs, oc, k, stride, &e)) return;
        cudnnConvolutionBwdDataAlgo_t algo = (cudnnConvolutionBwdDataAlgo_t)e.algo;
        if (!in_bf16(b, &e)) {
            ok(b, cudnnConvolutionBackwardData(d->h, &one, d->wd, w, d->yd, dy, d->cd, algo, d->ws, d->ws_size, &zero,
                                               d->xd, dx),
               "cudnnConvolutionBackwardData");
        } else {
            if (!bdy && !(bdy = to_bf16(b, &d->bx, &d->bx_cap, dy, ny))) return;
            const uint16_t *bw = to_bf16(b, &d->bw, &d->bw_cap, w, nw);
            if (!bw || !grow(b, (void **)&d->by, &d->by_cap, nx, sizeof(uint16_t)) ||
                !ok(b, cudnnConvolutionBackwardData(d->h, &one, d->wd, bw, d->yd, bdy, d->cd, algo, d->ws, d->ws_size,
                                                    &zero, d->xd, d->by),
                    "cudnnConvolutionBackwardData"))
                return;
            k_from_bf16(b, d->by, nx, dx);
        }
    }
}

/* Eval: BN folded into the weights and a bias (k_fold_bn), then one
 * cudnnConvolutionBiasActivationForward (conv + bias + ReLU) in fp32/tf32;
 * without ReLU, in bf16, or where cuDNN will not fuse the chosen algorithm
 * (any status of the NOT_SUPPORTED or BAD_PARAM categories: remembered, not
 * retried), conv_core: the conv, then bias and ReLU in one pass of ours
 * (with the cast back from BF16 in bf16). */
void dnn_conv_bn_eval(backend *b, const float *x, shape4 xs, const float *w, int oc, int k, int stride,
                      const float *gamma, const float *beta, const float *mean, const float *var, float eps,
                      int relu, float *y)
{
    cudnn_state *d = DNN(b);
    size_t per_oc = (size_t)xs.c * k * k;
    if (CX(b)->failed || !grow(b, (void **)&d->fw, &d->fw_cap, (size_t)oc * per_oc, sizeof(float)) ||
        !grow(b, (void **)&d->fb, &d->fb_cap, (size_t)oc, sizeof(float)))
        return;
    k_fold_bn(b, w, oc, per_oc, gamma, beta, mean, var, eps, d->fw, d->fb);
    if (relu && b->opt.prec != PREC_BF16) {
        algo_entry e;
        if (!prepare(b, DIR_FWD, xs, oc, k, stride, &e) || !set_tensor(b, d->bd, CUDNN_DATA_FLOAT, 1, oc, 1, 1)) return;
        if (!e.unfused) {
            cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
                d->h, &one, d->xd, x, d->wd, d->fw, d->cd, (cudnnConvolutionFwdAlgo_t)e.algo, d->ws, d->ws_size, &zero,
                d->yd, y, d->bd, d->fb, d->relu, d->yd, y);
            int cat = CUDNN_STATUS_CATEGORY((int)st);
            if (st == CUDNN_STATUS_SUCCESS) return;
            if (cat != CUDNN_STATUS_NOT_SUPPORTED && cat != CUDNN_STATUS_BAD_PARAM) {
                ok(b, st, "cudnnConvolutionBiasActivationForward");
                return;
            }
            algo_entry *c = cached(d, &e);
            if (c) c->unfused = 1;
        }
    }
    conv_core(b, x, xs, d->fw, d->fb, relu, oc, k, stride, y);
}

/* ---- batch norm (eval) ---- */

static int set_bn(backend *b, shape4 s)
{
    cudnn_state *d = DNN(b);
    return set_tensor(b, d->xd, CUDNN_DATA_FLOAT, s.n, s.c, s.h, s.w) &&
           set_tensor(b, d->bd, CUDNN_DATA_FLOAT, 1, s.c, 1, 1);
}

void dnn_bn_fwd_eval(backend *b, const float *x, shape4 s, const float *gamma, const float *beta,
                     const float *running_mean, const float *running_var, float eps, float *y)
{
    cudnn_state *d = DNN(b);
    if (CX(b)->failed || !set_bn(b, s)) return;
    ok(b, cudnnBatchNormalizationForwardInference(d->h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d->xd, x, d->xd, y,
                                                  d->bd, gamma, beta, running_mean, running_var, (double)eps),
       "cudnnBatchNormalizationForwardInference");
}
