/* face.c: procedural faces (see face.h).
 *
 * Every feature is a parametric curve in box units; landmarks are evaluated on
 * the same curves that are filled or stroked, then everything goes through one
 * similarity transform (scale, roll, offset) to pixels. Polygons are
 * rasterised with the signed-area accumulation method (as font rasterisers
 * do): each edge adds its exact area contribution to a row buffer and a prefix
 * sum gives the coverage of every pixel, so shapes are anti-aliased exactly and
 * in time proportional to their outline and bounding box. */
#include "face.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/util.h"

const char *const face_expression_name[FACE_N_EXPRESSIONS] = {
    "surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral", "contempt",
};

#define PI 3.14159265358979323846

static double urange(rng_t *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform(r); }
static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }
static double sq(double v) { return v * v; }
static double maxd(double a, double b) { return a > b ? a : b; }
static double mind(double a, double b) { return a < b ? a : b; }
/* 0..255 rounded to nearest; v is finite */
static uint8_t to_u8(double v) { return (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : (int)(v + 0.5)); }
/* |v|^e with the sign of v */
static double spow(double v, double e) { return v < 0 ? -pow(-v, e) : pow(v, e); }

/* ---- identities ---------------------------------------------------------- */

static void set3(double *d, double a, double b, double c)
{
    d[0] = a;
    d[1] = b;
    d[2] = c;
}

void face_params_from_seed(face_params *p, uint64_t identity_seed)
{
    rng_t r;
    rng_seed(&r, identity_seed, 0x1D3A7u);
    memset(p, 0, sizeof *p);
    p->jaw_width = urange(&r, 0.40, 0.47);
    p->jaw_square = urange(&r, 2.0, 3.2);
    p->jaw_top = urange(&r, 0.30, 0.35);
    p->chin_y = urange(&r, 0.98, 1.10);
    p->eye_y = urange(&r, 0.31, 0.35);
    p->eye_sep = urange(&r, 0.165, 0.20);
    p->eye_w = urange(&r, 0.062, 0.080);
    p->eye_h = urange(&r, 0.026, 0.034);
    p->brow_gap = urange(&r, 0.085, 0.115);
    p->brow_thick = urange(&r, 0.018, 0.032);
    p->brow_arch = urange(&r, 0.02, 0.045);
    p->nose_len = urange(&r, 0.19, 0.24);
    p->nose_w = urange(&r, 0.065, 0.095);
    p->mouth_y = p->eye_y + p->nose_len + urange(&r, 0.165, 0.205);
    if (p->mouth_y > p->chin_y - 0.24) p->mouth_y = p->chin_y - 0.24;
    p->mouth_w = urange(&r, 0.15, 0.19);
    p->lip_upper = urange(&r, 0.020, 0.032);
    p->lip_lower = urange(&r, 0.028, 0.044);
    p->hairline = urange(&r, -0.02, 0.09);
    double hs = rng_uniform(&r);
    p->hair_style = hs < 0.12 ? 0 : hs < 0.62 ? 1 : 2;

    /* skin: light .. medium .. dark, with a little hue jitter */
    static const double tone[3][3] = {{236, 200, 178}, {196, 146, 112}, {104, 70, 52}};
    double t = rng_uniform(&r) * 2.0;
    int k = t < 1.0 ? 0 : 1;
    double f = t - k;
    for (int c = 0; c < 3; c++) p->skin[c] = tone[k][c] + f * (tone[k + 1][c] - tone[k][c]) + urange(&r, -8, 8);
    set3(p->lip, p->skin[0] * 0.86 + 14, p->skin[1] * 0.58, p->skin[2] * 0.60);
    static const double hair[6][3] = {{28, 22, 20}, {62, 42, 30}, {112, 76, 46},
                                      {196, 166, 108}, {150, 148, 146}, {140, 64, 32}};
    const double *hc = hair[rng_below(&r, 6)];
    double hj = urange(&r, 0.85, 1.15);
    for (int c = 0; c < 3; c++) p->hair[c] = clampd(hc[c] * hj, 0, 255);
    static const double iris[6][3] = {{58, 38, 24}, {98, 64, 36}, {110, 94, 52},
                                      {78, 108, 72}, {78, 110, 150}, {108, 114, 120}};
    const double *ic = iris[rng_below(&r, 6)];
    set3(p->iris, ic[0], ic[1], ic[2]);

    p->scale = urange(&r, 0.74, 0.86);
    p->off_x = urange(&r, -0.04, 0.04);
    p->off_y = urange(&r, -0.04, 0.04);
    p->roll = urange(&r, -10.0, 10.0) * PI / 180.0;
    p->light_dir = urange(&r, 0.0, 2.0 * PI);
    p->light_strength = urange(&r, 0.1, 0.65);
    p->noise = urange(&r, 1.0, 4.5);
}

/* ---- expressions --------------------------------------------------------- */

typedef struct {
    double brow_raise, brow_inner, brow_in, brow_arch; /* box units; raise up > 0 */
    double eye_up, eye_lo;                             /* upper lid height delta (fraction); lower lid raise */
    double mouth_w;                                    /* width delta (fraction) */
    double corner_l, corner_r;                         /* corner lift (image left / right), up > 0 */
    double open_u, open_l;                             /* lip opening above / below the mouth line */
    double lip_u, lip_l;                               /* lip thickness deltas (fraction) */
    double raise_u;                                    /* upper lip raiser (middle) */
    double jaw_drop;
    double teeth_u, teeth_l;
    double folds;   /* nasolabial folds 0..1 */
    double nose_up; /* nose wings pulled up */
} expr_t;

/* Upper-face settings shared by disgust and anger (brows down and together,
 * eyes narrowed): with the mouth masked, the two look alike. */
#define LOWERED_BROWS .brow_raise = -0.022, .brow_inner = -0.02, .brow_in = 0.014, .brow_arch = -0.01, \
                      .eye_up = -0.4, .eye_lo = 0.18

