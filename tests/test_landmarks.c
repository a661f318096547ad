/* Unit tests of masksynth/landmarks.cpp (dlib's HOG face detector and
 * 68-point shape predictor behind a C interface) on a real face: the
 * public-domain NASA portrait crop tests/data/astronaut_face.png (see
 * tests/data/README.md), at full size (124x124 RGB), resized to 100x100 RGB
 * and to 48x48 grey. The face is found (detected, or the mean-shape fallback
 * box) at every size and its landmarks are plausible; bad input returns 0 or
 * -1 without a crash and without printing; models in two threads agree.
 *
 * Needs /usr/share/dlib/shape_predictor_68_face_landmarks.dat (Debian's
 * libdlib-data, installed by `make deps`). Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/image.h"
#include "../masksynth/landmarks.h"

#define FACE_PNG "tests/data/astronaut_face.png"

static lmk_model *g_model;
static char g_load_err[1024];
static image g_face; /* the committed crop, 124x124 RGB */
static char g_face_err[1024];

/* ---- helpers --------------------------------------------------------------- */

static lmk_model *model(void)
{
    if (!g_model)
        fail_msg("cannot load the dlib landmark model: %s\n"
                 "(`make deps` installs libdlib-data, which provides %s)",
                 g_load_err, LMK_DEFAULT_PREDICTOR);
    return g_model;
}

static const image *face(void)
{
    if (!g_face.px) fail_msg("cannot read %s (run the tests from the repository root): %s", FACE_PNG, g_face_err);
    return &g_face;
}

/* Area-averaging resize (for shrinking): output pixel (x, y) is the mean of
 * the source over [x * W / w, (x + 1) * W / w) x [...], with fractional
 * coverage at the edges. RGB to grey with the Rec. 601 luma, as a grey
 * dataset image would have been made. */
static void resize_area(const image *src, image *dst, int w, int h, int c)
{
    assert_int_equal(image_alloc(dst, w, h, c), 0);
    double sx = (double)src->w / w, sy = (double)src->h / h;
    for (int y = 0; y < h; y++) {
        double y0 = y * sy, y1 = (y + 1) * sy;
        for (int x = 0; x < w; x++) {
            double x0 = x * sx, x1 = (x + 1) * sx, acc[3] = {0, 0, 0}, wsum = 0;
            for (int yy = (int)floor(y0); yy < (int)ceil(y1) && yy < src->h; yy++) {
                double wy = fmin(y1, yy + 1.0) - fmax(y0, (double)yy);
                if (wy <= 0) continue;
                for (int xx = (int)floor(x0); xx < (int)ceil(x1) && xx < src->w; xx++) {
                    double wx = fmin(x1, xx + 1.0) - fmax(x0, (double)xx);
                    if (wx <= 0) continue;
                    const uint8_t *p = src->px + ((size_t)yy * src->w + xx) * src->c;
                    double wgt = wx * wy;
                    wsum += wgt;
                    if (src->c == 1) {
                        for (int k = 0; k < c; k++) acc[k] += wgt * p[0];
                    } else if (c == 1) {
                        acc[0] += wgt * (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]);
                    } else {
                        for (int k = 0; k < 3; k++) acc[k] += wgt * p[k];
                    }
                }
            }
            for (int k = 0; k < c; k++) dst->px[((size_t)y * w + x) * c + k] = (uint8_t)lround(acc[k] / wsum);
        }
    }
}

static double mean_y(const face_fit *f, int a, int b)
{
    double s = 0;
    for (int i = a; i <= b; i++) s += f->pts[i][1];
    return s / (b - a + 1);
}

static double inter_ocular(const face_fit *f)
{
    double lx = 0, ly = 0, rx = 0, ry = 0;
    for (int i = 36; i < 42; i++) lx += f->pts[i][0], ly += f->pts[i][1];
    for (int i = 42; i < 48; i++) rx += f->pts[i][0], ry += f->pts[i][1];
    return hypot(rx - lx, ry - ly) / 6;
}

/* Brows above eyes above nose tip above mouth above chin; every point inside
 * the image give or take 10%. */
