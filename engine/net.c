/* net.c: MODEL.md "Forward" as a tape of ops.h calls, with losses and the
 * backward pass (see net.h).
 *
 * Every tensor is a slot; every op a node naming its input and output slots
 * and parameters. Backward walks the nodes in reverse. A slot read by several
 * nodes (P, occ, heat, e1, e2, F, Rt, v...) receives several gradient
 * contributions: the first is written straight into its gradient buffer,
 * later ones go through a temporary and are added, so no buffer needs
 * zeroing and the sum order is fixed.
 *
 * Every buffer (slots, parameters, gradients, AdamW moments) belongs to the
 * net's backend (backend.h): host memory on the CPU, GPU memory on CUDA.
 * Only upload/download cross over; on the CPU the parameters are p->data
 * itself. */
#include "net.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "ops.h"

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

typedef struct {
    float *data, *grad;
    size_t cap, numel; /* floats */
    shape4 s;
    int has_grad; /* backward: grad holds this step's value */
    int born;          /* the number of nodes when it was made (eval plans) */
    int borrowed;      /* data belongs to an eval plan's buffer, not to the slot */
    int grad_borrowed; /* grad belongs to a gradient plan's buffer */
} slot;

typedef enum {
    OP_CONV, OP_BN, OP_RELU, OP_SIGMOID, OP_ONEMINUS, OP_MAXPOOL, OP_UPSAMPLE, OP_CONCAT, OP_AVGBLOCK,
    OP_AVGGLOBAL, OP_LINEAR, OP_QCROP, OP_QASM, OP_MULSP, OP_MULCH, OP_ADD,
    OP_CONVBN_EVAL, /* eval only: recorded for the memory plan, never walked backward */
    OP_KINDS
} op_kind;

static const char *const op_names[OP_KINDS] = {
    "conv", "bn (+relu)", "relu", "sigmoid", "1-x", "maxpool", "upsample", "concat", "avgpool_block",
    "avgpool_global", "linear", "quadrant_crop", "quadrant_assemble", "mul_spatial", "mul_channel", "add",
    "conv+bn (+relu)"};

typedef struct {
    double s;
    long calls;
} prof_cell;

/* net_profile: seconds per op kind and pass, each op closed by a backend
 * sync so that a device's asynchronous work lands on the op that queued it. */
typedef struct {
    int on;
    double last; /* when the current interval began */
    prof_cell fwd[OP_KINDS], bwd[OP_KINDS];
    prof_cell upload, download, loss, grad_setup, adamw;
} profile;

typedef struct {
    op_kind k;
    int a, b, y;  /* input slots (b -1 if none), output slot */
    int aux;      /* saved-for-backward slot: BN mean+invstd, max-pool argmax */
    const param_entry *w, *bias; /* conv/linear weight and bias; BN gamma and beta */
    int stride, q, g, relu;
} node;

/* A host-side copy of an output, for backends whose memory the caller cannot read. */
typedef struct {
    float *data;
    size_t cap;
    int fresh; /* holds this forward's values */
} mirror;

typedef struct {
    float *data;
    size_t cap;
} buffer;

/* A memory plan (see plan_make): in a pass at batch n, slot i lives in
 * bufs[slot[i]] (slot[i] < 0: not planned). */
typedef struct {
    int *slot, len, n;
    buffer *bufs;
    int nbufs;
} memplan;

/* Graphs (backend.h): a forward (eval or training) or backward pass runs
 * directly until it repeats, that is until it has the same print (a hash of
 * the tape: every op, slot, shape and buffer pointer) as the last one of
 * its kind with no device memory allocated or released since (the
 * backend's memory_epoch). That repeat is recorded and launched as one
 * graph, and later passes with the same print and epoch launch the graph
 * again. Anything that moves a buffer (a new batch size, a new plan,
 * validation between epochs) makes passes run directly until they repeat.
 * A graph runs the same kernels on the same buffers in the same order as
 * the direct pass, so results are bit for bit the same. */
typedef struct {
    void *graph;           /* the backend's recording, or NULL */
    uint64_t print;        /* the pass it recorded */
    unsigned long epoch;   /* the memory epoch it was recorded in */
    uint64_t seen_print;   /* the last pass run directly */
    unsigned long seen_epoch; /* the memory epoch after it */
    int seen;
} replay;
enum { RP_EVAL, RP_TRAIN, RP_BACKWARD, RP_KINDS };
enum { GRAPHS_ON, GRAPHS_OFF, GRAPHS_FAILED };

struct net {
    model_params *p;
    backend *be;
    int own_be;
    float *w;         /* parameters on the backend (p->data itself on the CPU) */
    size_t *off;      /* where parameter tensor e starts in w, grad, m, v and mask (see layout()) */
    size_t total;     /* floats in each of those buffers */
    float *grad;      /* d(Lt)/d(parameters), laid out like w */
    float *m, *v;     /* AdamW moments (allocated on the first step or net_opt_set) */
    uint8_t *mask;    /* 1 where trainable, for AdamW */
    slot *slots;
    int nslots, nused;
    node *nodes;
    int nnodes, cap_nodes;
    float *tmp, *tmp2;
    size_t tmp_cap, tmp2_cap;
    float *tgt, *lossbuf; /* loss targets (occ, heat, labels) and the three loss values */
    size_t tgt_cap;
    mirror out[3];        /* logits, occ, heat */
    memplan eplan; /* activations of eval forwards (make_eval_plan) */
    memplan gplan; /* gradients of backward passes (make_grad_plan) */
    int n, train, have_loss, fail;
    int dry;     /* recording the tape without running it (slots get no memory) */
    int no_plan; /* net_memory_plan(t, 0): every tensor and gradient in memory of its own */
    int logits, occ, heat; /* output slots */
    int quiet;   /* building the tape (slots get memory) without running its ops: is this pass a repeat? */
    replay rp[RP_KINDS];
    int graphs;  /* GRAPHS_ON, _OFF (net_graphs), _FAILED (a recording failed: graph_note says why) */
    char graph_note[300]; /* "failed: " and the backend's graph_note */
    uint64_t fwd_print; /* print of the current forward tape */
    long graphs_recorded, graph_launches;
    unsigned long prefetched0; /* the backend's prefetched count when the net was made */
    profile prof;
    char err[256];
};

static void fail(net *t, const char *fmt, ...)
{
    if (t->fail) return;
    t->fail = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
}

/* A backend allocation failed: the backend's own error when it has one (on
 * a device an earlier failure makes every later call fail, and it is the
 * cause worth reporting), else out of memory. */
static void alloc_failed(net *t, size_t floats)
{
    const char *e = t->be->error(t->be);
    if (e) fail(t, "%s: %s", t->be->desc, e);
    else fail(t, "out of memory on %s (%zu floats)", t->be->desc, floats);
}

static double prof_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Profiling: prof_begin opens an interval at an API entry (the caller's own
 * time between calls is not charged), prof_charge closes one onto a cell. */
static void prof_begin(net *t)
{
    if (!t->prof.on) return;
    t->be->sync(t->be);
    t->prof.last = prof_now();
}

static void prof_charge(net *t, prof_cell *c)
{
    if (!t->prof.on || t->dry) return;
    t->be->sync(t->be);
    double now = prof_now();
    c->s += now - t->prof.last;
    c->calls++;
    t->prof.last = now;
}

/* A backend buffer of at least need floats (contents not kept). */
static int grow(net *t, float **buf, size_t *cap, size_t need)
{
    if (*cap >= need && *buf) return 0;
    t->be->release(t->be, *buf);
    *cap = 0;
    if (!(*buf = t->be->alloc(t->be, need ? need : 1))) {
        alloc_failed(t, need);
        return -1;
    }
    *cap = need;
    return 0;
}

