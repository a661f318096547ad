/* Unit tests of the engine's first layer: configurations, the parameter table
 * of MODEL.md (names, shapes, exact parameter counts), initialisation, and
 * safetensors writing and untrusted reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/util.h"
#include "../engine/model.h"
#include "../engine/safetensors.h"

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/test_engine.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void init_named(model_params *p, const char *name)
{
    model_config c;
    assert_int_equal(model_config_named(name, &c), 0);
    assert_int_equal(model_params_init(p, &c), 0);
}

/* ---- configuration and table ---- */

static void test_config(void **state)
{
    (void)state;
    model_config c;
    assert_int_equal(model_config_named("fopm", &c), 0);
    assert_int_equal(c.size, 224);
    assert_true(c.width == 1.0);
    assert_int_equal(model_grid(&c), 56);
    assert_int_equal(model_gpool(&c), 7);
    assert_int_equal(model_ch(&c, 64), 64);
    assert_int_equal(model_ch(&c, 224), 224);
    assert_int_equal(model_ch(&c, 512), 512);
    assert_int_equal(model_config_named("fopm-tiny", &c), 0);
    assert_int_equal(c.size, 64);
    assert_int_equal(model_grid(&c), 16);
    assert_int_equal(model_gpool(&c), 2);
    assert_int_equal(model_ch(&c, 64), 8);
    assert_int_equal(model_ch(&c, 128), 16);
    assert_int_equal(model_ch(&c, 224), 32); /* 224/8*0.125 = 3.5 -> rounds half up to 4 */
    assert_int_equal(model_ch(&c, 256), 32);
    assert_int_equal(model_ch(&c, 512), 64);
    model_config h = {224, 0.5};
    assert_int_equal(model_ch(&h, 224), 112);
    model_config s = {224, 0.01};
    assert_int_equal(model_ch(&s, 64), 8); /* floor at 8 */
    assert_int_equal(model_config_named("resnet", &c), -1);

    char err[128];
    model_params p;
    model_config bad1 = {100, 1.0}, bad2 = {224, 0.0}, bad3 = {0, 1.0}, bad4 = {224, -1.0};
    assert_int_equal(model_config_check(&bad1, err, sizeof err), -1);
    assert_non_null(strstr(err, "multiple of 32"));
    assert_int_equal(model_config_check(&bad2, err, sizeof err), -1);
    assert_int_equal(model_config_check(&bad3, err, sizeof err), -1);
    assert_int_equal(model_config_check(&bad4, err, sizeof err), -1);
    assert_int_equal(model_params_init(&p, &bad1), -1);
    assert_null(p.data);
    model_config ok = {96, 0.25};
    assert_int_equal(model_params_init(&p, &ok), 0);
    model_params_free(&p);
}

static void test_counts_fopm(void **state)
{
    (void)state;
    model_params p;
    init_named(&p, "fopm");
    assert_int_equal(model_count_params(&p, NULL), 9927572);
    assert_int_equal(model_count_params(&p, "fopm."), 1278400);
    assert_int_equal(model_count_params(&p, "unet."), 1956869);
    assert_int_equal(model_count_params(&p, "effm."), 2036104);
    assert_int_equal(model_count_params(&p, "ferm."), 4656199);
    /* buffers: every BN has running mean and var */
    size_t bufs = 0, nbn = 0;
    for (int i = 0; i < p.n; i++) {
        if (!p.entries[i].trainable) bufs += p.entries[i].numel;
        if (p.entries[i].kind == PK_BN_RUNNING_VAR) nbn++;
    }
    assert_int_equal(p.total, 9927572 + bufs);
    assert_int_equal(nbn, 7 + 11 + 1 + 4 + 1 + 3 + 6 + 3);
    model_params_free(&p);
}

static void test_counts_tiny(void **state)
{
    (void)state;
    model_params p;
    init_named(&p, "fopm-tiny");
    assert_int_equal(model_count_params(&p, NULL), 208100);
    assert_int_equal(model_count_params(&p, "fopm.") + model_count_params(&p, "unet.") +
                         model_count_params(&p, "effm.") + model_count_params(&p, "ferm."),
                     208100);
    assert_int_equal(model_count_params(&p, "fopm."), 20472);
    assert_int_equal(model_count_params(&p, "unet."), 31421);
    assert_int_equal(model_count_params(&p, "effm."), 67688);
    assert_int_equal(model_count_params(&p, "ferm."), 88519);
    model_params_free(&p);
}