static void assert_plausible(const face_fit *f, int w, int h)
{
    double brows = mean_y(f, 17, 26), eyes = mean_y(f, 36, 47), tip = f->pts[30][1];
    double mouth = mean_y(f, 48, 67), chin = f->pts[8][1];
    if (!(brows < eyes && eyes < tip && tip < mouth && mouth < chin))
        fail_msg("implausible landmarks: brows %.1f eyes %.1f nose tip %.1f mouth %.1f chin %.1f", brows, eyes,
                 tip, mouth, chin);
    for (int i = 0; i < 68; i++) {
        double x = f->pts[i][0], y = f->pts[i][1];
        if (!(isfinite(x) && isfinite(y) && x >= -0.1 * w && x <= 1.1 * w && y >= -0.1 * h && y <= 1.1 * h))
            fail_msg("landmark %d (%.2f, %.2f) outside the %dx%d image", i, x, y, w, h);
    }
    /* The eyes are level-ish and the right eye is right of the left one. */
    assert_true(f->pts[42][0] > f->pts[39][0]);
    assert_true(inter_ocular(f) > 0.15 * w);
}

static void assert_all_finite(const face_fit *f)
{
    for (int i = 0; i < 4; i++) assert_true(isfinite(f->box[i]));
    for (int i = 0; i < 68; i++) assert_true(isfinite(f->pts[i][0]) && isfinite(f->pts[i][1]));
}

/* Detected with one upsampling, or fitted in the fallback box: never dropped.
 * Returns 1 when detected, 0 when the fallback was used. */
static int find_face(const image *img, face_fit *f, const char *what)
{
    int r = lmk_detect(model(), img, 1, f);
    assert_true(r == 0 || r == 1);
    if (r == 1) {
        assert_true(f->score > 0);
        print_message("# %s: detected, box (%.1f, %.1f, %.1f, %.1f), score %.3f\n", what, f->box[0], f->box[1],
                      f->box[2], f->box[3], f->score);
        return 1;
    }
    double box[4];
    lmk_fallback_box(img->w, img->h, box);
    assert_int_equal(lmk_fit_box(model(), img, box, f), 1);
    assert_true(f->score == 0);
    print_message("# %s: no detection, fallback box (%.1f, %.1f, %.1f, %.1f)\n", what, box[0], box[1], box[2],
                  box[3]);
    return 0;
}

/* Runs fn with stdout and stderr sent to a temporary file; asserts that
 * nothing was written. */