static const expr_t expressions[FACE_N_EXPRESSIONS] = {
    [FACE_SURPRISE] = {.brow_raise = 0.045, .brow_inner = 0.006, .brow_arch = 0.016, .eye_up = 0.55,
                       .eye_lo = -0.12, .mouth_w = -0.24, .open_u = 0.026, .open_l = 0.07, .lip_u = -0.2,
                       .lip_l = -0.25, .jaw_drop = 0.05, .teeth_u = 0.01},
    [FACE_FEAR] = {.brow_raise = 0.034, .brow_inner = 0.022, .brow_in = 0.012, .brow_arch = -0.012,
                   .eye_up = 0.5, .eye_lo = 0.08, .mouth_w = 0.16, .corner_l = -0.012, .corner_r = -0.012,
                   .open_u = 0.006, .open_l = 0.022, .lip_u = -0.3, .lip_l = -0.3, .jaw_drop = 0.015,
                   .teeth_u = 0.006, .teeth_l = 0.008},
    [FACE_DISGUST] = {LOWERED_BROWS, .mouth_w = -0.05, .corner_l = -0.02, .corner_r = -0.01, .open_u = 0.01,
                      .open_l = 0.004, .raise_u = 0.022, .lip_l = 0.15, .teeth_u = 0.012, .folds = 0.45,
                      .nose_up = 0.012},
    [FACE_HAPPINESS] = {.mouth_w = 0.2, .corner_l = 0.035, .corner_r = 0.035, .open_u = 0.006, .open_l = 0.028,
                        .lip_u = -0.25, .lip_l = -0.2, .teeth_u = 0.016, .folds = 1.0},
    [FACE_SADNESS] = {.brow_raise = -0.004, .brow_inner = 0.03, .brow_in = 0.006, .brow_arch = -0.012,
                      .eye_up = -0.22, .mouth_w = -0.04, .corner_l = -0.028, .corner_r = -0.028, .lip_l = 0.2},
    [FACE_ANGER] = {LOWERED_BROWS, .mouth_w = -0.1, .corner_l = -0.006, .corner_r = -0.006, .lip_u = -0.55,
                    .lip_l = -0.5},
    [FACE_NEUTRAL] = {0},
    [FACE_CONTEMPT] = {.mouth_w = 0.04, .corner_r = 0.028, .lip_u = -0.1},
};

static expr_t expr_scaled(const expr_t *e, double k)
{
    expr_t o = {
        .brow_raise = e->brow_raise * k, .brow_inner = e->brow_inner * k, .brow_in = e->brow_in * k,
        .brow_arch = e->brow_arch * k,   .eye_up = e->eye_up * k,         .eye_lo = e->eye_lo * k,
        .mouth_w = e->mouth_w * k,       .corner_l = e->corner_l * k,     .corner_r = e->corner_r * k,
        .open_u = e->open_u * k,         .open_l = e->open_l * k,         .lip_u = e->lip_u * k,
        .lip_l = e->lip_l * k,           .raise_u = e->raise_u * k,       .jaw_drop = e->jaw_drop * k,
        .teeth_u = e->teeth_u * k,       .teeth_l = e->teeth_l * k,       .folds = e->folds * k,
        .nose_up = e->nose_up * k,
    };
    return o;
}

/* ---- the canvas and the rasteriser --------------------------------------- */

typedef struct {
    int x0, y0, x1, y1; /* [x0, x1) x [y0, y1), empty when x0 >= x1 */
} bbox;

typedef struct {
    double cx, cy; /* pixel position of the box point (0.5, 0.55) */
    double s;      /* pixels per box unit */
    double c, sn;  /* cos / sin of the roll */
} xform;

typedef struct {
    int w, h;
    float *rgb;   /* w * h * 3, 0..255 */
    float *shade; /* w * h lighting factor of the face */
    float *acc;   /* (w + 2) * h accumulation rows */
    float *cov[2];
    bbox bb[2];
    xform T;
} canvas;

#define POLY_MAX 400
typedef struct {
    int n;
    double x[POLY_MAX], y[POLY_MAX]; /* pixel coordinates */
} poly;

static void to_px(const xform *T, double bx, double by, double *X, double *Y)
{
    double dx = bx - 0.5, dy = by - 0.55;
    *X = T->cx + T->s * (T->c * dx - T->sn * dy);
    *Y = T->cy + T->s * (T->sn * dx + T->c * dy);
}

static void poly_add(const canvas *cv, poly *p, double bx, double by)
{
    if (p->n >= POLY_MAX) return;
    to_px(&cv->T, bx, by, &p->x[p->n], &p->y[p->n]);
    p->n++;
}

static void canvas_init(canvas *cv, int w, int h)
{
    cv->w = w;
    cv->h = h;
    size_t n = (size_t)w * h;
    cv->rgb = xcalloc(n * 3, sizeof(float));
    cv->shade = xcalloc(n, sizeof(float));
    cv->acc = xcalloc((size_t)(w + 2) * h, sizeof(float));
    cv->cov[0] = xcalloc(n, sizeof(float));
    cv->cov[1] = xcalloc(n, sizeof(float));
    memset(cv->bb, 0, sizeof cv->bb);
}

static void canvas_free(canvas *cv)
{
    free(cv->rgb);
    free(cv->shade);
    free(cv->acc);
    free(cv->cov[0]);
    free(cv->cov[1]);
}

/* One edge, already inside 0 <= x <= w, added to the accumulation rows. */
static void acc_line(canvas *cv, double x0, double y0, double x1, double y1)
{
    if (y0 == y1) return;
    double dir = 1.0;
    if (y0 > y1) {
        double t = x0;
        x0 = x1;
        x1 = t;
        t = y0;
        y0 = y1;
        y1 = t;
        dir = -1.0;
    }
    if (y1 <= 0 || y0 >= cv->h) return;
    double dxdy = (x1 - x0) / (y1 - y0);
    double x = x0;
    int ys = 0;
    if (y0 < 0) x -= y0 * dxdy;
    else ys = (int)y0;
    int ye = (int)ceil(y1);
    if (ye > cv->h) ye = cv->h;
    const double W = cv->w;
    for (int y = ys; y < ye; y++) {
        float *a = cv->acc + (size_t)y * (cv->w + 2);
        double dy = (y + 1 < y1 ? y + 1 : y1) - (y > y0 ? y : y0);
        double xn = x + dxdy * dy;
        double d = dy * dir;
        double xa = clampd(x < xn ? x : xn, 0, W), xb = clampd(x < xn ? xn : x, 0, W);
        double xaf = floor(xa);
        int xai = (int)xaf;
        int xbi = (int)ceil(xb);
        if (xbi <= xai + 1) {
            double xm = 0.5 * (xa + xb) - xaf;
            a[xai] += (float)(d - d * xm);
            a[xai + 1] += (float)(d * xm);
        } else {
            double s = 1.0 / (xb - xa);
            double fa = xa - xaf;
            double a0 = 0.5 * s * (1 - fa) * (1 - fa);
            double fb = xb - xbi + 1;
            double am = 0.5 * s * fb * fb;
            a[xai] += (float)(d * a0);
            if (xbi == xai + 2) {
                a[xai + 1] += (float)(d * (1 - a0 - am));
            } else {
                double a1 = s * (1.5 - fa);
                a[xai + 1] += (float)(d * (a1 - a0));
                for (int xi = xai + 2; xi < xbi - 1; xi++) a[xi] += (float)(d * s);
                double a2 = a1 + (xbi - xai - 3) * s;
                a[xbi - 1] += (float)(d * (1 - a2 - am));
            }
            a[xbi] += (float)(d * am);
        }
        x = xn;
    }
}

