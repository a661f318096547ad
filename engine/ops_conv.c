/* ops_conv.c: convolution, batch norm and linear of ops.h on the CPU, plus
 * the ops' thread team and workspace (ops_set_threads and friends).
 *
 * Threads: OpenMP. Determinism: every op splits its work into tasks that
 * depend only on the shapes (column tiles, channel blocks, images, fixed row
 * blocks), never on the thread count; each task is computed by one thread in
 * a fixed order (its own single-threaded sgemm calls, its own loops), and
 * whatever sums across tasks (conv weight gradients with few channel blocks)
 * goes through per-task partial buffers added in task order. The thread
 * count only decides which thread runs which task, so results are bitwise
 * identical for any count. OpenBLAS itself is kept at one thread: every sgemm
 * is called from inside a task (no oversubscription, and OpenBLAS's own
 * partitioning never enters the numbers).
 *
 * Convolution: im2col + sgemm over column tiles. The column matrix of a batch
 * is [K = C*k*k, N*OH*OW]; a tile is a range of output pixels of one image
 * (large images) or a few whole images (small ones), sized so its columns
 * (K x cols floats) stay in cache. 1x1 stride-1 convolutions read the image
 * as its own column matrix. 3x3 stride-1 convolutions with >= 64 channels in
 * and out use Winograd instead, F(4x4,3x3) on images of at least 8x8 and
 * F(2x2,3x3) on smaller ones (below; ops_set_winograd selects, 0 turns it
 * off). The backward's dx of a stride-1 convolution is the forward
 * convolution of dy with the flipped, transposed kernel (no col2im, and
 * Winograd where it applies); stride 2 goes through col2im per image. dW is
 * im2col + sgemm over channel blocks (each block walks every tile in order).
 * Batch norm splits channels (forward statistics and backward sums stay
 * per-channel, in double, in a fixed order); linear splits output (dx: input)
 * blocks of fixed size. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _OPENMP
#error "engine/ops_conv.c needs OpenMP: compile with -fopenmp"
#endif
#include <omp.h>
#define OMP(...) _Pragma(#__VA_ARGS__)

enum { OPS_MAX_THREADS = 256 };

/* ---- threads ------------------------------------------------------------- */

static atomic_int g_threads; /* 0 until first needed */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void ops_init(void) { openblas_set_num_threads(1); }

static int default_threads(void)
{
    const char *e = getenv("OMP_NUM_THREADS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if ((*end == '\0' || *end == ',') && v > 0)
            return v > OPS_MAX_THREADS ? OPS_MAX_THREADS : (int)v;
    }
    int n = omp_get_num_procs();
    if (n < 1)
        n = 1;
    return n > OPS_MAX_THREADS ? OPS_MAX_THREADS : (int)n;
}

void ops_set_threads(int n)
{
    pthread_once(&g_once, ops_init);
    openblas_set_num_threads(1);
    if (n <= 0)
        n = default_threads();
    atomic_store(&g_threads, n > OPS_MAX_THREADS ? OPS_MAX_THREADS : n);
}

int ops_threads(void)
{
    pthread_once(&g_once, ops_init);
    if (openblas_get_num_threads() != 1) /* someone raised it: our sgemm calls run inside tasks */
        openblas_set_num_threads(1);
    int n = atomic_load(&g_threads);
    if (n == 0) {
        n = default_threads();
        atomic_store(&g_threads, n);
    }
    return n;
}

/* Threads for ntasks tasks worth about `flops` of work: one below ~50k (the
 * team's fork/join would cost more than it saves). */
static int team(long ntasks, double flops)
{
    int nt = ops_threads();
    if (ntasks < 2 || flops < 5e4)
        return 1;
    return ntasks < nt ? (int)ntasks : nt;
}

/* ---- workspace: per-thread buffers and one shared buffer, grown on demand and
 * kept (a training loop allocates nothing after its first step). One op at a
 * time uses them (ws_mu). */

typedef struct {
    float *p;
    size_t n; /* floats */
} wbuf;

static wbuf ws_slot[OPS_MAX_THREADS], ws_shared, ws_wino; /* ws_wino: transformed Winograd filters */
static pthread_mutex_t ws_mu = PTHREAD_MUTEX_INITIALIZER;

static float *wbuf_get(wbuf *b, size_t n)
{
    if (b->n < n) {
        free(b->p);
        size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
        b->p = aligned_alloc(64, bytes);
        if (!b->p) {
            fprintf(stderr, "ops: out of memory (%zu bytes of workspace)\n", bytes);
            abort();
        }
        b->n = n;
    }
    return b->p;
}

/* Makes slots 0..nt-1 hold at least n floats each. */
static void slots_reserve(int nt, size_t n)
{
    for (int i = 0; i < nt; i++)
        wbuf_get(&ws_slot[i], n);
}

size_t ops_workspace_bytes(void)
{
    pthread_mutex_lock(&ws_mu);
    size_t n = ws_shared.n + ws_wino.n;
    for (int i = 0; i < OPS_MAX_THREADS; i++)
        n += ws_slot[i].n;
    pthread_mutex_unlock(&ws_mu);
    return n * sizeof(float);
}

void ops_workspace_free(void)
{
    pthread_mutex_lock(&ws_mu);
    for (int i = 0; i < OPS_MAX_THREADS; i++) {
        free(ws_slot[i].p);
        ws_slot[i] = (wbuf){NULL, 0};
    }
    free(ws_shared.p);
    ws_shared = (wbuf){NULL, 0};
    free(ws_wino.p);
    ws_wino = (wbuf){NULL, 0};
    pthread_mutex_unlock(&ws_mu);
}

/* ---- fixed-order double sums (8 interleaved partial sums, combined pairwise) ----
 * Always inlined, so that batch norm's AVX2 clones (below) get AVX2 copies. */

static inline __attribute__((always_inline)) double sum_d(const float *x, size_t n)
{
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
#pragma GCC unroll 8
        for (int l = 0; l < 8; l++)
            a[l] += (double)x[i + l];
    }
    for (int l = 0; i < n; i++, l++)
        a[l] += (double)x[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* sum (x - m)^2 */
static inline __attribute__((always_inline)) double sumsq_dev_d(const float *x, size_t n, double m)
{
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
#pragma GCC unroll 8
        for (int l = 0; l < 8; l++) {
            double d = (double)x[i + l] - m;
            a[l] += d * d;
        }
    }
    for (int l = 0; i < n; i++, l++) {
        double d = (double)x[i] - m;
        a[l] += d * d;
    }
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* dy[i], or through a ReLU (masked: relu_y is its output) dy[i] where
 * relu_y[i] > 0 and 0 elsewhere: relu_bwd's values. Called with a constant
 * `masked` (the unmasked call passes dy twice), and dy read unconditionally,
 * so that each loop compiles to one vectorised path with no load behind a
 * test (one behind a test kept GCC from vectorising: 2.7x slower). */
static inline __attribute__((always_inline)) float through_relu(const float *dy, const float *relu_y, int masked,
                                                                size_t i)
{
    if (!masked)
        return dy[i];
    uint32_t u, keep = relu_y[i] > 0.0f ? 0xffffffffu : 0u; /* +0.0f where masked, as relu_bwd */
    memcpy(&u, &dy[i], sizeof u);
    u &= keep;
    float g;
    memcpy(&g, &u, sizeof g);
    return g;
}

/* sum g and sum g * (x - m), g = through_relu(dy, relu_y, masked) */
static inline __attribute__((always_inline)) void sum_g_gdev_d(const float *dy, const float *relu_y, int masked,
                                                               const float *x, size_t n, double m, double *sg,
                                                               double *sgx)
{
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
#pragma GCC unroll 8
        for (int l = 0; l < 8; l++) {
            double gv = (double)through_relu(dy, relu_y, masked, i + l);
            a[l] += gv;
            b[l] += gv * ((double)x[i + l] - m);
        }
    }
    for (int l = 0; i < n; i++, l++) {
        double gv = (double)through_relu(dy, relu_y, masked, i);
        a[l] += gv;
        b[l] += gv * ((double)x[i] - m);
    }
    *sg = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    *sgx = ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]));
}

