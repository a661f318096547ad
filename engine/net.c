/* net.c: MODEL.md "Forward" as a tape of ops.h calls, with losses and the
 * backward pass (see net.h).
 *
 * Every tensor is a slot; every op a node naming its input and output slots
 * and parameters. Backward walks the nodes in reverse. A slot read by several
 * nodes (P, occ, heat, e1, e2, F, Rt, v...) receives several gradient
 * contributions: the first is written straight into its gradient buffer,
 * later ones go through a temporary and are added, so no buffer needs
 * zeroing and the sum order is fixed. */
#include "net.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

typedef struct {
    float *data, *grad;
    size_t cap, numel; /* floats */
    shape4 s;
    int has_grad; /* backward: grad holds this step's value */
} slot;

typedef enum {
    OP_CONV, OP_BN, OP_RELU, OP_SIGMOID, OP_ONEMINUS, OP_MAXPOOL, OP_UPSAMPLE, OP_CONCAT, OP_AVGBLOCK,
    OP_AVGGLOBAL, OP_LINEAR, OP_QCROP, OP_QASM, OP_MULSP, OP_MULCH, OP_ADD
} op_kind;

typedef struct {
    op_kind k;
    int a, b, y;  /* input slots (b -1 if none), output slot */
    int aux;      /* saved-for-backward slot: BN mean+invstd, max-pool argmax */
    const param_entry *w, *bias; /* conv/linear weight and bias; BN gamma and beta */
    int stride, q, g, relu;
} node;