static void assert_silent(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/test_landmarks.out.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    fflush(stderr);
    int o1 = dup(1), o2 = dup(2);
    assert_true(o1 >= 0 && o2 >= 0);
    assert_true(dup2(fd, 1) >= 0 && dup2(fd, 2) >= 0);
    fn(arg);
    fflush(stdout);
    fflush(stderr);
    assert_true(dup2(o1, 1) >= 0 && dup2(o2, 2) >= 0);
    close(o1);
    close(o2);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    unlink(path);
    if (st.st_size != 0) fail_msg("%lld bytes printed on stdout/stderr", (long long)st.st_size);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_predictor_present(void **state)
{
    (void)state;
    struct stat st;
    if (stat(LMK_DEFAULT_PREDICTOR, &st) != 0)
        fail_msg("%s is missing: `make deps` installs libdlib-data, which provides it", LMK_DEFAULT_PREDICTOR);
    assert_non_null(model());
}

static void test_full_size(void **state)
{
    (void)state;
    const image *img = face();
    assert_int_equal(img->w, 124);
    assert_int_equal(img->c, 3);
    face_fit f;
    assert_int_equal(lmk_detect(model(), img, 1, &f), 1);
    assert_true(f.score > 0);
    print_message("# full size %dx%d RGB: detected, box (%.1f, %.1f, %.1f, %.1f), score %.3f\n", img->w, img->h,
                  f.box[0], f.box[1], f.box[2], f.box[3], f.score);
    assert_plausible(&f, img->w, img->h);
    /* The box holds the face: nose tip inside, a sensible size. */
    assert_true(f.pts[30][0] > f.box[0] && f.pts[30][0] < f.box[0] + f.box[2]);
    assert_true(f.pts[30][1] > f.box[1] && f.pts[30][1] < f.box[1] + f.box[3]);
    assert_true(f.box[2] > 0.4 * img->w && f.box[2] < 1.1 * img->w);
}

static void test_100_rgb(void **state)
{
    (void)state;
    image small;
    resize_area(face(), &small, 100, 100, 3);
    face_fit f;
    find_face(&small, &f, "100x100 RGB");
    assert_plausible(&f, 100, 100);
    image_free(&small);
}

static void test_48_grey(void **state)
{
    (void)state;
    image small;
    resize_area(face(), &small, 48, 48, 1);
    face_fit f;
    find_face(&small, &f, "48x48 grey");
    assert_plausible(&f, 48, 48);
    image_free(&small);
}

/* The fallback path on its own, at every size, even where the detector
 * finds the face: the mean-shape box gives plausible landmarks close to the
 * detected ones (this crop is framed the way aligned datasets frame faces). */
static void test_fallback_agrees(void **state)
{
    (void)state;
    const int sizes[3] = {124, 100, 48}, chans[3] = {3, 3, 1};
    for (int k = 0; k < 3; k++) {
        image im;
        if (sizes[k] == face()->w) {
            assert_int_equal(image_alloc(&im, face()->w, face()->h, 3), 0);
            memcpy(im.px, face()->px, (size_t)face()->w * face()->h * 3);
        } else {
            resize_area(face(), &im, sizes[k], sizes[k], chans[k]);
        }
        double box[4];
        lmk_fallback_box(im.w, im.h, box);
        face_fit fb, det;
        assert_int_equal(lmk_fit_box(model(), &im, box, &fb), 1);
        assert_plausible(&fb, im.w, im.h);
        if (lmk_detect(model(), &im, 1, &det) == 1) {
            double d = 0;
            for (int i = 0; i < 68; i++) d += hypot(fb.pts[i][0] - det.pts[i][0], fb.pts[i][1] - det.pts[i][1]);
            d /= 68;
            print_message("# %dx%d: fallback vs detected landmarks: mean distance %.2f px (%.3f of the eye "
                          "distance)\n",
                          im.w, im.h, d, d / inter_ocular(&det));
            assert_true(d < 0.1 * inter_ocular(&det));
        }
        image_free(&im);
    }
}

/* lmk_fit_box in the box lmk_detect reports gives the very same points: the
 * box is mapped back and forth exactly. */
static void test_fit_box_matches_detect(void **state)
{
    (void)state;
    image small;
    resize_area(face(), &small, 100, 100, 3);
    const image *imgs[2] = {face(), &small};
    for (int k = 0; k < 2; k++) {
        face_fit det, fit;
        if (lmk_detect(model(), imgs[k], 1, &det) != 1) continue;
        assert_int_equal(lmk_fit_box(model(), imgs[k], det.box, &fit), 1);
        for (int i = 0; i < 4; i++) assert_true(fit.box[i] == det.box[i]);
        assert_true(fit.score == 0);
        for (int i = 0; i < 68; i++) {
            assert_true(fabs(fit.pts[i][0] - det.pts[i][0]) < 1e-9);
            assert_true(fabs(fit.pts[i][1] - det.pts[i][1]) < 1e-9);
        }
    }
    /* Without upsampling the box is whole pixels of the image. */
    face_fit f0;
    if (lmk_detect(model(), face(), 0, &f0) == 1) {
        for (int i = 0; i < 4; i++) assert_true(f0.box[i] == floor(f0.box[i]));
        assert_plausible(&f0, face()->w, face()->h);
    }
    image_free(&small);
}

/* The points are dlib::shape_predictor's, unrounded: on the crop upsampled
 * once (250 x 249 pixels), dlib 19.24's detector and predictor give the box
 * (35, 35)-(214, 214), confidence 1.152630, and these integer points (made
 * with dlib's own shape_predictor, load_image into grey, pyramid_up). */
static const int dlib_pts[68][2] = {
    {31, 90},   {32, 114},  {34, 137},  {36, 160},  {42, 183},  {54, 203},  {72, 220},  {91, 235},
    {114, 241}, {138, 237}, {160, 225}, {181, 210}, {195, 191}, {204, 169}, {210, 145}, {215, 122},
    {218, 98},  {45, 71},   {57, 59},   {74, 57},   {90, 60},   {106, 67},  {146, 70},  {161, 64},
    {178, 64},  {194, 67},  {204, 79},  {125, 87},  {124, 104}, {124, 121}, {123, 138}, {102, 145},
    {111, 148}, {122, 152}, {132, 149}, {142, 147}, {62, 85},   {73, 79},   {87, 80},   {98, 90},
    {85, 91},   {72, 90},   {149, 93},  {161, 84},  {174, 84},  {185, 91},  {174, 95},  {161, 95},
    {74, 162},  {91, 162},  {108, 162}, {120, 165}, {132, 163}, {148, 163}, {165, 165}, {148, 186},
    {131, 194}, {118, 195}, {105, 193}, {89, 183},  {80, 164},  {108, 169}, {120, 171}, {132, 170},
    {159, 167}, {131, 183}, {119, 184}, {106, 182},
};

static void test_matches_dlib(void **state)
{
    (void)state;
    face_fit f;
    assert_int_equal(lmk_detect(model(), face(), 1, &f), 1);
    /* resize_image's mapping from the upsampled image back to the crop */
    const double sx = 123.0 / 249.0, sy = 123.0 / 248.0;
    assert_true(fabs((f.box[0] - 0.5) / sx + 0.5 - 35) < 1e-9 && fabs((f.box[1] - 0.5) / sy + 0.5 - 35) < 1e-9);
    assert_true(fabs(f.box[2] / sx - 180) < 1e-9 && fabs(f.box[3] / sy - 180) < 1e-9);
    assert_true(fabs(f.score - 1.152630) < 1e-6);
    int fractional = 0;
    for (int i = 0; i < 68; i++) {
        double ux = f.pts[i][0] / sx, uy = f.pts[i][1] / sy;
        if (!(fabs(ux - dlib_pts[i][0]) <= 0.5 + 1e-9 && fabs(uy - dlib_pts[i][1]) <= 0.5 + 1e-9))
            fail_msg("point %d: (%.3f, %.3f) in the upsampled image, dlib says (%d, %d)", i, ux, uy, dlib_pts[i][0],
                     dlib_pts[i][1]);
        fractional += ux != floor(ux) || uy != floor(uy);
    }
    assert_true(fractional > 60); /* unrounded */
}

static void test_fallback_box(void **state)
{
    (void)state;
    double b[4];
    lmk_fallback_box(100, 100, b);
    assert_true(fabs(b[0] - 10) < 1e-9 && fabs(b[1] - 11) < 1e-9 && fabs(b[2] - 80) < 1e-9 && fabs(b[3] - 80) < 1e-9);
    lmk_fallback_box(48, 48, b);
    assert_true(fabs(b[0] - 4.8) < 1e-9 && fabs(b[1] - 5.28) < 1e-9 && fabs(b[2] - 38.4) < 1e-9);
    /* Non-square: a square box of 0.8 of the short side, same centre point. */
    lmk_fallback_box(200, 100, b);
    assert_true(fabs(b[2] - 80) < 1e-9 && fabs(b[3] - 80) < 1e-9);
    assert_true(fabs(b[0] + 0.5 * b[2] - 100) < 1e-9 && fabs(b[1] + 0.55 * b[3] - 55) < 1e-9);
    /* The mean face fits: P8 (box y 1.0697) and the jaw (box x 0.0294 / 0.9706)
     * inside the crop. */
    lmk_fallback_box(48, 48, b);
    assert_true(b[1] + 1.0697 * b[3] < 48 && b[0] + 0.0294 * b[2] > 0 && b[0] + 0.9706 * b[2] < 48);
    lmk_fallback_box(0, -3, b);
    for (int i = 0; i < 4; i++) assert_true(b[i] == 0);
}

struct bad_case {
    image img;
    int detect_rc;
    int fit_rc;
    face_fit out;
};

static void run_bad(void *arg)
{
    struct bad_case *c = arg;
    double box[4];
    c->detect_rc = lmk_detect(model(), &c->img, 1, &c->out);
    lmk_fallback_box(c->img.w, c->img.h, box);
    c->fit_rc = lmk_fit_box(model(), &c->img, box, &c->out);
}

static void test_bad_input(void **state)
{
    (void)state;
    static const int sizes[][3] = {{1, 1, 1}, {1, 1, 3}, {100, 100, 1}, {100, 100, 3}, {2, 300, 1}, {300, 2, 3}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct bad_case c;
        assert_int_equal(image_alloc(&c.img, sizes[k][0], sizes[k][1], sizes[k][2]), 0);
        memset(c.img.px, 128, (size_t)c.img.w * c.img.h * c.img.c);
        memset(&c.out, 0, sizeof c.out);
        assert_silent(run_bad, &c);
        assert_int_equal(c.detect_rc, 0);
        assert_int_equal(c.fit_rc, 1);
        assert_all_finite(&c.out);
        image_free(&c.img);
    }

    /* lmk_detect leaves out untouched when it finds nothing. */
    image grey;
    assert_int_equal(image_alloc(&grey, 100, 100, 1), 0);
    memset(grey.px, 128, 100 * 100);
    face_fit f, before;
    memset(&f, 0x5a, sizeof f);
    before = f;
    assert_int_equal(lmk_detect(model(), &grey, 1, &f), 0);
    assert_memory_equal(&f, &before, sizeof f);

    /* Invalid arguments: -1, nothing written. */
    double box[4] = {10, 10, 50, 50};
    assert_int_equal(lmk_detect(NULL, &grey, 1, &f), -1);
    assert_int_equal(lmk_detect(model(), NULL, 1, &f), -1);
    assert_int_equal(lmk_detect(model(), &grey, 1, NULL), -1);
    assert_int_equal(lmk_detect(model(), &grey, -1, &f), -1);
    assert_int_equal(lmk_detect(model(), &grey, 99, &f), -1);
    image odd = grey;
    odd.c = 2;
    assert_int_equal(lmk_detect(model(), &odd, 1, &f), -1);
    odd = grey;
    odd.px = NULL;
    assert_int_equal(lmk_detect(model(), &odd, 1, &f), -1);
    odd = grey;
    odd.w = 0;
    assert_int_equal(lmk_fit_box(model(), &odd, box, &f), -1);
    assert_int_equal(lmk_fit_box(model(), &grey, NULL, &f), -1);
    double nanbox[4] = {NAN, 0, 10, 10}, negbox[4] = {0, 0, -5, 10}, hugebox[4] = {0, 0, 1e300, 1e300};
    assert_int_equal(lmk_fit_box(model(), &grey, nanbox, &f), -1);
    assert_int_equal(lmk_fit_box(model(), &grey, negbox, &f), -1);
    assert_int_equal(lmk_fit_box(model(), &grey, hugebox, &f), -1);
    assert_memory_equal(&f, &before, sizeof f);

    /* A box far outside the image still gives finite points. */
    double far[4] = {-500, 900, 40, 40};
    assert_int_equal(lmk_fit_box(model(), &grey, far, &f), 1);
    assert_all_finite(&f);
    image_free(&grey);
}

struct load_case {
    const char *path;
    lmk_model *m;
    char err[1024];
};

static void run_load(void *arg)
{
    struct load_case *c = arg;
    c->m = lmk_load(c->path, c->err, sizeof c->err);
}

static void test_load_errors(void **state)
{
    (void)state;
    const char *paths[3] = {"/nonexistent/predictor.dat", FACE_PNG, "/tmp"};
    for (int k = 0; k < 3; k++) {
        struct load_case c;
        c.path = paths[k];
        c.err[0] = '\0';
        assert_silent(run_load, &c);
        assert_null(c.m);
        if (!strstr(c.err, paths[k])) fail_msg("message does not name the file: '%s'", c.err);
        print_message("# lmk_load(%s): %s\n", paths[k], c.err);
    }
    /* A truncated copy of the real file. */
    char path[] = "/tmp/test_landmarks.dat.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *in = fopen(LMK_DEFAULT_PREDICTOR, "rb");
    if (in) {
        char buf[65536];
        size_t n = fread(buf, 1, sizeof buf, in);
        assert_true(write(fd, buf, n) == (ssize_t)n);
        fclose(in);
    }
    close(fd);
    struct load_case c;
    c.path = path;
    assert_silent(run_load, &c);
    assert_null(c.m);
    assert_non_null(strstr(c.err, path));
    unlink(path);
    lmk_free(NULL);
}

struct thread_arg {
    const image *img;
    face_fit f;
    int rc;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    char err[512];
    lmk_model *m = lmk_load(NULL, err, sizeof err);
    a->rc = -2;
    if (!m) return NULL;
    for (int i = 0; i < 3; i++) a->rc = lmk_detect(m, a->img, 1, &a->f);
    lmk_free(m);
    return NULL;
}

/* Two models in two threads (sharing one predictor) agree with the main one. */
static void test_threads(void **state)
{
    (void)state;
    face_fit ref;
    assert_int_equal(lmk_detect(model(), face(), 1, &ref), 1);
    struct thread_arg a[2];
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        a[k].img = face();
        assert_int_equal(pthread_create(&t[k], NULL, thread_main, &a[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(pthread_join(t[k], NULL), 0);
        assert_int_equal(a[k].rc, 1);
        assert_memory_equal(&a[k].f, &ref, sizeof ref);
    }
}

static int setup(void **state)
{
    (void)state;
    g_model = lmk_load(LMK_DEFAULT_PREDICTOR, g_load_err, sizeof g_load_err);
    if (image_load(FACE_PNG, &g_face, g_face_err, sizeof g_face_err) != IMAGE_OK) g_face.px = NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lmk_free(g_model);
    g_model = NULL;
    if (g_face.px) image_free(&g_face);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predictor_present),
        cmocka_unit_test(test_full_size),
        cmocka_unit_test(test_100_rgb),
        cmocka_unit_test(test_48_grey),
        cmocka_unit_test(test_fallback_agrees),
        cmocka_unit_test(test_fit_box_matches_detect),
        cmocka_unit_test(test_matches_dlib),
        cmocka_unit_test(test_fallback_box),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