/* ---- convolution --------------------------------------------------------- */

static int conv_out_dim(int in, int k, int stride) { return (in + 2 * (k / 2) - k) / stride + 1; }

size_t conv2d_scratch_floats(shape4 xs, int k, int stride)
{
    (void)xs, (void)k, (void)stride;
    return 0;
}

/* Tiling (depends on the shapes only). */
enum {
    COL_BUDGET = 1 << 18, /* floats of one tile's column matrix (1 MiB) */
    CT_MIN = 64,          /* columns per tile, bounds */
    CT_MAX = 1024,
    MIN_TILES = 8,        /* tiles wanted when images are small (parallelism) */
    DIRECT_IMG_P = 64,    /* 1x1 stride 1 in tiles of whole images: one sgemm per image from this many pixels
                           * (no gather / scatter copies), below it one sgemm over the gathered images */
    KB_TARGET = 64        /* column-matrix rows per dW channel block */
};

typedef struct {
    int n, c, h, w, oc, k, s, pad, oh, ow;
    int K, P;    /* column-matrix rows (c*k*k) and columns per image (oh*ow) */
    int ipt;     /* images per tile; 1: a tile is a column range of one image */
    int tpi, ct; /* ipt == 1: tiles per image, columns per tile (the last one of an image may be shorter) */
    int ntiles;
    int direct;  /* 1x1 stride 1: the image is its own column matrix */
    int per_img; /* direct, ipt > 1 and P >= DIRECT_IMG_P: one sgemm per image of the tile */
} conv_plan;

static conv_plan plan_conv(shape4 xs, int oc, int k, int s)
{
    conv_plan p;
    memset(&p, 0, sizeof p);
    p.n = xs.n, p.c = xs.c, p.h = xs.h, p.w = xs.w, p.oc = oc, p.k = k, p.s = s, p.pad = k / 2;
    p.oh = conv_out_dim(xs.h, k, s), p.ow = conv_out_dim(xs.w, k, s);
    p.K = xs.c * k * k, p.P = p.oh * p.ow;
    p.direct = k == 1 && s == 1;
    long target = COL_BUDGET / (p.K > 0 ? p.K : 1);
    if (target < CT_MIN)
        target = CT_MIN;
    if (target > CT_MAX)
        target = CT_MAX;
    if (p.P >= target) {
        p.ipt = 1;
        p.tpi = (int)((p.P + target - 1) / target);
        p.ct = (p.P + p.tpi - 1) / p.tpi;
        p.ct = (p.ct + 15) / 16 * 16;
        p.tpi = (p.P + p.ct - 1) / p.ct;
    } else {
        long ipt = target / p.P;
        long cap = (p.n + MIN_TILES - 1) / MIN_TILES; /* keep MIN_TILES tiles... */
        double img_flops = 2.0 * oc * (double)p.K * p.P;
        long minw = (long)ceil(2e5 / (img_flops > 0 ? img_flops : 1)); /* ...of at least ~0.2 MFLOP */
        if (cap < minw)
            cap = minw;
        if (ipt > cap)
            ipt = cap;
        if (ipt > p.n)
            ipt = p.n;
        if (ipt < 1)
            ipt = 1;
        p.ipt = (int)ipt, p.tpi = 1, p.ct = p.P;
    }
    p.ntiles = p.ipt == 1 ? p.n * p.tpi : (p.n + p.ipt - 1) / p.ipt;
    p.per_img = p.direct && p.ipt > 1 && p.P >= DIRECT_IMG_P;
    return p;
}

/* Largest column count of a tile. */
static int plan_cols(const conv_plan *p) { return p->ipt == 1 ? p->ct : p->ipt * p->P; }

/* Tile t: images [*n0, *n1) and, when one image, its columns [*p0, *p1). */
static void plan_tile(const conv_plan *p, int t, int *n0, int *n1, int *p0, int *p1)
{
    if (p->ipt == 1) {
        *n0 = t / p->tpi, *n1 = *n0 + 1;
        *p0 = (t % p->tpi) * p->ct;
        *p1 = *p0 + p->ct < p->P ? *p0 + p->ct : p->P;
    } else {
        *n0 = t * p->ipt;
        *n1 = *n0 + p->ipt < p->n ? *n0 + p->ipt : p->n;
        *p0 = 0, *p1 = p->P;
    }
}

/* Output columns [a, b) of an output row that read an input column ix = ox*s - pad + kx inside [0, w):
 * [*lo, *hi) (empty when *lo == *hi). */
static inline void valid_cols(const conv_plan *p, int kx, int a, int b, int *lo, int *hi)
{
    int l = 0, h, t = p->pad - kx;
    if (t > 0)
        l = (t + p->s - 1) / p->s;
    int last = p->w - 1 + p->pad - kx; /* ox*s <= last */
    h = last < 0 ? 0 : last / p->s + 1;
    *lo = l < a ? a : l > b ? b : l;
    *hi = h > b ? b : h < *lo ? *lo : h;
}

/* im2col_cols for stride 1 with ow == w ("same" padding): output pixel q of a
 * valid row reads input pixel q + (ky-pad)*w + (kx-pad), so each column-matrix
 * row is one contiguous copy, then the columns outside [lo, hi) of each output
 * row (they picked up neighbours from the adjacent rows) are zeroed. */
static void im2col_s1(const conv_plan *p, const float *x, int c0, int c1, int p0, int p1, float *col, size_t ld)
{
    const int k = p->k, pad = p->pad, w = p->w, h = p->h;
    const long len = p1 - p0;
    for (int c = c0; c < c1; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int ky = 0; ky < k; ky++) {
            int oya = pad - ky > 0 ? pad - ky : 0, oyb = h - 1 + pad - ky; /* valid output rows [oya, oyb] */
            if (oyb > p->oh - 1)
                oyb = p->oh - 1;
            long qa = (long)oya * w, qb = (long)(oyb + 1) * w;
            if (qa < p0)
                qa = p0;
            if (qb > p1)
                qb = p1;
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(c - c0) * k * k + (size_t)ky * k + kx) * ld;
                int lo = pad - kx > 0 ? pad - kx : 0, hi = w + pad - kx < w ? w + pad - kx : w;
                if (qa >= qb || hi <= lo) {
                    memset(row, 0, (size_t)len * sizeof(float));
                    continue;
                }
                if (qa > p0)
                    memset(row, 0, (size_t)(qa - p0) * sizeof(float));
                if (qb < p1)
                    memset(row + (qb - p0), 0, (size_t)(p1 - qb) * sizeof(float));
                long ca = qa, cb = qb, shift = (long)(ky - pad) * w + (kx - pad);
                int oxa = (int)(ca % w), oxb = (int)((cb - 1) % w);
                if (oxa < lo)
                    ca += lo - oxa;
                else if (oxa >= hi)
                    ca += w - oxa + lo;
                if (oxb >= hi)
                    cb -= oxb - hi + 1;
                else if (oxb < lo)
                    cb -= oxb + 1 + (w - hi);
                if (cb > ca)
                    memcpy(row + (ca - p0), xc + (ca + shift), (size_t)(cb - ca) * sizeof(float));
                if (lo > 0 || hi < w) {
                    for (long oy = qa / w; oy <= (qb - 1) / w; oy++) {
                        long base = oy * w;
                        for (int ox = 0; ox < lo; ox++)
                            if (base + ox >= qa && base + ox < qb)
                                row[base + ox - p0] = 0.0f;
                        for (int ox = hi; ox < w; ox++)
                            if (base + ox >= qa && base + ox < qb)
                                row[base + ox - p0] = 0.0f;
                    }
                }
            }
        }
    }
}

/* col[(c - c0)*k*k + ky*k + kx][q - p0] (row stride ld) = x[c][oy*s - pad + ky][ox*s - pad + kx]
 * (0 outside), for channels [c0, c1) of one image x and output pixels q = oy*ow + ox in [p0, p1). */