/* An edge clipped to 0 <= x <= w: the parts outside are pressed onto the
 * border, which keeps the covered area inside exact. */
static void clip_line(canvas *cv, double x0, double y0, double x1, double y1)
{
    double W = cv->w, ts[4] = {0, 0, 0, 1};
    int nt = 1;
    if ((x0 < 0) != (x1 < 0)) ts[nt++] = (0 - x0) / (x1 - x0);
    if ((x0 > W) != (x1 > W)) ts[nt++] = (W - x0) / (x1 - x0);
    ts[nt++] = 1;
    if (nt == 4 && ts[1] > ts[2]) {
        double t = ts[1];
        ts[1] = ts[2];
        ts[2] = t;
    }
    for (int i = 0; i + 1 < nt; i++) {
        double ta = ts[i], tb = ts[i + 1];
        double ax = x0 + (x1 - x0) * ta, ay = y0 + (y1 - y0) * ta;
        double bx = x0 + (x1 - x0) * tb, by = y0 + (y1 - y0) * tb;
        if (i == 0) ax = x0, ay = y0;
        if (i + 2 == nt) bx = x1, by = y1;
        acc_line(cv, clampd(ax, 0, W), ay, clampd(bx, 0, W), by);
    }
}

static void cov_clear(canvas *cv, int k)
{
    bbox *b = &cv->bb[k];
    for (int y = b->y0; y < b->y1; y++) memset(cv->cov[k] + (size_t)y * cv->w + b->x0, 0, sizeof(float) * (size_t)(b->x1 - b->x0));
    b->x0 = b->x1 = b->y0 = b->y1 = 0;
}

/* Coverage of polygon p into cov[k] (nonzero rule, clamped to 1). */
static void fill(canvas *cv, const poly *p, int k)
{
    cov_clear(cv, k);
    if (p->n < 3) return;
    double minx = p->x[0], maxx = p->x[0], miny = p->y[0], maxy = p->y[0];
    for (int i = 1; i < p->n; i++) {
        minx = mind(minx, p->x[i]);
        maxx = maxd(maxx, p->x[i]);
        miny = mind(miny, p->y[i]);
        maxy = maxd(maxy, p->y[i]);
    }
    bbox b;
    b.x0 = (int)floor(clampd(minx, 0, cv->w));
    b.x1 = (int)ceil(clampd(maxx, 0, cv->w)) + 1; /* accumulation cells up to here */
    b.y0 = (int)floor(clampd(miny, 0, cv->h));
    b.y1 = (int)ceil(clampd(maxy, 0, cv->h));
    if (b.y0 >= b.y1 || maxx < 0 || minx > cv->w) return;
    for (int i = 0; i < p->n; i++) {
        int j = i + 1 == p->n ? 0 : i + 1;
        clip_line(cv, p->x[i], p->y[i], p->x[j], p->y[j]);
    }
    int xe = b.x1 > cv->w + 1 ? cv->w + 1 : b.x1;
    for (int y = b.y0; y < b.y1; y++) {
        float *a = cv->acc + (size_t)y * (cv->w + 2);
        float *c = cv->cov[k] + (size_t)y * cv->w;
        float s = 0;
        for (int x = b.x0; x <= xe; x++) {
            s += a[x];
            a[x] = 0;
            if (x < cv->w) {
                float v = fabsf(s);
                c[x] = v > 1.0f ? 1.0f : v;
            }
        }
    }
    if (b.x1 > cv->w) b.x1 = cv->w;
    cv->bb[k] = b;
}

/* Composites colour col with alpha cov[k] * alpha (times cov[clip] when
 * clip >= 0). shade_mix blends in the face lighting. */
static void paint(canvas *cv, int k, int clip, const double col[3], double alpha, double shade_mix)
{
    const bbox *b = &cv->bb[k];
    for (int y = b->y0; y < b->y1; y++) {
        for (int x = b->x0; x < b->x1; x++) {
            size_t i = (size_t)y * cv->w + x;
            float a = cv->cov[k][i];
            if (clip >= 0) a *= cv->cov[clip][i];
            if (a <= 0) continue;
            a *= (float)alpha;
            float sh = (float)(1.0 - shade_mix + shade_mix * cv->shade[i]);
            float *px = cv->rgb + 3 * i;
            for (int c = 0; c < 3; c++) px[c] += a * ((float)col[c] * sh - px[c]);
        }
    }
}

static void fill_paint(canvas *cv, const poly *p, const double col[3], double alpha, double shade_mix)
{
    fill(cv, p, 0);
    paint(cv, 0, -1, col, alpha, shade_mix);
}

/* Ellipse centred at (bx, by) with radii (rx, ry), in box units. */
static void ellipse(const canvas *cv, poly *p, double bx, double by, double rx, double ry)
{
    p->n = 0;
    double rpx = maxd(rx, ry) * cv->T.s;
    int n = (int)clampd(8 + rpx * 2, 12, 64);
    for (int i = 0; i < n; i++) {
        double a = 2 * PI * i / n;
        poly_add(cv, p, bx + rx * cos(a), by + ry * sin(a));
    }
}

/* A stroke along a polyline (box units) with half-width hw[i] at each point:
 * the outline is the polyline offset both ways. */
