/* mask_preview.c: contact sheets of masked faces and of the pattern bank (see
 * mask_preview.h). */
#include "mask_preview.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "face.h"
#include "mask.h"

#define GAP 4
#define BG 32

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static void put(image *s, int x, int y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= s->w || y >= s->h) return;
    memcpy(s->px + 3 * ((size_t)y * s->w + x), rgb, 3);
}

/* Bilinear alpha at source coordinates (pixel centres at integers). */
static double alpha_at(const uint8_t *a, int w, int h, double x, double y)
{
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > w - 1) x = w - 1;
    if (y > h - 1) y = h - 1;
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    double top = a[(size_t)y0 * w + x0] * (1 - fx) + a[(size_t)y0 * w + x1] * fx;
    double bot = a[(size_t)y1 * w + x0] * (1 - fx) + a[(size_t)y1 * w + x1] * fx;
    return top * (1 - fy) + bot * fy;
}

/* One cell: the face enlarged z times at (ox, oy), outline, landmarks. */
static void draw_cell(image *s, int ox, int oy, int z, const image *f, const uint8_t *alpha, const double (*pts)[2])
{
    int cw = f->w * z, ch = f->h * z;
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw; x++) {
            const uint8_t *p = f->px + ((size_t)(y / z) * f->w + x / z) * f->c;
            uint8_t rgb[3] = {p[0], p[f->c == 3 ? 1 : 0], p[f->c == 3 ? 2 : 0]};
            put(s, ox + x, oy + y, rgb);
        }
    if (alpha) {
        /* inside = interpolated alpha >= 127.5; outline = inside pixels with an outside 4-neighbour */
        uint8_t *in = malloc((size_t)cw * ch);
        if (in) {
            for (int y = 0; y < ch; y++)
                for (int x = 0; x < cw; x++)
                    in[(size_t)y * cw + x] =
                        alpha_at(alpha, f->w, f->h, (x + 0.5) / z - 0.5, (y + 0.5) / z - 0.5) >= 127.5;
            for (int y = 0; y < ch; y++)
                for (int x = 0; x < cw; x++) {
                    if (!in[(size_t)y * cw + x]) continue;
                    int edge = (x > 0 && !in[(size_t)y * cw + x - 1]) || (x + 1 < cw && !in[(size_t)y * cw + x + 1]) ||
                               (y > 0 && !in[(size_t)(y - 1) * cw + x]) || (y + 1 < ch && !in[(size_t)(y + 1) * cw + x]);
                    if (!edge) continue;
                    const uint8_t *p = s->px + 3 * ((size_t)(oy + y) * s->w + ox + x);
                    double l = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
                    static const uint8_t dark[3] = {170, 0, 150}, light[3] = {255, 235, 0};
                    put(s, ox + x, oy + y, l > 140 ? dark : light);
                }
            free(in);
        }
    }
    if (pts) {
        double r = z <= 1 ? 0.8 : 0.3 * z + 0.6;
        for (int k = 0; k < 68; k++) {
            double px = pts[k][0], py = pts[k][1];
            if (!isfinite(px) || !isfinite(py)) continue;
            static const uint8_t vis[3] = {0, 230, 255}, cov[3] = {255, 40, 40}, plain[3] = {255, 255, 255};
            const uint8_t *col = plain;
            if (alpha) {
                long xi = lround(px), yi = lround(py);
                int a = xi >= 0 && yi >= 0 && xi < f->w && yi < f->h ? alpha[(size_t)yi * f->w + xi] : 0;
                col = a < 128 ? vis : cov;
            }
            double cx = (px + 0.5) * z - 0.5, cy = (py + 0.5) * z - 0.5;
            for (int dy = (int)floor(-r); dy <= (int)ceil(r); dy++)
                for (int dx = (int)floor(-r); dx <= (int)ceil(r); dx++) {
                    int X = (int)lround(cx) + dx, Y = (int)lround(cy) + dy;
                    if (X < 0 || Y < 0 || X >= cw || Y >= ch) continue;
                    if ((X - cx) * (X - cx) + (Y - cy) * (Y - cy) <= r * r + 0.25) put(s, ox + X, oy + Y, col);
                }
        }
    }
}

/* Enlargement so that a cell is about 160-200 px wide. */
static int zoom_for(int side) { return side >= 100 ? (side >= 160 ? 1 : 2) : 200 / side; }

int mask_preview_sheet(const char *out_png, image *const *faces, const uint8_t *const *alphas,
                       const double (*pts)[68][2], int n, int cols, char *err, size_t errlen)
{
    if (!out_png || !faces || n <= 0 || cols <= 0) {
        set_err(err, errlen, "mask_preview_sheet: nothing to draw (no faces, n <= 0 or cols <= 0)");
        return -1;
    }
    int mw = 0, mh = 0;
    for (int i = 0; i < n; i++) {
        const image *f = faces[i];
        if (!f) continue;
        if (!f->px || (f->c != 1 && f->c != 3) || f->w <= 0 || f->h <= 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "mask_preview_sheet: face %d is not an 8-bit grey or RGB image", i);
            set_err(err, errlen, msg);
            return -1;
        }
        if (f->w > mw) mw = f->w;
        if (f->h > mh) mh = f->h;
    }
    if (!mw) {
        set_err(err, errlen, "mask_preview_sheet: every face is NULL");
        return -1;
    }
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    int z = zoom_for(mw > mh ? mw : mh);
    long W = (long)cols * (mw * z + GAP) + GAP, H = (long)rows * (mh * z + GAP) + GAP;
    if (W > IMAGE_MAX_SIDE || H > IMAGE_MAX_SIDE || W * H > IMAGE_MAX_PIXELS) {
        char msg[128];
        snprintf(msg, sizeof msg, "mask_preview_sheet: a %ldx%ld sheet is too large (fewer faces or more columns)", W, H);
        set_err(err, errlen, msg);
        return -1;
    }
    image s;
    if (image_alloc(&s, (int)W, (int)H, 3)) {
        set_err(err, errlen, "mask_preview_sheet: out of memory");
        return -1;
    }
    memset(s.px, BG, (size_t)W * H * 3);
    for (int i = 0; i < n; i++) {
        if (!faces[i]) continue;
        int ox = GAP + (i % cols) * (mw * z + GAP), oy = GAP + (i / cols) * (mh * z + GAP);
        draw_cell(&s, ox, oy, z, faces[i], alphas ? alphas[i] : NULL, pts ? (const double(*)[2])pts[i] : NULL);
    }
    int rc = image_save_png(out_png, &s, err, errlen);
    image_free(&s);
    return rc;
}