static void im2col_cols(const conv_plan *p, const float *x, int c0, int c1, int p0, int p1, float *col, size_t ld)
{
    if (p->s == 1 && p->ow == p->w) {
        im2col_s1(p, x, c0, c1, p0, p1, col, ld);
        return;
    }
    const int k = p->k, s = p->s, ow = p->ow;
    const int oy0 = p0 / ow, oy1 = (p1 - 1) / ow;
    for (int c = c0; c < c1; c++) {
        const float *xc = x + (size_t)c * p->h * p->w;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(c - c0) * k * k + (size_t)ky * k + kx) * ld;
                int flo, fhi; /* valid columns of a full row */
                valid_cols(p, kx, 0, ow, &flo, &fhi);
                for (int oy = oy0; oy <= oy1; oy++) {
                    int a = oy == oy0 ? p0 - oy * ow : 0, b = oy == oy1 ? p1 - oy * ow : ow;
                    float *d = row + ((ptrdiff_t)oy * ow + a - p0); /* output column a */
                    int iy = oy * s - p->pad + ky;
                    if (iy < 0 || iy >= p->h) {
                        memset(d, 0, (size_t)(b - a) * sizeof(float));
                        continue;
                    }
                    int lo = flo < a ? a : flo > b ? b : flo, hi = fhi > b ? b : fhi < lo ? lo : fhi;
                    const float *xr = xc + (size_t)iy * p->w; /* input column of ox: ox*s - pad + kx */
                    for (int ox = a; ox < lo; ox++)
                        d[ox - a] = 0.0f;
                    for (int ox = lo; ox < hi; ox++)
                        d[ox - a] = xr[ox * s - p->pad + kx];
                    for (int ox = hi; ox < b; ox++)
                        d[ox - a] = 0.0f;
                }
            }
    }
}

/* The adjoint of im2col_cols over all channels: dx (one image) += scatter of col. */
static void col2im_add_cols(const conv_plan *p, const float *col, int p0, int p1, size_t ld, float *dx)
{
    const int k = p->k, s = p->s, ow = p->ow;
    const int oy0 = p0 / ow, oy1 = (p1 - 1) / ow;
    for (int c = 0; c < p->c; c++) {
        float *dc = dx + (size_t)c * p->h * p->w;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((size_t)c * k * k + (size_t)ky * k + kx) * ld;
                for (int oy = oy0; oy <= oy1; oy++) {
                    int iy = oy * s - p->pad + ky;
                    if (iy < 0 || iy >= p->h)
                        continue;
                    int a = oy == oy0 ? p0 - oy * ow : 0, b = oy == oy1 ? p1 - oy * ow : ow;
                    int lo, hi;
                    valid_cols(p, kx, a, b, &lo, &hi);
                    const float *r = row + ((ptrdiff_t)oy * ow + a - p0);
                    float *dr = dc + (size_t)iy * p->w;
                    for (int ox = lo; ox < hi; ox++)
                        dr[ox * s - p->pad + kx] += r[ox - a];
                }
            }
    }
}

/* Copies rows [c0, c1) of images [n0, n1) (each [rows, P] at stride `im`) side by side into dst [c1-c0, (n1-n0)*P]. */
static void gather_rows(const float *src, size_t im, int n0, int n1, int c0, int c1, int P, float *dst)
{
    size_t ld = (size_t)(n1 - n0) * P;
    for (int n = n0; n < n1; n++)
        for (int c = c0; c < c1; c++)
            memcpy(dst + (size_t)(c - c0) * ld + (size_t)(n - n0) * P, src + n * im + (size_t)c * P,
                   (size_t)P * sizeof(float));
}

/* Workspace floats per thread of the forward. */
static size_t fwd_slot_floats(const conv_plan *p)
{
    size_t cols = (size_t)plan_cols(p), n = 0;
    if (p->per_img)
        return 0;
    if (!(p->direct && p->ipt == 1))
        n += (size_t)p->K * cols;
    if (p->ipt > 1)
        n += (size_t)p->oc * cols;
    return n;
}

static void conv_fwd_tile(const conv_plan *p, const float *x, const float *w, const float *b, float *y, int t,
                          float *ws)
{
    const size_t xim = (size_t)p->c * p->h * p->w, yim = (size_t)p->oc * p->P;
    const int K = p->K, P = p->P, oc = p->oc;
    int n0, n1, p0, p1;
    plan_tile(p, t, &n0, &n1, &p0, &p1);
    if (p->ipt == 1) {
        int cols = p1 - p0;
        const float *B = ws;
        int ldb = cols;
        if (p->direct)
            B = x + n0 * xim + p0, ldb = P;
        else
            im2col_cols(p, x + n0 * xim, 0, p->c, p0, p1, ws, (size_t)cols);
        float *yt = y + n0 * yim + p0, beta = 0.0f;
        if (b) {
            for (int o = 0; o < oc; o++)
                for (int i = 0; i < cols; i++)
                    yt[(size_t)o * P + i] = b[o];
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, cols, K, 1.0f, w, K, B, ldb, beta, yt, P);
    } else if (p->per_img) {
        for (int n = n0; n < n1; n++) {
            float *yn = y + n * yim, beta = 0.0f;
            if (b) {
                for (int o = 0; o < oc; o++)
                    for (int i = 0; i < P; i++)
                        yn[(size_t)o * P + i] = b[o];
                beta = 1.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, P, K, 1.0f, w, K, x + n * xim, P, beta, yn, P);
        }
    } else {
        int cols = (n1 - n0) * P;
        float *col = ws, *out = ws + (size_t)K * (size_t)plan_cols(p);
        if (p->direct)
            gather_rows(x, xim, n0, n1, 0, p->c, P, col);
        else
            for (int n = n0; n < n1; n++)
                im2col_cols(p, x + n * xim, 0, p->c, 0, P, col + (size_t)(n - n0) * P, (size_t)cols);
        float beta = 0.0f;
        if (b) {
            for (int o = 0; o < oc; o++)
                for (int i = 0; i < cols; i++)
                    out[(size_t)o * cols + i] = b[o];
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, cols, K, 1.0f, w, K, col, cols, beta, out, cols);
        for (int n = n0; n < n1; n++)
            for (int o = 0; o < oc; o++)
                memcpy(y + n * yim + (size_t)o * P, out + (size_t)o * cols + (size_t)(n - n0) * P,
                       (size_t)P * sizeof(float));
    }
}

/* ---- Winograd F(2x2, 3x3): 3x3 stride-1 convolutions ----------------------
 * Each 2x2 output tile is A^T [sum_c (G g G^T) .* (B^T d B)] A over the 4x4
 * input patch d at (2ty - 1, 2tx - 1): the sum over channels becomes 16 GEMMs
 * U[xi] (OC x C) . V[xi] (C x tiles), with 2.25x fewer multiplications than
 * im2col. The transforms only add, subtract and halve (G), so the result stays
 * within ~1e-6 relative of the direct convolution. Tasks: blocks of tb
 * consecutive tiles of the batch (tiles ordered by image, tile row, tile
 * column); the transforms run 4 tiles at a time in SSE vectors. */