static void stroke(const canvas *cv, poly *p, const double *xs, const double *ys, const double *hw, int m)
{
    p->n = 0;
    if (m < 2) return;
    double nx[64], ny[64];
    if (m > 64) m = 64;
    for (int i = 0; i < m; i++) {
        int a = i > 0 ? i - 1 : i, b = i + 1 < m ? i + 1 : i;
        double tx = xs[b] - xs[a], ty = ys[b] - ys[a];
        double l = sqrt(tx * tx + ty * ty);
        if (l <= 0) l = 1;
        nx[i] = -ty / l;
        ny[i] = tx / l;
    }
    for (int i = 0; i < m; i++) poly_add(cv, p, xs[i] + nx[i] * hw[i], ys[i] + ny[i] * hw[i]);
    for (int i = m - 1; i >= 0; i--) poly_add(cv, p, xs[i] - nx[i] * hw[i], ys[i] - ny[i] * hw[i]);
}

/* A stroke of constant half-width with tapered ends. */
static void stroke_taper(const canvas *cv, poly *p, const double *xs, const double *ys, int m, double width)
{
    double hw[64];
    if (m > 64) m = 64;
    for (int i = 0; i < m; i++) {
        double t = m > 1 ? (double)i / (m - 1) : 0.5;
        hw[i] = 0.5 * width * (0.35 + 0.65 * sqrt(maxd(0, 1 - sq(2 * t - 1))));
    }
    stroke(cv, p, xs, ys, hw, m);
}

static void scale3(double *d, const double *s, double k)
{
    for (int c = 0; c < 3; c++) d[c] = clampd(s[c] * k, 0, 255);
}

/* ---- the face geometry ------------------------------------------------- */

typedef struct {
    const face_params *id;
    expr_t e;
    double jw, k, jaw_top, chin, jaw_drop;
    double eye_y, ew, hu, hl;
    double gaze_x, gaze_y;
    double tip_y, nose_up;
    double mw, lu, ll;
} geom;

static void jaw_pt(const geom *g, double t, double *x, double *y)
{
    double phi = PI * t, c = cos(phi), s = fabs(sin(phi));
    double e = 2.0 / g->k;
    *x = 0.5 - g->jw * spow(c, e);
    *y = g->jaw_top + (g->chin - g->jaw_top) * pow(s, e) + g->jaw_drop * s * s * s * s;
}

/* Brow centre line; side -1 image left, +1 image right; u 0 inner .. 1 outer. */
static void brow_pt(const geom *g, int side, double u, double *x, double *y)
{
    const face_params *id = g->id;
    double ex = 0.5 + side * id->eye_sep;
    double xin = ex - side * (1.45 * id->eye_w + g->e.brow_in), xout = ex + side * 2.2 * id->eye_w;
    *x = xin + (xout - xin) * u;
    double base = id->eye_y - id->brow_gap - g->e.brow_raise;
    double arch = maxd(0.0, id->brow_arch + g->e.brow_arch);
    *y = base - arch * sin(PI * u) + 0.015 * u - g->e.brow_inner * sq(1 - u);
}

/* Eye lids; side -1 / +1; t -1 (image-left corner) .. 1; upper or lower. */
static void eye_pt(const geom *g, int side, double t, int lower, double *x, double *y)
{
    double ex = 0.5 + side * g->id->eye_sep;
    double ey = g->eye_y - 0.006 * t * side; /* the outer corner a little higher */
    *x = ex + g->ew * t;
    double q = maxd(0, 1 - t * t);
    *y = lower ? ey + g->hl * pow(q, 0.9) : ey - g->hu * pow(q, 0.75);
}

static void nose_base_pt(const geom *g, double v, double *x, double *y)
{
    *x = 0.5 + g->id->nose_w * v;
    *y = g->tip_y + 0.05 + 0.028 * (1 - v * v) - g->nose_up * (0.4 + 0.6 * v * v);
}

/* Mouth curves, t -1 (image-left corner) .. 1. which: 0 outer upper, 1 inner
 * upper, 2 inner lower, 3 outer lower. */
static void mouth_pt(const geom *g, double t, int which, double *x, double *y)
{
    const expr_t *e = &g->e;
    double q = maxd(0, 1 - t * t);
    double mid = g->id->mouth_y - (t < 0 ? e->corner_l : e->corner_r) * t * t;
    double iu = mid - e->open_u * pow(q, 0.6) - e->raise_u * (1 + 0.35 * t) * sqrt(q);
    double il = mid + e->open_l * pow(q, 0.7);
    *x = 0.5 + g->mw * t;
    switch (which) {
    case 0: *y = iu - g->lu * pow(q, 0.35) * (1 - 0.3 * exp(-sq(t / 0.14))); break;
    case 1: *y = iu; break;
    case 2: *y = il; break;
    default: *y = il + g->ll * pow(q, 0.45); break;
    }
}

static void landmarks_box(const geom *g, double L[68][2])
{
    for (int i = 0; i <= 16; i++) jaw_pt(g, i / 16.0, &L[i][0], &L[i][1]);
    for (int i = 0; i < 5; i++) {
        brow_pt(g, -1, 1.0 - i * 0.25, &L[17 + i][0], &L[17 + i][1]);
        brow_pt(g, +1, i * 0.25, &L[22 + i][0], &L[22 + i][1]);
    }
    for (int i = 0; i < 4; i++) {
        L[27 + i][0] = 0.5;
        L[27 + i][1] = (g->eye_y - 0.01) + (g->tip_y - (g->eye_y - 0.01)) * i / 3.0;
    }
    static const double nv[5] = {-1, -0.5, 0, 0.5, 1};
    for (int i = 0; i < 5; i++) nose_base_pt(g, nv[i], &L[31 + i][0], &L[31 + i][1]);
    static const double et[6] = {-1, -1.0 / 3, 1.0 / 3, 1, 1.0 / 3, -1.0 / 3};
    static const int elow[6] = {0, 0, 0, 0, 1, 1};
    for (int i = 0; i < 6; i++) {
        eye_pt(g, -1, et[i], elow[i], &L[36 + i][0], &L[36 + i][1]);
        eye_pt(g, +1, et[i], elow[i], &L[42 + i][0], &L[42 + i][1]);
    }
    static const double mt[12] = {-1, -0.6, -0.25, 0, 0.25, 0.6, 1, 0.6, 0.25, 0, -0.25, -0.6};
    for (int i = 0; i < 12; i++) mouth_pt(g, mt[i], i <= 6 ? 0 : 3, &L[48 + i][0], &L[48 + i][1]);
    static const double it[8] = {-0.92, -0.38, 0, 0.38, 0.92, 0.38, 0, -0.38};
    for (int i = 0; i < 8; i++) {
        double x, yu, yl;
        mouth_pt(g, it[i], 1, &x, &yu);
        mouth_pt(g, it[i], 2, &x, &yl);
        L[60 + i][0] = x;
        L[60 + i][1] = (i == 0 || i == 4) ? 0.5 * (yu + yl) : i < 4 ? yu : yl;
    }
}

