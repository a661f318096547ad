/* Unit tests of masksynth/mask.c: geometry per type and wearing style on a
 * synthetic 68-point face (covered and visible landmarks), roll and yaw, the
 * mask staying on the face, the anti-aliased edge, byte-identical untouched
 * pixels, grey input, determinism, shading from the face's light, landmark
 * validation, and a timing print. Every fixture is built here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "../common/image.h"
#include "../masksynth/mask.h"
#include "../masksynth/plan.h"
#include "../common/rng.h"

#define PI 3.14159265358979323846

static const char *const TYPES[4] = {"surgical", "n95", "kn95", "cloth"};
static const char *const STYLES[3] = {"full", "below_nose", "chin"};

/* ------------------------------------------------------------------------- */
/* Fixtures */

/* A plausible frontal face in a 100x100 image (dlib order, pixel centres at
 * integers): jaw arc, brows, nose, eyes, mouth. */
static void frontal(double P[68][2])
{
    const double cx = 50, cy0 = 40, W = 36, H = 48;
    for (int k = 0; k <= 16; k++) {
        P[k][0] = cx - W * cos(k * PI / 16);
        P[k][1] = cy0 + H * sin(k * PI / 16);
    }
    for (int i = 0; i < 5; i++) { /* brows */
        double t = i / 4.0;
        P[17 + i][0] = 22 + 22 * t;
        P[17 + i][1] = 31 - 4 * sin(t * PI);
        P[22 + i][0] = 56 + 22 * t;
        P[22 + i][1] = 31 - 4 * sin(t * PI);
    }
    for (int i = 0; i < 4; i++) { /* bridge */
        P[27 + i][0] = cx;
        P[27 + i][1] = 40 + 6 * i;
    }
    static const double nb[5][2] = {{43, 62}, {46.5, 63}, {50, 63.5}, {53.5, 63}, {57, 62}};
    for (int i = 0; i < 5; i++) {
        P[31 + i][0] = nb[i][0];
        P[31 + i][1] = nb[i][1];
    }
    static const double eye[6][2] = {{-7, 0}, {-3, -2}, {3, -2}, {7, 0}, {3, 2}, {-3, 2}};
    for (int i = 0; i < 6; i++) {
        P[36 + i][0] = 35 + eye[i][0];
        P[36 + i][1] = 40 + eye[i][1];
    }
    /* the right eye in dlib order: 42 inner, 43 44 top, 45 outer, 46 47 bottom */
    static const double reye[6][2] = {{58, 40}, {62, 38}, {68, 38}, {72, 40}, {68, 42}, {62, 42}};
    for (int i = 0; i < 6; i++) {
        P[42 + i][0] = reye[i][0];
        P[42 + i][1] = reye[i][1];
    }
    static const double mo[20][2] = {{39, 73},   {42, 70.5}, {46, 69.5}, {50, 70},   {54, 69.5}, {58, 70.5}, {61, 73},
                                     {58, 76},   {54, 77.5}, {50, 78},   {46, 77.5}, {42, 76},   {41, 73},   {46, 72},
                                     {50, 72.2}, {54, 72},   {59, 73},   {54, 74},   {50, 74.2}, {46, 74}};
    for (int i = 0; i < 20; i++) {
        P[48 + i][0] = mo[i][0];
        P[48 + i][1] = mo[i][1];
    }
}

static void rotate(double P[68][2], double deg, double cx, double cy)
{
    double c = cos(deg * PI / 180), s = sin(deg * PI / 180);
    for (int k = 0; k < 68; k++) {
        double x = P[k][0] - cx, y = P[k][1] - cy;
        P[k][0] = cx + c * x - s * y;
        P[k][1] = cy + s * x + c * y;
    }
}

/* Yaw-like: everything right of the nose line compressed toward it. */
static void yaw(double P[68][2], double f)
{
    double nx = P[30][0];
    for (int k = 0; k < 68; k++)
        if (P[k][0] > nx) P[k][0] = nx + f * (P[k][0] - nx);
}

/* A face-like image: a lit skin ellipse on a textured background, plus fine
 * deterministic noise so that any changed byte is visible. */