static void expect_shape(const model_params *p, const char *name, int ndim, int s0, int s1, int s2, int s3)
{
    const param_entry *e = model_find(p, name);
    if (!e) fail_msg("no tensor %s", name);
    int s[4] = {s0, s1, s2, s3};
    assert_int_equal(e->ndim, ndim);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        assert_int_equal(e->shape[d], s[d]);
        numel *= (size_t)s[d];
    }
    assert_int_equal(e->numel, numel);
}

static void test_shapes(void **state)
{
    (void)state;
    model_params p;
    init_named(&p, "fopm");
    expect_shape(&p, "fopm.g1.0.conv.weight", 4, 64, 3, 3, 3);
    expect_shape(&p, "fopm.g1.0.bn.running_var", 1, 64, 0, 0, 0);
    expect_shape(&p, "fopm.g3.2.conv.weight", 4, 512, 256, 1, 1);
    expect_shape(&p, "unet.dec2.0.conv.weight", 4, 128, 384, 3, 3);
    expect_shape(&p, "unet.occ.weight", 4, 1, 64, 1, 1);
    expect_shape(&p, "unet.lmk.bias", 1, 68, 0, 0, 0);
    expect_shape(&p, "effm.geo.weight", 2, 128, 68 * 7 * 7, 0, 0);
    expect_shape(&p, "effm.pg.3.att.weight", 4, 1, 129, 1, 1);
    expect_shape(&p, "effm.pg.0.att.bias", 1, 1, 0, 0, 0);
    expect_shape(&p, "effm.frn.2.fc2.weight", 2, 128, 128, 0, 0);
    expect_shape(&p, "effm.gate.1.weight", 2, 128, 256, 0, 0);
    expect_shape(&p, "ferm.enc.0.conv.weight", 4, 128, 256, 3, 3);
    expect_shape(&p, "ferm.res.2.conv2.weight", 4, 224, 224, 3, 3);
    expect_shape(&p, "ferm.res.0.bn1.running_mean", 1, 224, 0, 0, 0);
    expect_shape(&p, "ferm.fc.weight", 2, 7, 512, 0, 0);
    expect_shape(&p, "ferm.fc.bias", 1, 7, 0, 0, 0);
    assert_null(model_find(&p, "fopm.g1.0.conv.bias")); /* CBR convs have no bias */
    assert_null(model_find(&p, "fopm.g1.0.bn.num_batches_tracked"));
    assert_null(model_find(&p, "nope"));
    /* table: contiguous offsets, unique names, running stats not trainable */
    size_t off = 0;
    for (int i = 0; i < p.n; i++) {
        const param_entry *e = &p.entries[i];
        assert_int_equal(e->offset, off);
        off += e->numel;
        assert_true(model_find(&p, e->name) == e);
        int buf = strstr(e->name, "running_") != NULL;
        assert_int_equal(e->trainable, !buf);
    }
    assert_int_equal(off, p.total);
    model_params_free(&p);

    init_named(&p, "fopm-tiny");
    expect_shape(&p, "unet.inp.conv.weight", 4, 8, 64, 1, 1);
    expect_shape(&p, "effm.geo.weight", 2, 128, 68 * 2 * 2, 0, 0);
    expect_shape(&p, "effm.gate.0.weight", 2, 16, 16 + 128, 0, 0);
    expect_shape(&p, "ferm.fc.weight", 2, 7, 64, 0, 0);
    model_params_free(&p);
}

/* ---- init ---- */