typedef float v4 __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4 ld4(const float *p)
{
    v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void st4(float *p, v4 v) { memcpy(p, &v, sizeof v); }

enum {
    WG_BUDGET = 1 << 19, /* floats of a block's V and M (2 MiB) */
    WG_TB_MIN = 32,
    WG_TB_MAX = 256,
    WG_MIN_CH = 64, /* input and output channels below this: im2col (small layers gain nothing) */
    WG4_BUDGET = 1 << 19, /* F(4x4): floats of a block's V and M (2 MiB)... */
    WG4_PACK = 512,       /* ...but at least oc * c / WG4_PACK tiles (OpenBLAS packs U, oc x c, every sgemm) */
    WG4_MIN_HW = 8      /* OPS_WINOGRAD_AUTO: F(4x4) from this height and width, F(2x2) below */
};

typedef struct {
    int n, c, h, w, oc; /* output h x w (stride 1, same padding) */
    int th, tw, t1;     /* tile rows, tile columns, tiles per image */
    long T;             /* tiles of the batch */
    int tb, ld, rw;     /* tiles per block, row stride of V and M, padded input row */
    long nblocks;
    int m, na;          /* output tile side (2 or 4), transform planes ((m + 2)^2) */
} wg_plan;

static atomic_int g_winograd = OPS_WINOGRAD_AUTO;

void ops_set_winograd(int mode)
{
    atomic_store(&g_winograd, mode == OPS_WINOGRAD_F2 || mode == OPS_WINOGRAD_F4 ? mode
                              : mode != 0                                        ? OPS_WINOGRAD_AUTO
                                                                                 : 0);
}

int ops_winograd(void) { return atomic_load(&g_winograd); }

static int wg_tile(shape4 xs)
{
    int mode = atomic_load(&g_winograd);
    if (mode == OPS_WINOGRAD_F2)
        return 2;
    if (mode == OPS_WINOGRAD_F4)
        return 4;
    return xs.h >= WG4_MIN_HW && xs.w >= WG4_MIN_HW ? 4 : 2;
}

static int wg_applies(shape4 xs, int oc, int k, int s)
{
    return atomic_load(&g_winograd) != 0 && k == 3 && s == 1 && xs.c >= WG_MIN_CH && oc >= WG_MIN_CH && xs.h >= 2 && xs.w >= 2;
}

static wg_plan plan_wg(shape4 xs, int oc, int m)
{
    wg_plan p;
    memset(&p, 0, sizeof p);
    p.n = xs.n, p.c = xs.c, p.h = xs.h, p.w = xs.w, p.oc = oc;
    p.m = m, p.na = (m + 2) * (m + 2);
    p.th = (xs.h + m - 1) / m, p.tw = (xs.w + m - 1) / m, p.t1 = p.th * p.tw;
    p.T = (long)p.n * p.t1;
    long tb = (m == 4 ? WG4_BUDGET : WG_BUDGET) / ((long)p.na * (xs.c + oc));
    if (m == 4 && tb < (long)oc * xs.c / WG4_PACK) /* wide layers: amortise the packing of U over more tiles */
        tb = (long)oc * xs.c / WG4_PACK;
    if (tb < WG_TB_MIN)
        tb = WG_TB_MIN;
    if (tb > WG_TB_MAX)
        tb = WG_TB_MAX;
    p.tb = (int)(tb / 4 * 4);
    p.ld = p.tb + 4; /* 4 tiles of slack: vectors of a short last row segment */
    p.rw = m * p.tw + 16;
    p.nblocks = (p.T + p.tb - 1) / p.tb;
    return p;
}

static size_t wg_slot_floats(const wg_plan *p)
{
    return (size_t)p->na * p->ld * (p->c + p->oc) + (size_t)(p->m + 2) * p->rw;
}

/* U[xi][o][c] = (G g G^T)[xi] for w[o][c] (3x3), in double then rounded. */
static void wg_filters(const float *w, int oc, int c, float *U)
{
    const size_t plane = (size_t)oc * c;
    int nt = team(oc, 50.0 * oc * (double)c);
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (int o = 0; o < oc; o++)
        for (int ci = 0; ci < c; ci++) {
            const float *g = w + ((size_t)o * c + ci) * 9;
            double t[4][3], u[4][4];
            for (int j = 0; j < 3; j++) {
                double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                t[0][j] = g0, t[1][j] = 0.5 * (g0 + g1 + g2), t[2][j] = 0.5 * (g0 - g1 + g2), t[3][j] = g2;
            }
            for (int i = 0; i < 4; i++) {
                double h0 = t[i][0], h1 = t[i][1], h2 = t[i][2];
                u[i][0] = h0, u[i][1] = 0.5 * (h0 + h1 + h2), u[i][2] = 0.5 * (h0 - h1 + h2), u[i][3] = h2;
            }
            for (int xi = 0; xi < 16; xi++)
                U[xi * plane + (size_t)o * c + ci] = (float)u[xi / 4][xi % 4];
        }
}

/* Block blk: V = B^T d B of its tiles, the 16 GEMMs, Y = A^T M A (+ b) into y. */
static void wg_block(const wg_plan *p, const float *x, const float *U, const float *b, float *y, long blk, float *ws)
{
    const int C = p->c, OC = p->oc, H = p->h, W = p->w, ld = p->ld, rw = p->rw;
    const long t0 = blk * p->tb, t1 = t0 + p->tb < p->T ? t0 + p->tb : p->T;
    const int cnt = (int)(t1 - t0);
    float *V = ws, *M = ws + 16 * (size_t)C * ld, *rows = M + 16 * (size_t)OC * ld;
    const v4i ev = {0, 2, 4, 6}, od = {1, 3, 5, 7}, sh2 = {1, 2, 3, 4}, sh3 = {1, 2, 3, 5};

    /* input transform, segment by segment (a segment: the block's tiles in one tile row) */
    for (long t = t0; t < t1;) {
        int n = (int)(t / p->t1), r = (int)(t % p->t1), ty = r / p->tw, tx0 = r % p->tw;
        int seg = p->tw - tx0 < t1 - t ? p->tw - tx0 : (int)(t1 - t), j0 = (int)(t - t0);
        for (int c = 0; c < C; c++) {
            const float *xc = x + ((size_t)n * C + c) * H * W;
            for (int i = 0; i < 4; i++) { /* rows[i][1 + ix] = x[2ty - 1 + i][ix], zero around */
                float *rr = rows + (size_t)i * rw;
                int iy = 2 * ty - 1 + i;
                memset(rr, 0, (size_t)rw * sizeof(float));
                if (iy >= 0 && iy < H)
                    memcpy(rr + 1, xc + (size_t)iy * W, (size_t)W * sizeof(float));
            }
            for (int tx = tx0; tx < tx0 + seg; tx += 4) {
                v4 rr[4][4];
                for (int i = 0; i < 4; i++) {
                    const float *q = rows + (size_t)i * rw + 2 * tx; /* input column 2tx - 1 */
                    v4 a = ld4(q), e = ld4(q + 4), f = ld4(q + 8);
                    v4 d0 = __builtin_shuffle(a, e, ev), d1 = __builtin_shuffle(a, e, od);
                    v4 d2 = __builtin_shuffle(d0, f, sh2), d3 = __builtin_shuffle(d1, f, sh3);
                    rr[i][0] = d0 - d2, rr[i][1] = d1 + d2, rr[i][2] = d2 - d1, rr[i][3] = d1 - d3;
                }
                float *vo = V + (size_t)c * ld + (size_t)(j0 + tx - tx0);
                const size_t xs = (size_t)C * ld; /* between xi planes */
                for (int j = 0; j < 4; j++) {
                    st4(vo + (size_t)(0 * 4 + j) * xs, rr[0][j] - rr[2][j]);
                    st4(vo + (size_t)(1 * 4 + j) * xs, rr[1][j] + rr[2][j]);
                    st4(vo + (size_t)(2 * 4 + j) * xs, rr[2][j] - rr[1][j]);
                    st4(vo + (size_t)(3 * 4 + j) * xs, rr[1][j] - rr[3][j]);
                }
            }
        }
        t += seg;
    }

    for (int xi = 0; xi < 16; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, cnt, C, 1.0f, U + (size_t)xi * OC * C, C,
                    V + (size_t)xi * C * ld, ld, 0.0f, M + (size_t)xi * OC * ld, ld);

    /* output transform */
    for (long t = t0; t < t1;) {
        int n = (int)(t / p->t1), r = (int)(t % p->t1), ty = r / p->tw, tx0 = r % p->tw;
        int seg = p->tw - tx0 < t1 - t ? p->tw - tx0 : (int)(t1 - t), j0 = (int)(t - t0);
        int oy = 2 * ty, two_rows = oy + 1 < H;
        for (int o = 0; o < OC; o++) {
            float *yo = y + ((size_t)n * OC + o) * H * W + (size_t)oy * W;
            const float *mo = M + (size_t)o * ld + j0;
            const size_t xs = (size_t)OC * ld;
            const v4 bv = {b ? b[o] : 0.0f, b ? b[o] : 0.0f, b ? b[o] : 0.0f, b ? b[o] : 0.0f};
            for (int tx = tx0; tx < tx0 + seg; tx += 4) {
                const float *mq = mo + (tx - tx0);
                v4 z[2][4];
                for (int j = 0; j < 4; j++) {
                    v4 m0 = ld4(mq + (size_t)(0 * 4 + j) * xs), m1 = ld4(mq + (size_t)(1 * 4 + j) * xs);
                    v4 m2 = ld4(mq + (size_t)(2 * 4 + j) * xs), m3 = ld4(mq + (size_t)(3 * 4 + j) * xs);
                    z[0][j] = m0 + m1 + m2, z[1][j] = m1 - m2 - m3;
                }
                v4 yv[2][2];
                for (int i = 0; i < 2; i++) {
                    yv[i][0] = z[i][0] + z[i][1] + z[i][2] + bv;
                    yv[i][1] = z[i][1] - z[i][2] - z[i][3] + bv;
                }
                int nv = tx0 + seg - tx < 4 ? tx0 + seg - tx : 4; /* valid tiles of the vector */
                for (int i = 0; i < 1 + two_rows; i++) {
                    float *yr = yo + (size_t)i * W + 2 * tx;
                    if (nv == 4 && 2 * tx + 8 <= W) {
                        const v4i lo = {0, 4, 1, 5}, hi = {2, 6, 3, 7};
                        st4(yr, __builtin_shuffle(yv[i][0], yv[i][1], lo));
                        st4(yr + 4, __builtin_shuffle(yv[i][0], yv[i][1], hi));
                    } else {
                        float a0[4], a1[4];
                        st4(a0, yv[i][0]), st4(a1, yv[i][1]);
                        for (int l = 0; l < nv; l++) {
                            yr[2 * l] = a0[l];
                            if (2 * (tx + l) + 1 < W)
                                yr[2 * l + 1] = a1[l];
                        }
                    }
                }
            }
        }
        t += seg;
    }
}

/* ---- Winograd F(4x4, 3x3) -------------------------------------------------
 * The same scheme with 6x6 input patches at (4ty - 1, 4tx - 1) giving 4x4
 * output tiles: 36 GEMMs, 4x fewer multiplications than im2col (F(2x2): 2.25x).
 * Interpolation points 0, +-1, +-2 and infinity (Lavin & Gray):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * The transforms are not exact in float (G has 1/6, 1/24; B and A scale by up
 * to 8), so F(4x4) is within ~1.5e-5 relative (of max |y|) of im2col rather
 * than ~1e-6 (measured 1.4e-5 at worst at 256-512 channels with inputs
 * uniform in [-1, 1], ~7e-6 with non-negative ones). Tasks, blocks and vectors as F(2x2); the 4 tiles of a vector
 * are gathered / scattered by 4x4 transposes. */

/* U[xi][o][c] = (G g G^T)[xi] for w[o][c] (3x3), xi = 6i + j, in double then rounded. */
static void wg4_filters(const float *w, int oc, int c, float *U)
{
    const size_t plane = (size_t)oc * c;
    int nt = team(oc, 150.0 * oc * (double)c);
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (int o = 0; o < oc; o++)
        for (int c0 = 0; c0 < c; c0 += 16) { /* 16 channels at a time: rows of 16 floats into each plane */
            const int cn = c - c0 < 16 ? c - c0 : 16;
            const double q4 = 0.25, q6 = 1.0 / 6.0, q12 = 1.0 / 12.0, q24 = 1.0 / 24.0;
            float ub[36][16];
            for (int cc = 0; cc < cn; cc++) {
                const float *g = w + ((size_t)o * c + c0 + cc) * 9;
                double t[6][3];
                for (int j = 0; j < 3; j++) {
                    double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j], e = q6 * (g0 + g2), f = q24 * g0 + q6 * g2;
                    t[0][j] = q4 * g0;
                    t[1][j] = -e - q6 * g1;
                    t[2][j] = -e + q6 * g1;
                    t[3][j] = f + q12 * g1;
                    t[4][j] = f - q12 * g1;
                    t[5][j] = g2;
                }
                for (int i = 0; i < 6; i++) {
                    double h0 = t[i][0], h1 = t[i][1], h2 = t[i][2], e = q6 * (h0 + h2), f = q24 * h0 + q6 * h2;
                    ub[6 * i + 0][cc] = (float)(q4 * h0);
                    ub[6 * i + 1][cc] = (float)(-e - q6 * h1);
                    ub[6 * i + 2][cc] = (float)(-e + q6 * h1);
                    ub[6 * i + 3][cc] = (float)(f + q12 * h1);
                    ub[6 * i + 4][cc] = (float)(f - q12 * h1);
                    ub[6 * i + 5][cc] = (float)h2;
                }
            }
            for (int xi = 0; xi < 36; xi++)
                memcpy(U + xi * plane + (size_t)o * c + c0, ub[xi], (size_t)cn * sizeof(float));
        }
}