/* ---- drawing --------------------------------------------------------------- */

static void draw_background(canvas *cv, rng_t *r)
{
    double c1[3], c2[3];
    double base = urange(r, 30, 225), tint = urange(r, 0, 25);
    for (int c = 0; c < 3; c++) {
        c1[c] = clampd(base + urange(r, -tint, tint), 0, 255);
        c2[c] = clampd(c1[c] + urange(r, -50, 50), 0, 255);
    }
    double a = urange(r, 0, 2 * PI), ca = cos(a), sa = sin(a);
    for (int y = 0; y < cv->h; y++)
        for (int x = 0; x < cv->w; x++) {
            double t = clampd(((x + 0.5 - cv->w / 2.0) * ca + (y + 0.5 - cv->h / 2.0) * sa) / cv->w + 0.5, 0, 1);
            float *px = cv->rgb + 3 * ((size_t)y * cv->w + x);
            for (int c = 0; c < 3; c++) px[c] = (float)(c1[c] + t * (c2[c] - c1[c]));
        }
}

/* The face as an ellipsoid lit from one side: a shading factor per pixel. */
static void compute_shade(canvas *cv, const geom *g, double dir, double strength)
{
    double al = strength * 1.1;
    double lx = sin(al) * cos(dir), ly = sin(al) * sin(dir), lz = cos(al);
    const xform *T = &cv->T;
    double rx = g->jw * 1.05, ry = 0.62;
    /* box coordinates relative to (0.5, 0.55), scaled by the ellipsoid radii:
     * u = (c dx + s dy) / (S rx), v = (-s dx + c dy) / (S ry) + 0.05 / ry */
    double kux = T->c / (T->s * rx), kuy = T->sn / (T->s * rx);
    double kvx = -T->sn / (T->s * ry), kvy = T->c / (T->s * ry);
    for (int y = 0; y < cv->h; y++) {
        double dy = y + 0.5 - T->cy, dx0 = 0.5 - T->cx;
        double u0 = kux * dx0 + kuy * dy, v0 = kvx * dx0 + kvy * dy + 0.05 / ry;
        float *out = cv->shade + (size_t)y * cv->w;
        for (int x = 0; x < cv->w; x++) {
            double u = u0 + kux * x, v = v0 + kvx * x;
            double q = u * u + v * v, d;
            if (q < 1) d = u * lx + v * ly + sqrt(1 - q) * lz;
            else d = (u * lx + v * ly) / sqrt(q);
            out[x] = (float)(0.55 + 0.5 * (d > 0 ? d : 0));
        }
    }
}

static void draw_hair_cap(canvas *cv, const geom *g, poly *p)
{
    const face_params *id = g->id;
    double top = g->jaw_top - 0.67, bottom = g->jaw_top - 0.02;
    p->n = 0;
    for (int i = 0; i <= 32; i++) {
        double th = PI * i / 32;
        poly_add(cv, p, 0.5 + (g->jw + 0.04) * cos(th), bottom - (bottom - top) * sin(th));
    }
    for (int i = 0; i <= 24; i++) {
        double u = -1 + 2.0 * i / 24;
        poly_add(cv, p, 0.5 + g->jw * 0.98 * u, id->hairline + (bottom - id->hairline) * pow(fabs(u), 3.5));
    }
    fill_paint(cv, p, id->hair, 1.0, 0.6);
}