static void test_init(void **state)
{
    (void)state;
    model_params a, b;
    init_named(&a, "fopm");
    init_named(&b, "fopm");
    model_params_init_weights(&a, 42);
    model_params_init_weights(&b, 42);
    assert_memory_equal(a.data, b.data, a.total * sizeof(float));

    /* kaiming: the biggest conv, 224*224*9 = 451,584 values */
    const param_entry *e = model_find(&a, "ferm.res.1.conv1.weight");
    double s = 0, s2 = 0;
    for (size_t i = 0; i < e->numel; i++) {
        double v = a.data[e->offset + i];
        s += v;
        s2 += v * v;
    }
    double mean = s / e->numel, sd = sqrt(s2 / e->numel - mean * mean), want = sqrt(2.0 / (224 * 9));
    assert_true(fabs(sd - want) < 0.05 * want);
    assert_true(fabs(mean) < 0.01 * want);

    /* uniform heads and linears: within +-1/sqrt(fan_in), spread out */
    const char *uni[] = {"unet.lmk.weight", "effm.geo.weight", "effm.geo.bias", "effm.pg.1.att.weight",
                         "ferm.fc.weight"};
    int fan[] = {64, 68 * 49, 68 * 49, 129, 512};
    for (int k = 0; k < 5; k++) {
        e = model_find(&a, uni[k]);
        double bound = 1.0 / sqrt(fan[k]), mx = 0;
        for (size_t i = 0; i < e->numel; i++) {
            double v = fabs(a.data[e->offset + i]);
            assert_true(v <= bound);
            if (v > mx) mx = v;
        }
        assert_true(mx > 0.8 * bound);
    }
    e = model_find(&a, "effm.geo.weight");
    s = s2 = 0;
    for (size_t i = 0; i < e->numel; i++) s2 += (double)a.data[e->offset + i] * a.data[e->offset + i];
    double want_u = (1.0 / (68 * 49)) / 3.0;
    assert_true(fabs(s2 / e->numel - want_u) < 0.05 * want_u);

    /* BN exact */
    for (int i = 0; i < a.n; i++) {
        e = &a.entries[i];
        float want_v = -1;
        if (e->kind == PK_BN_WEIGHT || e->kind == PK_BN_RUNNING_VAR) want_v = 1.0f;
        if (e->kind == PK_BN_BIAS || e->kind == PK_BN_RUNNING_MEAN) want_v = 0.0f;
        if (want_v < 0) continue;
        for (size_t j = 0; j < e->numel; j++) assert_true(a.data[e->offset + j] == want_v);
    }

    /* another seed differs; a tensor's values do not depend on the rest of the table */
    model_params_init_weights(&b, 43);
    assert_true(memcmp(a.data, b.data, a.total * sizeof(float)) != 0);
    model_params t;
    model_config tc = {224, 1.0};
    assert_int_equal(model_params_init(&t, &tc), 0);
    model_params_init_weights(&t, 42);
    e = model_find(&t, "fopm.g1.0.conv.weight");
    assert_memory_equal(t.data + e->offset, a.data + model_find(&a, e->name)->offset, e->numel * 4);
    model_params_free(&t);
    model_params_free(&a);
    model_params_free(&b);
}

/* ---- safetensors ---- */

static unsigned char *slurp(const char *path, size_t *n)
{
    char err[256];
    char *b = read_file(path, n, (size_t)1 << 30, err, sizeof err);
    if (!b) fail_msg("%s", err);
    return (unsigned char *)b;
}

