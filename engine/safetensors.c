/* safetensors.c: writer and untrusted-input reader of safetensors files. */
#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/util.h"

static int host_is_le(void)
{
    const uint16_t x = 1;
    unsigned char c;
    memcpy(&c, &x, 1);
    return c == 1;
}

static void put_f32_le(unsigned char *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(u >> (8 * i));
}

static float get_f32_le(const unsigned char *b)
{
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* ---- growing string ---- */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
    } else {
        char *big = xmalloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        sb_put(b, big, (size_t)n);
        free(big);
    }
}

static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char e[2] = {'\\', (char)*c};
            sb_put(b, e, 2);
        } else if (*c < 0x20) {
            sb_printf(b, "\\u%04x", *c);
        } else {
            sb_put(b, (const char *)c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* ---- writer ---- */

int safetensors_write_sets(const char *path, const model_params *p, const st_set *sets, int nsets,
                           const char *const *meta, char *err, size_t errlen)
{
    sbuf h = {0};
    sb_str(&h, "{\"__metadata__\":{\"format\":\"pt\",\"ferbench.size\":");
    sb_printf(&h, "\"%d\",\"ferbench.width\":\"%.17g\"", p->cfg.size, p->cfg.width);
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2) {
        sb_put(&h, ",", 1);
        sb_json_string(&h, meta[i]);
        sb_put(&h, ":", 1);
        sb_json_string(&h, meta[i + 1]);
    }
    sb_put(&h, "}", 1);
    for (int s = 0; s < nsets; s++) {
        size_t base = (size_t)s * p->total;
        for (int i = 0; i < p->n; i++) {
            const param_entry *e = &p->entries[i];
            char name[MODEL_NAME_MAX + 64];
            snprintf(name, sizeof name, "%s%s", sets[s].prefix, e->name);
            sb_put(&h, ",", 1);
            sb_json_string(&h, name);
            sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
            for (int d = 0; d < e->ndim; d++) sb_printf(&h, d ? ",%d" : "%d", e->shape[d]);
            sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", (base + e->offset) * 4, (base + e->offset + e->numel) * 4);
        }
    }
    sb_put(&h, "}", 1);
    while ((8 + h.n) % 8 != 0) sb_put(&h, " ", 1);

    atomic_file af;
    if (atomic_open(&af, path, err, errlen) != 0) {
        free(h.s);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int ok = fwrite(len8, 1, 8, af.f) == 8 && fwrite(h.s, 1, h.n, af.f) == h.n;
    free(h.s);
    for (int s = 0; ok && s < nsets; s++) {
        const float *src = sets[s].data;
        if (host_is_le()) {
            ok = fwrite(src, sizeof(float), p->total, af.f) == p->total;
        } else {
            enum { CHUNK = 4096 };
            unsigned char buf[CHUNK * 4];
            for (size_t i = 0; ok && i < p->total; i += CHUNK) {
                size_t m = p->total - i < CHUNK ? p->total - i : CHUNK;
                for (size_t j = 0; j < m; j++) put_f32_le(buf + 4 * j, src[i + j]);
                ok = fwrite(buf, 4, m, af.f) == m;
            }
        }
    }
    if (!ok) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err, errlen);
}

int safetensors_write(const char *path, const model_params *p, char *err, size_t errlen)
{
    st_set one = {"", p->data, 1, 0};
    return safetensors_write_sets(path, p, &one, 1, NULL, err, errlen);
}

void st_meta_free(st_meta *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) free(m->key[i]), free(m->val[i]);
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

const char *st_meta_get(const st_meta *m, const char *key)
{
    for (int i = 0; m && i < m->n; i++)
        if (!strcmp(m->key[i], key)) return m->val[i];
    return NULL;
}

/* ---- strict JSON subset parser ---- */

enum { ST_MAX_NDIM = 8 };

typedef struct {
    char *name;
    char dtype[16];
    int ndim;
    uint64_t shape[ST_MAX_NDIM];
    uint64_t begin, end;
    int idx; /* position in the header */
} st_rec;

typedef struct {
    const char *s;
    size_t n, i;
    const char *path;
    char *err;
    size_t errlen;
    int failed;
    st_meta *meta; /* where __metadata__ pairs go, or NULL to discard them */
} jp;

static int jfail(jp *j, const char *fmt, ...)
{
    if (j->failed) return -1;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(j->err, j->errlen, "%s: bad header: %s", j->path, msg);
    j->failed = 1;
    return -1;
}

static int jsyntax(jp *j, const char *what)
{
    if (j->i >= j->n) return jfail(j, "not valid JSON: unexpected end of header (expected %s)", what);
    return jfail(j, "not valid JSON at byte %zu: expected %s", j->i, what);
}

static void jws(jp *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

static int jexpect(jp *j, char c, const char *what)
{
    jws(j);
    if (j->i < j->n && j->s[j->i] == c) {
        j->i++;
        return 0;
    }
    return jsyntax(j, what);
}

/* Next non-blank character, not consumed, or 0 at the end. */
static char jpeek(jp *j)
{
    jws(j);
    return j->i < j->n ? j->s[j->i] : 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int jhex4(jp *j, unsigned *v)
{
    if (j->n - j->i < 4) return jsyntax(j, "4 hex digits");
    *v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(j->s[j->i + k]);
        if (h < 0) return jsyntax(j, "4 hex digits");
        *v = *v * 16 + (unsigned)h;
    }
    j->i += 4;
    return 0;
}

/* Parses a string; *out is malloc'ed, NUL-terminated UTF-8 without NULs. */
static int jstring(jp *j, char **out)
{
    *out = NULL;
    if (jexpect(j, '"', "'\"'") != 0) return -1;
    sbuf b = {0};
    sb_put(&b, "", 0);
    size_t run = j->i;
    for (;;) {
        if (j->i >= j->n) {
            free(b.s);
            return jsyntax(j, "end of string");
        }
        unsigned char c = (unsigned char)j->s[j->i];
        if (c == '"' || c == '\\' || c < 0x20) {
            if (!utf8_valid(j->s + run, j->i - run)) {
                free(b.s);
                return jfail(j, "string before byte %zu is not valid UTF-8", j->i);
            }
            sb_put(&b, j->s + run, j->i - run);
        }
        if (c == '"') {
            j->i++;
            break;
        }
        if (c < 0x20) {
            free(b.s);
            return jfail(j, "not valid JSON at byte %zu: control character in string", j->i);
        }
        if (c != '\\') {
            j->i++;
            continue;
        }
        j->i++;
        if (j->i >= j->n) {
            free(b.s);
            return jsyntax(j, "escape");
        }
        char e = j->s[j->i++];
        const char *rep = NULL;
        switch (e) {
        case '"': rep = "\""; break;
        case '\\': rep = "\\"; break;
        case '/': rep = "/"; break;
        case 'b': rep = "\b"; break;
        case 'f': rep = "\f"; break;
        case 'n': rep = "\n"; break;
        case 'r': rep = "\r"; break;
        case 't': rep = "\t"; break;
        case 'u': break;
        default:
            j->i--;
            free(b.s);
            return jsyntax(j, "a valid escape");
        }
        if (rep) {
            sb_put(&b, rep, 1);
        } else {
            unsigned cp;
            if (jhex4(j, &cp) != 0) {
                free(b.s);
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u') {
                    free(b.s);
                    return jfail(j, "not valid JSON at byte %zu: lone surrogate", j->i);
                }
                j->i += 2;
                if (jhex4(j, &lo) != 0) {
                    free(b.s);
                    return -1;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(b.s);
                    return jfail(j, "not valid JSON at byte %zu: lone surrogate", j->i);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(b.s);
                return jfail(j, "not valid JSON at byte %zu: lone surrogate", j->i);
            }
            if (cp == 0) {
                free(b.s);
                return jfail(j, "NUL character in string at byte %zu", j->i);
            }
            char u[4];
            size_t un;
            if (cp < 0x80) { u[0] = (char)cp; un = 1; }
            else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3F)); un = 2; }
            else if (cp < 0x10000) {
                u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                u[2] = (char)(0x80 | (cp & 0x3F)); un = 3;
            } else {
                u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); un = 4;
            }
            sb_put(&b, u, un);
        }
        run = j->i;
    }
    *out = b.s;
    return 0;
}