static void face_image(image *img, int w, int h, int c)
{
    assert_int_equal(image_alloc(img, w, h, c), 0);
    uint32_t s = 2463534242u;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double fx = (x - 0.5 * w) / (0.38 * w), fy = (y - 0.58 * h) / (0.45 * h);
            int in = fx * fx + fy * fy < 1;
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            int n = (int)(s % 9) - 4;
            double base[3] = {in ? 200 - 40.0 * x / w : 60 + 30 * ((x / 7 + y / 5) % 2), in ? 150 - 30.0 * x / w : 80,
                              in ? 120 - 20.0 * x / w : 110};
            for (int k = 0; k < c; k++) {
                double v = c == 1 ? 0.299 * base[0] + 0.587 * base[1] + 0.114 * base[2] : base[k];
                int q = (int)v + n;
                img->px[((size_t)y * w + x) * c + k] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
        }
}

static pattern make_pattern(const char *type, const char *style, const char *texture, const char *colour, int loops,
                            unsigned long long tseed)
{
    pattern p;
    memset(&p, 0, sizeof p);
    snprintf(p.stable_id, sizeof p.stable_id, "t-%s-%s-%s", type, style, texture);
    p.type = type;
    p.style = style;
    p.texture = texture;
    snprintf(p.colour, sizeof p.colour, "%s", colour);
    snprintf(p.params, sizeof p.params,
             "{\"scale\": 0.9, \"angle\": 12.0, \"contrast\": 0.2, \"texture_seed\": %llu, \"ear_loops\": %s}", tseed,
             loops ? "true" : "false");
    return p;
}

static int a_at(const mask_result *r, int w, const double *pt)
{
    return r->alpha[(size_t)lround(pt[1]) * w + lround(pt[0])];
}

static void render_ok(const image *face, double P[68][2], const pattern *p, uint64_t seed, image *out, mask_result *r)
{
    char err[256] = "";
    int rc = mask_render(face, (const double(*)[2])P, p, seed, out, r, err, sizeof err);
    if (rc) fail_msg("mask_render(%s, %s, %s): %s", p->type, p->style, p->texture, err);
    assert_non_null(out->px);
    assert_non_null(r->alpha);
    assert_int_equal(out->w, face->w);
    assert_int_equal(out->h, face->h);
    assert_int_equal(out->c, face->c);
}

/* Distance from (x, y) to the convex hull of pts (0 inside). */
static double hull_dist(double (*h)[2], int n, double x, double y)
{
    int inside = 1;
    double best = 1e300;
    for (int i = 0; i < n; i++) {
        double *a = h[i], *b = h[(i + 1) % n];
        double ex = b[0] - a[0], ey = b[1] - a[1];
        double cr = ex * (y - a[1]) - ey * (x - a[0]);
        if (cr < 0) inside = 0; /* hull is counter-clockwise in y-down coords: see hull() */
        double t = ((x - a[0]) * ex + (y - a[1]) * ey) / (ex * ex + ey * ey);
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        double dx = a[0] + t * ex - x, dy = a[1] + t * ey - y;
        double d = sqrt(dx * dx + dy * dy);
        if (d < best) best = d;
    }
    return inside ? 0 : best;
}

static double cross3(const double *o, const double *a, const double *b)
{
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
}

static int cmp_pt(const void *a, const void *b)
{
    const double *p = a, *q = b;
    return p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : p[1] < q[1] ? -1 : p[1] > q[1];
}

/* Monotone chain; the result has cross >= 0 turning (the sign hull_dist expects). */
static int hull(double (*pts)[2], int n, double (*out)[2])
{
    qsort(pts, (size_t)n, sizeof pts[0], cmp_pt);
    int k = 0;
    for (int i = 0; i < n; i++) {
        while (k >= 2 && cross3(out[k - 2], out[k - 1], pts[i]) <= 0) k--;
        memcpy(out[k++], pts[i], sizeof pts[0]);
    }
    for (int i = n - 2, t = k + 1; i >= 0; i--) {
        while (k >= t && cross3(out[k - 2], out[k - 1], pts[i]) <= 0) k--;
        memcpy(out[k++], pts[i], sizeof pts[0]);
    }
    return k - 1;
}