/* ---- a 3x5 font for the labels ------------------------------------------- */

/* Rows top to bottom, 3 bits each (4 = left column). */
static const unsigned short glyph_digits[10] = {
    075557, 026227, 071747, 071717, 055711, 074717, 074757, 071111, 075757, 075717,
};
static const unsigned short glyph_letters[26] = {
    025755, 065656, 034443, 065556, 074647, 074644, 034553, 055755, 072227, 011152, 055655, 044447, 057755,
    065555, 025552, 065644, 025563, 065655, 034216, 072222, 055557, 055552, 055775, 055255, 055222, 071247,
};

static unsigned short glyph(char c)
{
    if (c >= '0' && c <= '9') return glyph_digits[c - '0'];
    if (c >= 'a' && c <= 'z') return glyph_letters[c - 'a'];
    if (c >= 'A' && c <= 'Z') return glyph_letters[c - 'A'];
    if (c == '-') return 000700;
    if (c == '_') return 000007;
    if (c == '.') return 000002;
    if (c == '#') return 057575;
    return 0;
}

static void draw_text(image *s, int x, int y, int scale, const char *text, const uint8_t rgb[3])
{
    for (; *text; text++, x += 4 * scale) {
        unsigned short g = glyph(*text);
        for (int r = 0; r < 5; r++)
            for (int c = 0; c < 3; c++)
                if (g >> (3 * (4 - r) + (2 - c)) & 1)
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++) put(s, x + c * scale + dx, y + r * scale + dy, rgb);
    }
}

int pattern_preview_sheet(const char *out_png, const pattern *bank, int n, char *err, size_t errlen)
{
    if (!out_png || !bank || n <= 0) {
        set_err(err, errlen, "pattern_preview_sheet: no patterns");
        return -1;
    }
    enum { FS = 96, Z = 2, LABEL = 16 };
    int cols = n < 6 ? n : 6, rows = (n + cols - 1) / cols;
    int cw = FS * Z, chh = FS * Z + LABEL;
    long W = (long)cols * (cw + GAP) + GAP, H = (long)rows * (chh + GAP) + GAP;
    if (W > IMAGE_MAX_SIDE || H > IMAGE_MAX_SIDE || W * H > IMAGE_MAX_PIXELS) {
        set_err(err, errlen, "pattern_preview_sheet: too many patterns for one sheet");
        return -1;
    }
    /* The synthetic face: a neutral expression, drawn grey, shown in RGB. */
    image grey, face, s;
    double P[68][2];
    face_params fp;
    face_params_from_seed(&fp, 20240611u);
    fp.roll = 0;
    fp.off_x = 0;
    fp.off_y = 0;
    if (image_alloc(&grey, FS, FS, 1)) goto oom0;
    face_draw(&grey, &fp, FACE_NEUTRAL, 1, P);
    if (image_alloc(&face, FS, FS, 3)) {
        image_free(&grey);
        goto oom0;
    }
    for (int i = 0; i < FS * FS; i++) face.px[3 * i] = face.px[3 * i + 1] = face.px[3 * i + 2] = grey.px[i];
    image_free(&grey);
    if (image_alloc(&s, (int)W, (int)H, 3)) {
        image_free(&face);
        goto oom0;
    }
    memset(s.px, BG, (size_t)W * H * 3);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int ox = GAP + (i % cols) * (cw + GAP), oy = GAP + (i / cols) * (chh + GAP);
        image out;
        mask_result r;
        char e2[200];
        if (mask_render(&face, (const double(*)[2])P, &bank[i], (uint64_t)i, &out, &r, e2, sizeof e2)) {
            char msg[300];
            snprintf(msg, sizeof msg, "pattern %d (%s): %s", i, bank[i].stable_id, e2);
            set_err(err, errlen, msg);
            rc = -1;
            break;
        }
        draw_cell(&s, ox, oy, Z, &out, NULL, NULL);
        char label[64];
        const char *style = bank[i].style && !strcmp(bank[i].style, "below_nose") ? "below" : bank[i].style;
        snprintf(label, sizeof label, "%02d %s %s %s", i, bank[i].type ? bank[i].type : "?", style ? style : "?",
                 bank[i].texture ? bank[i].texture : "?");
        static const uint8_t white[3] = {235, 235, 235};
        draw_text(&s, ox + 2, oy + FS * Z + 3, 2, label, white);
        image_free(&out);
        mask_result_free(&r);
    }
    if (!rc) rc = image_save_png(out_png, &s, err, errlen);
    image_free(&s);
    image_free(&face);
    return rc;
oom0:
    set_err(err, errlen, "pattern_preview_sheet: out of memory");
    return -1;
}