/* A non-negative JSON integer (no sign, fraction or exponent) that fits in
 * 2^53 (exact in every JSON implementation). what names it in messages. */
static int juint(jp *j, uint64_t *v, const char *what)
{
    jws(j);
    size_t st = j->i;
    /* Scan the whole JSON number token to classify it. */
    size_t k = j->i;
    if (k < j->n && j->s[k] == '-') k++;
    while (k < j->n && ((j->s[k] >= '0' && j->s[k] <= '9') || j->s[k] == '.' || j->s[k] == 'e' ||
                        j->s[k] == 'E' || j->s[k] == '+' || j->s[k] == '-'))
        k++;
    if (k == st) return jsyntax(j, what);
    for (size_t m = st; m < k; m++)
        if (!(j->s[m] >= '0' && j->s[m] <= '9'))
            return jfail(j, "%s at byte %zu: '%.*s' is not a non-negative integer", what, st,
                         (int)(k - st > 32 ? 32 : k - st), j->s + st);
    if (k - st > 1 && j->s[st] == '0') return jfail(j, "not valid JSON at byte %zu: leading zero", st);
    uint64_t x = 0;
    for (size_t m = st; m < k; m++) {
        x = x * 10 + (uint64_t)(j->s[m] - '0');
        if (x > ((uint64_t)1 << 53)) return jfail(j, "%s at byte %zu: number too large", what, st);
    }
    j->i = k;
    *v = x;
    return 0;
}