/* Largest distance of a pixel with alpha > 0 from the hull of jaw + bridge. */
static double max_outside(const mask_result *r, int w, int h, double P[68][2])
{
    double pts[21][2], hl[44][2];
    int n = 0;
    for (int k = 0; k <= 16; k++) memcpy(pts[n++], P[k], sizeof pts[0]);
    for (int k = 27; k <= 30; k++) memcpy(pts[n++], P[k], sizeof pts[0]);
    int m = hull(pts, n, hl);
    double worst = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (r->alpha[(size_t)y * w + x]) {
                double d = hull_dist(hl, m, x, y);
                if (d > worst) worst = d;
            }
    return worst;
}

/* The coverage properties of one style on landmarks P. */
static void check_style(const image *face, double P[68][2], const char *type, const char *style, int check_eyes)
{
    pattern p = make_pattern(type, style, "plain", "#8fb8de", 1, 7);
    image out;
    mask_result r;
    render_ok(face, P, &p, 1, &out, &r);
    int w = face->w;
    if (!strcmp(style, "full")) {
        for (int k = 48; k <= 67; k++)
            if (a_at(&r, w, P[k]) < 250) fail_msg("%s full: mouth P%d alpha %d < 250", type, k, a_at(&r, w, P[k]));
        if (check_eyes)
            for (int k = 36; k <= 47; k++)
                if (a_at(&r, w, P[k]) != 0) fail_msg("%s full: eye P%d alpha %d", type, k, a_at(&r, w, P[k]));
        assert_false(r.visible[30]);
    } else if (!strcmp(style, "below_nose")) {
        if (!r.visible[30]) fail_msg("%s below_nose: nose tip P30 covered (alpha %d)", type, a_at(&r, w, P[30]));
        for (int k = 48; k <= 67; k++)
            if (a_at(&r, w, P[k]) < 250) fail_msg("%s below_nose: mouth P%d alpha %d", type, k, a_at(&r, w, P[k]));
        for (int k = 36; k <= 47; k++) assert_int_equal(a_at(&r, w, P[k]), 0);
    } else {
        if (!r.visible[51]) fail_msg("%s chin: upper lip P51 covered (alpha %d)", type, a_at(&r, w, P[51]));
        assert_true(r.visible[57]);
        assert_true(r.visible[30]);
        assert_false(r.visible[8]);
    }
    for (int k = 0; k < 68; k++) assert_int_equal(r.visible[k], a_at(&r, w, P[k]) < 128);
    assert_true(r.coverage > 0 && r.coverage < 1);
    mask_result_free(&r);
    image_free(&out);
}

/* ------------------------------------------------------------------------- */
/* Tests */

static void test_all_types_styles(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    double P[68][2];
    frontal(P);
    for (int t = 0; t < 4; t++) {
        double cov[3];
        for (int s = 0; s < 3; s++) {
            check_style(&face, P, TYPES[t], STYLES[s], 1);
            pattern p = make_pattern(TYPES[t], STYLES[s], "plain", "#8fb8de", 0, 7);
            image out;
            mask_result r;
            render_ok(&face, P, &p, 1, &out, &r);
            cov[s] = r.coverage;
            mask_result_free(&r);
            image_free(&out);
        }
        /* full covers more than below_nose, which covers more than chin */
        assert_true(cov[0] > cov[1] && cov[1] > cov[2]);
    }
    image_free(&face);
}

static void test_alpha_range_and_untouched(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    double P[68][2];
    frontal(P);
    static const char *const tex[6] = {"plain", "pleats", "stripes", "checks", "dots", "motif"};
    for (int t = 0; t < 4; t++)
        for (int x = 0; x < 6; x++) {
            pattern p = make_pattern(TYPES[t], "full", tex[x], "#2e4a7d", 1, 99);
            image out;
            mask_result r;
            render_ok(&face, P, &p, 5, &out, &r);
            long n0 = 0, n255 = 0, nmid = 0;
            double sum = 0;
            for (int i = 0; i < 100 * 100; i++) {
                int a = r.alpha[i];
                sum += a;
                if (a == 0) {
                    n0++;
                    assert_memory_equal(out.px + 3 * i, face.px + 3 * i, 3);
                } else if (a == 255) {
                    n255++;
                } else {
                    nmid++;
                }
                /* the composite is between the face and the mask colour: a
                 * fully covered pixel no longer carries the face's noise */
            }
            assert_true(n0 > 0 && n255 > 0 && nmid > 0);
            assert_true(fabs(r.coverage - sum / (255.0 * 100 * 100)) < 1e-12);
            assert_true(r.coverage > 0.05 && r.coverage < 0.6);
            mask_result_free(&r);
            image_free(&out);
        }
    image_free(&face);
}