/* Whether plan mp serves batch n: made for n or a larger batch (the tape is
 * the same at any batch, and every tensor is smaller, so the buffers fit;
 * validation's smaller last batch then needs no plan of its own). */
static int plan_serves(const memplan *mp, int n) { return mp->slot && mp->n >= n; }

/* Slot i's buffer in plan mp at batch n, or NULL. */
static const buffer *plan_buffer(const memplan *mp, int n, int i)
{
    return plan_serves(mp, n) && i < mp->len && mp->slot[i] >= 0 ? &mp->bufs[mp->slot[i]] : NULL;
}

/* Releases mp's buffers and forgets the plan. */
static void plan_drop(net *t, memplan *mp)
{
    /* last to first: a pool that reuses the latest freed block of a size
     * first then gives a new plan of the same sizes its old addresses,
     * which net_parity's graphs check needs to show the memory epoch at work */
    for (int k = mp->nbufs; k-- > 0;) t->be->release(t->be, mp->bufs[k].data), mp->bufs[k] = (buffer){NULL, 0};
    free(mp->slot);
    mp->slot = NULL;
    mp->len = mp->n = 0;
}

/* Drops slot i's gradient buffer (a borrowed one is only forgotten). */
static void release_grad(net *t, slot *sl)
{
    if (!sl->grad_borrowed) t->be->release(t->be, sl->grad);
    sl->grad = NULL;
    sl->grad_borrowed = 0;
}

/* The next slot of this forward, sized for s (reused from earlier forwards). */
static int slot_new(net *t, shape4 s)
{
    if (t->fail) return -1;
    if (t->nused == t->nslots) {
        int nn = t->nslots ? 2 * t->nslots : 256;
        slot *ns = realloc(t->slots, (size_t)nn * sizeof *ns);
        if (!ns) { fail(t, "out of memory"); return -1; }
        memset(ns + t->nslots, 0, (size_t)(nn - t->nslots) * sizeof *ns);
        t->slots = ns;
        t->nslots = nn;
    }
    int i = t->nused++;
    slot *sl = &t->slots[i];
    size_t numel = shape4_numel(s);
    sl->born = t->nnodes;
    sl->s = s;
    sl->numel = numel;
    if (t->dry) return i; /* shapes only */
    const buffer *pb = t->train ? NULL : plan_buffer(&t->eplan, t->n, i);
    if (pb && pb->cap >= numel) {
        if (!sl->borrowed) t->be->release(t->be, sl->data); /* the slot's own buffer goes: the plan's replaces it */
        release_grad(t, sl);
        sl->data = pb->data;
        sl->cap = pb->cap;
        sl->borrowed = 1;
        return i;
    }
    if (sl->borrowed) sl->data = NULL, sl->cap = 0, sl->borrowed = 0;
    if (sl->cap < numel || !sl->data) {
        release_grad(t, sl);
        if (grow(t, &sl->data, &sl->cap, numel)) return -1;
    }
    return i;
}

static float *D(net *t, int i) { return t->slots[i].data; }
static shape4 S(net *t, int i) { return t->slots[i].s; }

static node *node_add(net *t, op_kind k, int a, int b, int y)
{
    if (t->fail) return NULL;
    if (t->nnodes == t->cap_nodes) {
        int nc = t->cap_nodes ? 2 * t->cap_nodes : 256;
        node *nn = realloc(t->nodes, (size_t)nc * sizeof *nn);
        if (!nn) { fail(t, "out of memory"); return NULL; }
        t->nodes = nn;
        t->cap_nodes = nc;
    }
    node *nd = &t->nodes[t->nnodes++];
    memset(nd, 0, sizeof *nd);
    nd->k = k, nd->a = a, nd->b = b, nd->y = y, nd->aux = -1;
    prof_charge(t, &t->prof.fwd[k]); /* each builder runs its op, then adds its node */
    return nd;
}

