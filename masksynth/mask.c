/* mask.c: procedural face masks (see mask.h and MASKS.md steps 4-6).
 *
 * Geometry. Every control point is an affine combination of landmarks, so the
 * outline follows roll, scale and yaw continuously (a compressed far side of
 * the jaw simply gives a narrower far half; there is no template switch). The
 * outline is a few centripetal Catmull-Rom chains through those points: the
 * top edge (side corner, cheek, top centre on the nose, cheek, side corner),
 * and the lower edge along the jaw, pushed just below the chin. Types differ
 * in how the chains are joined and inset: surgical (sharp side corners, on the
 * jaw), N95 (one closed rounded cup, narrower), KN95 (straight panels meeting
 * at a peak on the nose and a point under the chin, centre seam) and cloth
 * (rounded corners, slightly inset). Ear loops are thin strips along the jaw
 * from the mask's side corner toward the ear (P0 / P16).
 *
 * Rasterising. Three layers of closed contours (mask body, loops, and a clip
 * region = the jaw P0..P16 just outside the mask's own lower edge, closed over
 * the brows) are scanned on 8, 6 or 4 sub-scanlines per pixel row (face
 * height under 40, 80 px, or more). On each sub-scanline the crossings of each
 * layer give spans (nonzero winding); the mask is (body | loops) & clip, and
 * each span adds its exact horizontal extent to the pixels it crosses (a
 * difference array for the whole pixels). Coverage is exact along x and
 * sampled along y; a near-vertical edge is at most 2 pixels wide.
 *
 * Appearance. Base colour times a texture (plain, pleats, stripes, checks,
 * dots, motif), times type-specific shading (pleat bands, cup falloff, seam
 * and panels, hems), times the face's own light: a heavily blurred luminance
 * of the covered region (normalised convolution weighted by the coverage, so
 * background and hair never leak in) relative to its coverage-weighted mean.
 *
 * Compositing. The coverage is quantised once to an 8-bit alpha a, and
 * out = (a*m + (255-a)*f + 127) / 255 with exactly that a, which is returned
 * as the occlusion map: a = 0 leaves a pixel byte-identical.
 *
 * No static mutable state and no libc rand: the result is a pure function of
 * the inputs, whatever the thread count. */
#include "mask.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"

#define PI 3.14159265358979323846

typedef struct {
    double x, y;
} vec2;

static vec2 v2(double x, double y) { return (vec2){x, y}; }
static vec2 vadd(vec2 a, vec2 b) { return v2(a.x + b.x, a.y + b.y); }
static vec2 vsub(vec2 a, vec2 b) { return v2(a.x - b.x, a.y - b.y); }
static vec2 vmul(vec2 a, double s) { return v2(a.x * s, a.y * s); }
static vec2 vlerp(vec2 a, vec2 b, double t) { return v2(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t); }
static double vdot(vec2 a, vec2 b) { return a.x * b.x + a.y * b.y; }
static double vlen(vec2 a) { return sqrt(a.x * a.x + a.y * a.y); }
static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }
static double smooth01(double t)
{
    t = clampd(t, 0, 1);
    return t * t * (3 - 2 * t);
}
/* floor for |v| < 2^62 without a libm call */
static double ffloor(double v)
{
    double t = (double)(long long)v;
    return t > v ? t - 1 : t;
}
static double fracd(double v) { return v - ffloor(v); }

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* ---- pattern ------------------------------------------------------------- */

enum { TY_SURGICAL, TY_N95, TY_KN95, TY_CLOTH };
enum { ST_FULL, ST_BELOW_NOSE, ST_CHIN };
enum { TX_PLAIN, TX_PLEATS, TX_STRIPES, TX_CHECKS, TX_DOTS, TX_MOTIF };

typedef struct {
    int type, style, texture;
    double rgb[3];
    double scale, angle, contrast;
    uint64_t texture_seed;
    int ear_loops;
} spec;

/* The value after "key": in a flat JSON object, or NULL. */
static const char *json_value(const char *js, const char *key)
{
    if (!js) return NULL;
    size_t kl = strlen(key);
    for (const char *p = strstr(js, key); p; p = strstr(p + 1, key)) {
        if (p == js || p[-1] != '"' || p[kl] != '"') continue;
        const char *q = p + kl + 1;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        if (*q != ':') continue;
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        return q;
    }
    return NULL;
}

static double json_num(const char *js, const char *key, double def)
{
    const char *v = json_value(js, key);
    if (!v) return def;
    char *end;
    double d = strtod(v, &end);
    return end == v || !isfinite(d) ? def : d;
}

static int find_name(const char *s, const char *const *names, int n)
{
    if (!s) return -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int parse_spec(const pattern *p, spec *s, char *err, size_t errlen)
{
    static const char *const types[4] = {"surgical", "n95", "kn95", "cloth"};
    static const char *const styles[3] = {"full", "below_nose", "chin"};
    static const char *const textures[6] = {"plain", "pleats", "stripes", "checks", "dots", "motif"};
    char msg[200];
    memset(s, 0, sizeof *s);
    s->type = find_name(p->type, types, 4);
    s->style = find_name(p->style, styles, 3);
    s->texture = find_name(p->texture, textures, 6);
    if (s->type < 0 || s->style < 0 || s->texture < 0) {
        snprintf(msg, sizeof msg, "pattern %.60s: unknown type, style or texture (%.20s, %.20s, %.20s)", p->stable_id,
                 p->type ? p->type : "(null)", p->style ? p->style : "(null)", p->texture ? p->texture : "(null)");
        set_err(err, errlen, msg);
        return -1;
    }
    if (p->colour[0] != '#') goto bad_colour;
    for (int k = 0; k < 3; k++) {
        int hi = hexval(p->colour[1 + 2 * k]), lo = hi < 0 ? -1 : hexval(p->colour[2 + 2 * k]);
        if (hi < 0 || lo < 0) goto bad_colour;
        s->rgb[k] = hi * 16 + lo;
    }
    s->scale = clampd(json_num(p->params, "scale", 1.0), 0.2, 5.0);
    s->angle = clampd(json_num(p->params, "angle", 0.0), -360, 360) * PI / 180.0;
    s->contrast = clampd(json_num(p->params, "contrast", 0.2), 0.0, 1.0);
    const char *ts = json_value(p->params, "texture_seed");
    s->texture_seed = ts ? strtoull(ts, NULL, 10) : 0;
    const char *el = json_value(p->params, "ear_loops");
    s->ear_loops = el && !strncmp(el, "true", 4);
    return 0;
bad_colour:
    snprintf(msg, sizeof msg, "pattern %.60s: colour \"%.8s\" is not #rrggbb", p->stable_id, p->colour);
    set_err(err, errlen, msg);
    return -1;
}

/* ---- paths --------------------------------------------------------------- */

typedef struct {
    vec2 *p;
    int n, cap;
} path;

static int path_push(path *a, vec2 v)
{
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 64;
        vec2 *np = realloc(a->p, sizeof *np * (size_t)cap);
        if (!np) return -1;
        a->p = np;
        a->cap = cap;
    }
    a->p[a->n++] = v;
    return 0;
}

/* Centripetal Catmull-Rom (Barry-Goldman) between p1 and p2; appends the
 * samples for t in (0, 1] (p2 included, p1 not). */
