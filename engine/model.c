/* model.c: configuration, parameter table and initialisation of MODEL.md. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/util.h"

int model_config_named(const char *name, model_config *c)
{
    if (!strcmp(name, "fopm")) { c->size = 224; c->width = 1.0; return 0; }
    if (!strcmp(name, "fopm-tiny")) { c->size = 64; c->width = 0.125; return 0; }
    return -1;
}

int model_config_check(const model_config *c, char *err, size_t errlen)
{
    if (c->size <= 0 || c->size % 32 != 0 || c->size > 4096) {
        snprintf(err, errlen, "size %d: must be a positive multiple of 32 up to 4096", c->size);
        return -1;
    }
    if (!(c->width > 0.0 && c->width <= 16.0)) {
        snprintf(err, errlen, "width %g: must be > 0 and <= 16", c->width);
        return -1;
    }
    return 0;
}

int model_ch(const model_config *cfg, int c)
{
    int v = (int)floor(c * cfg->width / 8.0 + 0.5) * 8;
    return v < 8 ? 8 : v;
}

typedef struct {
    model_params *p;
    int cap;
} builder;

static void add(builder *b, const char *prefix, const char *suffix, param_kind kind, param_init init,
                int fan_in, int ndim, int s0, int s1, int s2, int s3)
{
    model_params *p = b->p;
    if (p->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        p->entries = xrealloc(p->entries, (size_t)b->cap * sizeof *p->entries);
    }
    param_entry *e = &p->entries[p->n++];
    memset(e, 0, sizeof *e);
    int len = snprintf(e->name, sizeof e->name, "%s.%s", prefix, suffix);
    if (len < 0 || (size_t)len >= sizeof e->name) {
        fprintf(stderr, "model: tensor name too long: %s.%s\n", prefix, suffix);
        abort();
    }
    e->ndim = ndim;
    int s[4] = {s0, s1, s2, s3};
    e->numel = 1;
    for (int i = 0; i < MODEL_MAX_NDIM; i++) {
        e->shape[i] = i < ndim ? s[i] : 1;
        if (i < ndim) e->numel *= (size_t)s[i];
    }
    e->offset = p->total;
    p->total += e->numel;
    e->kind = kind;
    e->trainable = kind != PK_BN_RUNNING_MEAN && kind != PK_BN_RUNNING_VAR;
    e->init = init;
    e->fan_in = fan_in;
}

static void bn(builder *b, const char *prefix, const char *bnname, int c)
{
    char pre[MODEL_NAME_MAX];
    snprintf(pre, sizeof pre, "%s.%s", prefix, bnname);
    add(b, pre, "weight", PK_BN_WEIGHT, PI_ONE, 0, 1, c, 0, 0, 0);
    add(b, pre, "bias", PK_BN_BIAS, PI_ZERO, 0, 1, c, 0, 0, 0);
    add(b, pre, "running_mean", PK_BN_RUNNING_MEAN, PI_ZERO, 0, 1, c, 0, 0, 0);
    add(b, pre, "running_var", PK_BN_RUNNING_VAR, PI_ONE, 0, 1, c, 0, 0, 0);
}

/* conv (no bias) under prefix.convname, BN under prefix.bnname */
static void conv_bn(builder *b, const char *prefix, const char *convname, const char *bnname, int cin,
                    int cout, int k)
{
    char pre[MODEL_NAME_MAX];
    snprintf(pre, sizeof pre, "%s.%s", prefix, convname);
    add(b, pre, "weight", PK_WEIGHT, PI_KAIMING, cin * k * k, 4, cout, cin, k, k);
    bn(b, prefix, bnname, cout);
}

static void cbr(builder *b, const char *prefix, int cin, int cout, int k)
{
    conv_bn(b, prefix, "conv", "bn", cin, cout, k);
}

static void head_conv(builder *b, const char *prefix, int cin, int cout)
{
    add(b, prefix, "weight", PK_WEIGHT, PI_UNIFORM, cin, 4, cout, cin, 1, 1);
    add(b, prefix, "bias", PK_BIAS, PI_UNIFORM, cin, 1, cout, 0, 0, 0);
}

static void linear(builder *b, const char *prefix, int in, int out)
{
    add(b, prefix, "weight", PK_WEIGHT, PI_UNIFORM, in, 2, out, in, 0, 0);
    add(b, prefix, "bias", PK_BIAS, PI_UNIFORM, in, 1, out, 0, 0, 0);
}