static const param_entry *param(net *t, const char *fmt, ...)
{
    char name[MODEL_NAME_MAX + 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const param_entry *e = model_find(t->p, name);
    if (!e) fail(t, "tensor '%s' missing from the parameters", name);
    return e;
}

static size_t OFF(const net *t, const param_entry *e) { return t->off[e - t->p->entries]; }
static float *P(net *t, const param_entry *e) { return e ? t->w + OFF(t, e) : NULL; }

/* A backend op of the forward pass; skipped in a dry run (which only records
 * the tape and the shapes, for the eval memory plan) and in a quiet one
 * (which also gives the slots their memory, to print the tape: graphs). */
#define RUN(op, ...)                                              \
    do {                                                          \
        if (!t->dry && !t->quiet) t->be->op(t->be, __VA_ARGS__);  \
    } while (0)

/* ---- forward ops: each returns its output slot (or -1 once failed) ------- */

static int conv(net *t, const char *pre, int has_bias, int x, int stride)
{
    const param_entry *w = param(t, "%s.weight", pre), *b = has_bias ? param(t, "%s.bias", pre) : NULL;
    if (t->fail) return -1;
    shape4 xs = S(t, x);
    int oc = w->shape[0], k = w->shape[2];
    if (w->shape[1] != xs.c) { fail(t, "%s.weight: %d input channels, tensor has %d", pre, w->shape[1], xs.c); return -1; }
    int y = slot_new(t, conv2d_out_shape(xs, oc, k, stride));
    if (y < 0) return -1;
    RUN(conv2d_fwd, D(t, x), xs, P(t, w), P(t, b), oc, k, stride, D(t, y));
    node *nd = node_add(t, OP_CONV, x, -1, y);
    if (nd) nd->w = w, nd->bias = b, nd->stride = stride;
    return y;
}

/* Batch norm `<pre>` (+ ReLU) in training mode: keeps x and writes a new
 * slot, with the batch statistics saved for backward. */
static int bn(net *t, const char *pre, int x, int relu)
{
    const param_entry *g = param(t, "%s.weight", pre), *b = param(t, "%s.bias", pre);
    const param_entry *m = param(t, "%s.running_mean", pre), *v = param(t, "%s.running_var", pre);
    if (t->fail) return -1;
    shape4 s = S(t, x);
    if (g->shape[0] != s.c) { fail(t, "%s.weight: %d channels, tensor has %d", pre, g->shape[0], s.c); return -1; }
    int y = slot_new(t, s);
    int aux = slot_new(t, (shape4){1, 2 * s.c, 1, 1});
    if (aux < 0) return -1;
    RUN(bn_fwd_train, D(t, x), s, P(t, g), P(t, b), P(t, m), P(t, v), BN_MOMENTUM, BN_EPS, relu, D(t, y),
                        D(t, aux), D(t, aux) + s.c);
    node *nd = node_add(t, OP_BN, x, -1, y);
    if (nd) nd->w = g, nd->bias = b, nd->aux = aux, nd->relu = relu;
    return y;
}

/* Conv `<cpre>` (no bias) -> batch norm `<bpre>` (-> ReLU). Eval runs the
 * backend's conv2d_bn_eval (fused where it can), training the two ops. */
static int conv_bn(net *t, const char *cpre, const char *bpre, int x, int stride, int relu)
{
    if (t->train) return bn(t, bpre, conv(t, cpre, 0, x, stride), relu);
    const param_entry *w = param(t, "%s.weight", cpre);
    const param_entry *g = param(t, "%s.weight", bpre), *b = param(t, "%s.bias", bpre);
    const param_entry *m = param(t, "%s.running_mean", bpre), *v = param(t, "%s.running_var", bpre);
    if (t->fail || x < 0) return -1;
    shape4 xs = S(t, x);
    int oc = w->shape[0], k = w->shape[2];
    if (w->shape[1] != xs.c) { fail(t, "%s.weight: %d input channels, tensor has %d", cpre, w->shape[1], xs.c); return -1; }
    if (g->shape[0] != oc) { fail(t, "%s.weight: %d channels, tensor has %d", bpre, g->shape[0], oc); return -1; }
    int y = slot_new(t, conv2d_out_shape(xs, oc, k, stride));
    if (y < 0) return -1;
    RUN(conv2d_bn_eval, D(t, x), xs, P(t, w), oc, k, stride, P(t, g), P(t, b), P(t, m), P(t, v), BN_EPS,
                          relu, D(t, y));
    node_add(t, OP_CONVBN_EVAL, x, -1, y);
    return y;
}

/* CBR `<pre>.conv` -> `<pre>.bn` -> ReLU. */
static int cbr(net *t, const char *pre, int x, int stride)
{
    char n1[MODEL_NAME_MAX + 16], n2[MODEL_NAME_MAX + 16];
    snprintf(n1, sizeof n1, "%s.conv", pre);
    snprintf(n2, sizeof n2, "%s.bn", pre);
    return conv_bn(t, n1, n2, x, stride, 1);
}

static int unary(net *t, op_kind k, int x)
{
    if (t->fail) return -1;
    int y = slot_new(t, S(t, x));
    if (y < 0) return -1;
    size_t n = t->slots[x].numel;
    const float *a = D(t, x);
    float *o = D(t, y);
    if (k == OP_RELU) RUN(relu_fwd, a, n, o);
    else if (k == OP_SIGMOID) RUN(sigmoid_fwd, a, n, o);
    else RUN(axpb, o, a, -1.0f, 1.0f, n); /* OP_ONEMINUS */
    node_add(t, k, x, -1, y);
    return y;
}

static int maxpool(net *t, int x)
{
    if (t->fail) return -1;
    shape4 xs = S(t, x), ys = {xs.n, xs.c, xs.h / 2, xs.w / 2};
    int y = slot_new(t, ys), aux = slot_new(t, ys); /* argmax: int32 in a float-sized slot */
    if (aux < 0) return -1;
    RUN(maxpool2_fwd, D(t, x), xs, D(t, y), (int32_t *)(void *)D(t, aux));
    node *nd = node_add(t, OP_MAXPOOL, x, -1, y);
    if (nd) nd->aux = aux;
    return y;
}

static int upsample(net *t, int x)
{
    if (t->fail) return -1;
    shape4 xs = S(t, x);
    int y = slot_new(t, (shape4){xs.n, xs.c, 2 * xs.h, 2 * xs.w});
    if (y < 0) return -1;
    RUN(upsample2_fwd, D(t, x), xs, D(t, y));
    node_add(t, OP_UPSAMPLE, x, -1, y);
    return y;
}

static int concat(net *t, int a, int b)
{
    if (t->fail) return -1;
    shape4 as = S(t, a), bs = S(t, b);
    if (as.n != bs.n || as.h != bs.h || as.w != bs.w) { fail(t, "concat: shapes differ"); return -1; }
    int y = slot_new(t, (shape4){as.n, as.c + bs.c, as.h, as.w});
    if (y < 0) return -1;
    RUN(concat_fwd, D(t, a), as.c, D(t, b), bs.c, as.n, as.h, as.w, D(t, y));
    node_add(t, OP_CONCAT, a, b, y);
    return y;
}

static int avgblock(net *t, int x, int g)
{
    if (t->fail) return -1;
    shape4 xs = S(t, x);
    int y = slot_new(t, (shape4){xs.n, xs.c, g, g});
    if (y < 0) return -1;
    RUN(avgpool_block_fwd, D(t, x), xs, g, D(t, y));
    node *nd = node_add(t, OP_AVGBLOCK, x, -1, y);
    if (nd) nd->g = g;
    return y;
}

static int avgglobal(net *t, int x)
{
    if (t->fail) return -1;
    shape4 xs = S(t, x);
    int y = slot_new(t, (shape4){xs.n, xs.c, 1, 1});
    if (y < 0) return -1;
    RUN(avgpool_global_fwd, D(t, x), xs, D(t, y));
    node_add(t, OP_AVGGLOBAL, x, -1, y);
    return y;
}

/* Linear `<pre>` on x viewed as [n, c*h*w]. */
static int linear(net *t, const char *pre, int x)
{
    const param_entry *w = param(t, "%s.weight", pre), *b = param(t, "%s.bias", pre);
    if (t->fail) return -1;
    shape4 xs = S(t, x);
    int in = xs.c * xs.h * xs.w;
    if (w->shape[1] != in) { fail(t, "%s.weight: %d inputs, tensor has %d", pre, w->shape[1], in); return -1; }
    int y = slot_new(t, (shape4){xs.n, w->shape[0], 1, 1});
    if (y < 0) return -1;
    RUN(linear_fwd, D(t, x), xs.n, in, P(t, w), P(t, b), w->shape[0], D(t, y));
    node *nd = node_add(t, OP_LINEAR, x, -1, y);
    if (nd) nd->w = w, nd->bias = b;
    return y;
}

static int qcrop(net *t, int x, int q)
{
    if (t->fail) return -1;
    shape4 xs = S(t, x);
    int y = slot_new(t, (shape4){xs.n, xs.c, xs.h / 2, xs.w / 2});
    if (y < 0) return -1;
    RUN(quadrant_crop, D(t, x), xs, q, D(t, y));
    node *nd = node_add(t, OP_QCROP, x, -1, y);
    if (nd) nd->q = q;
    return y;
}

/* Writes quadrant q of the (existing) slot e from x. */
static void qassemble(net *t, int x, int e, int q)
{
    if (t->fail) return;
    RUN(quadrant_assemble, D(t, x), S(t, e), q, D(t, e));
    node *nd = node_add(t, OP_QASM, x, -1, e);
    if (nd) nd->q = q;
}

/* r * a with a [n,1,h,w] (OP_MULSP) or a [n,c] (OP_MULCH) broadcast. */
static int mul(net *t, op_kind k, int r, int a)
{
    if (t->fail) return -1;
    shape4 rs = S(t, r);
    int y = slot_new(t, rs);
    if (y < 0) return -1;
    if (k == OP_MULSP) RUN(mul_spatial_fwd, D(t, r), rs, D(t, a), D(t, y));
    else RUN(mul_channel_fwd, D(t, r), rs, D(t, a), D(t, y));
    node_add(t, k, r, a, y);
    return y;
}

static int add(net *t, int a, int b)
{
    if (t->fail) return -1;
    if (t->slots[a].numel != t->slots[b].numel) { fail(t, "add: sizes differ"); return -1; }
    int y = slot_new(t, S(t, a));
    if (y < 0) return -1;
    RUN(add, D(t, y), D(t, a), D(t, b), t->slots[a].numel);
    node_add(t, OP_ADD, a, b, y);
    return y;
}

/* ---- the network --------------------------------------------------------- */

static void run_forward(net *t, int x)
{
    const model_config *cfg = &t->p->cfg;
    const int G = model_grid(cfg), g = model_gpool(cfg);
    char nm[MODEL_NAME_MAX];

    /* FOPM stem -> P [n, ch512, G, G] */
    int h = cbr(t, "fopm.g1.0", x, 2);
    h = cbr(t, "fopm.g1.1", h, 1);
    h = cbr(t, "fopm.g2.0", h, 1);
    h = cbr(t, "fopm.g2.1", h, 1);
    h = maxpool(t, h);
    h = cbr(t, "fopm.g3.0", h, 1);
    h = cbr(t, "fopm.g3.1", h, 1);
    int Pm = cbr(t, "fopm.g3.2", h, 1);
    if (t->fail) return;
    if (S(t, Pm).h != G) { fail(t, "FOPM output is %dx%d, expected %dx%d", S(t, Pm).h, S(t, Pm).w, G, G); return; }

    /* U-Net -> occ [n,1,G,G], heat [n,68,G,G] */
    h = cbr(t, "unet.inp", Pm, 1);
    h = cbr(t, "unet.enc1.0", h, 1);
    int e1 = cbr(t, "unet.enc1.1", h, 1);
    h = cbr(t, "unet.enc2.0", maxpool(t, e1), 1);
    int e2 = cbr(t, "unet.enc2.1", h, 1);
    h = cbr(t, "unet.mid.0", maxpool(t, e2), 1);
    h = cbr(t, "unet.mid.1", h, 1);
    h = cbr(t, "unet.dec2.0", concat(t, upsample(t, h), e2), 1);
    h = cbr(t, "unet.dec2.1", h, 1);
    h = cbr(t, "unet.dec1.0", concat(t, upsample(t, h), e1), 1);
    int d1 = cbr(t, "unet.dec1.1", h, 1);
    t->occ = unary(t, OP_SIGMOID, conv(t, "unet.occ", 1, d1, 1));
    t->heat = conv(t, "unet.lmk", 1, d1, 1);
    if (t->fail) return;
    if (S(t, t->occ).c != 1 || S(t, t->heat).c != MODEL_LANDMARKS) { fail(t, "unet heads: wrong channel counts"); return; }

    /* EFFM -> X [n, 2*ch128, G, G] */
    int Fm = cbr(t, "effm.reduce", Pm, 1);
    int vis = unary(t, OP_ONEMINUS, t->occ);
    int geo = unary(t, OP_RELU, linear(t, "effm.geo", avgblock(t, t->heat, g)));
    int E = -1;
    for (int q = 0; q < 4 && !t->fail; q++) {
        snprintf(nm, sizeof nm, "effm.pg.%d.feat", q);
        int R = cbr(t, nm, qcrop(t, Fm, q), 1);
        snprintf(nm, sizeof nm, "effm.pg.%d.att", q);
        int a = unary(t, OP_SIGMOID, conv(t, nm, 1, concat(t, R, qcrop(t, vis, q)), 1));
        int Rt = mul(t, OP_MULSP, R, a);
        int v = avgglobal(t, Rt);
        snprintf(nm, sizeof nm, "effm.frn.%d.fc1", q);
        int f1 = unary(t, OP_RELU, linear(t, nm, v));
        snprintf(nm, sizeof nm, "effm.frn.%d.fc2", q);
        int u = unary(t, OP_RELU, add(t, v, linear(t, nm, f1)));
        snprintf(nm, sizeof nm, "effm.gate.%d", q);
        int s = unary(t, OP_SIGMOID, linear(t, nm, concat(t, u, geo)));
        int Eq = mul(t, OP_MULCH, Rt, s);
        if (t->fail) return;
        if (E < 0) E = slot_new(t, (shape4){S(t, Eq).n, S(t, Eq).c, G, G});
        qassemble(t, Eq, E, q);
    }
    int X = concat(t, E, cbr(t, "effm.glob", Fm, 1));

    /* FERM -> logits [n,7] */
    h = cbr(t, "ferm.enc.0", X, 2);
    h = cbr(t, "ferm.enc.1", h, 1);
    h = cbr(t, "ferm.enc.2", h, 2);
    for (int r = 0; r < 3; r++) {
        char c1[MODEL_NAME_MAX], b1[MODEL_NAME_MAX], c2[MODEL_NAME_MAX], b2[MODEL_NAME_MAX];
        snprintf(c1, sizeof c1, "ferm.res.%d.conv1", r);
        snprintf(b1, sizeof b1, "ferm.res.%d.bn1", r);
        snprintf(c2, sizeof c2, "ferm.res.%d.conv2", r);
        snprintf(b2, sizeof b2, "ferm.res.%d.bn2", r);
        int z = conv_bn(t, c2, b2, conv_bn(t, c1, b1, h, 1, 1), 1, 0);
        h = unary(t, OP_RELU, add(t, h, z));
    }
    h = cbr(t, "ferm.post.0", h, 1);
    h = cbr(t, "ferm.post.1", h, 1);
    h = cbr(t, "ferm.post.2", h, 1);
    t->logits = linear(t, "ferm.fc", avgglobal(t, h));
    if (!t->fail && S(t, t->logits).c != MODEL_CLASSES) fail(t, "ferm.fc: %d outputs, expected 7", S(t, t->logits).c);
}

static void release(net *t, void *buf) { t->be->release(t->be, buf); }

/* ---- graphs (see `replay`) ------------------------------------------------ */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* The forward tape: batch, mode, parameters, every slot's buffer and shape,
 * every node. */
static uint64_t tape_print(const net *t)
{
    uint64_t h = mix(mix(mix(0, (uint64_t)t->n), (uint64_t)t->train), (uint64_t)(uintptr_t)t->w);
    for (int i = 0; i < t->nused; i++) {
        const slot *sl = &t->slots[i];
        h = mix(mix(h, (uint64_t)(uintptr_t)sl->data), sl->numel);
        h = mix(mix(mix(mix(h, (uint64_t)sl->s.n), (uint64_t)sl->s.c), (uint64_t)sl->s.h), (uint64_t)sl->s.w);
    }
    for (int j = 0; j < t->nnodes; j++) {
        const node *nd = &t->nodes[j];
        const int f[] = {nd->k, nd->a, nd->b, nd->y, nd->aux, nd->stride, nd->q, nd->g, nd->relu};
        for (size_t k = 0; k < sizeof f / sizeof *f; k++) h = mix(h, (uint64_t)(int64_t)f[k]);
        h = mix(mix(h, (uint64_t)(uintptr_t)nd->w), (uint64_t)(uintptr_t)nd->bias);
    }
    return h;
}

/* The backward pass: the forward tape, the gradient buffers it starts from. */
static uint64_t backward_print(const net *t)
{
    uint64_t h = mix(mix(mix(t->fwd_print, (uint64_t)(uintptr_t)t->grad), (uint64_t)(uintptr_t)t->tmp),
                     (uint64_t)(uintptr_t)t->tmp2);
    for (int i = 0; i < t->nused; i++)
        h = mix(mix(h, (uint64_t)(uintptr_t)t->slots[i].grad), (uint64_t)t->slots[i].has_grad);
    return h;
}

static int graphs_usable(const net *t)
{
    return t->graphs == GRAPHS_ON && t->be->capture_begin && !t->prof.on;
}

/* Records pass(t) as r's graph and launches it; 1 done, 0 if the
 * recording failed (nothing ran: the caller runs the pass directly; graphs
 * stay off for this net, with the backend's reason in graph_note). */
static int record(net *t, replay *r, uint64_t print, void (*pass)(net *t))
{
    backend *be = t->be;
    void *g = NULL;
    if (be->capture_begin(be) == 0) {
        pass(t); /* recorded, not run */
        g = be->capture_end(be);
    }
    if (!g || t->fail) {
        if (g) be->graph_free(be, g);
        t->fail = 0, t->err[0] = '\0';
        t->graphs = GRAPHS_FAILED;
        snprintf(t->graph_note, sizeof t->graph_note, "failed: %s",
                 be->graph_note[0] ? be->graph_note : "no graph recorded");
        return 0;
    }
    if (r->graph) be->graph_free(be, r->graph);
    r->graph = g, r->print = print, r->epoch = be->memory_epoch;
    t->graphs_recorded++;
    t->graph_launches++;
    be->graph_launch(be, g);
    return 1;
}

/* Runs pass(t), whose print is `print` (unused without graphs): launches
 * r's graph when the pass is the one it recorded and no memory moved since;
 * records it when it repeats the last direct pass; otherwise runs it
 * directly and remembers it. */
static void run_pass(net *t, replay *r, uint64_t print, void (*pass)(net *t))
{
    backend *be = t->be;
    const int use = graphs_usable(t);
    const unsigned long ep = be->memory_epoch;
    if (use && r->graph && r->print == print && r->epoch == ep) {
        be->graph_launch(be, r->graph);
        t->graph_launches++;
        return;
    }
    if (use && r->seen && r->seen_print == print && r->seen_epoch == ep && record(t, r, print, pass)) return;
    pass(t);
    if (use) r->seen = 1, r->seen_print = print, r->seen_epoch = be->memory_epoch;
}

static void graphs_drop(net *t)
{
    for (int k = 0; k < RP_KINDS; k++) {
        if (t->rp[k].graph) t->be->graph_free(t->be, t->rp[k].graph);
        memset(&t->rp[k], 0, sizeof t->rp[k]);
    }
}

void net_graphs(net *t, int on)
{
    if (!on) graphs_drop(t);
    if (t->graphs != GRAPHS_FAILED) t->graphs = on ? GRAPHS_ON : GRAPHS_OFF;
}

const char *net_graphs_state(net *t)
{
    if (!t->be->capture_begin) return "none";
    if (t->graphs == GRAPHS_FAILED) return t->graph_note;
    return t->graphs == GRAPHS_ON ? "on" : "off";
}

void net_graph_counts(const net *t, long *recorded, long *launched)
{
    *recorded = t->graphs_recorded, *launched = t->graph_launches;
}

/* The layout of the net's parameter-shaped buffers. On the CPU, p->data's
 * own (w is p->data). On a device each tensor starts on a 64-byte boundary:
 * p->data packs tensors with no gaps (a 1-float bias shifts every later one),
 * and cuDNN's tensor-core kernels want 16-byte aligned pointers. The gaps
 * stay zero and are masked from AdamW. */
#define DEVICE_ALIGN 16 /* floats */
static int layout(net *t)
{
    const model_params *p = t->p;
    if (!(t->off = malloc((size_t)(p->n ? p->n : 1) * sizeof *t->off))) return -1;
    size_t at = 0;
    for (int e = 0; e < p->n; e++) {
        if (t->be->host_memory) at = p->entries[e].offset;
        else at = (at + DEVICE_ALIGN - 1) / DEVICE_ALIGN * DEVICE_ALIGN;
        t->off[e] = at;
        at += p->entries[e].numel;
    }
    t->total = t->be->host_memory ? p->total : at;
    return 0;
}

/* Moves parameter-shaped data between host (p->data's layout) and a buffer
 * of the net's layout, tensor by tensor unless the layouts agree. */
static void params_upload(net *t, float *dev, const float *host)
{
    if (t->total == t->p->total) { t->be->upload(t->be, dev, host, t->total); return; }
    for (int e = 0; e < t->p->n; e++) {
        const param_entry *pe = &t->p->entries[e];
        t->be->upload(t->be, dev + t->off[e], host + pe->offset, pe->numel);
    }
}

static void params_download(net *t, float *host, const float *dev)
{
    if (t->total == t->p->total) { t->be->download(t->be, host, dev, t->total); return; }
    for (int e = 0; e < t->p->n; e++) {
        const param_entry *pe = &t->p->entries[e];
        t->be->download(t->be, host + pe->offset, dev + t->off[e], pe->numel);
    }
}

net *net_create_on(model_params *p, backend *be)
{
    if (!p || !p->data) return NULL;
    net *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->p = p;
    t->be = be;
    if (!be) {
        if (!(t->be = backend_cpu_create(NULL))) { free(t); return NULL; }
        t->own_be = 1;
    }
    t->prefetched0 = t->be->prefetched;
    if (layout(t)) {
        net_free(t);
        return NULL;
    }
    if (t->be->host_memory) {
        t->w = p->data;
    } else if (!(t->w = t->be->alloc(t->be, t->total))) {
        net_free(t);
        return NULL;
    } else {
        params_upload(t, t->w, p->data);
    }
    return t;
}

net *net_create(model_params *p) { return net_create_on(p, NULL); }

void net_free(net *t)
{
    if (!t) return;
    if (t->be) {
        graphs_drop(t);
        for (int i = 0; i < t->nslots; i++) {
            if (!t->slots[i].borrowed) release(t, t->slots[i].data);
            release_grad(t, &t->slots[i]);
        }
        plan_drop(t, &t->eplan);
        plan_drop(t, &t->gplan);
        if (t->w != t->p->data) release(t, t->w);
        release(t, t->grad);
        release(t, t->m);
        release(t, t->v);
        release(t, t->mask);
        release(t, t->tmp);
        release(t, t->tmp2);
        release(t, t->tgt);
        release(t, t->lossbuf);
        if (t->own_be) backend_close(t->be);
    }
    for (int k = 0; k < 3; k++) free(t->out[k].data);
    free(t->off);
    free(t->eplan.bufs);
    free(t->gplan.bufs);
    free(t->slots);
    free(t->nodes);
    free(t);
}

backend *net_backend(const net *t) { return t->be; }


/* Training runs Winograd F(2x2) at most: at small batches the gradients are
 * ill-conditioned, and F(4x4)'s ~1e-5 per layer (fine for inference) took
 * fopm's gradients several times further from PyTorch than float32 PyTorch
 * is from float64. Returns the mode to restore. (CPU only; harmless
 * elsewhere.) */
static int winograd_for(int train)
{
    int prev = ops_winograd();
    if (train && prev == OPS_WINOGRAD_AUTO) ops_set_winograd(OPS_WINOGRAD_F2);
    return prev;
}

/* The backend's sticky error, if any, becomes the net's. */
static int check_backend(net *t)
{
    const char *e = t->be->error(t->be);
    if (e) fail(t, "%s: %s", t->be->desc, e);
    return t->fail ? -1 : 0;
}

/* Plans memory for the `count` slots of `order`, listed by the start of
 * their lives: slot i is live from start[i] to end[i] (inclusive, on one
 * time axis). Each gets the smallest buffer of mp whose holder's life has
 * ended, else the largest such one (grown), else a new one; so the buffers
 * add up to about the peak of what is live at once, not to the sum. mp's
 * buffers are kept where big enough. Returns 0, or -1 (no plan then). */
static int plan_make(net *t, memplan *mp, const int *order, int count, const int *start, const int *end)
{
    int ns = t->nused, nb = 0, rc = -1;
    int *slot = malloc((size_t)ns * sizeof *slot), *busy = malloc((size_t)ns * sizeof *busy);
    size_t *need = calloc((size_t)ns, sizeof *need);
    if (!slot || !busy || !need) goto out;
    for (int i = 0; i < ns; i++) slot[i] = -1;
    for (int a = 0; a < count; a++) {
        int i = order[a];
        size_t sz = t->slots[i].numel;
        int fit = -1, big = -1; /* the smallest free buffer that fits; the largest free one */
        for (int k = 0; k < nb; k++) {
            if (busy[k] >= start[i]) continue; /* its holder is still live */
            if (need[k] >= sz) {
                if (fit < 0 || need[k] < need[fit]) fit = k;
            } else if (big < 0 || need[k] > need[big]) {
                big = k;
            }
        }
        int pick = fit >= 0 ? fit : big >= 0 ? big : nb++;
        if (need[pick] < sz) need[pick] = sz;
        busy[pick] = end[i];
        slot[i] = pick;
    }
    buffer *bufs = realloc(mp->bufs, (size_t)(nb > mp->nbufs ? nb : mp->nbufs) * sizeof *bufs);
    if (!bufs) goto out;
    mp->bufs = bufs;
    for (int k = mp->nbufs; k < nb; k++) bufs[k] = (buffer){NULL, 0};
    if (nb > mp->nbufs) mp->nbufs = nb;
    for (int k = 0; k < nb; k++)
        if (grow(t, &bufs[k].data, &bufs[k].cap, need[k])) goto out;
    free(mp->slot);
    mp->slot = slot, slot = NULL;
    mp->len = ns;
    mp->n = t->n;
    rc = 0;
out:
    t->fail = 0; /* a plan that could not be made is only a missed saving */
    t->err[0] = '\0';
    free(slot), free(busy), free(need);
    return rc;
}

/* The eval plan, from the tape of a dry eval forward at batch t->n: slot i
 * is live from its birth (the node count when it was made) to its last use
 * by a node (as an input, an output or saved state); the outputs stay live.
 * A slot never shares with the inputs of the node that makes it (they are
 * live at its birth). Without a plan, eval still works (slots of their own). */
static void make_eval_plan(net *t)
{
    int ns = t->nused;
    int *start = malloc((size_t)ns * sizeof *start), *end = malloc((size_t)ns * sizeof *end);
    int *order = malloc((size_t)ns * sizeof *order);
    if (start && end && order) {
        for (int i = 0; i < ns; i++) order[i] = i, start[i] = end[i] = t->slots[i].born;
        for (int j = 0; j < t->nnodes; j++) {
            const node *nd = &t->nodes[j];
            int use[4] = {nd->a, nd->b, nd->y, nd->aux};
            for (int u = 0; u < 4; u++)
                if (use[u] >= 0 && use[u] < ns && end[use[u]] < j) end[use[u]] = j;
        }
        end[t->logits] = end[t->occ] = end[t->heat] = 0x7fffffff;
        plan_make(t, &t->eplan, order, ns, start, end);
    }
    free(start), free(end), free(order);
}

/* The gradient plan, from the training tape at batch t->n. Walking
 * backward, slot i's gradient is live from its first write (the backward
 * of its last reader in the tape; the outputs' are written by net_loss) to
 * its last read (the backward of the first node that writes slot i). On a
 * time axis running backward (-node index) that is [-w, -r]. */
static void make_grad_plan(net *t)
{
    int ns = t->nused, no = 0;
    int *start = malloc((size_t)ns * sizeof *start), *end = malloc((size_t)ns * sizeof *end);
    int *order = malloc((size_t)ns * sizeof *order);
    if (start && end && order) {
        for (int i = 0; i < ns; i++) start[i] = 1, end[i] = -0x7fffffff; /* start 1: no gradient */
        for (int j = 0; j < t->nnodes; j++) {
            const node *nd = &t->nodes[j];
            if (nd->a > 0 && start[nd->a] > -j) start[nd->a] = -j;
            if (nd->b > 0 && start[nd->b] > -j) start[nd->b] = -j;
            if (end[nd->y] < -j) end[nd->y] = -j;
        }
        start[t->logits] = start[t->occ] = start[t->heat] = -0x7ffffffe;
        for (int i = 1; i < ns; i++)
            if (start[i] <= 0 && end[i] != -0x7fffffff) order[no++] = i;
        for (int a = 1; a < no; a++) /* by start (insertion sort: the tape is nearly in order) */
            for (int b = a; b > 0 && start[order[b - 1]] > start[order[b]]; b--) {
                int tmp = order[b];
                order[b] = order[b - 1], order[b - 1] = tmp;
            }
        for (int i = 0; i < ns; i++) release_grad(t, &t->slots[i]); /* the plan's buffers replace them */
        plan_make(t, &t->gplan, order, no, start, end);
    }
    free(start), free(end), free(order);
}

void net_memory_plan(net *t, int on)
{
    t->no_plan = !on;
    if (on) return;
    for (int i = 0; i < t->nslots; i++)
        if (t->slots[i].grad_borrowed) release_grad(t, &t->slots[i]);
    plan_drop(t, &t->eplan);
    plan_drop(t, &t->gplan);
}

/* Slot 0: the input x [n,3,S,S], the tape's first. */
static int forward_slot0(net *t)
{
    const int S0 = t->p->cfg.size;
    t->nused = t->nnodes = 0;
    return slot_new(t, (shape4){t->n, 3, S0, S0});
}

/* The forward pass from slot 0 (the tape is rebuilt each time). */
static void forward_pass(net *t)
{
    int xi = forward_slot0(t);
    if (xi >= 0) run_forward(t, xi);
}

/* Floats of a step's host inputs at batch n: x [n,3,S,S] and the targets occ [n,1,G,G], heat [n,68,G,G]
 * (labels: n words). net_forward and net_loss upload these lengths and net_prefetch stages them: a staged
 * copy is found by pointer and length. */
typedef struct {
    size_t x, occ, heat;
} step_inputs;

static step_inputs inputs_at(const net *t, int n)
{
    const size_t S = (size_t)t->p->cfg.size, G = (size_t)model_grid(&t->p->cfg);
    return (step_inputs){(size_t)n * 3 * S * S, (size_t)n * G * G, (size_t)n * MODEL_LANDMARKS * G * G};
}

int net_forward(net *t, const float *x, int n, int train)
{
    if (!t || !x || n <= 0) return -1;
    int wg = winograd_for(train);
    t->fail = 0;
    t->err[0] = '\0';
    if (train && t->eplan.slot) plan_drop(t, &t->eplan); /* training keeps every activation; validation replans */
    t->n = n;
    t->train = train;
    t->have_loss = 0;
    for (int k = 0; k < 3; k++) t->out[k].fresh = 0;
    if (!train && !t->no_plan && !plan_serves(&t->eplan, n)) { /* first eval at this batch: dry run, plan */
        t->dry = 1;
        forward_pass(t);
        t->dry = 0;
        if (!t->fail) make_eval_plan(t); /* (without a plan the forward below still runs, in slots of its own) */
        t->fail = 0;
        t->err[0] = '\0';
    }
    if (graphs_usable(t)) { /* is this pass a repeat? the tape without its ops tells */
        t->quiet = 1;
        forward_pass(t);
        t->quiet = 0;
        t->fwd_print = tape_print(t);
    } else {
        forward_slot0(t);
    }
    if (t->fail) {
        ops_set_winograd(wg);
        t->nnodes = 0;
        return -1;
    }
    prof_begin(t);
    t->be->upload(t->be, D(t, 0), x, inputs_at(t, n).x); /* (slot 0's size) */
    prof_charge(t, &t->prof.upload);
    run_pass(t, &t->rp[train ? RP_TRAIN : RP_EVAL], t->fwd_print, forward_pass);
    ops_set_winograd(wg);
    check_backend(t);
    if (t->fail) t->nnodes = 0;
    return t->fail ? -1 : 0;
}

long net_prefetched(const net *t) { return (long)(t->be->prefetched - t->prefetched0); }

int net_prefetch(net *t, const float *x, const float *occ_t, const float *heat_t, const int *labels, int n)
{
    if (!t || !x || n <= 0 || !t->be->upload_ahead) return 0;
    backend *be = t->be;
    const step_inputs in = inputs_at(t, n);
    int staged = be->upload_ahead(be, x, in.x) == 0;
    if (occ_t && heat_t && labels)
        staged += (be->upload_ahead(be, occ_t, in.occ) == 0) + (be->upload_ahead(be, heat_t, in.heat) == 0) +
                  (be->upload_ahead(be, (const float *)(const void *)labels, (size_t)n) == 0);
    return staged;
}

/* Output k (0 logits, 1 occ, 2 heat) readable on the host. */
static const float *output(net *t, int k, int i)
{
    slot *s = &t->slots[i];
    if (t->be->host_memory) return s->data;
    mirror *o = &t->out[k];
    if (!o->fresh) {
        prof_begin(t);
        if (o->cap < s->numel) {
            float *nd = realloc(o->data, s->numel * sizeof(float));
            if (!nd) return NULL;
            o->data = nd;
            o->cap = s->numel;
        }
        t->be->download(t->be, o->data, s->data, s->numel);
        prof_charge(t, &t->prof.download);
        o->fresh = 1;
    }
    return o->data;
}

const float *net_logits(net *t) { return output(t, 0, t->logits); }
const float *net_occ(net *t) { return output(t, 1, t->occ); }
const float *net_heat(net *t) { return output(t, 2, t->heat); }
const char *net_error(const net *t) { return t ? t->err : "no net"; }

size_t net_bytes(const net *t)
{
    size_t f = t->tmp_cap + t->tmp2_cap + t->tgt_cap;
    for (int i = 0; i < t->nslots; i++)
        f += (t->slots[i].borrowed ? 0 : t->slots[i].cap) +
             (t->slots[i].grad && !t->slots[i].grad_borrowed ? t->slots[i].cap : 0);
    for (int k = 0; k < t->eplan.nbufs; k++) f += t->eplan.bufs[k].cap;
    for (int k = 0; k < t->gplan.nbufs; k++) f += t->gplan.bufs[k].cap;
    if (t->grad) f += t->total;
    if (t->m) f += 2 * t->total;
    if (t->w != t->p->data) f += t->total;
    return f * sizeof(float) + t->be->bytes_in_use(t->be);
}

/* ---- losses and backward ------------------------------------------------- */

/* Slot i's gradient buffer: the gradient plan's when there is one for this
 * batch, else one of its own. */
static int ensure_grad(net *t, int i)
{
    slot *s = &t->slots[i];
    const buffer *pb = plan_buffer(&t->gplan, t->n, i);
    if (pb) {
        float *g = pb->data;
        if (s->grad != g) {
            release_grad(t, s);
            s->grad = g;
            s->grad_borrowed = 1;
        }
        return 0;
    }
    if (s->grad_borrowed) s->grad = NULL, s->grad_borrowed = 0;
    if (!s->grad && !(s->grad = t->be->alloc(t->be, s->cap ? s->cap : 1))) {
        alloc_failed(t, s->cap);
        return -1;
    }
    return 0;
}

int net_loss(net *t, const float *occ_t, const float *heat_t, const int *labels, net_losses *out)
{
    if (!t || !t->train || t->nnodes == 0) return -1;
    if (!occ_t || !heat_t || !labels || !out) return -1;
    for (int i = 0; i < t->n; i++)
        if (labels[i] < 0 || labels[i] >= MODEL_CLASSES) {
            fail(t, "label %d of sample %d is outside 0..6", labels[i], i);
            return -1;
        }
    prof_begin(t);
    for (int i = 0; i < t->nused; i++) t->slots[i].has_grad = 0;
    if (!t->no_plan && !plan_serves(&t->gplan, t->n)) make_grad_plan(t);
    int ids[3] = {t->occ, t->heat, t->logits};
    for (int k = 0; k < 3; k++)
        if (ensure_grad(t, ids[k])) return -1;
    slot *so = &t->slots[t->occ], *sh = &t->slots[t->heat], *sl = &t->slots[t->logits];
    /* the targets and labels travel to the backend in one buffer */
    size_t need = so->numel + sh->numel + (size_t)t->n;
    if (grow(t, &t->tgt, &t->tgt_cap, need) || (!t->lossbuf && grow(t, &t->lossbuf, &(size_t){0}, 3))) return -1;
    float *ot = t->tgt, *ht = ot + so->numel, *lab = ht + sh->numel;
    const step_inputs in = inputs_at(t, t->n); /* (the two slots' sizes) */
    t->be->upload(t->be, ot, occ_t, in.occ);
    t->be->upload(t->be, ht, heat_t, in.heat);
    _Static_assert(sizeof(int) == sizeof(float), "labels travel as 32-bit words");
    t->be->upload(t->be, lab, (const float *)(const void *)labels, (size_t)t->n);
    t->be->mse(t->be, so->data, ot, so->numel, NET_W_LP, so->grad, t->lossbuf);
    t->be->mse(t->be, sh->data, ht, sh->numel, NET_W_LM, sh->grad, t->lossbuf + 1);
    t->be->softmax_ce(t->be, sl->data, t->n, MODEL_CLASSES, (const int32_t *)(const void *)lab, NET_W_LD, sl->grad,
                      t->lossbuf + 2);
    float L[3];
    t->be->download(t->be, L, t->lossbuf, 3);
    prof_charge(t, &t->prof.loss);
    if (check_backend(t)) return -1;
    out->lp = L[0], out->lm = L[1], out->ld = L[2];
    out->total = NET_W_LP * out->lp + NET_W_LM * out->lm + NET_W_LD * out->ld;
    so->has_grad = sh->has_grad = sl->has_grad = 1;
    t->have_loss = 1;
    return 0;
}

/* Where the gradient of slot i goes: its own buffer on first arrival,
 * otherwise temporary `which` (1 or 2; sized by net_backward), added by
 * land(). NULL for the input x (slot 0), which needs no gradient. */
static float *dst(net *t, int i, int which)
{
    if (i <= 0 || ensure_grad(t, i)) return NULL;
    slot *s = &t->slots[i];
    if (!s->has_grad) return s->grad;
    return which == 1 ? t->tmp : t->tmp2;
}

static void land(net *t, int i, float *d)
{
    if (i <= 0 || !d) return;
    slot *s = &t->slots[i];
    if (d != s->grad) t->be->acc(t->be, s->grad, d, s->numel);
    s->has_grad = 1;
}

static float *G(const net *t, const param_entry *e, float *grad) { return e ? grad + OFF(t, e) : NULL; }

static void backward_node(net *t, const node *nd, float *grad)
{
    backend *be = t->be;
    slot *sy = &t->slots[nd->y];
    const float *dy = sy->grad;
    shape4 xs = S(t, nd->a);
    const float *x = D(t, nd->a);
    size_t nx = t->slots[nd->a].numel;
    float *da = dst(t, nd->a, 1), *db = NULL;
    if (t->fail) return;
    switch (nd->k) {
    case OP_CONV: {
        int oc = nd->w->shape[0], k = nd->w->shape[2];
        be->conv2d_bwd(be, x, xs, P(t, nd->w), oc, k, nd->stride, dy, da, G(t, nd->w, grad), G(t, nd->bias, grad));
        break;
    }
    case OP_BN: { /* through the fused ReLU too, from the output */
        const float *aux = D(t, nd->aux);
        be->bn_bwd(be, x, xs, P(t, nd->w), aux, aux + xs.c, nd->relu ? sy->data : NULL, dy, da, G(t, nd->w, grad),
                   G(t, nd->bias, grad));
        break;
    }
    case OP_RELU: be->relu_bwd(be, sy->data, dy, nx, da); break;
    case OP_SIGMOID: be->sigmoid_bwd(be, sy->data, dy, nx, da); break;
    case OP_ONEMINUS: be->axpb(be, da, dy, -1.0f, 0.0f, nx); break;
    case OP_MAXPOOL:
        be->maxpool2_bwd(be, (const int32_t *)(const void *)D(t, nd->aux), dy, sy->s, da, xs);
        break;
    case OP_UPSAMPLE: be->upsample2_bwd(be, dy, xs, da); break;
    case OP_CONCAT:
        db = dst(t, nd->b, 2);
        if (t->fail) return;
        be->concat_bwd(be, dy, xs.c, S(t, nd->b).c, xs.n, xs.h, xs.w, da, db);
        break;
    case OP_AVGBLOCK: be->avgpool_block_bwd(be, dy, xs, nd->g, da); break;
    case OP_AVGGLOBAL: be->avgpool_global_bwd(be, dy, xs, da); break;
    case OP_LINEAR:
        be->linear_bwd(be, x, xs.n, xs.c * xs.h * xs.w, P(t, nd->w), nd->w->shape[0], dy, da, G(t, nd->w, grad),
                       G(t, nd->bias, grad));
        break;
    case OP_QCROP:
        be->fill(be, da, 0.0f, nx);
        be->quadrant_assemble(be, dy, xs, nd->q, da);
        break;
    case OP_QASM: be->quadrant_crop(be, dy, sy->s, nd->q, da); break;
    case OP_MULSP:
    case OP_MULCH:
        db = dst(t, nd->b, 2);
        if (t->fail) return;
        if (nd->k == OP_MULSP) be->mul_spatial_bwd(be, x, xs, D(t, nd->b), dy, da, db);
        else be->mul_channel_bwd(be, x, xs, D(t, nd->b), dy, da, db);
        break;
    case OP_ADD:
        db = dst(t, nd->b, 2);
        if (t->fail) return;
        be->copy(be, da, dy, nx);
        be->copy(be, db, dy, nx);
        break;
    case OP_CONVBN_EVAL: /* not in training tapes */
    case OP_KINDS: break;
    }
    land(t, nd->a, da);
    if (nd->b >= 0) land(t, nd->b, db);
}

/* The backward pass of the last loss into t->grad. */
static void backward_pass(net *t)
{
    t->be->fill(t->be, t->grad, 0.0f, t->total);
    prof_charge(t, &t->prof.grad_setup);
    for (int i = t->nnodes - 1; i >= 0 && !t->fail; i--) {
        const node *nd = &t->nodes[i];
        if (!t->slots[nd->y].has_grad) continue; /* output does not reach the loss */
        backward_node(t, nd, t->grad);
        prof_charge(t, &t->prof.bwd[nd->k]);
    }
}

int net_backward(net *t, float *grad)
{
    if (!t || !t->have_loss) return -1;
    prof_begin(t);
    if (!t->grad && grow(t, &t->grad, &(size_t){0}, t->total)) return -1;
    /* Both temporaries fit the largest slot. */
    size_t big = 0;
    for (int i = 0; i < t->nused; i++)
        if (t->slots[i].numel > big) big = t->slots[i].numel;
    if (grow(t, &t->tmp, &t->tmp_cap, big) || grow(t, &t->tmp2, &t->tmp2_cap, big)) return -1;
    int wg = winograd_for(1);
    run_pass(t, &t->rp[RP_BACKWARD], graphs_usable(t) ? backward_print(t) : 0, backward_pass);
    ops_set_winograd(wg);
    t->have_loss = 0; /* one backward per loss */
    if (!t->fail && grad) params_download(t, grad, t->grad);
    return check_backend(t);
}

/* ---- optimizer and parameter transfer ------------------------------------ */

static int opt_alloc(net *t)
{
    if (t->m) return 0;
    size_t z = 0, mb = (t->total + sizeof(float) - 1) / sizeof(float);
    if (grow(t, &t->m, &(size_t){0}, t->total) || grow(t, &t->v, &(size_t){0}, t->total) ||
        grow(t, (float **)&t->mask, &z, mb))
        return -1;
    uint8_t *host = calloc(mb, sizeof(float));
    if (!host) { fail(t, "out of memory"); return -1; }
    for (int e = 0; e < t->p->n; e++) {
        const param_entry *pe = &t->p->entries[e];
        if (pe->trainable) memset(host + t->off[e], 1, pe->numel);
    }
    t->be->upload(t->be, (float *)t->mask, (const float *)(const void *)host, mb);
    free(host);
    return check_backend(t);
}

int net_step(net *t, long step, double lr, const adamw_config *c)
{
    if (!t || !t->grad || step < 1) return -1;
    if (opt_alloc(t)) return -1;
    prof_begin(t);
    const adamw_coef k = adamw_coefs(step, lr, c);
    t->be->adamw(t->be, t->w, t->grad, t->m, t->v, t->mask, t->total, &k);
    prof_charge(t, &t->prof.adamw);
    return check_backend(t);
}

int net_opt_set(net *t, const float *m, const float *v)
{
    if (opt_alloc(t)) return -1;
    params_upload(t, t->m, m);
    params_upload(t, t->v, v);
    return check_backend(t);
}

int net_opt_get(net *t, float *m, float *v)
{
    if (!t->m) {
        memset(m, 0, t->p->total * sizeof(float));
        memset(v, 0, t->p->total * sizeof(float));
        return 0;
    }
    params_download(t, m, t->m);
    params_download(t, v, t->v);
    return check_backend(t);
}

int net_params_get(net *t)
{
    if (t->w != t->p->data) params_download(t, t->p->data, t->w);
    return check_backend(t);
}

int net_params_set(net *t)
{
    if (t->w != t->p->data) params_upload(t, t->w, t->p->data);
    return check_backend(t);
}

/* ---- profile ------------------------------------------------------------ */

void net_profile(net *t, int on)
{
    memset(&t->prof, 0, sizeof t->prof);
    t->prof.on = on != 0;
}

int net_profile_rows(const net *t, net_prof_row *rows, int max)
{
    const profile *pr = &t->prof;
    int n = 0;
#define ROW(pass_, op_, cell_)                                                              \
    do {                                                                                   \
        if ((cell_).calls && n < max) rows[n++] = (net_prof_row){pass_, op_, (cell_).s, (cell_).calls}; \
    } while (0)
    ROW("forward", "input upload", pr->upload);
    for (int k = 0; k < OP_KINDS; k++) ROW("forward", op_names[k], pr->fwd[k]);
    ROW("forward", "output download", pr->download);
    ROW("loss", "losses", pr->loss);
    ROW("backward", "gradient setup", pr->grad_setup);
    for (int k = 0; k < OP_KINDS; k++) ROW("backward", op_names[k], pr->bwd[k]);
    ROW("step", "adamw", pr->adamw);
#undef ROW
    return n;
}

int model_forward_eval(const model_params *p, const float *x, int n, float *logits, float *occ, float *heat)
{
    net *t = net_create((model_params *)p); /* eval never writes p */
    if (!t) return -1;
    int rc = net_forward(t, x, n, 0);
    if (rc == 0) {
        const int G = model_grid(&p->cfg);
        memcpy(logits, net_logits(t), (size_t)n * MODEL_CLASSES * sizeof(float));
        memcpy(occ, net_occ(t), (size_t)n * G * G * sizeof(float));
        memcpy(heat, net_heat(t), (size_t)n * MODEL_LANDMARKS * G * G * sizeof(float));
    }
    net_free(t);
    return rc;
}