static int cr_segment(path *out, vec2 p0, vec2 p1, vec2 p2, vec2 p3, double step)
{
    double d01 = sqrt(fmax(vlen(vsub(p1, p0)), 1e-6)), d12 = sqrt(fmax(vlen(vsub(p2, p1)), 1e-6)),
           d23 = sqrt(fmax(vlen(vsub(p3, p2)), 1e-6));
    double t0 = 0, t1 = d01, t2 = t1 + d12, t3 = t2 + d23;
    int m = (int)ceil(vlen(vsub(p2, p1)) / step);
    if (m < 2) m = 2;
    if (m > 64) m = 64;
    for (int i = 1; i <= m; i++) {
        if (i == m) {
            if (path_push(out, p2)) return -1;
            break;
        }
        double t = t1 + (t2 - t1) * i / m;
        vec2 a1 = vadd(vmul(p0, (t1 - t) / (t1 - t0)), vmul(p1, (t - t0) / (t1 - t0)));
        vec2 a2 = vadd(vmul(p1, (t2 - t) / (t2 - t1)), vmul(p2, (t - t1) / (t2 - t1)));
        vec2 a3 = vadd(vmul(p2, (t3 - t) / (t3 - t2)), vmul(p3, (t - t2) / (t3 - t2)));
        vec2 b1 = vadd(vmul(a1, (t2 - t) / (t2 - t0)), vmul(a2, (t - t0) / (t2 - t0)));
        vec2 b2 = vadd(vmul(a2, (t3 - t) / (t3 - t1)), vmul(a3, (t - t1) / (t3 - t1)));
        vec2 c = vadd(vmul(b1, (t2 - t) / (t2 - t1)), vmul(b2, (t - t1) / (t2 - t1)));
        if (path_push(out, c)) return -1;
    }
    return 0;
}

/* An open chain through pts[0..n-1] appended to out (pts[0] included unless
 * out already ends there), or a closed loop (closed != 0). */
static int cr_chain(path *out, const vec2 *pts, int n, int closed, double step)
{
    if (n < 2) return n == 1 ? path_push(out, pts[0]) : 0;
    if (closed) {
        for (int i = 0; i < n; i++)
            if (cr_segment(out, pts[(i + n - 1) % n], pts[i], pts[(i + 1) % n], pts[(i + 2) % n], step)) return -1;
        return 0;
    }
    if (out->n == 0 || vlen(vsub(out->p[out->n - 1], pts[0])) > 1e-9)
        if (path_push(out, pts[0])) return -1;
    for (int i = 0; i + 1 < n; i++) {
        vec2 a = i > 0 ? pts[i - 1] : vsub(vmul(pts[0], 2), pts[1]);
        vec2 d = i + 2 < n ? pts[i + 2] : vsub(vmul(pts[n - 1], 2), pts[n - 2]);
        if (cr_segment(out, a, pts[i], pts[i + 1], d, step)) return -1;
    }
    return 0;
}

/* ---- the face frame and control points ----------------------------------- */

typedef struct {
    const double (*P)[2];
    vec2 ex, ey;      /* unit axes: along the eye line, toward the chin */
    double fh;        /* face height (P27 to P8 along ey), pixels */
    vec2 mouth;       /* centre of the mouth */
    vec2 ca, cb;      /* the centre line P27 -> P8 */
} frame;

static vec2 L(const frame *f, int k) { return v2(f->P[k][0], f->P[k][1]); }

/* Jaw point at fractional index k (0..16), moved toward the centre line by
 * inset (fraction of the distance), and pushed outward (away from the mouth)
 * by drop * fh * w(k), w a bell around the chin P8 that is 0 at P3 / P13. */
static vec2 jawp(const frame *f, double k, double inset, double drop)
{
    k = clampd(k, 0, 16);
    int k0 = (int)floor(k);
    if (k0 > 15) k0 = 15;
    vec2 b = vlerp(L(f, k0), L(f, k0 + 1), k - k0);
    vec2 d = vsub(f->cb, f->ca);
    double dd = vdot(d, d);
    double t = dd > 0 ? clampd(vdot(vsub(b, f->ca), d) / dd, 0, 1) : 0;
    vec2 c = vadd(f->ca, vmul(d, t));
    double q = fabs(k - 8) / 5.0;
    double w = q >= 1 ? 0 : 1 - q * q;
    b = vlerp(b, c, inset * (1 - w));
    vec2 o = vsub(b, f->mouth);
    double ol = vlen(o);
    if (ol > 1e-9 && drop != 0) b = vadd(b, vmul(o, drop * f->fh * w / ol));
    return b;
}

/* Style-dependent anchors: top centre, side corner jaw index, cheek points. */
typedef struct {
    vec2 T;        /* top centre */
    double sk;     /* jaw index of the left side corner (right = 16 - sk) */
} anchors;

static anchors style_anchors(const frame *f, int style)
{
    anchors a;
    switch (style) {
    case ST_BELOW_NOSE: /* just above P33: under the nose tip P30 */
        a.T = vlerp(L(f, 30), L(f, 33), 0.72);
        a.sk = 2.5;
        break;
    case ST_CHIN: /* below the lower lip P57 */
        a.T = vlerp(L(f, 57), L(f, 8), 0.28);
        a.sk = 4.4;
        break;
    default: /* full: on the nose bridge between P28 and P29 */
        a.T = vlerp(L(f, 28), L(f, 29), 0.5);
        a.sk = 1.5;
        break;
    }
    return a;
}

/* Per-type shape parameters. */
typedef struct {
    double side_inset; /* side corners and upper jaw, fraction toward the centre line */
    double sag;        /* cheek points below the chord T-S, fraction of fh (negative: arched) */
    double drop;       /* lower edge below the jaw at the chin, fraction of fh */
} shape;

static shape type_shape(int type, int style)
{
    shape s;
    switch (type) {
    case TY_N95: s = (shape){0.13, -0.035, 0.028}; break;
    case TY_KN95: s = (shape){0.07, 0.01, 0.03}; break;
    case TY_CLOTH: s = (shape){0.04, 0.0, 0.026}; break;
    default: s = (shape){0.0, 0.01, 0.022}; break;
    }
    if (style == ST_CHIN) s.sag = 0.02;
    return s;
}

static vec2 cheek(const frame *f, vec2 T, vec2 S, double sag, double at)
{
    return vadd(vlerp(T, S, at), vmul(f->ey, sag * f->fh));
}