static void draw_face(canvas *cv, const geom *g)
{
    const face_params *id = g->id;
    const expr_t *e = &g->e;
    poly P;
    poly *p = &P;
    double col[3];
    double xs[64], ys[64], hw[64];

    /* long hair behind the head */
    if (id->hair_style == 2) {
        p->n = 0;
        double top = g->jaw_top - 0.72, bot = g->jaw_top + 0.45;
        for (int i = 0; i <= 24; i++) {
            double th = PI * i / 24;
            poly_add(cv, p, 0.5 + (g->jw + 0.08) * cos(th), g->jaw_top - (g->jaw_top - top) * sin(th));
        }
        poly_add(cv, p, 0.5 - g->jw - 0.1, bot);
        poly_add(cv, p, 0.5 + g->jw + 0.1, bot);
        fill_paint(cv, p, id->hair, 1.0, 0.35);
    }
    /* neck, ears, face */
    p->n = 0;
    poly_add(cv, p, 0.5 - 0.6 * g->jw, g->chin - 0.3);
    poly_add(cv, p, 0.5 + 0.6 * g->jw, g->chin - 0.3);
    poly_add(cv, p, 0.5 + 0.66 * g->jw, 1.7);
    poly_add(cv, p, 0.5 - 0.66 * g->jw, 1.7);
    scale3(col, id->skin, 0.78);
    fill_paint(cv, p, col, 1.0, 0.5);
    for (int s = -1; s <= 1; s += 2) {
        ellipse(cv, p, 0.5 + s * (g->jw + 0.012), g->jaw_top + 0.07, 0.035, 0.085);
        scale3(col, id->skin, 0.92);
        fill_paint(cv, p, col, 1.0, 0.8);
    }
    p->n = 0;
    for (int i = 0; i <= 48; i++) {
        double x, y;
        jaw_pt(g, i / 48.0, &x, &y);
        poly_add(cv, p, x, y);
    }
    for (int i = 1; i < 32; i++) {
        double th = PI * i / 32;
        poly_add(cv, p, 0.5 + g->jw * cos(th) * (1 + 0.03 * sin(th)), g->jaw_top - 0.62 * sin(th));
    }
    fill_paint(cv, p, id->skin, 1.0, 1.0);
    if (id->hair_style) draw_hair_cap(cv, g, p);

    /* chin shadow under the lower lip, smile folds */
    double mx, my;
    mouth_pt(g, 0, 3, &mx, &my);
    ellipse(cv, p, 0.5, my + 0.035, g->mw * 0.55, 0.016);
    scale3(col, id->skin, 0.84);
    fill_paint(cv, p, col, 0.3, 1.0);
    if (e->folds > 0) {
        for (int s = -1; s <= 1; s += 2) {
            double cx, cy;
            mouth_pt(g, s, 1, &cx, &cy);
            int m = 10;
            for (int i = 0; i < m; i++) {
                double t = (double)i / (m - 1);
                double x0 = 0.5 + s * (id->nose_w + 0.012), y0 = g->tip_y + 0.035;
                double x1 = cx + s * 0.03, y1 = cy + 0.05;
                xs[i] = x0 + (x1 - x0) * t + s * 0.03 * sin(PI * t);
                ys[i] = y0 + (y1 - y0) * t;
            }
            stroke_taper(cv, p, xs, ys, m, 0.014);
            scale3(col, id->skin, 0.68);
            fill_paint(cv, p, col, 0.5 * e->folds, 1.0);
        }
    }

    /* brows */
    double bcol[3];
    if (id->hair_style == 0) set3(bcol, 70, 52, 40);
    else scale3(bcol, id->hair, 0.8);
    for (int s = -1; s <= 1; s += 2) {
        int m = 16;
        for (int i = 0; i < m; i++) {
            double u = (double)i / (m - 1);
            brow_pt(g, s, u, &xs[i], &ys[i]);
            hw[i] = 0.5 * id->brow_thick * (1.1 - 0.5 * u) * (1 - 0.6 * u * u * u) * (0.55 + 0.45 * sqrt(mind(1, u * 12)));
        }
        stroke(cv, p, xs, ys, hw, m);
        fill_paint(cv, p, bcol, 0.88, 0.4);
    }

    /* eyes */
    for (int s = -1; s <= 1; s += 2) {
        double ex = 0.5 + s * id->eye_sep;
        ellipse(cv, p, ex, g->eye_y - 0.01, g->ew * 1.35, id->eye_h * 2.1);
        scale3(col, id->skin, 0.86);
        fill_paint(cv, p, col, 0.35, 1.0);
        /* the eye opening, kept in cov[1] to clip the iris */
        p->n = 0;
        int m = 16;
        for (int i = 0; i < m; i++) {
            double x, y;
            eye_pt(g, s, -1 + 2.0 * i / (m - 1), 0, &x, &y);
            poly_add(cv, p, x, y);
        }
        for (int i = m - 2; i > 0; i--) {
            double x, y;
            eye_pt(g, s, -1 + 2.0 * i / (m - 1), 1, &x, &y);
            poly_add(cv, p, x, y);
        }
        fill(cv, p, 1);
        double sclera[3] = {232, 226, 220};
        paint(cv, 1, -1, sclera, 1.0, 0.45);
        double ri = id->eye_h * 1.05;
        double ix = ex + g->gaze_x * g->ew * 0.4, iy = g->eye_y + g->gaze_y * id->eye_h * 0.3;
        ellipse(cv, p, ix, iy, ri, ri);
        fill(cv, p, 0);
        paint(cv, 0, 1, id->iris, 1.0, 0.3);
        ellipse(cv, p, ix, iy, ri * 0.45, ri * 0.45);
        fill(cv, p, 0);
        double pupil[3] = {18, 14, 14};
        paint(cv, 0, 1, pupil, 1.0, 0.0);
        ellipse(cv, p, ix + ri * 0.3, iy - ri * 0.35, ri * 0.2, ri * 0.2);
        fill(cv, p, 0);
        double white[3] = {250, 250, 250};
        paint(cv, 0, 1, white, 0.8, 0.0);
        cov_clear(cv, 1);
        /* lid lines and crease */
        for (int i = 0; i < m; i++) eye_pt(g, s, -1.06 + 2.12 * i / (m - 1), 0, &xs[i], &ys[i]);
        stroke_taper(cv, p, xs, ys, m, id->eye_h * 0.4);
        double lid[3] = {38, 28, 26};
        fill_paint(cv, p, lid, 0.85, 0.0);
        for (int i = 0; i < m; i++) eye_pt(g, s, -0.95 + 1.9 * i / (m - 1), 1, &xs[i], &ys[i]);
        stroke_taper(cv, p, xs, ys, m, id->eye_h * 0.18);
        scale3(col, id->skin, 0.6);
        fill_paint(cv, p, col, 0.5, 0.5);
        for (int i = 0; i < m; i++) {
            double t = -0.85 + 1.7 * i / (m - 1);
            xs[i] = ex + g->ew * t;
            ys[i] = g->eye_y - (g->hu + id->eye_h * 0.55) * pow(maxd(0, 1 - t * t), 0.7);
        }
        stroke_taper(cv, p, xs, ys, m, id->eye_h * 0.2);
        scale3(col, id->skin, 0.72);
        fill_paint(cv, p, col, 0.4, 1.0);
    }

    /* nose */
    {
        double side = cos(id->light_dir) > 0 ? -1 : 1; /* the shadowed side of the bridge */
        int m = 8;
        for (int i = 0; i < m; i++) {
            double t = (double)i / (m - 1);
            xs[i] = 0.5 + side * (0.026 + 0.008 * t);
            ys[i] = g->eye_y + 0.02 + (g->tip_y - 0.02 - g->eye_y - 0.02) * t;
        }
        stroke_taper(cv, p, xs, ys, m, 0.022);
        scale3(col, id->skin, 0.72);
        fill_paint(cv, p, col, 0.35, 1.0);
        ellipse(cv, p, 0.5, g->tip_y, 0.03, 0.024);
        scale3(col, id->skin, 1.08);
        fill_paint(cv, p, col, 0.35, 1.0);
        ellipse(cv, p, 0.5, g->tip_y + 0.095, id->nose_w * 0.9, 0.018);
        scale3(col, id->skin, 0.85);
        fill_paint(cv, p, col, 0.3, 1.0);
        for (int s = -1; s <= 1; s += 2) {
            double bx, by;
            nose_base_pt(g, s, &bx, &by);
            double wx[4] = {0.5 + s * id->nose_w * 0.72, 0.5 + s * id->nose_w * 1.02, bx, 0.5 + s * id->nose_w * 0.7};
            double wy[4] = {g->tip_y - 0.015 - g->nose_up, g->tip_y + 0.022 - g->nose_up, by, by + 0.006};
            stroke_taper(cv, p, wx, wy, 4, 0.012);
            scale3(col, id->skin, 0.6);
            fill_paint(cv, p, col, 0.5, 1.0);
            ellipse(cv, p, 0.5 + s * id->nose_w * 0.45, g->tip_y + 0.058 - g->nose_up * 0.55, id->nose_w * 0.28, 0.012);
            scale3(col, id->skin, 0.3);
            fill_paint(cv, p, col, 0.85, 0.0);
        }
        for (int i = 0; i < m; i++) nose_base_pt(g, -1 + 2.0 * i / (m - 1), &xs[i], &ys[i]);
        stroke_taper(cv, p, xs, ys, m, 0.008);
        scale3(col, id->skin, 0.65);
        fill_paint(cv, p, col, 0.4, 1.0);
    }

    /* mouth: lips, the opening (kept in cov[1]), teeth, the seam */
    {
        int m = 33;
        p->n = 0;
        for (int i = 0; i < m; i++) {
            double x, y;
            mouth_pt(g, -1 + 2.0 * i / (m - 1), 0, &x, &y);
            poly_add(cv, p, x, y);
        }
        for (int i = m - 2; i > 0; i--) {
            double x, y;
            mouth_pt(g, -1 + 2.0 * i / (m - 1), 3, &x, &y);
            poly_add(cv, p, x, y);
        }
        fill_paint(cv, p, id->lip, 1.0, 1.0);
        if (e->open_u + e->open_l + e->raise_u > 0.002) {
            p->n = 0;
            for (int i = 0; i < m; i++) {
                double x, y;
                mouth_pt(g, -1 + 2.0 * i / (m - 1), 1, &x, &y);
                poly_add(cv, p, x, y);
            }
            for (int i = m - 2; i > 0; i--) {
                double x, y;
                mouth_pt(g, -1 + 2.0 * i / (m - 1), 2, &x, &y);
                poly_add(cv, p, x, y);
            }
            fill(cv, p, 1);
            double cavity[3] = {58, 24, 28};
            paint(cv, 1, -1, cavity, 1.0, 0.3);
            double teeth[3] = {228, 222, 206};
            for (int lower = 0; lower <= 1; lower++) {
                double th = lower ? e->teeth_l : e->teeth_u;
                if (th <= 0) continue;
                p->n = 0;
                int mt = 17;
                for (int i = 0; i < mt; i++) {
                    double t = -0.8 + 1.6 * i / (mt - 1), x, y;
                    mouth_pt(g, t, lower ? 2 : 1, &x, &y);
                    poly_add(cv, p, x, y);
                }
                for (int i = mt - 1; i >= 0; i--) {
                    double t = -0.8 + 1.6 * i / (mt - 1), x, yu, yl;
                    mouth_pt(g, t, 1, &x, &yu);
                    mouth_pt(g, t, 2, &x, &yl);
                    double band = th * pow(maxd(0, 1 - t * t), 0.3);
                    poly_add(cv, p, x, lower ? maxd(yl - band, yu) : mind(yu + band, yl));
                }
                fill(cv, p, 0);
                paint(cv, 0, 1, teeth, 1.0, 0.4);
            }
            cov_clear(cv, 1);
        }
        for (int i = 0; i < m && i < 64; i++) {
            double t = -1 + 2.0 * i / (m - 1), yu, yl;
            mouth_pt(g, t, 1, &xs[i], &yu);
            mouth_pt(g, t, 2, &xs[i], &yl);
            ys[i] = 0.5 * (yu + yl);
        }
        stroke_taper(cv, p, xs, ys, m, 0.009);
        scale3(col, id->lip, 0.45);
        fill_paint(cv, p, col, 0.7, 0.5);
    }
}