static void test_roll(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    for (int sgn = -1; sgn <= 1; sgn += 2)
        for (int t = 0; t < 4; t++) {
            double P[68][2];
            frontal(P);
            rotate(P, 30.0 * sgn, 50, 60);
            for (int s = 0; s < 3; s++) {
                check_style(&face, P, TYPES[t], STYLES[s], 1);
                pattern p = make_pattern(TYPES[t], STYLES[s], "stripes", "#9fd3c7", 1, 3);
                image out;
                mask_result r;
                render_ok(&face, P, &p, 2, &out, &r);
                double d = max_outside(&r, 100, 100, P);
                if (d > 2.5) fail_msg("roll %+d %s %s: alpha %.2f px outside the jaw hull", 30 * sgn, TYPES[t], STYLES[s], d);
                mask_result_free(&r);
                image_free(&out);
            }
        }
    /* the unrotated face too */
    for (int t = 0; t < 4; t++) {
        double P[68][2];
        frontal(P);
        pattern p = make_pattern(TYPES[t], "full", "plain", "#9fd3c7", 1, 3);
        image out;
        mask_result r;
        render_ok(&face, P, &p, 2, &out, &r);
        assert_true(max_outside(&r, 100, 100, P) <= 2.5);
        mask_result_free(&r);
        image_free(&out);
    }
    image_free(&face);
}

/* Roll is continuous: coverage changes smoothly, no template switch. */
static void test_roll_continuous(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    pattern p = make_pattern("kn95", "full", "plain", "#f2f2f2", 1, 3);
    double prev = -1;
    for (int deg = -30; deg <= 30; deg += 2) {
        double P[68][2];
        frontal(P);
        rotate(P, deg, 50, 60);
        image out;
        mask_result r;
        render_ok(&face, P, &p, 2, &out, &r);
        if (prev >= 0) assert_true(fabs(r.coverage - prev) < 0.01);
        prev = r.coverage;
        mask_result_free(&r);
        image_free(&out);
    }
    image_free(&face);
}

static void test_yaw(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    for (int t = 0; t < 4; t++) {
        double prev_cov = 1;
        for (int step = 0; step < 3; step++) {
            double f = 1.0 - 0.2 * step - 0.1; /* 0.9, 0.7, 0.5 */
            double P[68][2];
            frontal(P);
            yaw(P, f);
            check_style(&face, P, TYPES[t], "full", 0);
            pattern p = make_pattern(TYPES[t], "full", "checks", "#7d2e3a", 1, 3);
            image out;
            mask_result r;
            render_ok(&face, P, &p, 2, &out, &r);
            double d = max_outside(&r, 100, 100, P);
            if (d > 2.5) fail_msg("yaw %.1f %s: alpha %.2f px outside the jaw hull", f, TYPES[t], d);
            /* the far (compressed) side is narrower: less coverage as yaw grows */
            assert_true(r.coverage < prev_cov);
            prev_cov = r.coverage;
            /* and nothing beyond the compressed jaw on that side */
            int maxx = 0;
            for (int y = 0; y < 100; y++)
                for (int x = 0; x < 100; x++)
                    if (r.alpha[y * 100 + x] && x > maxx) maxx = x;
            double jawmax = 0;
            for (int k = 0; k <= 16; k++)
                if (P[k][0] > jawmax) jawmax = P[k][0];
            assert_true(maxx <= jawmax + 2);
            mask_result_free(&r);
            image_free(&out);
        }
    }
    image_free(&face);
}