static int jkey_dup(jp *j, int *seen, const char *key)
{
    if (*seen) return jfail(j, "duplicate key \"%s\" before byte %zu", key, j->i);
    *seen = 1;
    return 0;
}

static int parse_tensor(jp *j, st_rec *r)
{
    int seen_dtype = 0, seen_shape = 0, seen_off = 0;
    if (jexpect(j, '{', "'{' (tensor description)") != 0) return -1;
    if (jpeek(j) == '}') return jfail(j, "tensor \"%s\": empty description", r->name);
    for (;;) {
        char *key;
        if (jstring(j, &key) != 0) return -1;
        if (jexpect(j, ':', "':'") != 0) {
            free(key);
            return -1;
        }
        int rc = 0;
        if (!strcmp(key, "dtype")) {
            rc = jkey_dup(j, &seen_dtype, key);
            char *dt = NULL;
            if (!rc) rc = jstring(j, &dt);
            if (!rc && strlen(dt) >= sizeof r->dtype) rc = jfail(j, "tensor \"%s\": unknown dtype", r->name);
            if (!rc) strcpy(r->dtype, dt);
            free(dt);
        } else if (!strcmp(key, "shape")) {
            rc = jkey_dup(j, &seen_shape, key);
            if (!rc) rc = jexpect(j, '[', "'[' (shape)");
            if (!rc && jpeek(j) == ']') {
                j->i++;
            } else {
                while (!rc) {
                    if (r->ndim == ST_MAX_NDIM) {
                        rc = jfail(j, "tensor \"%s\": more than %d dimensions", r->name, ST_MAX_NDIM);
                        break;
                    }
                    char what[96];
                    snprintf(what, sizeof what, "tensor \"%.60s\": shape value", r->name);
                    rc = juint(j, &r->shape[r->ndim], what);
                    if (rc) break;
                    r->ndim++;
                    char c = jpeek(j);
                    if (c == ',') { j->i++; continue; }
                    if (c == ']') { j->i++; break; }
                    rc = jsyntax(j, "',' or ']' in shape");
                }
            }
        } else if (!strcmp(key, "data_offsets")) {
            rc = jkey_dup(j, &seen_off, key);
            char what[96];
            snprintf(what, sizeof what, "tensor \"%.60s\": data_offsets value", r->name);
            if (!rc) rc = jexpect(j, '[', "'[' (data_offsets)");
            if (!rc) rc = juint(j, &r->begin, what);
            if (!rc) rc = jexpect(j, ',', "',' (data_offsets has two values)");
            if (!rc) rc = juint(j, &r->end, what);
            if (!rc) rc = jexpect(j, ']', "']' (data_offsets has two values)");
        } else {
            rc = jfail(j, "tensor \"%s\": unknown key \"%s\"", r->name, key);
        }
        free(key);
        if (rc) return -1;
        char c = jpeek(j);
        if (c == ',') { j->i++; continue; }
        if (c == '}') { j->i++; break; }
        return jsyntax(j, "',' or '}'");
    }
    if (!seen_dtype || !seen_shape || !seen_off)
        return jfail(j, "tensor \"%s\": missing \"%s\"", r->name,
                     !seen_dtype ? "dtype" : !seen_shape ? "shape" : "data_offsets");
    return 0;
}