/* r = B^T d */
static inline void wg4_bt(const v4 d[6], v4 r[6])
{
    const v4 four = {4, 4, 4, 4}, five = {5, 5, 5, 5}, two = {2, 2, 2, 2};
    r[0] = four * d[0] - five * d[2] + d[4];
    r[1] = d[3] + d[4] - four * (d[1] + d[2]);
    r[2] = d[4] - d[3] + four * (d[1] - d[2]);
    r[3] = d[4] - d[2] + two * (d[3] - d[1]);
    r[4] = d[4] - d[2] + two * (d[1] - d[3]);
    r[5] = four * d[1] - five * d[3] + d[5];
}

/* y = A^T m */
static inline void wg4_at(const v4 m[6], v4 y[4])
{
    const v4 two = {2, 2, 2, 2}, four = {4, 4, 4, 4}, eight = {8, 8, 8, 8};
    v4 s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    y[0] = m[0] + s12 + s34;
    y[1] = d12 + two * d34;
    y[2] = s12 + four * s34;
    y[3] = d12 + eight * d34 + m[5];
}

/* out[l] = {a[0][l], a[1][l], a[2][l], a[3][l]} */
static inline void tr4(const v4 a[4], v4 out[4])
{
    const v4i lo = {0, 4, 1, 5}, hi = {2, 6, 3, 7}, l2 = {0, 1, 4, 5}, h2 = {2, 3, 6, 7};
    v4 t0 = __builtin_shuffle(a[0], a[1], lo), t1 = __builtin_shuffle(a[2], a[3], lo);
    v4 t2 = __builtin_shuffle(a[0], a[1], hi), t3 = __builtin_shuffle(a[2], a[3], hi);
    out[0] = __builtin_shuffle(t0, t1, l2), out[1] = __builtin_shuffle(t0, t1, h2);
    out[2] = __builtin_shuffle(t2, t3, l2), out[3] = __builtin_shuffle(t2, t3, h2);
}

