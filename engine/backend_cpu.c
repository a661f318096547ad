/* backend_cpu.c: the CPU backend (the reference): host memory, each op a
 * call of ops.h, AdamW as optim.c. Synchronous; nothing can fail after
 * allocation. backend_open() also lives here: it returns this backend or
 * loads the CUDA one from bin/libfbcuda.so.
 *
 * "cpu-staged" is the same backend posing as a device, so that the device
 * paths of net.c (its own parameter copy in the device layout, output
 * mirrors, transfers) run and are tested without a GPU: host_memory is 0
 * and, like cuDNN's tensor-core kernels, it refuses parameter pointers that
 * are not aligned (the layout net.c gives a device). Results equal "cpu"'s
 * bit for bit. */
#include "backend.h"
#include "optim.h"

#include <cblas.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct {
    int failed;
    int staged;
    char misaligned[96]; /* staged: the first misaligned parameter pointer's role */
} cpu_ctx;

#define STAGED_ALIGN 64 /* bytes: what net.c's device layout gives every parameter tensor */

static float *cpu_alloc(backend *b, size_t n)
{
    cpu_ctx *cx = b->ctx;
    float *p;
    if (cx->staged) { /* aligned like a device allocation */
        size_t bytes = ((n ? n : 1) * sizeof(float) + STAGED_ALIGN - 1) / STAGED_ALIGN * STAGED_ALIGN;
        if ((p = aligned_alloc(STAGED_ALIGN, bytes))) memset(p, 0, bytes);
    } else {
        p = calloc(n ? n : 1, sizeof(float));
    }
    if (!p) cx->failed = 1;
    b->memory_epoch++;
    return p;
}

/* Staged: records a parameter pointer (weights, BN parameters and
 * statistics, their gradients) that is not aligned as a device needs. */
static void aligned(backend *b, const void *p, const char *role)
{
    cpu_ctx *cx = b->ctx;
    if (cx->staged && p && ((uintptr_t)p % STAGED_ALIGN) && !cx->misaligned[0])
        snprintf(cx->misaligned, sizeof cx->misaligned, "%s pointer not %d-byte aligned", role, STAGED_ALIGN);
}
static void cpu_release(backend *b, void *p)
{
    if (p) b->memory_epoch++;
    free(p);
}
static void *cpu_host_alloc(backend *b, size_t bytes) { (void)b; return malloc(bytes ? bytes : 1); }
static void cpu_host_free(backend *b, void *p) { (void)b, free(p); }
static void cpu_upload(backend *b, float *d, const float *h, size_t n) { (void)b, memcpy(d, h, n * sizeof(float)); }
static void cpu_download(backend *b, float *h, const float *s, size_t n) { (void)b, memcpy(h, s, n * sizeof(float)); }
static void cpu_sync(backend *b) { (void)b; }
static const char *cpu_error(backend *b)
{
    cpu_ctx *cx = b->ctx;
    return cx->failed ? "out of memory" : cx->misaligned[0] ? cx->misaligned : NULL;
}
static size_t cpu_bytes(backend *b) { (void)b; return ops_workspace_bytes(); }
static size_t cpu_peak(backend *b)
{
    (void)b;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}
static void cpu_reset_peak(backend *b) { (void)b; }
static void cpu_destroy(backend *b)
{
    if (!b) return;
    free(b->ctx);
    free(b);
}