static void test_roundtrip(void **state)
{
    (void)state;
    const char *cfgs[] = {"fopm-tiny", "fopm"};
    for (int c = 0; c < 2; c++) {
        char p1[256], p2[256], err[512];
        tmp_path(p1, sizeof p1, "a.safetensors");
        tmp_path(p2, sizeof p2, "b.safetensors");
        model_params a, b;
        init_named(&a, cfgs[c]);
        init_named(&b, cfgs[c]);
        model_params_init_weights(&a, 7);
        assert_int_equal(safetensors_write(p1, &a, err, sizeof err), 0);
        assert_int_equal(safetensors_write(p2, &a, err, sizeof err), 0);
        assert_int_equal(safetensors_read(p1, &b, err, sizeof err), 0);
        assert_memory_equal(a.data, b.data, a.total * sizeof(float));
        size_t n1, n2;
        unsigned char *f1 = slurp(p1, &n1), *f2 = slurp(p2, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(f1, f2, n1);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | f1[i];
        assert_int_equal((8 + hl) % 8, 0);
        assert_int_equal(n1, 8 + hl + a.total * 4);
        assert_true(f1[8] == '{');
        /* little-endian F32 of the first value at the data start */
        float v;
        uint32_t u = (uint32_t)f1[8 + hl] | (uint32_t)f1[9 + hl] << 8 | (uint32_t)f1[10 + hl] << 16 |
                     (uint32_t)f1[11 + hl] << 24;
        memcpy(&v, &u, 4);
        assert_true(v == a.data[0]);
        free(f1);
        free(f2);
        /* no temporary file left behind */
        char cmd[300];
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", tmpdir);
        assert_int_not_equal(system(cmd), 0);
        remove(p1);
        remove(p2);
        model_params_free(&a);
        model_params_free(&b);
    }
}

/* Hand-made headers: one record per table entry, editable before joining. */
typedef struct {
    char name[96];
    char dtype[16];
    char shape[64];
    long long b, e;
    int skip;
} hent;

static hent *make_entries(const model_params *p)
{
    hent *h = calloc((size_t)p->n, sizeof *h);
    for (int i = 0; i < p->n; i++) {
        const param_entry *e = &p->entries[i];
        strcpy(h[i].name, e->name);
        strcpy(h[i].dtype, "F32");
        size_t k = (size_t)snprintf(h[i].shape, sizeof h[i].shape, "[");
        for (int d = 0; d < e->ndim; d++)
            k += (size_t)snprintf(h[i].shape + k, sizeof h[i].shape - k, d ? ",%d" : "%d", e->shape[d]);
        snprintf(h[i].shape + k, sizeof h[i].shape - k, "]");
        h[i].b = (long long)e->offset * 4;
        h[i].e = (long long)(e->offset + e->numel) * 4;
    }
    return h;
}

static char *join(const hent *h, int n, const char *extra)
{
    size_t cap = 1 << 20, k = 0;
    char *s = malloc(cap);
    k += (size_t)snprintf(s + k, cap - k, "{");
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (h[i].skip) continue;
        k += (size_t)snprintf(s + k, cap - k, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%lld,%lld]}",
                              first ? "" : ",", h[i].name, h[i].dtype, h[i].shape, h[i].b, h[i].e);
        first = 0;
    }
    snprintf(s + k, cap - k, "%s}", extra ? extra : "");
    return s;
}

/* Writes hlen (or the header's own length when hlen is UINT64_MAX), header,
 * then datalen zero bytes. */
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t datalen)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    size_t n = strlen(header);
    if (hlen == UINT64_MAX) hlen = n;
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(hlen >> (8 * i));
    assert_int_equal(fwrite(l8, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, n, f), n);
    for (size_t i = 0; i < datalen; i++) fputc(0, f);
    fclose(f);
}

/* Reads path into a fresh tiny table, expects refusal with a message that
 * starts with the path and contains want; p->data must be untouched. */
static void expect_refused(const char *path, const char *want)
{
    model_params p;
    init_named(&p, "fopm-tiny");
    model_params_init_weights(&p, 1);
    float *copy = malloc(p.total * sizeof(float));
    memcpy(copy, p.data, p.total * sizeof(float));
    char err[512] = "";
    int rc = safetensors_read(path, &p, err, sizeof err);
    if (rc != -1) fail_msg("accepted %s (expected refusal: %s)", path, want);
    if (strncmp(err, path, strlen(path)) != 0 || strncmp(err + strlen(path), ": ", 2) != 0)
        fail_msg("message does not start with the path: %s", err);
    if (!strstr(err, want)) fail_msg("message \"%s\" lacks \"%s\"", err, want);
    print_message("# refused: %s\n", err + strlen(tmpdir) + 1);
    assert_memory_equal(copy, p.data, p.total * sizeof(float));
    free(copy);
    model_params_free(&p);
}