/* The anti-aliased edge along a scanline through the mask's sides is narrow. */
static void test_edge_width(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    double P[68][2];
    frontal(P);
    for (int t = 0; t < 4; t++)
        for (int s = 0; s < 2; s++) {
            pattern p = make_pattern(TYPES[t], STYLES[s], "plain", "#8fb8de", 0, 3);
            image out;
            mask_result r;
            render_ok(&face, P, &p, 2, &out, &r);
            for (int row = 66; row <= 78; row += 4) {
                const uint8_t *a = r.alpha + row * 100;
                /* left side: from the first non-zero pixel, the run of partial values */
                int x = 0;
                while (x < 50 && a[x] == 0) x++;
                assert_true(x < 50);
                int run = 0;
                while (x < 50 && a[x] > 0 && a[x] < 255) {
                    run++;
                    x++;
                }
                if (run > 3) fail_msg("%s %s row %d: left edge %d px wide", TYPES[t], STYLES[s], row, run);
                assert_int_equal(a[x], 255);
                x = 99;
                while (x > 50 && a[x] == 0) x--;
                run = 0;
                while (x > 50 && a[x] > 0 && a[x] < 255) {
                    run++;
                    x--;
                }
                if (run > 3) fail_msg("%s %s row %d: right edge %d px wide", TYPES[t], STYLES[s], row, run);
                /* inside the mask, opaque; outside it, zero (no halo) */
                assert_int_equal(a[x], 255);
            }
            mask_result_free(&r);
            image_free(&out);
        }
    image_free(&face);
}

static void test_ear_loops(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    double P[68][2];
    frontal(P);
    for (int t = 0; t < 4; t++) {
        pattern with = make_pattern(TYPES[t], "full", "plain", "#f2f2f2", 1, 3),
                without = make_pattern(TYPES[t], "full", "plain", "#f2f2f2", 0, 3);
        image o1, o2;
        mask_result r1, r2;
        render_ok(&face, P, &with, 2, &o1, &r1);
        render_ok(&face, P, &without, 2, &o2, &r2);
        assert_true(r1.coverage > r2.coverage);
        /* loops reach up toward the ear: alpha above the side corner, near P0 / P16 */
        long upper1 = 0, upper2 = 0;
        for (int y = 40; y < 50; y++)
            for (int x = 0; x < 100; x++) {
                if (x > 22 && x < 78) continue; /* only beside the face's sides */
                upper1 += r1.alpha[y * 100 + x];
                upper2 += r2.alpha[y * 100 + x];
            }
        assert_true(upper1 > 0);
        assert_int_equal(upper2, 0);
        /* a loop's body pixels are never more than thin: the mask body is unchanged */
        for (int i = 0; i < 100 * 100; i++) assert_true(r1.alpha[i] >= r2.alpha[i]);
        mask_result_free(&r1);
        mask_result_free(&r2);
        image_free(&o1);
        image_free(&o2);
    }
    image_free(&face);
}

static void test_grey(void **state)
{
    (void)state;
    image grey, rgb;
    face_image(&grey, 100, 100, 1);
    face_image(&rgb, 100, 100, 3);
    double P[68][2];
    frontal(P);
    pattern p = make_pattern("cloth", "full", "stripes", "#7d2e3a", 1, 11);
    image og, oc;
    mask_result rg, rc;
    render_ok(&grey, P, &p, 3, &og, &rg);
    render_ok(&rgb, P, &p, 3, &oc, &rc);
    assert_int_equal(og.c, 1);
    /* the geometry does not depend on the channels */
    assert_memory_equal(rg.alpha, rc.alpha, 100 * 100);
    for (int i = 0; i < 100 * 100; i++)
        if (rg.alpha[i] == 0) assert_int_equal(og.px[i], grey.px[i]);
    /* a fully covered grey pixel is close to the luma of the RGB mask pixel
     * (the shading differs slightly: grey and RGB faces have different luma) */
    double diff = 0;
    long n = 0;
    for (int i = 0; i < 100 * 100; i++)
        if (rg.alpha[i] == 255) {
            const uint8_t *c = oc.px + 3 * i;
            diff += fabs(og.px[i] - (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]));
            n++;
        }
    assert_true(n > 0);
    assert_true(diff / n < 6);
    mask_result_free(&rg);
    mask_result_free(&rc);
    image_free(&og);
    image_free(&oc);
    image_free(&grey);
    image_free(&rgb);
}