static void cpu_fill(backend *b, float *y, float v, size_t n)
{
    (void)b;
    for (size_t i = 0; i < n; i++) y[i] = v;
}
static void cpu_copy(backend *b, float *y, const float *x, size_t n) { (void)b, memmove(y, x, n * sizeof(float)); }
static void cpu_acc(backend *b, float *y, const float *x, size_t n)
{
    (void)b;
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
static void cpu_add(backend *b, float *y, const float *x1, const float *x2, size_t n)
{
    (void)b;
    for (size_t i = 0; i < n; i++) y[i] = x1[i] + x2[i];
}
static void cpu_axpb(backend *b, float *y, const float *x, float a, float c, size_t n)
{
    (void)b;
    for (size_t i = 0; i < n; i++) y[i] = a * x[i] + c;
}

static void cpu_conv_fwd(backend *b, const float *x, shape4 xs, const float *w, const float *bias, int oc, int k,
                         int stride, float *y)
{
    aligned(b, w, "conv weight"), aligned(b, bias, "conv bias");
    conv2d_fwd(x, xs, w, bias, oc, k, stride, y, NULL);
}
static void cpu_conv_bwd(backend *b, const float *x, shape4 xs, const float *w, int oc, int k, int stride,
                         const float *dy, float *dx, float *dw, float *dbias)
{
    aligned(b, w, "conv weight"), aligned(b, dw, "conv weight gradient"), aligned(b, dbias, "conv bias gradient");
    conv2d_bwd(x, xs, w, oc, k, stride, dy, dx, dw, dbias, NULL);
}
/* Not fused on the CPU: the same three ops as the training path, so eval
 * results do not depend on which entry the tape used. */
static void cpu_conv_bn_eval(backend *b, const float *x, shape4 xs, const float *w, int oc, int k, int stride,
                             const float *gamma, const float *beta, const float *mean, const float *var, float eps,
                             int relu, float *y)
{
    aligned(b, w, "conv weight"), aligned(b, gamma, "bn weight"), aligned(b, beta, "bn bias");
    aligned(b, mean, "bn running mean"), aligned(b, var, "bn running variance");
    shape4 ys = conv2d_out_shape(xs, oc, k, stride);
    conv2d_fwd(x, xs, w, NULL, oc, k, stride, y, NULL);
    batchnorm_fwd_eval(y, ys, gamma, beta, mean, var, eps, y);
    if (relu) relu_fwd(y, shape4_numel(ys), y);
}
static void cpu_bn_train(backend *b, const float *x, shape4 s, const float *g, const float *be, float *rm, float *rv,
                         float mom, float eps, int relu, float *y, float *sm, float *si)
{
    aligned(b, g, "bn weight"), aligned(b, be, "bn bias"), aligned(b, rm, "bn running mean");
    aligned(b, rv, "bn running variance");
    batchnorm_fwd_train(x, s, g, be, rm, rv, mom, eps, relu, y, sm, si);
}
static void cpu_bn_eval(backend *b, const float *x, shape4 s, const float *g, const float *be, const float *rm,
                        const float *rv, float eps, float *y)
{
    aligned(b, g, "bn weight"), aligned(b, be, "bn bias"), aligned(b, rm, "bn running mean");
    aligned(b, rv, "bn running variance");
    batchnorm_fwd_eval(x, s, g, be, rm, rv, eps, y);
}
static void cpu_bn_bwd(backend *b, const float *x, shape4 s, const float *g, const float *sm, const float *si,
                       const float *relu_y, const float *dy, float *dx, float *dg, float *db)
{
    aligned(b, g, "bn weight"), aligned(b, dg, "bn weight gradient"), aligned(b, db, "bn bias gradient");
    batchnorm_bwd(x, s, g, sm, si, relu_y, dy, dx, dg, db);
}
static void cpu_relu_fwd(backend *b, const float *x, size_t n, float *y) { (void)b, relu_fwd(x, n, y); }
static void cpu_relu_bwd(backend *b, const float *y, const float *dy, size_t n, float *dx)
{
    (void)b, relu_bwd(y, dy, n, dx);
}
static void cpu_sigmoid_fwd(backend *b, const float *x, size_t n, float *y) { (void)b, sigmoid_fwd(x, n, y); }
static void cpu_sigmoid_bwd(backend *b, const float *y, const float *dy, size_t n, float *dx)
{
    (void)b, sigmoid_bwd(y, dy, n, dx);
}
static void cpu_maxpool_fwd(backend *b, const float *x, shape4 xs, float *y, int32_t *am)
{
    (void)b, maxpool2_fwd(x, xs, y, am);
}
static void cpu_maxpool_bwd(backend *b, const int32_t *am, const float *dy, shape4 ys, float *dx, shape4 xs)
{
    (void)b, maxpool2_bwd(am, dy, ys, dx, xs);
}
static void cpu_up_fwd(backend *b, const float *x, shape4 xs, float *y) { (void)b, upsample2_fwd(x, xs, y); }
static void cpu_up_bwd(backend *b, const float *dy, shape4 xs, float *dx) { (void)b, upsample2_bwd(dy, xs, dx); }
static void cpu_cat_fwd(backend *b, const float *a, int ca, const float *c, int cc, int n, int h, int w, float *y)
{
    (void)b, concat_fwd(a, ca, c, cc, n, h, w, y);
}
static void cpu_cat_bwd(backend *b, const float *dy, int ca, int cc, int n, int h, int w, float *da, float *dc)
{
    (void)b, concat_bwd(dy, ca, cc, n, h, w, da, dc);
}
static void cpu_qcrop(backend *b, const float *x, shape4 xs, int q, float *y) { (void)b, quadrant_crop(x, xs, q, y); }
static void cpu_qasm(backend *b, const float *y, shape4 xs, int q, float *x)
{
    (void)b, quadrant_assemble(y, xs, q, x);
}
static void cpu_mulsp_fwd(backend *b, const float *r, shape4 rs, const float *a, float *y)
{
    (void)b, mul_spatial_fwd(r, rs, a, y);
}
static void cpu_mulsp_bwd(backend *b, const float *r, shape4 rs, const float *a, const float *dy, float *dr, float *da)
{
    (void)b, mul_spatial_bwd(r, rs, a, dy, dr, da);
}
static void cpu_mulch_fwd(backend *b, const float *r, shape4 rs, const float *s, float *y)
{
    (void)b, mul_channel_fwd(r, rs, s, y);
}
static void cpu_mulch_bwd(backend *b, const float *r, shape4 rs, const float *s, const float *dy, float *dr, float *ds)
{
    (void)b, mul_channel_bwd(r, rs, s, dy, dr, ds);
}
static void cpu_gap_fwd(backend *b, const float *x, shape4 xs, float *y) { (void)b, avgpool_global_fwd(x, xs, y); }
static void cpu_gap_bwd(backend *b, const float *dy, shape4 xs, float *dx)
{
    (void)b, avgpool_global_bwd(dy, xs, dx);
}
static void cpu_blk_fwd(backend *b, const float *x, shape4 xs, int g, float *y)
{
    (void)b, avgpool_block_fwd(x, xs, g, y);
}
static void cpu_blk_bwd(backend *b, const float *dy, shape4 xs, int g, float *dx)
{
    (void)b, avgpool_block_bwd(dy, xs, g, dx);
}
static void cpu_lin_fwd(backend *b, const float *x, int n, int in, const float *w, const float *bias, int out, float *y)
{
    aligned(b, w, "linear weight"), aligned(b, bias, "linear bias");
    linear_fwd(x, n, in, w, bias, out, y);
}
static void cpu_lin_bwd(backend *b, const float *x, int n, int in, const float *w, int out, const float *dy, float *dx,
                        float *dw, float *db)
{
    aligned(b, w, "linear weight"), aligned(b, dw, "linear weight gradient"), aligned(b, db, "linear bias gradient");
    linear_bwd(x, n, in, w, out, dy, dx, dw, db);
}
static void cpu_ce(backend *b, const float *lg, int n, int k, const int32_t *lab, float scale, float *dl, float *loss)
{
    (void)b;
    *loss = softmax_ce(lg, n, k, (const int *)lab, scale, dl);
}
static void cpu_mse(backend *b, const float *a, const float *t, size_t n, float scale, float *da, float *loss)
{
    (void)b;
    *loss = mse(a, t, n, scale, da);
}

/* adamw_range (optim.c) over each run of trainable elements. */
static void cpu_adamw(backend *b, float *w, const float *g, float *m, float *v, const uint8_t *mask, size_t total,
                      const adamw_coef *k)
{
    (void)b;
    for (size_t i = 0; i < total;) {
        if (!mask[i]) { i++; continue; }
        size_t j = i;
        while (j < total && mask[j]) j++;
        adamw_range(w + i, g + i, m + i, v + i, j - i, k);
        i = j;
    }
}

static backend *cpu_create(const backend_options *opt, int staged)
{
    backend *b = calloc(1, sizeof *b);
    cpu_ctx *cx = calloc(1, sizeof *cx);
    if (!b || !cx) {
        free(b), free(cx);
        return NULL;
    }
    if (opt) b->opt = *opt;
    b->opt.prec = PREC_FP32;
    if (b->opt.threads > 0) ops_set_threads(b->opt.threads);
    cx->staged = staged;
    b->name = staged ? "cpu-staged" : "cpu";
    b->host_memory = !staged;
    snprintf(b->desc, sizeof b->desc, "%s:%d OpenBLAS %s", b->name, ops_threads(), openblas_get_corename());
    b->ctx = cx;
    b->alloc = cpu_alloc, b->release = cpu_release, b->upload = cpu_upload, b->download = cpu_download;
    b->host_alloc = cpu_host_alloc, b->host_free = cpu_host_free;
    b->sync = cpu_sync, b->error = cpu_error, b->bytes_in_use = cpu_bytes, b->peak_bytes = cpu_peak;
    b->reset_peak = cpu_reset_peak;
    b->destroy = cpu_destroy;
    b->fill = cpu_fill, b->copy = cpu_copy, b->acc = cpu_acc, b->add = cpu_add, b->axpb = cpu_axpb;
    b->conv2d_fwd = cpu_conv_fwd, b->conv2d_bwd = cpu_conv_bwd, b->conv2d_bn_eval = cpu_conv_bn_eval;
    b->bn_fwd_train = cpu_bn_train, b->bn_fwd_eval = cpu_bn_eval, b->bn_bwd = cpu_bn_bwd;
    b->relu_fwd = cpu_relu_fwd, b->relu_bwd = cpu_relu_bwd, b->sigmoid_fwd = cpu_sigmoid_fwd;
    b->sigmoid_bwd = cpu_sigmoid_bwd, b->maxpool2_fwd = cpu_maxpool_fwd, b->maxpool2_bwd = cpu_maxpool_bwd;
    b->upsample2_fwd = cpu_up_fwd, b->upsample2_bwd = cpu_up_bwd, b->concat_fwd = cpu_cat_fwd;
    b->concat_bwd = cpu_cat_bwd, b->quadrant_crop = cpu_qcrop, b->quadrant_assemble = cpu_qasm;
    b->mul_spatial_fwd = cpu_mulsp_fwd, b->mul_spatial_bwd = cpu_mulsp_bwd;
    b->mul_channel_fwd = cpu_mulch_fwd, b->mul_channel_bwd = cpu_mulch_bwd;
    b->avgpool_global_fwd = cpu_gap_fwd, b->avgpool_global_bwd = cpu_gap_bwd;
    b->avgpool_block_fwd = cpu_blk_fwd, b->avgpool_block_bwd = cpu_blk_bwd;
    b->linear_fwd = cpu_lin_fwd, b->linear_bwd = cpu_lin_bwd, b->softmax_ce = cpu_ce, b->mse = cpu_mse;
    b->adamw = cpu_adamw;
    return b;
}

backend *backend_cpu_create(const backend_options *opt) { return cpu_create(opt, 0); }

void cpu_pin_blas_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    /* The executable's real path, not /proc/self/exe, so the process keeps its name (ps, top, perf). */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || setenv("OPENBLAS_CORETYPE", "Haswell", 1) != 0) return;
    self[n] = '\0';
    execv(self, argv); /* returns only on failure: then OpenBLAS's own choice stands */
}