struct net {
    model_params *p;
    slot *slots;
    int nslots, nused;
    node *nodes;
    int nnodes, cap_nodes;
    float *scratch, *tmp, *tmp2;
    size_t scratch_cap, tmp_cap, tmp2_cap;
    int n, train, have_loss, fail;
    int logits, occ, heat; /* output slots */
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

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (*cap >= need) return 0;
    void *nb = realloc(*buf, (need ? need : 1) * elem);
    if (!nb) return -1;
    *buf = nb;
    *cap = need;
    return 0;
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
    if (sl->cap < numel) {
        free(sl->grad);
        sl->grad = NULL;
        size_t c = 0;
        if (grow((void **)&sl->data, &c, numel, sizeof(float))) { fail(t, "out of memory (%zu floats)", numel); return -1; }
        sl->cap = numel;
    }
    sl->s = s;
    sl->numel = numel;
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

static float *P(net *t, const param_entry *e) { return e ? t->p->data + e->offset : NULL; }

static int scratch_for(net *t, size_t n)
{
    if (grow((void **)&t->scratch, &t->scratch_cap, n, sizeof(float))) { fail(t, "out of memory"); return -1; }
    return 0;
}

/* ---- forward ops: each returns its output slot (or -1 once failed) ------- */

static int conv(net *t, const char *pre, int has_bias, int x, int stride)
{
    const param_entry *w = param(t, "%s.weight", pre), *b = has_bias ? param(t, "%s.bias", pre) : NULL;
    if (t->fail) return -1;
    shape4 xs = S(t, x);
    int oc = w->shape[0], k = w->shape[2];
    if (w->shape[1] != xs.c) { fail(t, "%s.weight: %d input channels, tensor has %d", pre, w->shape[1], xs.c); return -1; }
    int y = slot_new(t, conv2d_out_shape(xs, oc, k, stride));
    if (y < 0 || scratch_for(t, conv2d_scratch_floats(xs, k, stride))) return -1;
    conv2d_fwd(D(t, x), xs, P(t, w), P(t, b), oc, k, stride, D(t, y), t->scratch);
    node *nd = node_add(t, OP_CONV, x, -1, y);
    if (nd) nd->w = w, nd->bias = b, nd->stride = stride;
    return y;
}

/* Batch norm `<pre>` (+ ReLU): training keeps x and writes a new slot with
 * the saved statistics; eval works in place. */
static int bn(net *t, const char *pre, int x, int relu)
{
    const param_entry *g = param(t, "%s.weight", pre), *b = param(t, "%s.bias", pre);
    const param_entry *m = param(t, "%s.running_mean", pre), *v = param(t, "%s.running_var", pre);
    if (t->fail) return -1;
    shape4 s = S(t, x);
    if (g->shape[0] != s.c) { fail(t, "%s.weight: %d channels, tensor has %d", pre, g->shape[0], s.c); return -1; }
    int y = x;
    if (t->train) {
        y = slot_new(t, s);
        int aux = slot_new(t, (shape4){1, 2 * s.c, 1, 1});
        if (aux < 0) return -1;
        batchnorm_fwd_train(D(t, x), s, P(t, g), P(t, b), P(t, m), P(t, v), BN_MOMENTUM, BN_EPS, D(t, y), D(t, aux),
                            D(t, aux) + s.c);
        node *nd = node_add(t, OP_BN, x, -1, y);
        if (nd) nd->w = g, nd->bias = b, nd->aux = aux, nd->relu = relu;
    } else {
        batchnorm_fwd_eval(D(t, x), s, P(t, g), P(t, b), P(t, m), P(t, v), BN_EPS, D(t, x));
    }
    if (relu) relu_fwd(D(t, y), shape4_numel(s), D(t, y));
    return y;
}

/* CBR `<pre>.conv` -> `<pre>.bn` -> ReLU. */
static int cbr(net *t, const char *pre, int x, int stride)
{
    char n1[MODEL_NAME_MAX + 16], n2[MODEL_NAME_MAX + 16];
    snprintf(n1, sizeof n1, "%s.conv", pre);
    snprintf(n2, sizeof n2, "%s.bn", pre);
    return bn(t, n2, conv(t, n1, 0, x, stride), 1);
}

static int unary(net *t, op_kind k, int x)
{
    if (t->fail) return -1;
    int y = slot_new(t, S(t, x));
    if (y < 0) return -1;
    size_t n = t->slots[x].numel;
    const float *a = D(t, x);
    float *o = D(t, y);
    if (k == OP_RELU) relu_fwd(a, n, o);
    else if (k == OP_SIGMOID) sigmoid_fwd(a, n, o);
    else for (size_t i = 0; i < n; i++) o[i] = 1.0f - a[i]; /* OP_ONEMINUS */
    node_add(t, k, x, -1, y);
    return y;
}

static int maxpool(net *t, int x)
{
    if (t->fail) return -1;
    shape4 xs = S(t, x), ys = {xs.n, xs.c, xs.h / 2, xs.w / 2};
    int y = slot_new(t, ys), aux = slot_new(t, ys); /* argmax: int32 in a float-sized slot */
    if (aux < 0) return -1;
    maxpool2_fwd(D(t, x), xs, D(t, y), (int32_t *)(void *)D(t, aux));
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
    upsample2_fwd(D(t, x), xs, D(t, y));
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
    concat_fwd(D(t, a), as.c, D(t, b), bs.c, as.n, as.h, as.w, D(t, y));
    node_add(t, OP_CONCAT, a, b, y);
    return y;
}

static int avgblock(net *t, int x, int g)
{
    if (t->fail) return -1;
    shape4 xs = S(t, x);
    int y = slot_new(t, (shape4){xs.n, xs.c, g, g});
    if (y < 0) return -1;
    avgpool_block_fwd(D(t, x), xs, g, D(t, y));
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
    avgpool_global_fwd(D(t, x), xs, D(t, y));
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
    linear_fwd(D(t, x), xs.n, in, P(t, w), P(t, b), w->shape[0], D(t, y));
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
    quadrant_crop(D(t, x), xs, q, D(t, y));
    node *nd = node_add(t, OP_QCROP, x, -1, y);
    if (nd) nd->q = q;
    return y;
}

/* Writes quadrant q of the (existing) slot e from x. */
static void qassemble(net *t, int x, int e, int q)
{
    if (t->fail) return;
    quadrant_assemble(D(t, x), S(t, e), q, D(t, e));
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
    if (k == OP_MULSP) mul_spatial_fwd(D(t, r), rs, D(t, a), D(t, y));
    else mul_channel_fwd(D(t, r), rs, D(t, a), D(t, y));
    node_add(t, k, r, a, y);
    return y;
}

static int add(net *t, int a, int b)
{
    if (t->fail) return -1;
    if (t->slots[a].numel != t->slots[b].numel) { fail(t, "add: sizes differ"); return -1; }
    int y = slot_new(t, S(t, a));
    if (y < 0) return -1;
    const float *pa = D(t, a), *pb = D(t, b);
    float *o = D(t, y);
    for (size_t i = 0; i < t->slots[a].numel; i++) o[i] = pa[i] + pb[i];
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
        int z = bn(t, b2, conv(t, c2, 0, bn(t, b1, conv(t, c1, 0, h, 1), 1), 1), 0);
        h = unary(t, OP_RELU, add(t, h, z));
    }
    h = cbr(t, "ferm.post.0", h, 1);
    h = cbr(t, "ferm.post.1", h, 1);
    h = cbr(t, "ferm.post.2", h, 1);
    t->logits = linear(t, "ferm.fc", avgglobal(t, h));
    if (!t->fail && S(t, t->logits).c != MODEL_CLASSES) fail(t, "ferm.fc: %d outputs, expected 7", S(t, t->logits).c);
}