static void test_determinism(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    double P[68][2];
    frontal(P);
    static const char *const tex[5] = {"stripes", "checks", "dots", "motif", "plain"};
    for (int x = 0; x < 5; x++) {
        pattern p = make_pattern("cloth", "full", tex[x], "#5b7f4b", 1, 1234);
        pattern q = make_pattern("cloth", "full", tex[x], "#5b7f4b", 1, 98765);
        image o1, o2, o3, o4;
        mask_result r1, r2, r3, r4;
        render_ok(&face, P, &p, 77, &o1, &r1);
        render_ok(&face, P, &p, 77, &o2, &r2);
        render_ok(&face, P, &q, 77, &o3, &r3);
        render_ok(&face, P, &p, 78, &o4, &r4);
        assert_memory_equal(o1.px, o2.px, 100 * 100 * 3);
        assert_memory_equal(r1.alpha, r2.alpha, 100 * 100);
        assert_memory_equal(r1.visible, r2.visible, 68);
        assert_true(r1.coverage == r2.coverage);
        /* another texture seed, or another image seed: same alpha, other texture */
        assert_memory_equal(r1.alpha, r3.alpha, 100 * 100);
        assert_memory_not_equal(o1.px, o3.px, 100 * 100 * 3);
        assert_memory_not_equal(o1.px, o4.px, 100 * 100 * 3);
        mask_result_free(&r1);
        mask_result_free(&r2);
        mask_result_free(&r3);
        mask_result_free(&r4);
        image_free(&o1);
        image_free(&o2);
        image_free(&o3);
        image_free(&o4);
    }
    image_free(&face);
}

/* The mask is lit like the face under it: a face darker on its left gives a
 * mask darker on its left. */
static void test_shading_follows_face(void **state)
{
    (void)state;
    image face;
    assert_int_equal(image_alloc(&face, 100, 100, 3), 0);
    for (int y = 0; y < 100; y++)
        for (int x = 0; x < 100; x++)
            for (int k = 0; k < 3; k++) face.px[(y * 100 + x) * 3 + k] = (uint8_t)(60 + 1.6 * x);
    double P[68][2];
    frontal(P);
    for (int t = 0; t < 4; t++) {
        pattern p = make_pattern(TYPES[t], "full", "plain", "#e0e0e0", 0, 1);
        image out;
        mask_result r;
        render_ok(&face, P, &p, 1, &out, &r);
        double left = 0, right = 0;
        long n = 0;
        for (int y = 55; y < 85; y++)
            for (int x = 25; x < 48; x++) {
                int xm = 99 - x; /* the mirror pixel: the face and the mask are symmetric */
                if (r.alpha[y * 100 + x] == 255 && r.alpha[y * 100 + xm] == 255) {
                    left += out.px[(y * 100 + x) * 3];
                    right += out.px[(y * 100 + xm) * 3];
                    n++;
                }
            }
        assert_true(n > 100);
        if (!(right / n > left / n + 10))
            fail_msg("%s: mask left %.1f right %.1f: does not follow the face's light", TYPES[t], left / n, right / n);
        mask_result_free(&r);
        image_free(&out);
    }
    image_free(&face);
}

static void expect_fail(const image *face, double P[68][2], const pattern *p, const char *what)
{
    char err[256] = "";
    image out = {1, 1, 1, (uint8_t *)"x"};
    mask_result r;
    memset(&r, 0xff, sizeof r);
    int rc = mask_render(face, (const double(*)[2])P, p, 1, &out, &r, err, sizeof err);
    if (rc != -1) fail_msg("%s: accepted", what);
    if (!err[0]) fail_msg("%s: no message", what);
    /* outputs are left empty and safe to free */
    assert_null(out.px);
    assert_null(r.alpha);
    mask_result_free(&r);
    image_free(&out);
}

static void test_bad_landmarks(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    pattern p = make_pattern("surgical", "full", "pleats", "#8fb8de", 1, 1);
    double P[68][2];
    frontal(P);
    P[40][1] = NAN;
    expect_fail(&face, P, &p, "NaN");
    frontal(P);
    P[3][0] = INFINITY;
    expect_fail(&face, P, &p, "infinite");
    for (int k = 0; k < 68; k++) P[k][0] = P[k][1] = 42.0;
    expect_fail(&face, P, &p, "all equal");
    for (int k = 0; k < 68; k++) {
        P[k][0] = 10 + k;
        P[k][1] = 20 + 0.5 * k;
    }
    expect_fail(&face, P, &p, "collinear");
    frontal(P);
    for (int k = 0; k < 68; k++) {
        P[k][0] = 50 + 0.05 * (P[k][0] - 50);
        P[k][1] = 50 + 0.05 * (P[k][1] - 50);
    }
    expect_fail(&face, P, &p, "face 3.6 px wide");
    /* a bad pattern is refused too */
    frontal(P);
    pattern bad = make_pattern("scarf", "full", "plain", "#8fb8de", 1, 1);
    expect_fail(&face, P, &bad, "unknown type");
    bad = make_pattern("n95", "full", "plain", "blue", 1, 1);
    expect_fail(&face, P, &bad, "bad colour");
    /* and bad images */
    image empty = {0, 0, 3, NULL};
    expect_fail(&empty, P, &p, "empty image");
    image_free(&face);
}