static void wg4_block(const wg_plan *p, const float *x, const float *U, const float *b, float *y, long blk, float *ws)
{
    const int C = p->c, OC = p->oc, H = p->h, W = p->w, ld = p->ld, rw = p->rw;
    const long t0 = blk * p->tb, t1 = t0 + p->tb < p->T ? t0 + p->tb : p->T;
    const int cnt = (int)(t1 - t0);
    float *V = ws, *M = ws + 36 * (size_t)C * ld, *rows = M + 36 * (size_t)OC * ld;

    for (long t = t0; t < t1;) {
        int n = (int)(t / p->t1), r = (int)(t % p->t1), ty = r / p->tw, tx0 = r % p->tw;
        int seg = p->tw - tx0 < t1 - t ? p->tw - tx0 : (int)(t1 - t), j0 = (int)(t - t0);
        for (int c = 0; c < C; c++) {
            const float *xc = x + ((size_t)n * C + c) * H * W;
            for (int i = 0; i < 6; i++) { /* rows[i][1 + ix] = x[4ty - 1 + i][ix], zero around */
                float *rr = rows + (size_t)i * rw;
                int iy = 4 * ty - 1 + i;
                if (iy >= 0 && iy < H) {
                    rr[0] = 0.0f;
                    memcpy(rr + 1, xc + (size_t)iy * W, (size_t)W * sizeof(float));
                    memset(rr + 1 + W, 0, (size_t)(rw - 1 - W) * sizeof(float));
                } else {
                    memset(rr, 0, (size_t)rw * sizeof(float));
                }
            }
            for (int tx = tx0; tx < tx0 + seg; tx += 4) {
                v4 rt[6][6]; /* rt[i] = B^T of input row i, over the 6 columns */
                for (int i = 0; i < 6; i++) {
                    const float *q = rows + (size_t)i * rw + 4 * tx; /* input column 4tx - 1 */
                    v4 a[5] = {ld4(q), ld4(q + 4), ld4(q + 8), ld4(q + 12), ld4(q + 16)}, d[6], e[4];
                    tr4(a, d);
                    tr4(a + 1, e);
                    d[4] = e[0], d[5] = e[1];
                    wg4_bt(d, rt[i]);
                }
                float *vo = V + (size_t)c * ld + (size_t)(j0 + tx - tx0);
                const size_t xs = (size_t)C * ld; /* between xi planes */
                for (int j = 0; j < 6; j++) {
                    v4 col[6] = {rt[0][j], rt[1][j], rt[2][j], rt[3][j], rt[4][j], rt[5][j]}, o[6];
                    wg4_bt(col, o);
                    for (int a = 0; a < 6; a++)
                        st4(vo + (size_t)(a * 6 + j) * xs, o[a]);
                }
            }
        }
        t += seg;
    }

    for (int xi = 0; xi < 36; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, cnt, C, 1.0f, U + (size_t)xi * OC * C, C,
                    V + (size_t)xi * C * ld, ld, 0.0f, M + (size_t)xi * OC * ld, ld);

    for (long t = t0; t < t1;) {
        int n = (int)(t / p->t1), r = (int)(t % p->t1), ty = r / p->tw, tx0 = r % p->tw;
        int seg = p->tw - tx0 < t1 - t ? p->tw - tx0 : (int)(t1 - t), j0 = (int)(t - t0);
        int oy = 4 * ty, nrows = H - oy < 4 ? H - oy : 4;
        for (int o = 0; o < OC; o++) {
            float *yo = y + ((size_t)n * OC + o) * H * W + (size_t)oy * W;
            const float *mo = M + (size_t)o * ld + j0;
            const size_t xs = (size_t)OC * ld;
            const float bo = b ? b[o] : 0.0f;
            const v4 bv = {bo, bo, bo, bo};
            for (int tx = tx0; tx < tx0 + seg; tx += 4) {
                const float *mq = mo + (tx - tx0);
                v4 z[4][6]; /* z[i][j] = (A^T M)[i][j] */
                for (int j = 0; j < 6; j++) {
                    v4 m[6], zz[4];
                    for (int a = 0; a < 6; a++)
                        m[a] = ld4(mq + (size_t)(a * 6 + j) * xs);
                    wg4_at(m, zz);
                    for (int i = 0; i < 4; i++)
                        z[i][j] = zz[i];
                }
                int nv = tx0 + seg - tx < 4 ? tx0 + seg - tx : 4; /* valid tiles of the vector */
                for (int i = 0; i < nrows; i++) {
                    v4 yv[4], tl[4];
                    wg4_at(z[i], yv);
                    for (int j = 0; j < 4; j++)
                        yv[j] += bv;
                    tr4(yv, tl); /* tl[l]: the 4 outputs of tile tx + l in row oy + i */
                    float *yr = yo + (size_t)i * W + 4 * tx;
                    if (nv == 4 && 4 * tx + 16 <= W) {
                        for (int l = 0; l < 4; l++)
                            st4(yr + 4 * l, tl[l]);
                    } else {
                        for (int l = 0; l < nv; l++) {
                            float a4[4];
                            st4(a4, tl[l]);
                            for (int j = 0; j < 4 && 4 * (tx + l) + j < W; j++)
                                yr[4 * l + j] = a4[j];
                        }
                    }
                }
            }
        }
        t += seg;
    }
}

static void conv_fwd_wg(const float *x, shape4 xs, const float *w, const float *b, int oc, float *y)
{
    wg_plan p = plan_wg(xs, oc, wg_tile(xs));
    float *U = wbuf_get(&ws_wino, (size_t)p.na * oc * xs.c);
    if (p.m == 4)
        wg4_filters(w, oc, xs.c, U);
    else
        wg_filters(w, oc, xs.c, U);
    int nt = team(p.nblocks, 2.0 * oc * 9.0 * xs.c * (double)p.T * p.m * p.m);
    slots_reserve(nt, wg_slot_floats(&p));
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
    for (long blk = 0; blk < p.nblocks; blk++) {
        if (p.m == 4)
            wg4_block(&p, x, U, b, y, blk, ws_slot[omp_get_thread_num()].p);
        else
            wg_block(&p, x, U, b, y, blk, ws_slot[omp_get_thread_num()].p);
    }
}

/* The forward without the lock (the caller holds ws_mu). */
static void conv_fwd_locked(const float *x, shape4 xs, const float *w, const float *b, int oc, int k, int stride,
                            float *y)
{
    conv_plan p = plan_conv(xs, oc, k, stride);
    if (p.ntiles == 0 || oc == 0)
        return;
    if (p.K == 0) { /* no input channels: y = b (or 0) */
        for (int n = 0; n < p.n; n++)
            for (int o = 0; o < oc; o++)
                for (int i = 0; i < p.P; i++)
                    y[((size_t)n * oc + o) * p.P + i] = b ? b[o] : 0.0f;
        return;
    }
    if (wg_applies(xs, oc, k, stride)) {
        conv_fwd_wg(x, xs, w, b, oc, y);
        return;
    }
    int nt = team(p.ntiles, 2.0 * oc * (double)p.K * p.P * p.n);
    size_t need = fwd_slot_floats(&p);
    slots_reserve(nt, need);
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
    for (int t = 0; t < p.ntiles; t++)
        conv_fwd_tile(&p, x, w, b, y, t, ws_slot[omp_get_thread_num()].p);
}

void conv2d_fwd(const float *x, shape4 xs, const float *w, const float *b, int oc, int k, int stride, float *y,
                float *scratch)
{
    (void)scratch;
    ops_threads(); /* OpenBLAS at one thread before the first sgemm */
    pthread_mutex_lock(&ws_mu);
    conv_fwd_locked(x, xs, w, b, oc, k, stride, y);
    pthread_mutex_unlock(&ws_mu);
}

/* db[o] += sum over images and pixels of dy[n][o] (double, image by image). */
static void conv_bwd_bias(const conv_plan *p, const float *dy, float *db)
{
    const size_t yim = (size_t)p->oc * p->P;
    int nt = team(p->oc, (double)p->n * yim);
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (int o = 0; o < p->oc; o++) {
        double s = 0.0;
        for (int n = 0; n < p->n; n++)
            s += sum_d(dy + n * yim + (size_t)o * p->P, (size_t)p->P);
        db[o] += (float)s;
    }
}

/* dW[oc, K] += dY col^T. Tasks: channel blocks (KB_TARGET column-matrix rows)
 * x G groups of consecutive tiles; with G > 1 each group sums into its own
 * partial buffer and the partials are added to dW in group order. */