/* The mask body outline (one closed contour). Also returns the side corners. */
static int build_body(const frame *f, int type, int style, path *body, vec2 *SL, vec2 *SR, vec2 *V, double step)
{
    anchors a = style_anchors(f, style);
    shape sh = type_shape(type, style);
    double sk = a.sk, in = sh.side_inset;
    *SL = jawp(f, sk, in, sh.drop);
    *SR = jawp(f, 16 - sk, in, sh.drop);
    vec2 KL = cheek(f, a.T, *SL, sh.sag, 0.5), KR = cheek(f, a.T, *SR, sh.sag, 0.5);
    *V = jawp(f, 8, 0, sh.drop);
    vec2 pts[40];
    int n = 0;
    if (type == TY_N95 || type == TY_CLOTH) {
        /* One closed rounded loop. */
        pts[n++] = a.T;
        pts[n++] = KR;
        pts[n++] = *SR;
        double kstep = type == TY_N95 ? 2.0 : 1.0;
        for (double k = 16 - sk - kstep; k > sk + 0.4; k -= kstep) pts[n++] = jawp(f, k, in, sh.drop);
        pts[n++] = *SL;
        pts[n++] = KL;
        if (type == TY_N95) {
            /* The cup's top is a narrow arch over the nose: extra points near T. */
            vec2 q[40];
            int m = 0;
            for (int i = 0; i < n; i++) {
                if (i == 1) q[m++] = vadd(vlerp(a.T, KR, 0.45), vmul(f->ey, 0.01 * f->fh));
                q[m++] = pts[i];
            }
            q[m++] = vadd(vlerp(a.T, KL, 0.45), vmul(f->ey, 0.01 * f->fh));
            return cr_chain(body, q, m, 1, step);
        }
        return cr_chain(body, pts, n, 1, step);
    }
    if (type == TY_KN95) {
        /* Two straight-ish top panels meeting at a peak on the nose, and two
         * lower panels meeting at a point under the chin. */
        vec2 c1[3] = {*SL, KL, a.T}, c2[3] = {a.T, KR, *SR};
        if (cr_chain(body, c1, 3, 0, step) || cr_chain(body, c2, 3, 0, step)) return -1;
        vec2 lo[8];
        int m = 0;
        lo[m++] = *SR;
        double kb = 16 - sk - 1.5; /* where the lower panel leaves the jaw */
        if (kb > 9.5) lo[m++] = jawp(f, kb, in, sh.drop);
        vec2 B = m > 1 ? lo[m - 1] : *SR;
        lo[m++] = vlerp(vlerp(B, *V, 0.5), jawp(f, (kb + 8) / 2, 0, sh.drop), 0.5);
        lo[m++] = *V;
        if (cr_chain(body, lo, m, 0, step)) return -1;
        m = 0;
        lo[m++] = *V;
        double kl = sk + 1.5;
        vec2 BL = kl < 6.5 ? jawp(f, kl, in, sh.drop) : *SL;
        lo[m++] = vlerp(vlerp(BL, *V, 0.5), jawp(f, (kl + 8) / 2, 0, sh.drop), 0.5);
        if (kl < 6.5) lo[m++] = BL;
        lo[m++] = *SL;
        if (cr_chain(body, lo, m, 0, step)) return -1;
        if (body->n > 1 && vlen(vsub(body->p[body->n - 1], body->p[0])) < 1e-9) body->n--;
        return 0;
    }
    /* Surgical: a taut top edge, sharp side corners, the lower edge on the jaw. */
    vec2 top[5] = {*SL, KL, a.T, KR, *SR};
    if (cr_chain(body, top, 5, 0, step)) return -1;
    n = 0;
    pts[n++] = *SR;
    for (int k = (int)floor(16 - sk); k > sk; k--) {
        if (fabs(k - (16 - sk)) < 0.4 || fabs(k - sk) < 0.4) continue;
        pts[n++] = jawp(f, k, in, sh.drop);
    }
    pts[n++] = *SL;
    if (cr_chain(body, pts, n, 0, step)) return -1;
    if (body->n > 1 && vlen(vsub(body->p[body->n - 1], body->p[0])) < 1e-9) body->n--;
    return 0;
}

/* A strip of width th along the chain pts (the loops): one closed contour. */
static int build_strip(const vec2 *pts, int n, double th, double step, path *out)
{
    path c = {0};
    if (cr_chain(&c, pts, n, 0, step)) {
        free(c.p);
        return -1;
    }
    int rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (int j = 0; j < c.n && !rc; j++) {
            int i = pass ? c.n - 1 - j : j;
            vec2 d = vsub(c.p[i < c.n - 1 ? i + 1 : i], c.p[i > 0 ? i - 1 : i]);
            double l = vlen(d);
            vec2 nrm = l > 1e-12 ? v2(-d.y / l, d.x / l) : v2(0, 0);
            double s = pass ? -0.5 * th : 0.5 * th;
            rc = path_push(out, vadd(c.p[i], vmul(nrm, s)));
        }
    free(c.p);
    return rc;
}

/* ---- rasteriser ----------------------------------------------------------- */

enum { LY_BODY, LY_LOOPS, LY_CLIP, LY_N };

typedef struct {
    double y0, y1, x0, dxdy;
    signed char dir, layer;
} edge;

typedef struct {
    edge *e;
    int n, cap;
} edges;

static double signed_area(const vec2 *p, int n)
{
    double a = 0;
    for (int i = 0; i < n; i++) {
        const vec2 *u = &p[i], *v = &p[(i + 1) % n];
        a += u->x * v->y - v->x * u->y;
    }
    return 0.5 * a;
}

/* Adds a closed contour, oriented so that its inside has winding +1. */
static int add_contour(edges *E, const vec2 *p, int n, int layer)
{
    if (n < 3) return 0;
    int sgn = signed_area(p, n) >= 0 ? 1 : -1;
    for (int i = 0; i < n; i++) {
        vec2 a = p[i], b = p[(i + 1) % n];
        if (a.y == b.y) continue;
        if (E->n == E->cap) {
            int cap = E->cap ? 2 * E->cap : 256;
            edge *ne = realloc(E->e, sizeof *ne * (size_t)cap);
            if (!ne) return -1;
            E->e = ne;
            E->cap = cap;
        }
        edge *e = &E->e[E->n++];
        int down = b.y > a.y;
        vec2 lo = down ? a : b, hi = down ? b : a;
        e->y0 = lo.y;
        e->y1 = hi.y;
        e->x0 = lo.x;
        e->dxdy = (hi.x - lo.x) / (hi.y - lo.y);
        e->dir = (signed char)((down ? 1 : -1) * sgn);
        e->layer = (signed char)layer;
    }
    return 0;
}

typedef struct {
    double x;
    int dir;
} crossing;

/* Spans [a, b) of nonzero winding from crossings (sorted here). */
static int spans_from(crossing *c, int n, double *sp)
{
    for (int i = 1; i < n; i++) { /* insertion sort: a handful of crossings */
        crossing v = c[i];
        int j = i - 1;
        while (j >= 0 && c[j].x > v.x) {
            c[j + 1] = c[j];
            j--;
        }
        c[j + 1] = v;
    }
    int w = 0, m = 0;
    for (int i = 0; i < n; i++) {
        int w2 = w + c[i].dir;
        if (w == 0 && w2 != 0) sp[m] = c[i].x;
        else if (w != 0 && w2 == 0 && c[i].x > sp[m]) {
            sp[m + 1] = c[i].x;
            m += 2;
        }
        w = w2;
    }
    return m / 2;
}

static int spans_and(const double *a, int na, const double *b, int nb, double *o)
{
    int i = 0, j = 0, m = 0;
    while (i < na && j < nb) {
        double lo = fmax(a[2 * i], b[2 * j]), hi = fmin(a[2 * i + 1], b[2 * j + 1]);
        if (hi > lo) {
            o[2 * m] = lo;
            o[2 * m + 1] = hi;
            m++;
        }
        if (a[2 * i + 1] < b[2 * j + 1]) i++;
        else j++;
    }
    return m;
}

static int spans_or(const double *a, int na, const double *b, int nb, double *o)
{
    int i = 0, j = 0, m = 0;
    while (i < na || j < nb) {
        const double *s = (j >= nb || (i < na && a[2 * i] <= b[2 * j])) ? &a[2 * i++] : &b[2 * j++];
        if (m > 0 && s[0] <= o[2 * m - 1]) {
            if (s[1] > o[2 * m - 1]) o[2 * m - 1] = s[1];
        } else {
            o[2 * m] = s[0];
            o[2 * m + 1] = s[1];
            m++;
        }
    }
    return m;
}

/* Adds weight * (exact horizontal overlap) of spans to a row, where pixel i
 * covers [x0 + i - 0.5, x0 + i + 0.5): partial end pixels go to row, runs of
 * whole pixels to the difference array diff (summed once per row). */
static void accumulate(float *row, float *diff, int w, int x0, const double *sp, int n, float weight)
{
    for (int s = 0; s < n; s++) {
        double a = sp[2 * s] + 0.5 - x0, b = sp[2 * s + 1] + 0.5 - x0;
        if (a < 0) a = 0;
        if (b > w) b = w;
        if (b <= a) continue;
        int ia = (int)a, ib = (int)b;
        if (ia == ib) {
            row[ia] += weight * (float)(b - a);
            continue;
        }
        row[ia] += weight * (float)(ia + 1 - a);
        diff[ia + 1] += weight;
        diff[ib] -= weight;
        if (ib < w) row[ib] += weight * (float)(b - ib);
    }
}