static int parse_metadata(jp *j)
{
    if (jexpect(j, '{', "'{' (__metadata__ is an object)") != 0) return -1;
    if (jpeek(j) == '}') {
        j->i++;
        return 0;
    }
    for (;;) {
        char *k = NULL, *v = NULL;
        if (jstring(j, &k) != 0) return -1;
        if (jexpect(j, ':', "':'") != 0 || jpeek(j) != '"') {
            free(k);
            return j->failed ? -1 : jfail(j, "__metadata__ values must be strings (byte %zu)", j->i);
        }
        if (jstring(j, &v) != 0) {
            free(k); /* the key of a value that did not parse (found by fuzz_safetensors) */
            return -1;
        }
        if (j->meta) {
            j->meta->key = xrealloc(j->meta->key, (size_t)(j->meta->n + 1) * sizeof(char *));
            j->meta->val = xrealloc(j->meta->val, (size_t)(j->meta->n + 1) * sizeof(char *));
            j->meta->key[j->meta->n] = k;
            j->meta->val[j->meta->n++] = v;
        } else {
            free(k);
            free(v);
        }
        char c = jpeek(j);
        if (c == ',') { j->i++; continue; }
        if (c == '}') { j->i++; return 0; }
        return jsyntax(j, "',' or '}'");
    }
}

static void free_recs(st_rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) free(r[i].name);
    free(r);
}

static int parse_header(jp *j, st_rec **out, size_t *nout)
{
    st_rec *r = NULL;
    size_t n = 0, cap = 0;
    int seen_meta = 0;
    *out = NULL;
    *nout = 0;
    if (jpeek(j) != '{') return jsyntax(j, "'{' (the header is a JSON object)");
    j->i++;
    if (jpeek(j) == '}') {
        j->i++;
    } else {
        for (;;) {
            char *key;
            if (jstring(j, &key) != 0) goto fail;
            if (jexpect(j, ':', "':'") != 0) {
                free(key);
                goto fail;
            }
            if (!strcmp(key, "__metadata__")) {
                int rc = jkey_dup(j, &seen_meta, key);
                free(key);
                if (rc || parse_metadata(j) != 0) goto fail;
            } else {
                if (n == cap) {
                    cap = cap ? 2 * cap : 256;
                    r = xrealloc(r, cap * sizeof *r);
                }
                memset(&r[n], 0, sizeof r[n]);
                r[n].name = key;
                r[n].idx = (int)n;
                n++;
                if (parse_tensor(j, &r[n - 1]) != 0) goto fail;
            }
            char c = jpeek(j);
            if (c == ',') { j->i++; continue; }
            if (c == '}') { j->i++; break; }
            jsyntax(j, "',' or '}'");
            goto fail;
        }
    }
    /* Only padding may follow. */
    while (j->i < j->n && j->s[j->i] == ' ') j->i++;
    jws(j);
    if (j->i != j->n) {
        jfail(j, "not valid JSON at byte %zu: trailing characters after the object", j->i);
        goto fail;
    }
    *out = r;
    *nout = n;
    return 0;
fail:
    free_recs(r, n);
    return -1;
}