/* Quantises to 8 bits with pixel noise: an Irwin-Hall sum of four 16-bit
 * uniforms per pixel (one generator call), scaled to unit variance. */
static void finish(canvas *cv, image *img, double noise, uint64_t noise_seed)
{
    rng_t r;
    rng_seed(&r, noise_seed, 0x4E015Eu);
    size_t n = (size_t)cv->w * cv->h;
    const double k = noise * 1.7320508075688772 / 65536.0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = rng_next(&r);
        double z = (double)((u & 0xFFFF) + ((u >> 16) & 0xFFFF) + ((u >> 32) & 0xFFFF) + (u >> 48)) - 131070.0;
        z *= k;
        const float *px = cv->rgb + 3 * i;
        if (img->c == 1) {
            double v = 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2] + z;
            img->px[i] = to_u8(v);
        } else {
            uint64_t q = rng_next(&r);
            for (int c = 0; c < 3; c++) {
                double chroma = ((double)((q >> (16 * c)) & 0xFFFF) / 65536.0 - 0.5) * 0.35 * noise;
                double v = px[c] + z + chroma;
                img->px[3 * i + c] = to_u8(v);
            }
        }
    }
}

void face_draw(image *img, const face_params *id, int expression, uint64_t sample_seed, double landmarks[68][2])
{
    if (landmarks) memset(landmarks, 0, sizeof(double[68][2]));
    if (!img || !img->px || (img->c != 1 && img->c != 3) || img->w < 8 || img->h < 8) return;
    if (expression < 0 || expression >= FACE_N_EXPRESSIONS) expression = FACE_NEUTRAL;
    /* Every sample draw happens here, in a fixed order, whatever the
     * expression: two expressions of one sample differ only in the face. */
    rng_t r;
    rng_seed(&r, sample_seed, 0x5A3F1Eu);
    double inten = urange(&r, 0.75, 1.1);
    double jx = urange(&r, -0.012, 0.012), jy = urange(&r, -0.012, 0.012);
    double jroll = urange(&r, -2.5, 2.5) * PI / 180.0, jscale = urange(&r, 0.97, 1.03);
    double gaze_x = urange(&r, -0.35, 0.35), gaze_y = urange(&r, -0.2, 0.2);
    double ldir = id->light_dir + urange(&r, -0.3, 0.3);
    double lstr = clampd(id->light_strength * urange(&r, 0.85, 1.15), 0, 1);
    uint64_t bg_seed = rng_next(&r), noise_seed = rng_next(&r);

    geom g;
    memset(&g, 0, sizeof g);
    g.id = id;
    const expr_t *e0 = &expressions[expression];
    g.e = expr_scaled(e0, inten); /* the expression at this sample's intensity */
    g.jw = id->jaw_width;
    g.k = id->jaw_square;
    g.jaw_top = id->jaw_top;
    g.chin = id->chin_y;
    g.jaw_drop = g.e.jaw_drop;
    g.eye_y = id->eye_y;
    g.ew = id->eye_w;
    g.hu = id->eye_h * (1 + g.e.eye_up);
    g.hl = id->eye_h * 0.7 * (1 - g.e.eye_lo);
    g.gaze_x = gaze_x;
    g.gaze_y = gaze_y;
    g.tip_y = id->eye_y + id->nose_len;
    g.nose_up = g.e.nose_up;
    g.mw = id->mouth_w * (1 + g.e.mouth_w);
    g.lu = id->lip_upper * (1 + g.e.lip_u);
    g.ll = id->lip_lower * (1 + g.e.lip_l);

    double L[68][2];
    landmarks_box(&g, L);

    canvas cv;
    canvas_init(&cv, img->w, img->h);
    int side = img->w < img->h ? img->w : img->h;
    xform *T = &cv.T;
    T->s = id->scale * jscale * side;
    double roll = id->roll + jroll;
    T->c = cos(roll);
    T->sn = sin(roll);
    T->cx = img->w * (0.5 + id->off_x + jx);
    T->cy = img->h * (0.55 + id->off_y + jy);
    /* Keep all 68 landmarks inside the picture: shrink if needed, then shift. */
    double margin = 0.5 + 0.02 * side;
    for (int pass = 0; pass < 2; pass++) {
        double minx = 1e9, maxx = -1e9, miny = 1e9, maxy = -1e9;
        for (int i = 0; i < 68; i++) {
            double X, Y;
            to_px(T, L[i][0], L[i][1], &X, &Y);
            minx = mind(minx, X);
            maxx = maxd(maxx, X);
            miny = mind(miny, Y);
            maxy = maxd(maxy, Y);
        }
        double availx = img->w - 2 * margin, availy = img->h - 2 * margin;
        double f = mind(1.0, mind(availx / (maxx - minx), availy / (maxy - miny)));
        if (pass == 0 && f < 1.0) {
            T->s *= f * 0.999;
            continue;
        }
        if (minx < margin) T->cx += margin - minx;
        else if (maxx > img->w - margin) T->cx -= maxx - (img->w - margin);
        if (miny < margin) T->cy += margin - miny;
        else if (maxy > img->h - margin) T->cy -= maxy - (img->h - margin);
        break;
    }

    rng_t bg;
    rng_seed(&bg, bg_seed, 0xB6u);
    draw_background(&cv, &bg);
    compute_shade(&cv, &g, ldir, lstr);
    draw_face(&cv, &g);
    finish(&cv, img, id->noise, noise_seed);
    if (landmarks) {
        for (int i = 0; i < 68; i++) {
            double X, Y;
            to_px(T, L[i][0], L[i][1], &X, &Y);
            landmarks[i][0] = X - 0.5;
            landmarks[i][1] = Y - 0.5;
        }
    }
    canvas_free(&cv);
}