static void conv_bwd_weight(const conv_plan *p, const float *x, const float *dy, float *dw)
{
    const int kk = p->k * p->k, K = p->K, oc = p->oc, P = p->P, T = p->ntiles;
    const size_t xim = (size_t)p->c * p->h * p->w, yim = (size_t)oc * P;
    int cb = (KB_TARGET + kk - 1) / kk;
    if (cb > p->c)
        cb = p->c;
    const int nb = (p->c + cb - 1) / cb;
    int G = 1;
    if (nb < MIN_TILES) {
        G = (MIN_TILES + nb - 1) / nb;
        if (G > T)
            G = T;
    }
    const int ntask = nb * G;
    const size_t cols = (size_t)plan_cols(p);
    size_t need = 0;
    if (!(p->direct && (p->ipt == 1 || p->per_img)))
        need += (size_t)cb * kk * cols; /* column rows of the block */
    if (p->ipt > 1 && !p->per_img)
        need += (size_t)oc * cols; /* gathered dY */
    float *part = G > 1 ? wbuf_get(&ws_shared, (size_t)G * oc * K) : NULL;
    int nt = team(ntask, 2.0 * oc * (double)K * P * p->n);
    slots_reserve(nt, need);
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
    for (int task = 0; task < ntask; task++) {
        float *ws = ws_slot[omp_get_thread_num()].p;
        const int blk = task % nb, g = task / nb;
        const int c0 = blk * cb, c1 = c0 + cb < p->c ? c0 + cb : p->c, kb = (c1 - c0) * kk;
        const int t0 = (int)((long)g * T / G), t1 = (int)((long)(g + 1) * T / G);
        float *dst = (G > 1 ? part + (size_t)g * oc * K : dw) + (size_t)c0 * kk;
        float *colb = ws, *dyb = ws + (p->direct && p->ipt == 1 ? 0 : (size_t)cb * kk * cols);
        for (int t = t0; t < t1; t++) {
            int n0, n1, p0, p1;
            plan_tile(p, t, &n0, &n1, &p0, &p1);
            if (p->per_img) { /* image by image, straight from dy and x */
                for (int n = n0; n < n1; n++) {
                    float beta = (G > 1 && t == t0 && n == n0) ? 0.0f : 1.0f;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, kb, P, 1.0f, dy + n * yim, P,
                                x + n * xim + (size_t)c0 * P, P, beta, dst, K);
                }
                continue;
            }
            const float *A, *B;
            int lda, ldb, len;
            if (p->ipt == 1) {
                len = p1 - p0;
                A = dy + n0 * yim + p0, lda = P;
                if (p->direct) {
                    B = x + n0 * xim + (size_t)c0 * P + p0, ldb = P;
                } else {
                    im2col_cols(p, x + n0 * xim, c0, c1, p0, p1, colb, (size_t)len);
                    B = colb, ldb = len;
                }
            } else {
                len = (n1 - n0) * P;
                gather_rows(dy, yim, n0, n1, 0, oc, P, dyb);
                A = dyb, lda = len;
                if (p->direct)
                    gather_rows(x, xim, n0, n1, c0, c1, P, colb);
                else
                    for (int n = n0; n < n1; n++)
                        im2col_cols(p, x + n * xim, c0, c1, 0, P, colb + (size_t)(n - n0) * P, (size_t)len);
                B = colb, ldb = len;
            }
            float beta = (G > 1 && t == t0) ? 0.0f : 1.0f;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, kb, len, 1.0f, A, lda, B, ldb, beta, dst, K);
        }
    }
    if (G > 1) {
        const size_t nw = (size_t)oc * K;
        int ntr = team((long)((nw + 4095) / 4096), (double)nw * G);
OMP(omp parallel for num_threads(ntr) schedule(static) if (ntr > 1))
        for (size_t i = 0; i < nw; i++) {
            float s = part[i];
            for (int g = 1; g < G; g++)
                s += part[(size_t)g * nw + i];
            dw[i] += s;
        }
    }
}

/* dx, stride > 1: per image, dcol = W^T dY over column chunks, scattered by col2im. */
static void conv_bwd_input_strided(const conv_plan *p, const float *w, const float *dy, float *dx)
{
    const size_t xim = (size_t)p->c * p->h * p->w, yim = (size_t)p->oc * p->P;
    const int ct = p->ipt == 1 ? p->ct : p->P, K = p->K, P = p->P;
    int nt = team(p->n, 2.0 * p->oc * (double)K * P * p->n);
    slots_reserve(nt, (size_t)K * ct);
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
    for (int n = 0; n < p->n; n++) {
        float *dcol = ws_slot[omp_get_thread_num()].p, *dxn = dx + n * xim;
        memset(dxn, 0, xim * sizeof(float));
        for (int p0 = 0; p0 < P; p0 += ct) {
            int p1 = p0 + ct < P ? p0 + ct : P, len = p1 - p0;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, len, p->oc, 1.0f, w, K, dy + n * yim + p0, P,
                        0.0f, dcol, len);
            col2im_add_cols(p, dcol, p0, p1, (size_t)len, dxn);
        }
    }
}

void conv2d_bwd(const float *x, shape4 xs, const float *w, int oc, int k, int stride, const float *dy, float *dx,
                float *dw, float *db, float *scratch)
{
    (void)scratch;
    ops_threads();
    conv_plan p = plan_conv(xs, oc, k, stride);
    if (p.n == 0)
        return;
    pthread_mutex_lock(&ws_mu);
    if (db && oc > 0)
        conv_bwd_bias(&p, dy, db);
    if (dw && oc > 0 && p.K > 0)
        conv_bwd_weight(&p, x, dy, dw);
    if (dx) {
        if (oc == 0 || p.K == 0) {
            memset(dx, 0, shape4_numel(xs) * sizeof(float));
        } else if (stride == 1) {
            /* dx = conv(dy, W'), W'[c][o][ky][kx] = W[o][c][k-1-ky][k-1-kx], same padding */
            const int kk = k * k, C = xs.c;
            float *wt = wbuf_get(&ws_shared, (size_t)C * oc * kk);
            for (int c = 0; c < C; c++)
                for (int o = 0; o < oc; o++)
                    for (int i = 0; i < kk; i++)
                        wt[((size_t)c * oc + o) * kk + i] = w[((size_t)o * C + c) * kk + (kk - 1 - i)];
            shape4 ys = {xs.n, oc, p.oh, p.ow};
            conv_fwd_locked(dy, ys, wt, NULL, C, k, 1, dx);
        } else {
            conv_bwd_input_strided(&p, w, dy, dx);
        }
    }
    pthread_mutex_unlock(&ws_mu);
}

/* ---- batch norm ---------------------------------------------------------- */

/* The per-channel bodies of batch norm are compiled twice, for AVX2 and for
 * the x86-64 baseline, and the loader picks one: the same operations in the
 * same order either way (gcc -std=c11 never contracts into FMAs), so results are bitwise
 * equal; AVX2 only widens the double-precision vectors. (The bodies are
 * functions of their own because OpenMP outlines a parallel loop's body
 * before target clones are made.) */
#if defined(__x86_64__) && !defined(__clang__)
#define HOT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define HOT_CLONES
#endif

/* y = (float)(((x - mean) * invstd) * g + bt), then (relu, a constant at
 * each call) relu_fwd's test: one vectorised loop either way */