static void test_hostile(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "bad.safetensors");
    model_params p;
    init_named(&p, "fopm-tiny");
    const size_t dlen = p.total * 4;
    const int n = p.n;
    hent *h;
    char *s;

    /* empty, 7 bytes */
    FILE *f = fopen(path, "wb");
    fclose(f);
    expect_refused(path, "shorter than the 8-byte header length");
    f = fopen(path, "wb");
    fwrite("\x10\0\0\0\0\0\0", 1, 7, f);
    fclose(f);
    expect_refused(path, "7 bytes");

    /* header length larger than the file; 2^63 */
    write_raw(path, 1000, "{}", 0);
    expect_refused(path, "header length 1000 exceeds");
    write_raw(path, (uint64_t)1 << 63, "{}", 0);
    expect_refused(path, "header length 9223372036854775808 exceeds");

    /* not JSON; not an object; truncated JSON; trailing garbage */
    write_raw(path, UINT64_MAX, "hello world     ", 0);
    expect_refused(path, "not valid JSON");
    write_raw(path, UINT64_MAX, "[1,2]   ", 0);
    expect_refused(path, "JSON object");
    h = make_entries(&p);
    s = join(h, n, NULL);
    s[strlen(s) / 2] = '\0';
    write_raw(path, UINT64_MAX, s, 0);
    expect_refused(path, "unexpected end of header");
    free(s);
    s = join(h, n, NULL);
    strcat(s, " x");
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "trailing characters");
    free(s);

    /* the unmodified header passes, padded or not, with metadata and num_batches_tracked */
    s = join(h, n, ",\"__metadata__\":{\"format\":\"pt\"}");
    write_raw(path, UINT64_MAX, s, dlen);
    {
        char err[512];
        model_params q;
        init_named(&q, "fopm-tiny");
        assert_int_equal(safetensors_read(path, &q, err, sizeof err), 0);
        free(s);
        s = join(h, n, ",\"fopm.g1.0.bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,0]}");
        /* zero-size at 0 is fine for coverage but I64 [] needs 8 bytes: refused */
        write_raw(path, UINT64_MAX, s, dlen);
        expect_refused(path, "needs 8");
        free(s);
        char extra[200];
        snprintf(extra, sizeof extra,
                 ",\"fopm.g1.0.bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[%zu,%zu]}",
                 dlen, dlen + 8);
        s = join(h, n, extra);
        write_raw(path, UINT64_MAX, s, dlen + 8);
        assert_int_equal(safetensors_read(path, &q, err, sizeof err), 0);
        model_params_free(&q);
    }
    free(s);

    /* data_offsets out of range */
    h[0].b = 1000000000000LL;
    h[0].e = h[0].b + 4 * 8 * 3 * 3 * 3;
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "out of range");
    free(s);
    free(h);
    /* begin > end */
    h = make_entries(&p);
    long long t = h[0].b;
    h[0].b = h[0].e;
    h[0].e = t;
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "out of range");
    free(s);
    free(h);

    /* overlap: bn.bias on top of bn.weight (same size) */
    h = make_entries(&p);
    h[2].b = h[1].b;
    h[2].e = h[1].e;
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "overlap");
    free(s);
    free(h);

    /* gap: 4 unused bytes before tensor 5 */
    h = make_entries(&p);
    for (int i = 5; i < n; i++) h[i].b += 4, h[i].e += 4;
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen + 4);
    expect_refused(path, "gap in the data region: bytes [");
    free(s);
    free(h);

    /* trailing bytes after the last tensor */
    h = make_entries(&p);
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen + 4);
    expect_refused(path, "4 trailing bytes");
    free(s);
    free(h);

    /* wrong dtype, same byte size; unknown dtype */
    h = make_entries(&p);
    strcpy(h[1].dtype, "I32");
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "tensor \"fopm.g1.0.bn.weight\": dtype I32, expected F32");
    free(s);
    strcpy(h[1].dtype, "F33");
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "unknown dtype \"F33\"");
    free(s);
    free(h);

    /* wrong shape, same numel: names the tensor and both shapes */
    h = make_entries(&p);
    int fc = n - 2;
    assert_string_equal(h[fc].name, "ferm.fc.weight");
    strcpy(h[fc].shape, "[64,7]");
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "tensor \"ferm.fc.weight\": shape [64, 7] in the file, the model expects [7, 64]");
    free(s);
    strcpy(h[fc].shape, "[7,8,8]");
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "shape [7, 8, 8] in the file");
    free(s);
    free(h);

    /* numel * 4 != size */
    h = make_entries(&p);
    strcpy(h[n - 1].shape, "[6]");
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "tensor \"ferm.fc.bias\": data_offsets span 28 bytes but shape [6] of F32 needs 24");
    free(s);
    free(h);

    /* missing tensor */
    h = make_entries(&p);
    h[n - 1].skip = 1;
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen - 28);
    expect_refused(path, "missing tensor \"ferm.fc.bias\"");
    free(s);
    free(h);

    /* extra tensor */
    h = make_entries(&p);
    char extra[400];
    snprintf(extra, sizeof extra, ",\"foo.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%zu,%zu]}", dlen,
             dlen + 4);
    s = join(h, n, extra);
    write_raw(path, UINT64_MAX, s, dlen + 4);
    expect_refused(path, "unexpected tensor \"foo.weight\"");
    free(s);

    /* negative, fractional, exponent, string shape values */
    const char *badshape[] = {"[-7,64]", "[7.0,64]", "[7e0,64]", "[\"7\",64]", "[7,,64]", "[07,64]", "[7,64"};
    const char *badwhy[] = {"'-7' is not a non-negative integer", "'7.0' is not a non-negative integer",
                            "'7e0' is not a non-negative integer", "not valid JSON", "not valid JSON",
                            "leading zero", "not valid JSON"};
    for (int k = 0; k < 7; k++) {
        strcpy(h[fc].shape, badshape[k]);
        s = join(h, n, NULL);
        write_raw(path, UINT64_MAX, s, dlen);
        expect_refused(path, badwhy[k]);
        free(s);
    }
    strcpy(h[fc].shape, "[7,64]");
    h[fc].b = -h[fc].b;
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "data_offsets value");
    free(s);
    free(h);

    /* duplicate tensor; duplicate key inside a tensor; duplicate __metadata__ */
    h = make_entries(&p);
    snprintf(extra, sizeof extra, ",\"%s\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[%lld,%lld]}",
             h[0].name, h[0].shape, h[0].b, h[0].e);
    s = join(h, n, extra);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "duplicate tensor \"fopm.g1.0.conv.weight\"");
    free(s);
    strcpy(h[1].dtype, "F32\",\"dtype\":\"F32");
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "duplicate key \"dtype\"");
    free(s);
    free(h);
    h = make_entries(&p);
    s = join(h, n, ",\"__metadata__\":{},\"__metadata__\":{}");
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "duplicate key \"__metadata__\"");
    free(s);

    /* metadata must hold strings; tensors must not carry unknown keys or lack keys */
    s = join(h, n, ",\"__metadata__\":{\"a\":1}");
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "__metadata__ values must be strings");
    free(s);
    strcpy(h[1].dtype, "F32\",\"extra\":\"x");
    s = join(h, n, NULL);
    write_raw(path, UINT64_MAX, s, dlen);
    expect_refused(path, "unknown key \"extra\"");
    free(s);
    free(h);
    write_raw(path, UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[]}}", 0);
    expect_refused(path, "missing \"data_offsets\"");
    write_raw(path, UINT64_MAX, "{\"a\\u0000b\":{}}", 0);
    expect_refused(path, "NUL character");
    write_raw(path, UINT64_MAX, "{\"a\xff\":{}}", 0);
    expect_refused(path, "not valid UTF-8");

    /* not a file at all */
    expect_refused(tmpdir, "not a regular file");
    tmp_path(path, sizeof path, "does-not-exist");
    expect_refused(path, "cannot open");

    tmp_path(path, sizeof path, "bad.safetensors");
    remove(path);
    model_params_free(&p);
}