/* ---- opening a backend by name ---- */

int precision_parse(const char *s, precision *out)
{
    static const char *names[] = {"fp32", "tf32", "bf16"};
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (precision)i;
            return 0;
        }
    return -1;
}

/* bin/libfbcuda.so beside the running executable (or $FERBENCH_CUDA_LIB). */
static void *open_cuda_lib(char *err, size_t errlen)
{
    char path[PATH_MAX];
    const char *env = getenv("FERBENCH_CUDA_LIB");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0) {
            snprintf(err, errlen, "cannot locate the running executable to find libfbcuda.so");
            return NULL;
        }
        path[n] = '\0';
        char *slash = strrchr(path, '/');
        size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
        snprintf(path + dir, sizeof path - dir, "libfbcuda.so");
    }
    if (access(path, R_OK) != 0) {
        snprintf(err, errlen,
                 "this build has no CUDA backend (%s not found: it is built by make when nvcc and cudnn.h are present)",
                 path);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) snprintf(err, errlen, "cannot load the CUDA backend: %s", dlerror());
    return h;
}

backend *backend_open(const char *device, const backend_options *opt, char *err, size_t errlen)
{
    backend_options o = opt ? *opt : (backend_options){0};
    if (!device || strcmp(device, "cpu") == 0 || strcmp(device, "cpu-staged") == 0) {
        if (o.prec != PREC_FP32) {
            snprintf(err, errlen, "--precision %s needs --device cuda (the CPU computes in fp32)", precision_name(o.prec));
            return NULL;
        }
        backend *b = cpu_create(&o, device && strcmp(device, "cpu-staged") == 0);
        if (!b) snprintf(err, errlen, "out of memory");
        return b;
    }
    if (strncmp(device, "cuda", 4) == 0 && (device[4] == '\0' || device[4] == ':')) {
        if (device[4] == ':') {
            char *end;
            long d = strtol(device + 5, &end, 10);
            if (end == device + 5 || *end || d < 0 || d > 255) {
                snprintf(err, errlen, "bad device '%s' (expected cuda or cuda:N)", device);
                return NULL;
            }
            o.device = (int)d;
        }
        void *h = open_cuda_lib(err, errlen);
        if (!h) return NULL;
        backend_cuda_create_fn create;
        *(void **)&create = dlsym(h, BACKEND_CUDA_SYMBOL);
        if (!create) {
            snprintf(err, errlen, "libfbcuda.so lacks %s", BACKEND_CUDA_SYMBOL);
            dlclose(h);
            return NULL;
        }
        /* The library stays loaded for the life of the process, also when
         * create fails: the table points into it, and unloading it would
         * unload the C++ runtime it brought in, with its allocations. */
        return create(&o, err, errlen);
    }
    snprintf(err, errlen, "unknown device '%s' (expected cpu, cuda, cuda:N or cpu-staged)", device);
    return NULL;
}

void backend_close(backend *b)
{
    if (b) b->destroy(b);
}

void *backend_host_alloc(void *be, size_t bytes)
{
    backend *b = be;
    return b->host_alloc(b, bytes);
}

void backend_host_free(void *be, void *p)
{
    backend *b = be;
    if (p) b->host_free(b, p);
}