static inline __attribute__((always_inline)) void bn_apply_plane(const float *xp, size_t hw, double mean,
                                                                 double invstd, double g, double bt, int relu,
                                                                 float *yp)
{
OMP(omp simd)
    for (size_t i = 0; i < hw; i++) {
        float v = (float)(((double)xp[i] - mean) * invstd * g + bt);
        yp[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

HOT_CLONES static void bn_train_channel(const float *x, shape4 s, int c, const float *gamma, const float *beta,
                                        float *running_mean, float *running_var, float momentum, float eps, int relu,
                                        float *y, float *save_mean, float *save_invstd)
{
    size_t hw = (size_t)s.h * s.w, cs = (size_t)s.c * hw, M = (size_t)s.n * hw;
    double sum = 0.0;
    for (int n = 0; n < s.n; n++)
        sum += sum_d(x + n * cs + c * hw, hw);
    double mean = sum / (double)M;
    double ss = 0.0;
    for (int n = 0; n < s.n; n++)
        ss += sumsq_dev_d(x + n * cs + c * hw, hw, mean);
    double var = ss / (double)M;
    double invstd = 1.0 / sqrt(var + (double)eps);
    /* M == 1: PyTorch refuses to train; the unbiased variance is undefined, keep the biased one (0). */
    double uvar = M > 1 ? ss / (double)(M - 1) : var;
    double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
    for (int n = 0; n < s.n; n++) {
        size_t off = n * cs + c * hw;
        if (relu)
            bn_apply_plane(x + off, hw, mean, invstd, g, bt, 1, y + off);
        else
            bn_apply_plane(x + off, hw, mean, invstd, g, bt, 0, y + off);
    }
    if (running_mean)
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + (double)momentum * mean);
    if (running_var)
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + (double)momentum * uvar);
    if (save_mean)
        save_mean[c] = (float)mean;
    if (save_invstd)
        save_invstd[c] = (float)invstd;
}

void batchnorm_fwd_train(const float *x, shape4 s, const float *gamma, const float *beta, float *running_mean,
                         float *running_var, float momentum, float eps, int relu, float *y, float *save_mean,
                         float *save_invstd)
{
    int nt = team(s.c, 4.0 * (double)shape4_numel(s));
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
    for (int c = 0; c < s.c; c++)
        bn_train_channel(x, s, c, gamma, beta, running_mean, running_var, momentum, eps, relu, y, save_mean,
                         save_invstd);
}

void batchnorm_fwd_eval(const float *x, shape4 s, const float *gamma, const float *beta, const float *running_mean,
                        const float *running_var, float eps, float *y)
{
    size_t hw = (size_t)s.h * s.w, cs = (size_t)s.c * hw;
    long planes = (long)s.n * s.c;
    int nt = team(planes, (double)shape4_numel(s));
OMP(omp parallel for num_threads(nt) schedule(static) if (nt > 1))
    for (long pl = 0; pl < planes; pl++) {
        int n = (int)(pl / s.c), c = (int)(pl % s.c);
        double invstd = 1.0 / sqrt((double)running_var[c] + (double)eps);
        double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
        float scale = (float)(g * invstd), shift = (float)(bt - running_mean[c] * g * invstd);
        const float *xp = x + n * cs + c * hw;
        float *yp = y + n * cs + c * hw;
OMP(omp simd)
        for (size_t i = 0; i < hw; i++)
            yp[i] = xp[i] * scale + shift;
    }
}

/* dx of one plane: (float)(k * (M * g - sdy - xhat * sdyx)), g through the ReLU when masked */
static inline __attribute__((always_inline)) void bn_dx_plane(const float *xp, const float *dp, const float *ry,
                                                              int masked, size_t hw, double mean, double invstd,
                                                              double k, double M, double sdy, double sdyx, float *dxp)
{
OMP(omp simd)
    for (size_t i = 0; i < hw; i++) {
        double xhat = ((double)xp[i] - mean) * invstd;
        dxp[i] = (float)(k * (M * through_relu(dp, ry, masked, i) - sdy - xhat * sdyx));
    }
}

HOT_CLONES static void bn_bwd_channel(const float *x, shape4 s, int c, const float *gamma, const float *save_mean,
                                      const float *save_invstd, const float *relu_y, const float *dy, float *dx,
                                      float *dgamma, float *dbeta)
{
    size_t hw = (size_t)s.h * s.w, cs = (size_t)s.c * hw, M = (size_t)s.n * hw;
    double mean = save_mean[c], invstd = save_invstd[c];
    double sdy = 0.0, sdyx = 0.0;
    for (int n = 0; n < s.n; n++) {
        double a, b;
        size_t off = n * cs + c * hw;
        if (relu_y)
            sum_g_gdev_d(dy + off, relu_y + off, 1, x + off, hw, mean, &a, &b);
        else
            sum_g_gdev_d(dy + off, dy + off, 0, x + off, hw, mean, &a, &b);
        sdy += a, sdyx += b;
    }
    sdyx *= invstd; /* sum dy * xhat */
    if (dgamma)
        dgamma[c] += (float)sdyx;
    if (dbeta)
        dbeta[c] += (float)sdy;
    if (dx) {
        double g = gamma ? gamma[c] : 1.0;
        double k = g * invstd / (double)M;
        for (int n = 0; n < s.n; n++) {
            size_t off = n * cs + c * hw;
            if (relu_y)
                bn_dx_plane(x + off, dy + off, relu_y + off, 1, hw, mean, invstd, k, (double)M, sdy, sdyx, dx + off);
            else
                bn_dx_plane(x + off, dy + off, dy + off, 0, hw, mean, invstd, k, (double)M, sdy, sdyx, dx + off);
        }
    }
}

void batchnorm_bwd(const float *x, shape4 s, const float *gamma, const float *save_mean, const float *save_invstd,
                   const float *relu_y, const float *dy, float *dx, float *dgamma, float *dbeta)
{
    int nt = team(s.c, 4.0 * (double)shape4_numel(s));
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
    for (int c = 0; c < s.c; c++)
        bn_bwd_channel(x, s, c, gamma, save_mean, save_invstd, relu_y, dy, dx, dgamma, dbeta);
}

/* ---- linear -------------------------------------------------------------- */

/* Blocks of LIN_BLOCK outputs (or inputs, for dx) once the layer is large enough; one block otherwise. */
enum { LIN_BLOCK = 64 };

static int lin_block(int n, int in, int out, int dim)
{
    return (double)n * in * out >= (double)(1 << 20) ? LIN_BLOCK : (dim > 0 ? dim : 1);
}

void linear_fwd(const float *x, int n, int in, const float *w, const float *b, int out, float *y)
{
    if (n <= 0 || out <= 0)
        return;
    ops_threads();
    int bs = lin_block(n, in, out, out), nbk = (out + bs - 1) / bs;
    int nt = team(nbk, 2.0 * n * (double)in * out);
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
    for (int bk = 0; bk < nbk; bk++) {
        int o0 = bk * bs, ob = o0 + bs < out ? bs : out - o0;
        float beta = 0.0f;
        if (b) {
            for (int i = 0; i < n; i++)
                memcpy(y + (size_t)i * out + o0, b + o0, (size_t)ob * sizeof(float));
            beta = 1.0f;
        }
        if (in > 0) /* y[N,ob] = x[N,IN] w[ob,IN]^T (+ b) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ob, in, 1.0f, x, in, w + (size_t)o0 * in, in,
                        beta, y + o0, out);
        else if (!b)
            for (int i = 0; i < n; i++)
                memset(y + (size_t)i * out + o0, 0, (size_t)ob * sizeof(float));
    }
}

void linear_bwd(const float *x, int n, int in, const float *w, int out, const float *dy, float *dx, float *dw,
                float *db)
{
    if (n <= 0)
        return;
    ops_threads();
    if (dw && in > 0 && out > 0) { /* dw[ob,IN] += dy[N,ob]^T x[N,IN] */
        int bs = lin_block(n, in, out, out), nbk = (out + bs - 1) / bs;
        int nt = team(nbk, 2.0 * n * (double)in * out);
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
        for (int bk = 0; bk < nbk; bk++) {
            int o0 = bk * bs, ob = o0 + bs < out ? bs : out - o0;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ob, in, n, 1.0f, dy + o0, out, x, in, 1.0f,
                        dw + (size_t)o0 * in, in);
        }
    }
    if (db) {
        for (int o = 0; o < out; o++) {
            double s = 0.0;
            for (int i = 0; i < n; i++)
                s += dy[(size_t)i * out + o];
            db[o] += (float)s;
        }
    }
    if (dx && in > 0) { /* dx[N,ib] = dy[N,OUT] w[OUT,ib] */
        int bs = lin_block(n, in, out, in), nbk = (in + bs - 1) / bs;
        int nt = team(nbk, 2.0 * n * (double)in * out);
OMP(omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1))
        for (int bk = 0; bk < nbk; bk++) {
            int i0 = bk * bs, ib = i0 + bs < in ? bs : in - i0;
            if (out > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, ib, out, 1.0f, dy, out, w + i0, in, 0.0f,
                            dx + i0, in);
            else
                for (int i = 0; i < n; i++)
                    memset(dx + (size_t)i * in + i0, 0, (size_t)ib * sizeof(float));
        }
    }
}
