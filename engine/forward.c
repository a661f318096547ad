/* forward.c: eval-mode forward of MODEL.md "Forward" (see forward.h). */
#include "forward.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

#define BN_EPS 1e-5f
#define MAX_BUFS 512

typedef struct {
    const model_params *p;
    void *bufs[MAX_BUFS];
    int nbufs;
    int fail;
} fctx;

static float *falloc(fctx *c, size_t n)
{
    if (c->fail) return NULL;
    if (c->nbufs >= MAX_BUFS) { c->fail = 1; return NULL; }
    float *b = malloc((n ? n : 1) * sizeof(float));
    if (!b) { c->fail = 1; return NULL; }
    c->bufs[c->nbufs++] = b;
    return b;
}

static const param_entry *ent(fctx *c, const char *fmt, ...)
{
    char name[MODEL_NAME_MAX + 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const param_entry *e = model_find(c->p, name);
    if (!e) c->fail = 1;
    return e;
}

static const float *dat(fctx *c, const param_entry *e) { return e ? c->p->data + e->offset : NULL; }

/* conv (k, stride s, padding k/2) with optional bias; weight from `<pre>.weight`. */
static float *conv(fctx *c, const char *pre, int has_bias, const float *x, shape4 xs, int stride, shape4 *ys)
{
    const param_entry *w = ent(c, "%s.weight", pre);
    const param_entry *b = has_bias ? ent(c, "%s.bias", pre) : NULL;
    if (c->fail || !x) return NULL;
    int oc = w->shape[0], k = w->shape[2];
    if (w->shape[1] != xs.c) { c->fail = 1; return NULL; }
    *ys = conv2d_out_shape(xs, oc, k, stride);
    float *y = falloc(c, shape4_numel(*ys));
    size_t sn = conv2d_scratch_floats(xs, k, stride);
    float *scr = malloc((sn ? sn : 1) * sizeof(float));
    if (!y || !scr) { free(scr); c->fail = 1; return NULL; }
    conv2d_fwd(x, xs, dat(c, w), b ? dat(c, b) : NULL, oc, k, stride, y, scr);
    free(scr);
    return y;
}

/* batch norm (eval) in place, tensors `<pre>.{weight,bias,running_mean,running_var}`. */
static void bn(fctx *c, const char *pre, float *x, shape4 s)
{
    const param_entry *g = ent(c, "%s.weight", pre), *b = ent(c, "%s.bias", pre);
    const param_entry *m = ent(c, "%s.running_mean", pre), *v = ent(c, "%s.running_var", pre);
    if (c->fail || !x) return;
    batchnorm_fwd_eval(x, s, dat(c, g), dat(c, b), dat(c, m), dat(c, v), BN_EPS, x);
}

/* CBR `<pre>.conv` + `<pre>.bn` + relu. */
static float *cbr(fctx *c, const char *pre, const float *x, shape4 xs, int stride, shape4 *ys)
{
    char n1[MODEL_NAME_MAX + 16], n2[MODEL_NAME_MAX + 16];
    snprintf(n1, sizeof n1, "%s.conv", pre);
    snprintf(n2, sizeof n2, "%s.bn", pre);
    float *y = conv(c, n1, 0, x, xs, stride, ys);
    if (!y) return NULL;
    bn(c, n2, y, *ys);
    if (c->fail) return NULL;
    relu_fwd(y, shape4_numel(*ys), y);
    return y;
}

static float *linear(fctx *c, const char *pre, const float *x, int n, int in, int *out)
{
    const param_entry *w = ent(c, "%s.weight", pre), *b = ent(c, "%s.bias", pre);
    if (c->fail || !x) return NULL;
    if (w->shape[1] != in) { c->fail = 1; return NULL; }
    *out = w->shape[0];
    float *y = falloc(c, (size_t)n * (size_t)*out);
    if (!y) return NULL;
    linear_fwd(x, n, in, dat(c, w), dat(c, b), *out, y);
    return y;
}

static float *maxpool(fctx *c, const float *x, shape4 xs, shape4 *ys)
{
    if (c->fail || !x) return NULL;
    *ys = (shape4){xs.n, xs.c, xs.h / 2, xs.w / 2};
    float *y = falloc(c, shape4_numel(*ys));
    int32_t *am = malloc((shape4_numel(*ys) ? shape4_numel(*ys) : 1) * sizeof(int32_t));
    if (!y || !am) { free(am); c->fail = 1; return NULL; }
    maxpool2_fwd(x, xs, y, am);
    free(am);
    return y;
}

/* cat[up2(a), b] along channels; a at half b's resolution. */
static float *upcat(fctx *c, const float *a, shape4 as, const float *b, shape4 bs, shape4 *ys)
{
    if (c->fail || !a || !b) return NULL;
    shape4 us = {as.n, as.c, as.h * 2, as.w * 2};
    if (us.h != bs.h || us.w != bs.w) { c->fail = 1; return NULL; }
    float *u = falloc(c, shape4_numel(us));
    *ys = (shape4){bs.n, as.c + bs.c, bs.h, bs.w};
    float *y = falloc(c, shape4_numel(*ys));
    if (!u || !y) return NULL;
    upsample2_fwd(a, as, u);
    concat_fwd(u, as.c, b, bs.c, bs.n, bs.h, bs.w, y);
    return y;
}

static void run_forward(fctx *c, const float *x, int n, float *logits, float *occ_out, float *heat_out)
{
    const model_config *cfg = &c->p->cfg;
    const int S = cfg->size, G = model_grid(cfg), g = model_gpool(cfg);
    char nm[MODEL_NAME_MAX];
    shape4 s0 = {n, 3, S, S}, s1, s2;
    float *t, *u;

    /* FOPM stem */
    t = cbr(c, "fopm.g1.0", x, s0, 2, &s1);
    t = cbr(c, "fopm.g1.1", t, s1, 1, &s2);
    t = cbr(c, "fopm.g2.0", t, s2, 1, &s1);
    t = cbr(c, "fopm.g2.1", t, s1, 1, &s2);
    t = maxpool(c, t, s2, &s1);
    t = cbr(c, "fopm.g3.0", t, s1, 1, &s2);
    t = cbr(c, "fopm.g3.1", t, s2, 1, &s1);
    shape4 ps;
    float *P = cbr(c, "fopm.g3.2", t, s1, 1, &ps);
    if (c->fail) return;
    if (ps.h != G || ps.w != G) { c->fail = 1; return; }

    /* U-Net */
    shape4 e1s, e2s, ms, d2s, d1s;
    t = cbr(c, "unet.inp", P, ps, 1, &s1);
    t = cbr(c, "unet.enc1.0", t, s1, 1, &s2);
    float *e1 = cbr(c, "unet.enc1.1", t, s2, 1, &e1s);
    t = maxpool(c, e1, e1s, &s1);
    t = cbr(c, "unet.enc2.0", t, s1, 1, &s2);
    float *e2 = cbr(c, "unet.enc2.1", t, s2, 1, &e2s);
    t = maxpool(c, e2, e2s, &s1);
    t = cbr(c, "unet.mid.0", t, s1, 1, &s2);
    float *m = cbr(c, "unet.mid.1", t, s2, 1, &ms);
    t = upcat(c, m, ms, e2, e2s, &s1);
    t = cbr(c, "unet.dec2.0", t, s1, 1, &s2);
    float *d2 = cbr(c, "unet.dec2.1", t, s2, 1, &d2s);
    t = upcat(c, d2, d2s, e1, e1s, &s1);
    t = cbr(c, "unet.dec1.0", t, s1, 1, &s2);
    float *d1 = cbr(c, "unet.dec1.1", t, s2, 1, &d1s);
    shape4 os, hs;
    float *occ = conv(c, "unet.occ", 1, d1, d1s, 1, &os);
    float *heat = conv(c, "unet.lmk", 1, d1, d1s, 1, &hs);
    if (c->fail) return;
    if (os.c != 1 || hs.c != MODEL_LANDMARKS) { c->fail = 1; return; }
    sigmoid_fwd(occ, shape4_numel(os), occ);
    memcpy(occ_out, occ, shape4_numel(os) * sizeof(float));
    memcpy(heat_out, heat, shape4_numel(hs) * sizeof(float));

    /* EFFM */
    shape4 fs;
    float *Fm = cbr(c, "effm.reduce", P, ps, 1, &fs);
    float *vis = falloc(c, shape4_numel(os));
    float *hp = falloc(c, (size_t)n * MODEL_LANDMARKS * (size_t)g * (size_t)g);
    if (c->fail) return;
    for (size_t i = 0; i < shape4_numel(os); i++) vis[i] = 1.0f - occ[i];
    avgpool_block_fwd(heat, hs, g, hp);
    int geo_n;
    float *geo = linear(c, "effm.geo", hp, n, MODEL_LANDMARKS * g * g, &geo_n);
    if (c->fail) return;
    relu_fwd(geo, (size_t)n * geo_n, geo);

    const int H2 = G / 2;
    shape4 fqs = {n, fs.c, H2, H2}, vqs = {n, 1, H2, H2};
    float *fq = falloc(c, shape4_numel(fqs));
    float *vq = falloc(c, shape4_numel(vqs));
    float *E = NULL;
    shape4 es = {0, 0, 0, 0};
    for (int q = 0; q < 4 && !c->fail; q++) {
        quadrant_crop(Fm, fs, q, fq);
        quadrant_crop(vis, os, q, vq);
        shape4 rs, cs, as;
        snprintf(nm, sizeof nm, "effm.pg.%d.feat", q);
        float *R = cbr(c, nm, fq, fqs, 1, &rs);
        if (c->fail) return;
        cs = (shape4){n, rs.c + 1, H2, H2};
        float *rc = falloc(c, shape4_numel(cs));
        if (c->fail) return;
        concat_fwd(R, rs.c, vq, 1, n, H2, H2, rc);
        snprintf(nm, sizeof nm, "effm.pg.%d.att", q);
        float *a = conv(c, nm, 1, rc, cs, 1, &as);
        if (c->fail) return;
        sigmoid_fwd(a, shape4_numel(as), a);
        float *Rt = falloc(c, shape4_numel(rs));
        float *v = falloc(c, (size_t)n * rs.c);
        if (c->fail) return;
        mul_spatial_fwd(R, rs, a, Rt);
        avgpool_global_fwd(Rt, rs, v);
        int o1, o2, o3;
        snprintf(nm, sizeof nm, "effm.frn.%d.fc1", q);
        float *h1 = linear(c, nm, v, n, rs.c, &o1);
        if (c->fail) return;
        relu_fwd(h1, (size_t)n * o1, h1);
        snprintf(nm, sizeof nm, "effm.frn.%d.fc2", q);
        float *h2 = linear(c, nm, h1, n, o1, &o2);
        if (c->fail) return;
        if (o2 != rs.c) { c->fail = 1; return; }
        for (size_t i = 0; i < (size_t)n * o2; i++) h2[i] += v[i];
        relu_fwd(h2, (size_t)n * o2, h2); /* u */
        int ug = o2 + geo_n;
        float *cat = falloc(c, (size_t)n * ug);
        if (c->fail) return;
        for (int i = 0; i < n; i++) {
            memcpy(cat + (size_t)i * ug, h2 + (size_t)i * o2, (size_t)o2 * sizeof(float));
            memcpy(cat + (size_t)i * ug + o2, geo + (size_t)i * geo_n, (size_t)geo_n * sizeof(float));
        }
        snprintf(nm, sizeof nm, "effm.gate.%d", q);
        float *sg = linear(c, nm, cat, n, ug, &o3);
        if (c->fail) return;
        if (o3 != rs.c) { c->fail = 1; return; }
        sigmoid_fwd(sg, (size_t)n * o3, sg);
        float *Eq = falloc(c, shape4_numel(rs));
        if (!E) {
            es = (shape4){n, rs.c, G, G};
            E = falloc(c, shape4_numel(es));
        }
        if (c->fail) return;
        mul_channel_fwd(Rt, rs, sg, Eq);
        quadrant_assemble(Eq, es, q, E);
    }
    shape4 gls;
    float *gl = cbr(c, "effm.glob", Fm, fs, 1, &gls);
    if (c->fail) return;
    shape4 xs = {n, es.c + gls.c, G, G};
    float *X = falloc(c, shape4_numel(xs));
    if (c->fail) return;
    concat_fwd(E, es.c, gl, gls.c, n, G, G, X);

    /* FERM */
    t = cbr(c, "ferm.enc.0", X, xs, 2, &s1);
    t = cbr(c, "ferm.enc.1", t, s1, 1, &s2);
    t = cbr(c, "ferm.enc.2", t, s2, 2, &s1);
    for (int r = 0; r < 3 && !c->fail; r++) {
        char p1[MODEL_NAME_MAX];
        snprintf(p1, sizeof p1, "ferm.res.%d.conv1", r);
        u = conv(c, p1, 0, t, s1, 1, &s2);
        snprintf(p1, sizeof p1, "ferm.res.%d.bn1", r);
        bn(c, p1, u, s2);
        if (c->fail) return;
        relu_fwd(u, shape4_numel(s2), u);
        shape4 s3;
        snprintf(p1, sizeof p1, "ferm.res.%d.conv2", r);
        float *w2 = conv(c, p1, 0, u, s2, 1, &s3);
        snprintf(p1, sizeof p1, "ferm.res.%d.bn2", r);
        bn(c, p1, w2, s3);
        if (c->fail) return;
        if (shape4_numel(s3) != shape4_numel(s1)) { c->fail = 1; return; }
        for (size_t i = 0; i < shape4_numel(s3); i++) w2[i] += t[i];
        relu_fwd(w2, shape4_numel(s3), w2);
        t = w2;
    }
    t = cbr(c, "ferm.post.0", t, s1, 1, &s2);
    t = cbr(c, "ferm.post.1", t, s2, 1, &s1);
    t = cbr(c, "ferm.post.2", t, s1, 1, &s2);
    if (c->fail) return;
    float *gp = falloc(c, (size_t)n * s2.c);
    if (c->fail) return;
    avgpool_global_fwd(t, s2, gp);
    int k;
    float *lg = linear(c, "ferm.fc", gp, n, s2.c, &k);
    if (c->fail) return;
    if (k != MODEL_CLASSES) { c->fail = 1; return; }
    memcpy(logits, lg, (size_t)n * k * sizeof(float));
}

int model_forward_eval(const model_params *p, const float *x, int n, float *logits, float *occ, float *heat)
{
    if (!p || !x || n <= 0 || !logits || !occ || !heat) return -1;
    fctx *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->p = p;
    run_forward(c, x, n, logits, occ, heat);
    int rc = c->fail ? -1 : 0;
    for (int i = 0; i < c->nbufs; i++) free(c->bufs[i]);
    free(c);
    return rc;
}