/* Landmarks partly or wholly outside the image: no crash, alpha only inside. */
static void test_off_image(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    double P[68][2];
    frontal(P);
    for (int k = 0; k < 68; k++) P[k][1] += 40; /* chin far below the bottom */
    pattern p = make_pattern("n95", "full", "dots", "#f2f2f2", 1, 1);
    image out;
    mask_result r;
    render_ok(&face, P, &p, 1, &out, &r);
    assert_true(r.coverage > 0);
    assert_true(r.visible[8]); /* outside the image: not covered there */
    mask_result_free(&r);
    image_free(&out);
    for (int k = 0; k < 68; k++) P[k][0] += 500;
    render_ok(&face, P, &p, 1, &out, &r);
    assert_true(r.coverage == 0);
    assert_memory_equal(out.px, face.px, 100 * 100 * 3);
    mask_result_free(&r);
    image_free(&out);
    image_free(&face);
}

/* The real bank renders on small and large faces. */
static void test_bank_and_sizes(void **state)
{
    (void)state;
    pattern *bank = pattern_bank(42, 36);
    static const int sizes[3] = {48, 100, 250};
    for (int si = 0; si < 3; si++) {
        int S = sizes[si];
        image face;
        face_image(&face, S, S, si == 0 ? 1 : 3);
        double P[68][2];
        frontal(P);
        for (int k = 0; k < 68; k++) {
            P[k][0] *= S / 100.0;
            P[k][1] *= S / 100.0;
        }
        for (int i = 0; i < 36; i++) {
            image out;
            mask_result r;
            render_ok(&face, P, &bank[i], (uint64_t)i, &out, &r);
            assert_true(r.coverage > 0 && r.coverage < 1);
            if (!strcmp(bank[i].style, "full")) assert_false(r.visible[62]);
            assert_true(r.visible[37] && r.visible[44]);
            mask_result_free(&r);
            image_free(&out);
        }
        image_free(&face);
    }
    free(bank);
}

/* Random and hostile landmark sets: always 0 or -1 (with a message), never a
 * crash; when accepted, the contract holds. */
static void test_random_landmarks(void **state)
{
    (void)state;
    image face;
    face_image(&face, 64, 64, 3);
    pattern *bank = pattern_bank(3, 12);
    rng_t r;
    rng_seed(&r, 2024, 1);
    int accepted = 0, refused = 0;
    for (int it = 0; it < 600; it++) {
        double P[68][2];
        frontal(P);
        int kind = it % 6;
        for (int k = 0; k < 68; k++) {
            P[k][0] *= 0.64;
            P[k][1] *= 0.64;
            if (kind == 0) { /* jitter */
                P[k][0] += 6 * (rng_uniform(&r) - 0.5);
                P[k][1] += 6 * (rng_uniform(&r) - 0.5);
            } else if (kind == 1) { /* noise anywhere */
                P[k][0] = -40 + 150 * rng_uniform(&r);
                P[k][1] = -40 + 150 * rng_uniform(&r);
            } else if (kind == 2) { /* mirrored */
                P[k][0] = 64 - P[k][0];
            } else if (kind == 3) { /* upside down */
                P[k][0] = 64 - P[k][0];
                P[k][1] = 64 - P[k][1];
            } else if (kind == 4) { /* far away, huge */
                P[k][0] = P[k][0] * 1000 - 5e4;
                P[k][1] = P[k][1] * 1000 - 2e4;
            }
        }
        if (kind == 5) { /* one wild point */
            int k = (int)rng_below(&r, 68);
            P[k][0] = rng_uniform(&r) < 0.5 ? 1e7 : -3e5;
        }
        image out;
        mask_result res;
        char err[256] = "";
        int rc = mask_render(&face, (const double(*)[2])P, &bank[it % 12], (uint64_t)it, &out, &res, err, sizeof err);
        if (rc == 0) {
            accepted++;
            assert_true(res.coverage >= 0 && res.coverage <= 1);
            for (int i = 0; i < 64 * 64; i++)
                if (res.alpha[i] == 0) assert_memory_equal(out.px + 3 * i, face.px + 3 * i, 3);
            mask_result_free(&res);
            image_free(&out);
        } else {
            assert_int_equal(rc, -1);
            assert_true(err[0] != 0);
            assert_null(out.px);
            assert_null(res.alpha);
            refused++;
        }
    }
    assert_true(accepted > 300);
    assert_true(refused > 0);
    free(bank);
    image_free(&face);
}