int model_params_init(model_params *p, const model_config *cfg)
{
    char err[128];
    memset(p, 0, sizeof *p);
    if (model_config_check(cfg, err, sizeof err) != 0) return -1;
    p->cfg = *cfg;
    builder b = {p, 0};
    const int c64 = model_ch(cfg, 64), c128 = model_ch(cfg, 128), c224 = model_ch(cfg, 224),
              c256 = model_ch(cfg, 256), c512 = model_ch(cfg, 512), g = model_gpool(cfg);
    char pre[MODEL_NAME_MAX];

    /* FOPM */
    cbr(&b, "fopm.g1.0", 3, c64, 3);
    cbr(&b, "fopm.g1.1", c64, c64, 3);
    cbr(&b, "fopm.g2.0", c64, c128, 3);
    cbr(&b, "fopm.g2.1", c128, c128, 3);
    cbr(&b, "fopm.g3.0", c128, c256, 3);
    cbr(&b, "fopm.g3.1", c256, c256, 3);
    cbr(&b, "fopm.g3.2", c256, c512, 1);

    /* U-Net */
    cbr(&b, "unet.inp", c512, c64, 1);
    cbr(&b, "unet.enc1.0", c64, c64, 3);
    cbr(&b, "unet.enc1.1", c64, c64, 3);
    cbr(&b, "unet.enc2.0", c64, c128, 3);
    cbr(&b, "unet.enc2.1", c128, c128, 3);
    cbr(&b, "unet.mid.0", c128, c256, 3);
    cbr(&b, "unet.mid.1", c256, c256, 3);
    cbr(&b, "unet.dec2.0", c256 + c128, c128, 3);
    cbr(&b, "unet.dec2.1", c128, c128, 3);
    cbr(&b, "unet.dec1.0", c128 + c64, c64, 3);
    cbr(&b, "unet.dec1.1", c64, c64, 3);
    head_conv(&b, "unet.occ", c64, 1);
    head_conv(&b, "unet.lmk", c64, MODEL_LANDMARKS);

    /* EFFM */
    cbr(&b, "effm.reduce", c512, c256, 1);
    linear(&b, "effm.geo", MODEL_LANDMARKS * g * g, 128);
    for (int q = 0; q < 4; q++) {
        snprintf(pre, sizeof pre, "effm.pg.%d.feat", q);
        cbr(&b, pre, c256, c128, 3);
        snprintf(pre, sizeof pre, "effm.pg.%d.att", q);
        head_conv(&b, pre, c128 + 1, 1);
    }
    for (int q = 0; q < 4; q++) {
        snprintf(pre, sizeof pre, "effm.frn.%d.fc1", q);
        linear(&b, pre, c128, c128);
        snprintf(pre, sizeof pre, "effm.frn.%d.fc2", q);
        linear(&b, pre, c128, c128);
    }
    for (int q = 0; q < 4; q++) {
        snprintf(pre, sizeof pre, "effm.gate.%d", q);
        linear(&b, pre, c128 + 128, c128);
    }
    cbr(&b, "effm.glob", c256, c128, 1);

    /* FERM */
    cbr(&b, "ferm.enc.0", 2 * c128, c128, 3);
    cbr(&b, "ferm.enc.1", c128, c128, 3);
    cbr(&b, "ferm.enc.2", c128, c224, 3);
    for (int r = 0; r < 3; r++) {
        snprintf(pre, sizeof pre, "ferm.res.%d", r);
        conv_bn(&b, pre, "conv1", "bn1", c224, c224, 3);
        conv_bn(&b, pre, "conv2", "bn2", c224, c224, 3);
    }
    cbr(&b, "ferm.post.0", c224, c256, 3);
    cbr(&b, "ferm.post.1", c256, c256, 3);
    cbr(&b, "ferm.post.2", c256, c512, 1);
    linear(&b, "ferm.fc", c512, MODEL_CLASSES);

    p->data = xcalloc(p->total, sizeof *p->data);
    return 0;
}

void model_params_free(model_params *p)
{
    free(p->entries);
    free(p->data);
    memset(p, 0, sizeof *p);
}

void model_params_init_weights(model_params *p, uint64_t seed)
{
    for (int i = 0; i < p->n; i++) {
        const param_entry *e = &p->entries[i];
        float *d = p->data + e->offset;
        rng_t r;
        rng_seed(&r, seed, (uint64_t)i);
        switch (e->init) {
        case PI_ONE:
            for (size_t j = 0; j < e->numel; j++) d[j] = 1.0f;
            break;
        case PI_ZERO:
            for (size_t j = 0; j < e->numel; j++) d[j] = 0.0f;
            break;
        case PI_UNIFORM: {
            double bound = 1.0 / sqrt((double)e->fan_in);
            for (size_t j = 0; j < e->numel; j++) d[j] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
            break;
        }
        case PI_KAIMING: {
            /* Box-Muller, both values of each pair used. */
            double std = sqrt(2.0 / (double)e->fan_in);
            const double two_pi = 6.283185307179586476925286766559;
            for (size_t j = 0; j < e->numel; j += 2) {
                double u1 = 1.0 - rng_uniform(&r); /* (0, 1] */
                double u2 = rng_uniform(&r);
                double rad = sqrt(-2.0 * log(u1));
                d[j] = (float)(std * rad * cos(two_pi * u2));
                if (j + 1 < e->numel) d[j + 1] = (float)(std * rad * sin(two_pi * u2));
            }
            break;
        }
        }
    }
}

const param_entry *model_find(const model_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->entries[i].name, name)) return &p->entries[i];
    return NULL;
}

size_t model_count_params(const model_params *p, const char *prefix)
{
    size_t n = 0, pl = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < p->n; i++) {
        const param_entry *e = &p->entries[i];
        if (e->trainable && (pl == 0 || !strncmp(e->name, prefix, pl))) n += e->numel;
    }
    return n;
}