net *net_create(model_params *p)
{
    if (!p || !p->data) return NULL;
    net *t = calloc(1, sizeof *t);
    if (t) t->p = p;
    return t;
}

void net_free(net *t)
{
    if (!t) return;
    for (int i = 0; i < t->nslots; i++) free(t->slots[i].data), free(t->slots[i].grad);
    free(t->slots);
    free(t->nodes);
    free(t->scratch);
    free(t->tmp);
    free(t->tmp2);
    free(t);
}

/* Training runs Winograd F(2x2) at most: at small batches the gradients are
 * ill-conditioned, and F(4x4)'s ~1e-5 per layer (fine for inference) took
 * fopm's gradients several times further from PyTorch than float32 PyTorch
 * is from float64. Returns the mode to restore. */
static int winograd_for(int train)
{
    int prev = ops_winograd();
    if (train && prev == OPS_WINOGRAD_AUTO) ops_set_winograd(OPS_WINOGRAD_F2);
    return prev;
}

int net_forward(net *t, const float *x, int n, int train)
{
    if (!t || !x || n <= 0) return -1;
    int wg = winograd_for(train);
    t->fail = 0;
    t->err[0] = '\0';
    t->nused = t->nnodes = 0;
    t->n = n;
    t->train = train;
    t->have_loss = 0;
    const int S0 = t->p->cfg.size;
    int xi = slot_new(t, (shape4){n, 3, S0, S0});
    if (xi < 0) return -1;
    memcpy(D(t, xi), x, t->slots[xi].numel * sizeof(float));
    run_forward(t, xi);
    ops_set_winograd(wg);
    if (t->fail) t->nnodes = 0;
    return t->fail ? -1 : 0;
}

const float *net_logits(const net *t) { return t->slots[t->logits].data; }
const float *net_occ(const net *t) { return t->slots[t->occ].data; }
const float *net_heat(const net *t) { return t->slots[t->heat].data; }
const char *net_error(const net *t) { return t ? t->err : "no net"; }

size_t net_bytes(const net *t)
{
    size_t b = (t->scratch_cap + t->tmp_cap + t->tmp2_cap) * sizeof(float) + ops_workspace_bytes();
    for (int i = 0; i < t->nslots; i++) b += t->slots[i].cap * sizeof(float) * (t->slots[i].grad ? 2 : 1);
    return b;
}

/* ---- losses and backward ------------------------------------------------- */

static int ensure_grad(net *t, int i)
{
    slot *s = &t->slots[i];
    if (!s->grad && !(s->grad = malloc((s->cap ? s->cap : 1) * sizeof(float)))) { fail(t, "out of memory"); return -1; }
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
    for (int i = 0; i < t->nused; i++) t->slots[i].has_grad = 0;
    int ids[3] = {t->occ, t->heat, t->logits};
    for (int k = 0; k < 3; k++)
        if (ensure_grad(t, ids[k])) return -1;
    slot *so = &t->slots[t->occ], *sh = &t->slots[t->heat], *sl = &t->slots[t->logits];
    out->lp = mse(so->data, occ_t, so->numel, NET_W_LP, so->grad);
    out->lm = mse(sh->data, heat_t, sh->numel, NET_W_LM, sh->grad);
    out->ld = softmax_ce(sl->data, t->n, MODEL_CLASSES, labels, NET_W_LD, sl->grad);
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
    if (d != s->grad)
        for (size_t k = 0; k < s->numel; k++) s->grad[k] += d[k];
    s->has_grad = 1;
}