/* A file written by one config does not load into another. */
static void test_wrong_config(void **state)
{
    (void)state;
    char path[256], err[512];
    tmp_path(path, sizeof path, "tiny.safetensors");
    model_params a, b;
    init_named(&a, "fopm-tiny");
    model_config c = {96, 0.125};
    assert_int_equal(model_params_init(&b, &c), 0);
    assert_int_equal(safetensors_write(path, &a, err, sizeof err), 0);
    assert_int_equal(safetensors_read(path, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "effm.geo.weight\": shape [128, 272] in the file, the model expects [128, 612]"));
    remove(path);
    /* an unwritable destination */
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", tmpdir);
    assert_int_equal(safetensors_write(path, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot write"));
    model_params_free(&a);
    model_params_free(&b);
}

/* Checkpoints: several prefixed sets and metadata in one file; optional sets
 * all-or-nothing; names of no set refused; nothing written on failure. */
static void test_sets(void **state)
{
    (void)state;
    char path[256], pw[256], err[512];
    tmp_path(path, sizeof path, "ckpt.safetensors");
    tmp_path(pw, sizeof pw, "weights.safetensors");
    model_params a, b;
    init_named(&a, "fopm-tiny");
    init_named(&b, "fopm-tiny");
    model_params_init_weights(&a, 3);
    float *m = malloc(a.total * sizeof *m), *v = malloc(a.total * sizeof *v);
    float *m2 = calloc(a.total, sizeof *m2), *v2 = calloc(a.total, sizeof *v2);
    assert_non_null(m), assert_non_null(v), assert_non_null(m2), assert_non_null(v2);
    for (size_t i = 0; i < a.total; i++) m[i] = (float)i * 0.5f, v[i] = (float)i * 0.25f;
    const char *meta[] = {"ferbench.step", "12", "ferbench.note", "a \"quoted\" value", NULL};
    st_set ws[3] = {{"", a.data, 1, 0}, {"adamw.m.", m, 1, 0}, {"adamw.v.", v, 1, 0}};
    assert_int_equal(safetensors_write_sets(path, &a, ws, 3, meta, err, sizeof err), 0);
    st_set rs[3] = {{"", b.data, 1, 0}, {"adamw.m.", m2, 1, 0}, {"adamw.v.", v2, 1, 0}};
    st_meta md;
    assert_int_equal(safetensors_read_sets(path, &b, rs, 3, &md, err, sizeof err), 0);
    assert_memory_equal(a.data, b.data, a.total * sizeof(float));
    assert_memory_equal(m, m2, a.total * sizeof(float));
    assert_memory_equal(v, v2, a.total * sizeof(float));
    assert_string_equal(st_meta_get(&md, "ferbench.step"), "12");
    assert_string_equal(st_meta_get(&md, "ferbench.note"), "a \"quoted\" value");
    assert_string_equal(st_meta_get(&md, "ferbench.size"), "64");
    assert_null(st_meta_get(&md, "nope"));
    st_meta_free(&md);
    assert_int_equal(safetensors_read_meta(path, &md, err, sizeof err), 0);
    assert_string_equal(st_meta_get(&md, "ferbench.width"), "0.125");
    st_meta_free(&md);
    /* A plain reader refuses the moments: names of no set. */
    assert_int_equal(safetensors_read(path, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "unexpected tensor \"adamw.m."));
    /* Optional sets: present here, absent in a plain weights file. */
    st_set os[2] = {{"", b.data, 1, 0}, {"adamw.m.", m2, 0, 0}};
    assert_int_equal(safetensors_read_sets(pw, &b, os, 1, NULL, err, sizeof err), -1); /* no file yet */
    assert_int_equal(safetensors_write(pw, &a, err, sizeof err), 0);
    assert_int_equal(safetensors_read_sets(pw, &b, os, 2, NULL, err, sizeof err), 0);
    assert_int_equal(os[1].present, 0);
    /* Required moments missing from a weights file. */
    memset(b.data, 0, b.total * sizeof(float));
    assert_int_equal(safetensors_read_sets(pw, &b, rs, 3, &md, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing tensor \"adamw.m.fopm.g1.0.conv.weight\""));
    assert_int_equal(md.n, 0);
    for (size_t i = 0; i < b.total; i++) assert_true(b.data[i] == 0.0f); /* untouched on failure */
    remove(path);
    remove(pw);
    free(m), free(v), free(m2), free(v2);
    model_params_free(&a);
    model_params_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),    cmocka_unit_test(test_counts_fopm), cmocka_unit_test(test_counts_tiny),
        cmocka_unit_test(test_shapes),    cmocka_unit_test(test_init),        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_hostile),   cmocka_unit_test(test_wrong_config), cmocka_unit_test(test_sets),
    };
    return cmocka_run_group_tests_name("engine", tests, setup_dir, teardown_dir);
}