/* ---- reader ---- */

static int dtype_size(const char *d)
{
    static const struct { const char *name; int size; } t[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
        {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i].name, d)) return t[i].size;
    return 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static void fmt_shape(char *buf, size_t len, int ndim, const uint64_t *s)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, len - k, "[");
    for (int d = 0; d < ndim && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, d ? ", %llu" : "%llu", (unsigned long long)s[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_rec *)a)->name, ((const st_rec *)b)->name);
}

static int cmp_offsets(const void *a, const void *b)
{
    const st_rec *x = *(st_rec *const *)a, *y = *(st_rec *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Reads the 8-byte length and the header (NUL-terminated, malloc'ed) of an
 * open file of fsize bytes. */
static int read_header(FILE *f, const char *path, uint64_t fsize, char **hdr_out, uint64_t *hlen_out, char *err,
                       size_t errlen)
{
    char *hdr = NULL;
    if (fsize < 8) {
        snprintf(err, errlen, "%s: not a safetensors file: %llu bytes, shorter than the 8-byte header length",
                 path, (unsigned long long)fsize);
        goto fail;
    }
    unsigned char len8[8];
    if (fread(len8, 1, 8, f) != 8) {
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > fsize - 8) {
        snprintf(err, errlen, "%s: header length %llu exceeds the %llu bytes after it", path,
                 (unsigned long long)hlen, (unsigned long long)(fsize - 8));
        goto fail;
    }
    if (hlen > SAFETENSORS_MAX_HEADER) {
        snprintf(err, errlen, "%s: header length %llu exceeds the limit of %zu bytes", path,
                 (unsigned long long)hlen, SAFETENSORS_MAX_HEADER);
        goto fail;
    }
    hdr = xmalloc((size_t)hlen + 1);
    if (fread(hdr, 1, (size_t)hlen, f) != (size_t)hlen) {
        snprintf(err, errlen, "%s: read error in header", path);
        goto fail;
    }
    hdr[hlen] = '\0';
    *hdr_out = hdr;
    *hlen_out = hlen;
    return 0;
fail:
    free(hdr);
    return -1;
}

int safetensors_read_meta(const char *path, st_meta *meta, char *err, size_t errlen)
{
    memset(meta, 0, sizeof *meta);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat stt;
    char *hdr = NULL;
    uint64_t hlen = 0;
    st_rec *recs = NULL;
    size_t nrec = 0;
    int rc = -1;
    if (fstat(fileno(f), &stt) != 0 || !S_ISREG(stt.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
    } else if (read_header(f, path, (uint64_t)stt.st_size, &hdr, &hlen, err, errlen) == 0) {
        jp j = {hdr, (size_t)hlen, 0, path, err, errlen, 0, meta};
        rc = parse_header(&j, &recs, &nrec);
    }
    if (recs) free_recs(recs, nrec);
    free(hdr);
    fclose(f);
    if (rc != 0) st_meta_free(meta);
    return rc;
}

/* Which set a tensor name belongs to (the longest matching prefix), and the
 * model name after it; -1 if none. */
static int set_of(const st_set *sets, int nsets, const char *name, const char **rest)
{
    int best = -1;
    size_t bl = 0;
    for (int s = 0; s < nsets; s++) {
        size_t l = strlen(sets[s].prefix);
        if (!strncmp(name, sets[s].prefix, l) && (best < 0 || l > bl)) best = s, bl = l;
    }
    *rest = name + bl;
    return best;
}

int safetensors_read(const char *path, model_params *p, char *err, size_t errlen)
{
    st_set one = {"", p->data, 1, 0};
    return safetensors_read_sets(path, p, &one, 1, NULL, err, errlen);
}

int safetensors_read_sets(const char *path, model_params *p, st_set *sets, int nsets, st_meta *meta, char *err,
                          size_t errlen)
{
    if (meta) memset(meta, 0, sizeof *meta);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat stt;
    if (fstat(fileno(f), &stt) != 0 || !S_ISREG(stt.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        fclose(f);
        return -1;
    }
    uint64_t fsize = (uint64_t)stt.st_size;
    int rc = -1;
    char *hdr = NULL;
    unsigned char *data = NULL;
    st_rec *recs = NULL;
    size_t nrec = 0;
    st_rec **byoff = NULL;
    char *seen = NULL;

    uint64_t hlen = 0;
    if (read_header(f, path, fsize, &hdr, &hlen, err, errlen) != 0) goto out;
    jp j = {hdr, (size_t)hlen, 0, path, err, errlen, 0, meta};
    if (parse_header(&j, &recs, &nrec) != 0) goto out;
    uint64_t dlen = fsize - 8 - hlen;

    /* Duplicate names (sort a copy of the pointers by name). */
    byoff = xmalloc((nrec ? nrec : 1) * sizeof *byoff);
    {
        st_rec *sorted = xmalloc((nrec ? nrec : 1) * sizeof *sorted);
        memcpy(sorted, recs, nrec * sizeof *sorted);
        qsort(sorted, nrec, sizeof *sorted, cmp_name);
        for (size_t i = 1; i < nrec; i++)
            if (!strcmp(sorted[i - 1].name, sorted[i].name)) {
                snprintf(err, errlen, "%s: bad header: duplicate tensor \"%s\"", path, sorted[i].name);
                free(sorted);
                goto out;
            }
        free(sorted);
    }

    /* Each record on its own: dtype known, offsets ordered and in range, size = numel * dtype size. */
    for (size_t i = 0; i < nrec; i++) {
        st_rec *r = &recs[i];
        int es = dtype_size(r->dtype);
        if (!es) {
            snprintf(err, errlen, "%s: tensor \"%s\": unknown dtype \"%s\"", path, r->name, r->dtype);
            goto out;
        }
        if (r->begin > r->end || r->end > dlen) {
            snprintf(err, errlen, "%s: tensor \"%s\": data_offsets [%llu, %llu] out of range (data region is %llu bytes)",
                     path, r->name, (unsigned long long)r->begin, (unsigned long long)r->end,
                     (unsigned long long)dlen);
            goto out;
        }
        uint64_t numel = 1;
        for (int d = 0; d < r->ndim; d++) {
            if (r->shape[d] != 0 && numel > UINT64_MAX / 8 / r->shape[d]) {
                snprintf(err, errlen, "%s: tensor \"%s\": shape too large", path, r->name);
                goto out;
            }
            numel *= r->shape[d];
        }
        if (numel * (uint64_t)es != r->end - r->begin) {
            char sh[160];
            fmt_shape(sh, sizeof sh, r->ndim, r->shape);
            snprintf(err, errlen, "%s: tensor \"%s\": data_offsets span %llu bytes but shape %s of %s needs %llu",
                     path, r->name, (unsigned long long)(r->end - r->begin), sh, r->dtype,
                     (unsigned long long)(numel * (uint64_t)es));
            goto out;
        }
        byoff[i] = r;
    }

    /* The data region must be exactly covered: no overlaps, no gaps, no trailing bytes. */
    qsort(byoff, nrec, sizeof *byoff, cmp_offsets);
    {
        uint64_t pos = 0;
        const char *prev = NULL;
        for (size_t i = 0; i < nrec; i++) {
            st_rec *r = byoff[i];
            if (r->begin < pos) {
                snprintf(err, errlen, "%s: tensors \"%s\" and \"%s\" overlap", path, prev, r->name);
                goto out;
            }
            if (r->begin > pos) {
                snprintf(err, errlen, "%s: gap in the data region: bytes [%llu, %llu) belong to no tensor", path,
                         (unsigned long long)pos, (unsigned long long)r->begin);
                goto out;
            }
            /* zero-size tensors share their position with the next one */
            if (r->end > r->begin || !prev) prev = r->name;
            pos = r->end;
        }
        if (pos != dlen) {
            snprintf(err, errlen, "%s: %llu trailing bytes after the last tensor", path,
                     (unsigned long long)(dlen - pos));
            goto out;
        }
    }

    /* Match against the table (per set), in header order. */
    seen = xcalloc((size_t)(p->n ? p->n : 1) * (size_t)nsets, 1);
    for (size_t i = 0; i < nrec; i++) {
        st_rec *r = &recs[i];
        const char *mname;
        int si = set_of(sets, nsets, r->name, &mname);
        const param_entry *e = si >= 0 ? model_find(p, mname) : NULL;
        if (!e) {
            if (ends_with(r->name, ".num_batches_tracked")) continue;
            snprintf(err, errlen, "%s: unexpected tensor \"%s\" (not in the model)", path, r->name);
            goto out;
        }
        if (strcmp(r->dtype, "F32") != 0) {
            snprintf(err, errlen, "%s: tensor \"%s\": dtype %s, expected F32", path, r->name, r->dtype);
            goto out;
        }
        int same = r->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = r->shape[d] == (uint64_t)e->shape[d];
        if (!same) {
            uint64_t es[MODEL_MAX_NDIM];
            for (int d = 0; d < e->ndim; d++) es[d] = (uint64_t)e->shape[d];
            char a[160], b[160];
            fmt_shape(a, sizeof a, r->ndim, r->shape);
            fmt_shape(b, sizeof b, e->ndim, es);
            snprintf(err, errlen, "%s: tensor \"%s\": shape %s in the file, the model expects %s", path, r->name,
                     a, b);
            goto out;
        }
        seen[(size_t)si * p->n + (size_t)(e - p->entries)] = 1;
    }
    /* A required set must be complete; an optional one complete or absent. */
    for (int s = 0; s < nsets; s++) {
        int have = 0;
        for (int i = 0; i < p->n; i++) have += seen[(size_t)s * p->n + i];
        sets[s].present = have > 0;
        if (!sets[s].required && !have) continue;
        for (int i = 0; i < p->n; i++)
            if (!seen[(size_t)s * p->n + i]) {
                snprintf(err, errlen, "%s: missing tensor \"%s%s\"", path, sets[s].prefix, p->entries[i].name);
                goto out;
            }
    }

    /* All checked: read the data region, then convert into p. */
    data = xmalloc((size_t)dlen ? (size_t)dlen : 1);
    if (fread(data, 1, (size_t)dlen, f) != (size_t)dlen) {
        snprintf(err, errlen, "%s: read error in the data region (file changed while reading?)", path);
        goto out;
    }
    for (size_t i = 0; i < nrec; i++) {
        st_rec *r = &recs[i];
        const char *mname;
        int si = set_of(sets, nsets, r->name, &mname);
        const param_entry *e = si >= 0 ? model_find(p, mname) : NULL;
        if (!e) continue;
        const unsigned char *src = data + r->begin;
        float *dst = sets[si].data + e->offset;
        if (host_is_le()) {
            memcpy(dst, src, e->numel * 4);
        } else {
            for (size_t k = 0; k < e->numel; k++) dst[k] = get_f32_le(src + 4 * k);
        }
    }
    rc = 0;
out:
    fclose(f);
    free(hdr);
    free(data);
    free(byoff);
    free(seen);
    if (recs) free_recs(recs, nrec);
    if (rc != 0) st_meta_free(meta);
    return rc;
}