/* The same renders from two threads at once equal the serial ones. */
typedef struct {
    const image *face;
    const pattern *bank;
    uint8_t *px[8], *alpha[8];
} thread_job;

static void *render_job(void *arg)
{
    thread_job *j = arg;
    double P[68][2];
    frontal(P);
    for (int i = 0; i < 8; i++) {
        image out;
        mask_result r;
        char err[128];
        if (mask_render(j->face, (const double(*)[2])P, &j->bank[i], (uint64_t)i * 7, &out, &r, err, sizeof err))
            return NULL;
        j->px[i] = out.px;
        j->alpha[i] = r.alpha;
    }
    return j;
}

static void test_threads(void **state)
{
    (void)state;
    image face;
    face_image(&face, 100, 100, 3);
    pattern *bank = pattern_bank(11, 8);
    thread_job jobs[3];
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < 3; t++) {
        jobs[t].face = &face;
        jobs[t].bank = bank;
    }
    assert_non_null(render_job(&jobs[0])); /* serial */
    pthread_t th[2];
    for (int t = 0; t < 2; t++) assert_int_equal(pthread_create(&th[t], NULL, render_job, &jobs[t + 1]), 0);
    for (int t = 0; t < 2; t++) {
        void *ret;
        assert_int_equal(pthread_join(th[t], &ret), 0);
        assert_non_null(ret);
    }
    for (int t = 1; t < 3; t++)
        for (int i = 0; i < 8; i++) {
            assert_memory_equal(jobs[0].px[i], jobs[t].px[i], 100 * 100 * 3);
            assert_memory_equal(jobs[0].alpha[i], jobs[t].alpha[i], 100 * 100);
        }
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 8; i++) {
            free(jobs[t].px[i]);
            free(jobs[t].alpha[i]);
        }
    free(bank);
    image_free(&face);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void test_timing(void **state)
{
    (void)state;
    pattern *bank = pattern_bank(7, 24);
    static const int sizes[3] = {48, 100, 250};
    for (int si = 0; si < 3; si++) {
        int S = sizes[si], c = si == 0 ? 1 : 3;
        image face;
        face_image(&face, S, S, c);
        double P[68][2];
        frontal(P);
        for (int k = 0; k < 68; k++) {
            P[k][0] *= S / 100.0;
            P[k][1] *= S / 100.0;
        }
        int n = S >= 250 ? 200 : 1000;
        double t0 = now_s(), c0 = cpu_s();
        for (int i = 0; i < n; i++) {
            image out;
            mask_result r;
            render_ok(&face, P, &bank[i % 24], (uint64_t)i, &out, &r);
            mask_result_free(&r);
            image_free(&out);
        }
        double dt = (now_s() - t0) / n, dc = (cpu_s() - c0) / n;
        printf("# mask_render %dx%d c=%d: %.1f us CPU, %.1f us wall per image (%d renders, bank of 24)\n", S, S, c,
               dc * 1e6, dt * 1e6, n);
        image_free(&face);
    }
    free(bank);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_types_styles),
        cmocka_unit_test(test_alpha_range_and_untouched),
        cmocka_unit_test(test_roll),
        cmocka_unit_test(test_roll_continuous),
        cmocka_unit_test(test_yaw),
        cmocka_unit_test(test_edge_width),
        cmocka_unit_test(test_ear_loops),
        cmocka_unit_test(test_grey),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_shading_follows_face),
        cmocka_unit_test(test_bad_landmarks),
        cmocka_unit_test(test_off_image),
        cmocka_unit_test(test_bank_and_sizes),
        cmocka_unit_test(test_random_landmarks),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests_name("mask", tests, NULL, NULL);
}