static float *G(const param_entry *e, float *grad) { return e ? grad + e->offset : NULL; }

static void backward_node(net *t, const node *nd, float *grad)
{
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
        if (scratch_for(t, conv2d_scratch_floats(xs, k, nd->stride))) return;
        conv2d_bwd(x, xs, P(t, nd->w), oc, k, nd->stride, dy, da, G(nd->w, grad), G(nd->bias, grad), t->scratch);
        break;
    }
    case OP_BN: {
        const float *g = dy;
        if (nd->relu) { /* through the fused ReLU, from the output */
            relu_bwd(sy->data, dy, sy->numel, t->tmp2);
            g = t->tmp2;
        }
        const float *aux = D(t, nd->aux);
        /* da is the slot's own buffer or tmp, never tmp2 */
        batchnorm_bwd(x, xs, P(t, nd->w), aux, aux + xs.c, g, da, G(nd->w, grad), G(nd->bias, grad));
        break;
    }
    case OP_RELU: relu_bwd(sy->data, dy, nx, da); break;
    case OP_SIGMOID: sigmoid_bwd(sy->data, dy, nx, da); break;
    case OP_ONEMINUS: for (size_t i = 0; i < nx; i++) da[i] = -dy[i]; break;
    case OP_MAXPOOL: maxpool2_bwd((const int32_t *)(const void *)D(t, nd->aux), dy, sy->s, da, xs); break;
    case OP_UPSAMPLE: upsample2_bwd(dy, xs, da); break;
    case OP_CONCAT:
        db = dst(t, nd->b, 2);
        if (t->fail) return;
        concat_bwd(dy, xs.c, S(t, nd->b).c, xs.n, xs.h, xs.w, da, db);
        break;
    case OP_AVGBLOCK: avgpool_block_bwd(dy, xs, nd->g, da); break;
    case OP_AVGGLOBAL: avgpool_global_bwd(dy, xs, da); break;
    case OP_LINEAR:
        linear_bwd(x, xs.n, xs.c * xs.h * xs.w, P(t, nd->w), nd->w->shape[0], dy, da, G(nd->w, grad),
                   G(nd->bias, grad));
        break;
    case OP_QCROP:
        memset(da, 0, nx * sizeof(float));
        quadrant_assemble(dy, xs, nd->q, da);
        break;
    case OP_QASM: quadrant_crop(dy, sy->s, nd->q, da); break;
    case OP_MULSP:
    case OP_MULCH:
        db = dst(t, nd->b, 2);
        if (t->fail) return;
        if (nd->k == OP_MULSP) mul_spatial_bwd(x, xs, D(t, nd->b), dy, da, db);
        else mul_channel_bwd(x, xs, D(t, nd->b), dy, da, db);
        break;
    case OP_ADD:
        db = dst(t, nd->b, 2);
        if (t->fail) return;
        memcpy(da, dy, nx * sizeof(float));
        memcpy(db, dy, nx * sizeof(float));
        break;
    }
    land(t, nd->a, da);
    if (nd->b >= 0) land(t, nd->b, db);
}

int net_backward(net *t, float *grad)
{
    if (!t || !grad || !t->have_loss) return -1;
    memset(grad, 0, t->p->total * sizeof(float));
    /* Both temporaries (tmp2 also holds the BN+ReLU product) fit the largest slot. */
    size_t big = 0;
    for (int i = 0; i < t->nused; i++)
        if (t->slots[i].numel > big) big = t->slots[i].numel;
    if (grow((void **)&t->tmp, &t->tmp_cap, big, sizeof(float)) ||
        grow((void **)&t->tmp2, &t->tmp2_cap, big, sizeof(float))) {
        fail(t, "out of memory");
        return -1;
    }
    int wg = winograd_for(1);
    for (int i = t->nnodes - 1; i >= 0 && !t->fail; i--) {
        const node *nd = &t->nodes[i];
        if (!t->slots[nd->y].has_grad) continue; /* output does not reach the loss */
        backward_node(t, nd, grad);
    }
    ops_set_winograd(wg);
    t->have_loss = 0; /* one backward per loss */
    return t->fail ? -1 : 0;
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