static void flush_diff(float *row, float *diff, int w)
{
    float acc = 0;
    for (int i = 0; i < w; i++) {
        acc += diff[i];
        row[i] += acc;
        diff[i] = 0;
    }
    diff[w] = 0;
}

typedef struct {
    int x0, y0, w, h; /* region in image pixels */
    float *all;       /* coverage of the whole mask (body | loops) & clip */
    float *body;      /* coverage of the body & clip; NULL when there are no loops */
} raster;

static int rasterise(const edges *E, raster *R, int ss)
{
    int rc = -1;
    int H = R->h;
    int *count = calloc((size_t)H + 1, sizeof *count), *idx = NULL;
    crossing *cr[LY_N] = {0};
    double *sp[LY_N + 2] = {0};
    int maxc = E->n + 4;
    float *diff_a = calloc((size_t)R->w + 1, sizeof *diff_a), *diff_b = calloc((size_t)R->w + 1, sizeof *diff_b);
    if (!count || !diff_a || !diff_b) goto out;
    /* Bucket the edges by the pixel rows their y range touches. */
    long total = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (int r = 0; r < H; r++) count[r + 1] += count[r];
            total = count[H];
            idx = malloc(sizeof *idx * (size_t)(total > 0 ? total : 1));
            if (!idx) goto out;
        }
        for (int i = 0; i < E->n; i++) {
            const edge *e = &E->e[i];
            int r0 = (int)floor(e->y0 + 0.5) - R->y0, r1 = (int)floor(e->y1 + 0.5) - R->y0;
            if (r0 < 0) r0 = 0;
            if (r1 > H - 1) r1 = H - 1;
            for (int r = r0; r <= r1; r++) {
                if (pass == 0) count[r + 1]++;
                else idx[count[r]++] = i;
            }
        }
        if (pass == 1)
            for (int r = H; r > 0; r--) count[r] = count[r - 1];
        if (pass == 1) count[0] = 0;
    }
    for (int l = 0; l < LY_N; l++)
        if (!(cr[l] = malloc(sizeof *cr[l] * (size_t)maxc))) goto out;
    for (int l = 0; l < LY_N + 2; l++)
        if (!(sp[l] = malloc(sizeof *sp[l] * (size_t)(2 * maxc + 4)))) goto out;
    float wgt = 1.0f / (float)ss;
    for (int r = 0; r < H; r++) {
        float *rowa = R->all + (size_t)r * R->w, *rowb = R->body ? R->body + (size_t)r * R->w : NULL;
        for (int s = 0; s < ss; s++) {
            double ys = R->y0 + r - 0.5 + (s + 0.5) / ss;
            int nc[LY_N] = {0};
            for (int j = count[r]; j < count[r + 1]; j++) {
                const edge *e = &E->e[idx[j]];
                if (ys < e->y0 || ys >= e->y1) continue;
                crossing *c = &cr[(int)e->layer][nc[(int)e->layer]++];
                c->x = e->x0 + (ys - e->y0) * e->dxdy;
                c->dir = e->dir;
            }
            if (nc[LY_BODY] + nc[LY_LOOPS] == 0 || nc[LY_CLIP] == 0) continue;
            int nb = spans_from(cr[LY_BODY], nc[LY_BODY], sp[0]);
            int nl = spans_from(cr[LY_LOOPS], nc[LY_LOOPS], sp[1]);
            int ncl = spans_from(cr[LY_CLIP], nc[LY_CLIP], sp[2]);
            int nbc = spans_and(sp[0], nb, sp[2], ncl, sp[3]);
            if (rowb) accumulate(rowb, diff_b, R->w, R->x0, sp[3], nbc, wgt);
            if (nl == 0) {
                accumulate(rowa, diff_a, R->w, R->x0, sp[3], nbc, wgt);
            } else {
                int nu = spans_or(sp[0], nb, sp[1], nl, sp[4]);
                int na = spans_and(sp[4], nu, sp[2], ncl, sp[3]);
                accumulate(rowa, diff_a, R->w, R->x0, sp[3], na, wgt);
            }
        }
        flush_diff(rowa, diff_a, R->w);
        if (rowb) flush_diff(rowb, diff_b, R->w);
    }
    rc = 0;
out:
    free(count);
    free(idx);
    free(diff_a);
    free(diff_b);
    for (int l = 0; l < LY_N; l++) free(cr[l]);
    for (int l = 0; l < LY_N + 2; l++) free(sp[l]);
    return rc;
}

/* ---- appearance ------------------------------------------------------------ */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A cheap per-pixel hash in [0, 1) (fabric grain). */
static double grain(uint32_t seed, int x, int y)
{
    uint32_t h = seed ^ ((uint32_t)x * 0x27d4eb2du) ^ ((uint32_t)y * 0x165667b1u);
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    h *= 0x297a2d39u;
    h ^= h >> 15;
    return h * (1.0 / 4294967296.0);
}

static double lattice(uint64_t seed, long ix, long iy)
{
    uint64_t h = mix64(seed ^ mix64((uint64_t)ix * 0x9E3779B97F4A7C15ULL ^ (uint64_t)iy * 0xC2B2AE3D27D4EB4FULL));
    return (double)(h >> 11) * 0x1.0p-53;
}

/* Value noise in [0, 1), smooth interpolation of a seeded lattice. */
static double vnoise(uint64_t seed, double x, double y)
{
    double fx = ffloor(x), fy = ffloor(y);
    long ix = (long)fx, iy = (long)fy;
    double tx = x - fx, ty = y - fy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    double a = lattice(seed, ix, iy), b = lattice(seed, ix + 1, iy), c = lattice(seed, ix, iy + 1),
           d = lattice(seed, ix + 1, iy + 1);
    return a + (b - a) * tx + (c - a) * ty + (a - b - c + d) * tx * ty;
}

static double fbm(uint64_t seed, double x, double y)
{
    return (0.57 * vnoise(seed, x, y) + 0.29 * vnoise(seed + 1, 2.03 * x, 2.03 * y) +
            0.14 * vnoise(seed + 2, 4.1 * x, 4.1 * y));
}

/* Integral of a 50% square wave (1 on [0, 0.5) of each period). */
static double sqint(double x)
{
    double f = ffloor(x), r = x - f;
    return 0.5 * f + (r < 0.5 ? r : 0.5);
}

/* Box-filtered square wave over [x - w/2, x + w/2]: exact anti-aliasing. */
static double square_aa(double x, double w)
{
    if (w < 1e-6) return fracd(x) < 0.5 ? 1 : 0;
    return (sqint(x + 0.5 * w) - sqint(x - 0.5 * w)) / w;
}

/* The outline's vertical extent per horizontal position (face frame). */
#define NBINS 48
typedef struct {
    double umin, umax, vtop[NBINS], vbot[NBINS];
    double qtop[3], qbot[3]; /* least-squares parabolas v(u) of both profiles */
    double inv_bw, inv_w;    /* NBINS / width, 1 / width */
} extent;