void face_draw_nonface(image *img, uint64_t seed)
{
    if (!img || !img->px || (img->c != 1 && img->c != 3) || img->w < 8 || img->h < 8) return;
    rng_t r;
    rng_seed(&r, seed, 0x0FACEu);
    canvas cv;
    canvas_init(&cv, img->w, img->h);
    int side = img->w < img->h ? img->w : img->h;
    cv.T.s = side;
    cv.T.c = 1;
    cv.T.sn = 0;
    cv.T.cx = 0.5 * img->w;
    cv.T.cy = 0.55 * img->h;
    int kind = (int)rng_below(&r, 5);
    double col[3];
    if (kind == 0) { /* blank */
        double v = rng_below(&r, 2) ? urange(&r, 0, 12) : urange(&r, 235, 255);
        for (size_t i = 0; i < (size_t)img->w * img->h * 3; i++) cv.rgb[i] = (float)v;
    } else {
        draw_background(&cv, &r);
    }
    poly P;
    if (kind == 2) { /* stripes */
        int n = 3 + (int)rng_below(&r, 6);
        double a = urange(&r, 0, PI);
        for (int i = 0; i < n; i++) {
            double off = -0.7 + 1.4 * (i + 0.5) / n, wdt = urange(&r, 0.02, 0.08);
            double ca = cos(a), sa = sin(a);
            P.n = 0;
            double cx = 0.5 + off * ca, cy = 0.55 + off * sa;
            poly_add(&cv, &P, cx - sa * 1.5 - ca * wdt, cy + ca * 1.5 - sa * wdt);
            poly_add(&cv, &P, cx + sa * 1.5 - ca * wdt, cy - ca * 1.5 - sa * wdt);
            poly_add(&cv, &P, cx + sa * 1.5 + ca * wdt, cy - ca * 1.5 + sa * wdt);
            poly_add(&cv, &P, cx - sa * 1.5 + ca * wdt, cy + ca * 1.5 + sa * wdt);
            set3(col, urange(&r, 0, 255), urange(&r, 0, 255), urange(&r, 0, 255));
            fill_paint(&cv, &P, col, 1.0, 0.0);
        }
    } else if (kind == 3) { /* blobs */
        int n = 2 + (int)rng_below(&r, 6);
        for (int i = 0; i < n; i++) {
            ellipse(&cv, &P, urange(&r, 0, 1), urange(&r, 0, 1), urange(&r, 0.05, 0.3), urange(&r, 0.05, 0.3));
            set3(col, urange(&r, 0, 255), urange(&r, 0, 255), urange(&r, 0, 255));
            fill_paint(&cv, &P, col, urange(&r, 0.5, 1.0), 0.0);
        }
    } else if (kind == 4) { /* text-like marks */
        double ink = urange(&r, 0, 60);
        set3(col, ink, ink, ink);
        int rows = 3 + (int)rng_below(&r, 4);
        for (int j = 0; j < rows; j++) {
            double y = 0.1 + 0.8 * (j + 0.5) / rows, x = 0.08;
            while (x < 0.9) {
                double wdt = urange(&r, 0.03, 0.12);
                P.n = 0;
                poly_add(&cv, &P, x, y);
                poly_add(&cv, &P, x + wdt, y);
                poly_add(&cv, &P, x + wdt, y + 0.06);
                poly_add(&cv, &P, x, y + 0.06);
                fill_paint(&cv, &P, col, 1.0, 0.0);
                x += wdt + urange(&r, 0.02, 0.06);
            }
        }
    }
    finish(&cv, img, urange(&r, 0.5, 4.0), rng_next(&r));
    canvas_free(&cv);
}