/* Least-squares v = q0 + q1 x + q2 x^2 over the bins, x = bin position in [-1, 1]. */
static void fit_parabola(const double *v, double q[3])
{
    double S[3][4] = {{0}};
    for (int b = 0; b < NBINS; b++) {
        double x = 2.0 * (b + 0.5) / NBINS - 1, p[3] = {1, x, x * x};
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) S[i][j] += p[i] * p[j];
            S[i][3] += p[i] * v[b];
        }
    }
    for (int c = 0; c < 3; c++) /* Gauss-Jordan; the system is well conditioned */
        for (int r = 0; r < 3; r++) {
            if (r == c) continue;
            double f = S[r][c] / S[c][c];
            for (int k = 0; k < 4; k++) S[r][k] -= f * S[c][k];
        }
    for (int i = 0; i < 3; i++) q[i] = S[i][3] / S[i][i];
}

static void build_extent(const path *body, vec2 origin, vec2 ex, vec2 ey, extent *X)
{
    X->umin = 1e300;
    X->umax = -1e300;
    for (int i = 0; i < body->n; i++) {
        double u = vdot(vsub(body->p[i], origin), ex);
        if (u < X->umin) X->umin = u;
        if (u > X->umax) X->umax = u;
    }
    if (!(X->umax > X->umin)) X->umax = X->umin + 1;
    for (int b = 0; b < NBINS; b++) {
        X->vtop[b] = 1e300;
        X->vbot[b] = -1e300;
    }
    double bw = (X->umax - X->umin) / NBINS;
    for (int i = 0; i < body->n; i++) {
        vec2 a = body->p[i], c = body->p[(i + 1) % body->n];
        for (int k = 0; k < 4; k++) {
            vec2 p = vlerp(a, c, k / 4.0);
            double u = vdot(vsub(p, origin), ex), v = vdot(vsub(p, origin), ey);
            int b = (int)((u - X->umin) / bw);
            if (b < 0) b = 0;
            if (b >= NBINS) b = NBINS - 1;
            if (v < X->vtop[b]) X->vtop[b] = v;
            if (v > X->vbot[b]) X->vbot[b] = v;
        }
    }
    /* Empty bins (very thin outlines) take their nearest filled neighbour. */
    for (int b = 0; b < NBINS; b++) {
        if (X->vtop[b] < 1e299) continue;
        for (int d = 1; d < NBINS; d++) {
            int c = b - d >= 0 && X->vtop[b - d] < 1e299 ? b - d : b + d < NBINS && X->vtop[b + d] < 1e299 ? b + d : -1;
            if (c >= 0) {
                X->vtop[b] = X->vtop[c];
                X->vbot[b] = X->vbot[c];
                break;
            }
        }
    }
    /* Smooth both profiles: the pleats and rims derived from them must not
     * inherit the outline's sampling. */
    for (int pass = 0; pass < 6; pass++) {
        double a[NBINS], c[NBINS];
        for (int b = 0; b < NBINS; b++) {
            int l = b > 0 ? b - 1 : b, r = b < NBINS - 1 ? b + 1 : b;
            a[b] = 0.25 * (X->vtop[l] + 2 * X->vtop[b] + X->vtop[r]);
            c[b] = 0.25 * (X->vbot[l] + 2 * X->vbot[b] + X->vbot[r]);
        }
        memcpy(X->vtop, a, sizeof a);
        memcpy(X->vbot, c, sizeof c);
    }
    X->inv_w = 1 / (X->umax - X->umin);
    X->inv_bw = NBINS * X->inv_w;
    fit_parabola(X->vtop, X->qtop);
    fit_parabola(X->vbot, X->qbot);
}

/* Vertical position between the fitted parabolas: smooth bands (pleats). */
static double extent_smooth_t(const extent *X, double u, double v)
{
    double x = clampd(2 * (u - X->umin) * X->inv_w - 1, -1, 1);
    double top = X->qtop[0] + x * (X->qtop[1] + x * X->qtop[2]);
    double bot = X->qbot[0] + x * (X->qbot[1] + x * X->qbot[2]);
    return bot > top ? clampd((v - top) / (bot - top), 0, 1) : 0.5;
}

/* Normalised vertical position t (0 top edge .. 1 lower edge) and horizontal s. */
static void extent_at(const extent *X, double u, double v, double *s, double *t)
{
    double fb = (u - X->umin) * X->inv_bw - 0.5;
    int b0 = (int)ffloor(fb);
    double q = fb - b0;
    if (b0 < 0) {
        b0 = 0;
        q = 0;
    }
    if (b0 >= NBINS - 1) {
        b0 = NBINS - 2;
        q = 1;
    }
    double top = X->vtop[b0] + (X->vtop[b0 + 1] - X->vtop[b0]) * q;
    double bot = X->vbot[b0] + (X->vbot[b0 + 1] - X->vbot[b0]) * q;
    *t = bot > top ? clampd((v - top) / (bot - top), 0, 1) : 0.5;
    *s = clampd((u - X->umin) * X->inv_w, 0, 1);
}

/* Separable box blur (radius r, truncated at the region's edges) in place. */
static void box_blur(float *a, float *tmp, int w, int h, int r)
{
    for (int y = 0; y < h; y++) {
        float *row = a + (size_t)y * w;
        double s = 0;
        for (int x = 0; x <= r && x < w; x++) s += row[x];
        for (int x = 0; x < w; x++) {
            tmp[(size_t)y * w + x] = (float)s;
            if (x + r + 1 < w) s += row[x + r + 1];
            if (x - r >= 0) s -= row[x - r];
        }
    }
    for (int x = 0; x < w; x++) {
        double s = 0;
        for (int y = 0; y <= r && y < h; y++) s += tmp[(size_t)y * w + x];
        for (int y = 0; y < h; y++) {
            a[(size_t)y * w + x] = (float)s;
            if (y + r + 1 < h) s += tmp[(size_t)(y + r + 1) * w + x];
            if (y - r >= 0) s -= tmp[(size_t)(y - r) * w + x];
        }
    }
}

static double luma(const double *rgb) { return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]; }

/* ---- validation ------------------------------------------------------------ */

static int check_landmarks(const double pts[68][2], char *err, size_t errlen)
{
    char msg[160];
    for (int k = 0; k < 68; k++)
        if (!isfinite(pts[k][0]) || !isfinite(pts[k][1]) || fabs(pts[k][0]) > 1e6 || fabs(pts[k][1]) > 1e6) {
            snprintf(msg, sizeof msg, "landmark %d is not finite or out of range", k);
            set_err(err, errlen, msg);
            return -1;
        }
    double mx = 0, my = 0;
    for (int k = 0; k < 68; k++) {
        mx += pts[k][0];
        my += pts[k][1];
    }
    mx /= 68;
    my /= 68;
    double sxx = 0, syy = 0, sxy = 0;
    for (int k = 0; k < 68; k++) {
        double dx = pts[k][0] - mx, dy = pts[k][1] - my;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    sxx /= 68;
    syy /= 68;
    sxy /= 68;
    double tr = sxx + syy, det = sxx * syy - sxy * sxy;
    double disc = sqrt(fmax(tr * tr / 4 - det, 0));
    double lmin = tr / 2 - disc;
    if (lmin < 0.25) { /* standard deviation across the main axis under half a pixel */
        set_err(err, errlen, "landmarks are degenerate (all equal or collinear)");
        return -1;
    }
    double fw = hypot(pts[16][0] - pts[0][0], pts[16][1] - pts[0][1]);
    if (!(fw > 4)) {
        snprintf(msg, sizeof msg, "face too narrow: P0-P16 is %.2f px (needs > 4)", fw);
        set_err(err, errlen, msg);
        return -1;
    }
    return 0;
}

/* ---- mask_render ----------------------------------------------------------- */

void mask_result_free(mask_result *res)
{
    if (!res) return;
    free(res->alpha);
    res->alpha = NULL;
}

int mask_render(const image *face, const double pts[68][2], const pattern *p, uint64_t seed, image *out,
                mask_result *res, char *err, size_t errlen)
{
    if (out) memset(out, 0, sizeof *out);
    if (res) memset(res, 0, sizeof *res);
    if (!face || !face->px || (face->c != 1 && face->c != 3) || face->w <= 0 || face->h <= 0 || !pts || !p || !out ||
        !res) {
        set_err(err, errlen, "mask_render: bad arguments (image, landmarks, pattern or outputs)");
        return -1;
    }
    spec S;
    if (parse_spec(p, &S, err, errlen)) return -1;
    if (check_landmarks(pts, err, errlen)) return -1;

    frame F;
    F.P = pts;
    vec2 eL = v2(0, 0), eR = v2(0, 0);
    for (int k = 0; k < 6; k++) {
        eL = vadd(eL, L(&F, 36 + k));
        eR = vadd(eR, L(&F, 42 + k));
    }
    vec2 ex = vsub(eR, eL);
    if (vlen(ex) < 1e-6) ex = vsub(L(&F, 16), L(&F, 0));
    ex = vmul(ex, 1 / vlen(ex));
    vec2 ey = v2(-ex.y, ex.x);
    if (vdot(vsub(L(&F, 8), L(&F, 27)), ey) < 0) ey = vmul(ey, -1); /* mirrored landmark sets */
    F.ex = ex;
    F.ey = ey;
    F.fh = vdot(vsub(L(&F, 8), L(&F, 27)), ey);
    if (!(F.fh > 2)) {
        set_err(err, errlen, "landmarks are degenerate: chin P8 not below the nose bridge P27");
        return -1;
    }
    F.mouth = v2(0, 0);
    for (int k = 48; k < 68; k++) F.mouth = vadd(F.mouth, L(&F, k));
    F.mouth = vmul(F.mouth, 1.0 / 20);
    F.ca = L(&F, 27);
    F.cb = L(&F, 8);

    int rc = -1;
    double step = clampd(F.fh / 20, 1.0, 4.0); /* outline sampling, pixels */
    path body = {0}, loops = {0}, clip = {0};
    edges E = {0};
    raster R = {0};
    float *lum = NULL, *wgt = NULL, *w0 = NULL, *tmp = NULL, *colfx = NULL;
    int *colmap = NULL;
    vec2 SL, SR, V;
    int loops_n = 0;
    if (build_body(&F, S.type, S.style, &body, &SL, &SR, &V, step)) goto oom;
    shape sh = type_shape(S.type, S.style);

    /* Clip region: the jaw just outside the mask's own lower edge, over the brows. */
    {
        vec2 c[40];
        int n = 0;
        for (int k = 0; k <= 16; k++) {
            vec2 j = jawp(&F, k, 0, sh.drop + 0.012);
            vec2 o = vsub(L(&F, k), F.mouth);
            double ol = vlen(o);
            c[n++] = ol > 1e-9 ? vadd(j, vmul(o, 0.25 / ol)) : j;
        }
        path jaw = {0};
        if (cr_chain(&jaw, c, n, 0, step)) {
            free(jaw.p);
            goto oom;
        }
        for (int k = 26; k >= 17; k--)
            if (path_push(&jaw, vsub(L(&F, k), vmul(ey, 0.05 * F.fh)))) {
                free(jaw.p);
                goto oom;
            }
        clip = jaw;
    }

    /* Ear loops: from the side corners along the jaw (just inside it) toward
     * the ears; N95 gets a second, lower strap. */
    if (S.ear_loops) {
        anchors a = style_anchors(&F, S.style);
        double th = fmax(0.9, 0.02 * F.fh);
        double li = 0.035;
        for (int side = 0; side < 2; side++) {
            vec2 q[24];
            int n = 0;
            double sk = a.sk;
            q[n++] = side ? SR : SL;
            double ke = 0.35;
            for (double k = sk - 0.7; k > ke + 0.2; k -= 0.8) q[n++] = jawp(&F, side ? 16 - k : k, li, 0);
            q[n++] = jawp(&F, side ? 16 - ke : ke, li, 0);
            if (build_strip(q, n, th, step, &loops)) goto oom;
            if (add_contour(&E, loops.p, loops.n, LY_LOOPS)) goto oom;
            loops_n++;
            loops.n = 0;
            if (S.type == TY_N95) {
                n = 0;
                double kl = sk + 1.6;
                q[n++] = jawp(&F, side ? 16 - kl : kl, sh.side_inset, sh.drop);
                q[n++] = jawp(&F, side ? 16 - (kl - 0.5) : kl - 0.5, 0.5 * (sh.side_inset + li), 0);
                q[n++] = jawp(&F, side ? 16 - (sk + 0.3) : sk + 0.3, li, 0);
                if (build_strip(q, n, th, step, &loops)) goto oom;
                if (add_contour(&E, loops.p, loops.n, LY_LOOPS)) goto oom;
                loops_n++;
                loops.n = 0;
            }
        }
    }
    if (add_contour(&E, body.p, body.n, LY_BODY) || add_contour(&E, clip.p, clip.n, LY_CLIP)) goto oom;

    /* The region: bounding box of the mask (body and loops), in the image. */
    double bx0 = 1e300, by0 = 1e300, bx1 = -1e300, by1 = -1e300;
    for (int i = 0; i < E.n; i++) {
        const edge *e = &E.e[i];
        if (e->layer == LY_CLIP) continue;
        double xa = e->x0, xb = e->x0 + (e->y1 - e->y0) * e->dxdy;
        bx0 = fmin(bx0, fmin(xa, xb));
        bx1 = fmax(bx1, fmax(xa, xb));
        by0 = fmin(by0, e->y0);
        by1 = fmax(by1, e->y1);
    }
    if (image_alloc(out, face->w, face->h, face->c)) goto oom;
    memcpy(out->px, face->px, (size_t)face->w * face->h * face->c);
    res->alpha = calloc((size_t)face->w * face->h, 1);
    if (!res->alpha) goto oom;
    R.x0 = (int)floor(bx0 + 0.5) - 1;
    R.y0 = (int)floor(by0 + 0.5) - 1;
    int rx1 = (int)floor(bx1 + 0.5) + 1, ry1 = (int)floor(by1 + 0.5) + 1;
    if (R.x0 < 0) R.x0 = 0;
    if (R.y0 < 0) R.y0 = 0;
    if (rx1 > face->w - 1) rx1 = face->w - 1;
    if (ry1 > face->h - 1) ry1 = face->h - 1;
    R.w = rx1 - R.x0 + 1;
    R.h = ry1 - R.y0 + 1;
    if (R.w <= 0 || R.h <= 0 || bx1 < bx0) goto done; /* the mask is entirely off the image */
    size_t np = (size_t)R.w * R.h;
    R.all = calloc(np, sizeof *R.all);
    if (!R.all) goto oom;
    if (loops_n > 0 && !(R.body = calloc(np, sizeof *R.body))) goto oom;
    if (rasterise(&E, &R, F.fh < 40 ? 8 : F.fh < 80 ? 6 : 4)) goto oom;

    /* The face's own light under the mask: a normalised convolution of the
     * luminance with the coverage as weight (so background and hair never
     * leak in), on a grid of cells about fh/20 wide, relative to its
     * coverage-weighted mean. */
    int C = face->c;
    int cs = (int)clampd(0.05 * F.fh + 0.5, 2, 64);
    int gw = (R.w + cs - 1) / cs, gh = (R.h + cs - 1) / cs;
    size_t ng = (size_t)gw * gh;
    lum = calloc(ng, sizeof *lum);
    wgt = calloc(ng, sizeof *wgt);
    w0 = calloc(ng, sizeof *w0);
    tmp = malloc((ng > (size_t)gw ? ng : (size_t)gw) * sizeof *tmp);
    if (!lum || !wgt || !w0 || !tmp) goto oom;
    colmap = malloc((size_t)R.w * sizeof *colmap);
    colfx = malloc((size_t)R.w * sizeof *colfx);
    if (!colmap || !colfx) goto oom;
    for (int y = 0; y < R.h; y++) {
        const float *ra = R.all + (size_t)y * R.w;
        float *lrow = lum + (size_t)(y / cs) * gw, *wrow = wgt + (size_t)(y / cs) * gw;
        const uint8_t *f = face->px + ((size_t)(R.y0 + y) * face->w + R.x0) * C;
        for (int x = 0, gx = 0, k = 0; x < R.w; x++, f += C) {
            if (ra[x] > 0) {
                float l = C == 3 ? 0.299f * f[0] + 0.587f * f[1] + 0.114f * f[2] : f[0];
                lrow[gx] += l * ra[x];
                wrow[gx] += ra[x];
            }
            if (++k == cs) {
                k = 0;
                gx++;
            }
        }
    }
    /* bilinear lookup between cell centres, per column */
    for (int x = 0; x < R.w; x++) {
        double gxf = (x + 0.5) / cs - 0.5;
        int gx0 = (int)ffloor(gxf);
        colfx[x] = (float)(gxf - gx0);
        colmap[x] = gx0;
    }
    memcpy(w0, wgt, ng * sizeof *w0);
    int br = (int)clampd(0.13 * F.fh / cs + 0.5, 1, 60);
    box_blur(lum, tmp, gw, gh, br);
    box_blur(lum, tmp, gw, gh, br);
    box_blur(wgt, tmp, gw, gh, br);
    box_blur(wgt, tmp, gw, gh, br);
    double lsum = 0, asum = 0, left = 0, right = 0, nl = 0, nr = 0;
    vec2 T0 = style_anchors(&F, S.style).T;
    for (int gy = 0; gy < gh; gy++)
        for (int gx = 0; gx < gw; gx++) {
            size_t g = (size_t)gy * gw + gx;
            lum[g] = wgt[g] > 1e-6f ? lum[g] / wgt[g] : -1; /* -1: no estimate here */
            if (w0[g] > 0) {
                lsum += lum[g] * w0[g];
                asum += w0[g];
                double u = vdot(vsub(v2(R.x0 + (gx + 0.5) * cs - 0.5, R.y0 + (gy + 0.5) * cs - 0.5), T0), ex);
                if (u < 0) left += lum[g] * w0[g], nl += w0[g];
                else right += lum[g] * w0[g], nr += w0[g];
            }
        }
    double lmean = asum > 0 ? lsum / asum : 0;
    /* The light factor per cell, relative to the mean and clamped; pixels
     * interpolate it bilinearly between cell centres. */
    if (lmean > 1)
        for (size_t g = 0; g < ng; g++)
            lum[g] = (float)clampd(1 + 0.85 * ((lum[g] < 0 ? lmean : lum[g]) / lmean - 1), 0.55, 1.3);
    double panel = nl > 0 && nr > 0 && lmean > 1 ? clampd((right / nr - left / nl) / lmean, -0.3, 0.3) : 0;

    /* Texture frame: origin on the top centre, axes of the face, the far half
     * compressed as the jaw is (yaw). */
    extent X;
    build_extent(&body, T0, ex, ey, &X);
    double vV = vdot(vsub(V, T0), ey), uV = vdot(vsub(V, T0), ex);
    double wl = -X.umin, wr = X.umax; /* half widths from the top centre */
    if (wl < 1) wl = 1;
    if (wr < 1) wr = 1;
    double half = 0.5 * (wl + wr);
    double period = 0.17 * F.fh * S.scale; /* texture period, pixels */
    double ca = cos(S.angle), sa = sin(S.angle);
    rng_t rg;
    rng_seed(&rg, seed, S.texture_seed);
    double off_a = rng_uniform(&rg), off_b = rng_uniform(&rg);
    double off_n = 64 * rng_uniform(&rg), off_m = 64 * rng_uniform(&rg);
    uint64_t nseed = mix64(S.texture_seed ^ 0x6d61736b6e6f6973ULL);
    uint64_t fseed = mix64(seed ^ (S.texture_seed << 1) ^ 0x666162726963ULL);

    /* Colours: base, a contrasting second colour and a hue-rotated third. */
    double c1[3], c2[3], c3[3], cl[3];
    double bl = luma(S.rgb), k2 = clampd(1.6 * S.contrast, 0.1, 0.9);
    for (int k = 0; k < 3; k++) {
        c1[k] = S.rgb[k];
        c2[k] = bl > 140 ? S.rgb[k] * (1 - k2) : S.rgb[k] + (255 - S.rgb[k]) * k2;
    }
    for (int k = 0; k < 3; k++) {
        c3[k] = 0.5 * S.rgb[(k + 1) % 3] + 0.5 * c2[(k + 2) % 3];
        cl[k] = S.type == TY_SURGICAL ? 0.6 * S.rgb[k] + 0.4 * 245 : S.rgb[k] * 0.92;
    }
    int pleated = S.type == TY_SURGICAL || S.texture == TX_PLEATS;
    int pleat_bands = pleated && S.type != TY_N95 && S.type != TY_KN95;
    /* Loop invariants. */
    double inv_vV = vV > 1e-9 ? 1 / vV : 0;
    double kl = half / wl, kr = half / wr;
    double inv_period = 1 / period;
    double fp = inv_period; /* one pixel, in texture periods */
    double att = clampd(1.5 - 2.5 * fp, 0, 1); /* fade textures finer than ~2.5 px */
    double hpx = X.vbot[NBINS / 2] - X.vtop[NBINS / 2]; /* mask height at the centre, pixels */
    if (hpx < 1) hpx = 1;
    double ctr = 0.6 + S.contrast; /* structure contrast */
    const double p_lo = 0.16, p_hi = 0.88; /* three pleats between these heights */
    double p_k = 3 / (p_hi - p_lo);
    double p_sw = clampd(2.2 / ((p_hi - p_lo) / 3 * hpx), 0.08, 0.5);
    double inv_sw = 1 / p_sw, inv_sw15 = 1 / (1.5 * p_sw);
    double dot_e = 1 / (1.3 * fp);
    double motif_e = 1 / clampd(1.2 * fp, 0.03, 0.5);
    double inv_seam_kn = 1 / fmax(0.7, 0.012 * F.fh), inv_seam_cl = 1 / fmax(0.8, 0.015 * F.fh);
    double rim_k = hpx / 0.8;
    double panel_k = 1 + (0.06 + 0.5 * fabs(panel)) * 0.7, panel_sgn = panel < 0 ? -1 : 1;
    double grain_amp = S.type == TY_CLOTH ? 0.05 : 0.025;
    double nose_half = 0.13 * half;

    long asum8 = 0;
    for (int y = 0; y < R.h; y++) {
        if (lmean > 1) { /* this row of the light map, interpolated vertically */
            double gyf = (y + 0.5) / cs - 0.5;
            int gy0 = (int)ffloor(gyf);
            double fy = gyf - gy0;
            int ya = gy0 < 0 ? 0 : gy0, yb = gy0 + 1 > gh - 1 ? gh - 1 : gy0 + 1;
            for (int gx = 0; gx < gw; gx++)
                tmp[gx] = (float)((1 - fy) * lum[(size_t)ya * gw + gx] + fy * lum[(size_t)yb * gw + gx]);
        }
        vec2 q0 = vsub(v2(R.x0, R.y0 + y), T0);
        double u0 = vdot(q0, ex), v0 = vdot(q0, ey);
        for (int x = 0; x < R.w; x++) {
            size_t i = (size_t)y * R.w + x;
            double cov = R.all[i];
            if (cov <= 0.5 / 255) continue;
            int a8 = cov >= 1 ? 255 : (int)(cov * 255 + 0.5);
            asum8 += a8;
            int X0 = R.x0 + x, Y0 = R.y0 + y;
            double u = u0 + x * ex.x, v = v0 + x * ey.x;
            double s, t;
            extent_at(&X, u, v, &s, &t);
            /* horizontal distance from the centre line T -> V, yaw-normalised */
            double uc = uV * clampd(v * inv_vV, 0, 1);
            double du = u - uc;
            double ut = du < 0 ? du * kl : du * kr;
            double rgb[3] = {c1[0], c1[1], c1[2]};
            double sh_ = 1.0;

            /* texture */
            double A = (ut * ca + v * sa) * inv_period, B = (-ut * sa + v * ca) * inv_period;
            switch (S.texture) {
            case TX_STRIPES: {
                double m = square_aa(A + off_a, fp) * att + 0.5 * (1 - att);
                for (int k = 0; k < 3; k++) rgb[k] = c1[k] + (c2[k] - c1[k]) * m;
                break;
            }
            case TX_CHECKS: {
                double m = 0.5 * (square_aa(A + off_a, fp) + square_aa(B + off_b, fp));
                m = m * att + 0.5 * (1 - att);
                for (int k = 0; k < 3; k++) rgb[k] = c1[k] + (c2[k] - c1[k]) * m;
                break;
            }
            case TX_DOTS: {
                double gx = A * 1.3 + off_a, gy = B * 1.3 + off_b;
                double fx = fracd(gx) - 0.5, fy = fracd(gy) - 0.5;
                double d = sqrt(fx * fx + fy * fy);
                double m = 1 - smooth01((d - 0.22) * dot_e + 0.5);
                m = m * att + 0.15 * (1 - att);
                for (int k = 0; k < 3; k++) rgb[k] = c1[k] + (c2[k] - c1[k]) * m;
                break;
            }
            case TX_MOTIF: {
                double n1 = fbm(nseed, A * 0.9 + off_n, B * 0.9 + off_m);
                double n2 = vnoise(nseed + 7, A * 1.7 + off_m, B * 1.7 + off_n);
                double m1 = smooth01((n1 - 0.5) * motif_e + 0.5), m2 = smooth01((n2 - 0.68) * motif_e + 0.5);
                for (int k = 0; k < 3; k++) {
                    rgb[k] = c1[k] + (c2[k] - c1[k]) * m1;
                    rgb[k] += (c3[k] - rgb[k]) * m2 * 0.85;
                }
                break;
            }
            default: break;
            }
            /* fabric grain: fine, faint */
            sh_ *= 1 + grain_amp * (grain((uint32_t)fseed, X0, Y0) - 0.5);

            /* type shading */
            if (pleat_bands) {
                /* a lit slope, a soft shadow under each fold */
                double tp = extent_smooth_t(&X, u, v);
                if (tp > p_lo && tp < p_hi) {
                    double qf = fracd((tp - p_lo) * p_k);
                    double shadow = smooth01((qf - (1 - p_sw)) * inv_sw);
                    double hl = 1 - smooth01(qf * inv_sw15);
                    sh_ *= 1 + ctr * (0.10 * hl + 0.10 * (0.5 - qf) - 0.22 * shadow);
                }
                /* hems: the double-folded top and bottom bands, side bindings */
                int hem = t < 0.09 || t > 0.93 || (S.type == TY_SURGICAL && (s < 0.04 || s > 0.96));
                if (hem) sh_ *= 1.05;
                if (S.type == TY_SURGICAL && t < 0.07 && fabs(du) < nose_half) sh_ *= 1.06; /* nose wire */
            }
            if (S.type == TY_N95) {
                double rx = 2 * s - 1, ry = 2 * t - 1;
                double r2 = rx * rx + ry * ry * 0.8;
                sh_ *= 1.04 - 0.22 * r2;
                /* welded rim just inside the edge */
                double rim = 1 - smooth01(fabs(t - 0.06) * rim_k);
                sh_ *= 1 - 0.12 * rim;
            }
            if (S.type == TY_KN95) {
                double seam = 1 - smooth01(fabs(du) * inv_seam_kn);
                sh_ *= 1 - 0.35 * seam * ctr;
                /* the two panels face different ways: the one toward the light is brighter */
                sh_ *= (du < 0) == (panel_sgn < 0) ? panel_k : 2 - panel_k;
                /* welded edges along the top and bottom */
                double edge_t = fmin(fabs(t - 0.07), fabs(t - 0.93)) * rim_k;
                sh_ *= 1 - 0.12 * (1 - smooth01(edge_t));
                sh_ *= 1 - 0.1 * (2 * s - 1) * (2 * s - 1);
            }
            if (S.type == TY_CLOTH) {
                /* shaped cloth masks have a soft centre seam */
                double seam = 1 - smooth01(fabs(du) * inv_seam_cl);
                sh_ *= 1 - 0.18 * seam;
            }
            /* the mask turns away from the camera at its sides, and under the chin */
            double sc = 2 * s - 1;
            sh_ *= 1 - 0.2 * fabs(sc) * sc * sc;
            if (t > 0.75) sh_ *= 1 - 0.1 * smooth01((t - 0.75) * 4);

            /* the face's light */
            double light = 1;
            if (lmean > 1) {
                int xa = colmap[x], xb = xa + 1;
                if (xa < 0) xa = 0;
                if (xb > gw - 1) xb = gw - 1;
                light = (1 - colfx[x]) * tmp[xa] + colfx[x] * tmp[xb];
            }
            sh_ *= light;

            /* loops vs body */
            double fb = R.body && cov > 1e-6 ? clampd(R.body[i] / cov, 0, 1) : 1;
            double m3[3];
            for (int k = 0; k < 3; k++) {
                double bodyc = rgb[k] * sh_;
                double loopc = cl[k] * light;
                m3[k] = clampd(fb * bodyc + (1 - fb) * loopc, 0, 255);
            }
            size_t o = (size_t)Y0 * face->w + X0;
            res->alpha[o] = (uint8_t)a8;
            uint8_t *dst = out->px + o * C;
            const uint8_t *src = face->px + o * C;
            if (C == 3) {
                for (int k = 0; k < 3; k++) {
                    int m = (int)(m3[k] + 0.5);
                    dst[k] = (uint8_t)((a8 * m + (255 - a8) * src[k] + 127) / 255);
                }
            } else {
                int m = (int)(luma(m3) + 0.5);
                if (m > 255) m = 255;
                dst[0] = (uint8_t)((a8 * m + (255 - a8) * src[0] + 127) / 255);
            }
        }
    }
    res->coverage = (double)asum8 / (255.0 * (double)face->w * (double)face->h);
done : {
    for (int k = 0; k < 68; k++) {
        long xi = lround(pts[k][0]), yi = lround(pts[k][1]);
        int a = xi >= 0 && yi >= 0 && xi < face->w && yi < face->h ? res->alpha[(size_t)yi * face->w + xi] : 0;
        res->visible[k] = a < 128;
    }
}
    rc = 0;
    goto cleanup;
oom:
    set_err(err, errlen, "mask_render: out of memory");
    image_free(out);
    mask_result_free(res);
cleanup:
    free(body.p);
    free(loops.p);
    free(clip.p);
    free(E.e);
    free(R.all);
    free(R.body);
    free(lum);
    free(wgt);
    free(w0);
    free(tmp);
    free(colmap);
    free(colfx);
    return rc;
}
