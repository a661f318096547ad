/* Unit tests of common/image.c: PNG / JPEG round trips, determinism, every
 * kind of bad input (empty, not an image, truncated, bad CRC, absurd sizes),
 * the conversions (16-bit, palette, alpha, low bit depths, interlace, CMYK)
 * and that libpng / libjpeg never print anything. Every fixture is built here,
 * in memory or under a mkdtemp directory that is removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "../common/image.h"
#include "../common/util.h"

static char g_dir[64];

/* ------------------------------------------------------------------------- */
/* Fixtures */

static void fill(image *img, int w, int h, int c, int smooth)
{
    assert_int_equal(image_alloc(img, w, h, c), 0);
    uint32_t s = 12345u + (uint32_t)(w * 31 + h * 7 + c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                uint8_t v;
                if (smooth) {
                    v = (uint8_t)((x * 255 / (w > 1 ? w - 1 : 1) * (k + 1) + y * 255 / (h > 1 ? h - 1 : 1)) /
                                  (k + 2));
                } else {
                    s = s * 1664525u + 1013904223u;
                    v = (uint8_t)(s >> 24);
                }
                img->px[((size_t)y * w + x) * c + k] = v;
            }
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *tmp_path(const char *leaf)
{
    static char buf[4][128];
    static int i;
    char *p = buf[i++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, leaf);
    return p;
}

#include "imgfix.h"

static void progressive_jpeg_encode(const image *img, uint8_t **out, unsigned long *len)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    *out = NULL;
    *len = 0;
    jpeg_mem_dest(&ci, out, len);
    ci.image_width = img->w;
    ci.image_height = img->h;
    ci.input_components = img->c;
    ci.in_color_space = img->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 90, TRUE);
    jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = img->px + (size_t)ci.next_scanline * img->w * img->c;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
}

/* Offset of the first chunk of the given type in a PNG, or 0. */
static size_t png_find_chunk(const uint8_t *p, size_t len, const char *type)
{
    size_t off = 8;
    while (off + 12 <= len) {
        uint32_t n = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 | p[off + 3];
        if (memcmp(p + off + 4, type, 4) == 0) return off;
        off += 12 + (size_t)n;
    }
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Signature + IHDR (w x h, 8-bit RGB) with a correct CRC, + a tiny IDAT + IEND. */
static size_t craft_png_header(uint8_t *out, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    size_t n = 0;
    memcpy(out, sig, 8);
    n = 8;
    put32(out + n, 13);
    memcpy(out + n + 4, "IHDR", 4);
    put32(out + n + 8, w);
    put32(out + n + 12, h);
    out[n + 16] = 8; /* depth */
    out[n + 17] = 2; /* RGB */
    out[n + 18] = out[n + 19] = out[n + 20] = 0;
    put32(out + n + 21, (uint32_t)crc32(0, out + n + 4, 17));
    n += 25;
    static const uint8_t idat[] = {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
    put32(out + n, sizeof idat);
    memcpy(out + n + 4, "IDAT", 4);
    memcpy(out + n + 8, idat, sizeof idat);
    put32(out + n + 8 + sizeof idat, (uint32_t)crc32(0, out + n + 4, 4 + sizeof idat));
    n += 12 + sizeof idat;
    put32(out + n, 0);
    memcpy(out + n + 4, "IEND", 4);
    put32(out + n + 8, (uint32_t)crc32(0, out + n + 4, 4));
    n += 12;
    return n;
}

/* Copies a JPEG into out (len + 3 bytes) with 3 garbage bytes inserted just
 * before its second marker (after SOI and the first segment). Returns where. */
static size_t jpeg_insert_garbage(uint8_t *out, const uint8_t *jpg, size_t len)
{
    assert_true(len > 8 && jpg[2] == 0xFF);
    size_t at = 4 + ((size_t)jpg[4] << 8 | jpg[5]);
    assert_true(at < len && jpg[at] == 0xFF);
    memcpy(out, jpg, at);
    memcpy(out + at, "\x12\x34\x56", 3);
    memcpy(out + at + 3, jpg + at, len - at);
    return at;
}

/* Asserts a decode failed with the expected error and a one-line message naming the input. */
static void expect_fail(const uint8_t *data, size_t len, const char *name, enum image_error want)
{
    image img = {1, 1, 1, (uint8_t *)&img}; /* garbage in: must come back cleared */
    char err[512];
    enum image_error e = image_load_mem(data, len, name, &img, err, sizeof err);
    if (e != want) fail_msg("%s: got error %d, want %d (%s)", name, e, want, err);
    assert_null(img.px);
    assert_non_null(strstr(err, name));
    assert_int_equal(strncmp(err, name, strlen(name)), 0);
    assert_null(strchr(err, '\n'));
    assert_true(strlen(err) > strlen(name) + 2);
}

static double mean_abs_diff(const image *a, const image *b)
{
    assert_int_equal(a->w, b->w);
    assert_int_equal(a->h, b->h);
    assert_int_equal(a->c, b->c);
    size_t n = (size_t)a->w * a->h * a->c;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs((int)a->px[i] - (int)b->px[i]);
    return s / (double)n;
}

static void encode_png(const image *img, uint8_t **buf, size_t *len)
{
    char err[256];
    if (image_encode_png(img, buf, len, err, sizeof err) != 0) fail_msg("%s", err);
}

static void encode_jpeg(const image *img, int q, uint8_t **buf, size_t *len)
{
    char err[256];
    if (image_encode_jpeg(img, q, buf, len, err, sizeof err) != 0) fail_msg("%s", err);
}

static void decode_ok(const uint8_t *buf, size_t len, image *out)
{
    char err[512];
    enum image_error e = image_load_mem(buf, len, "mem", out, err, sizeof err);
    if (e != IMAGE_OK) fail_msg("decode failed (%d): %s", e, err);
}

/* ------------------------------------------------------------------------- */
/* Tests */

static void test_alloc_free(void **state)
{
    (void)state;
    image img;
    assert_int_equal(image_alloc(&img, 5, 4, 3), 0);
    assert_int_equal(img.w, 5);
    assert_int_equal(img.h, 4);
    assert_int_equal(img.c, 3);
    for (int i = 0; i < 60; i++) assert_int_equal(img.px[i], 0);
    image_free(&img);
    assert_null(img.px);
    image_free(&img); /* twice is harmless */
    image_free(NULL);
    assert_int_equal(image_alloc(&img, 0, 4, 1), -1);
    assert_null(img.px);
    assert_int_equal(image_alloc(&img, 4, -1, 1), -1);
    assert_int_equal(image_alloc(&img, 4, 4, 2), -1);
    assert_int_equal(image_alloc(&img, 4, 4, 4), -1);
    assert_int_equal(image_alloc(&img, IMAGE_MAX_SIDE + 1, 1, 1), -1);
    assert_int_equal(image_alloc(&img, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE, 1), -1); /* > IMAGE_MAX_PIXELS */
    assert_int_equal(image_alloc(&img, 0x7fffffff, 0x7fffffff, 3), -1);
    assert_null(img.px);
}

static void test_png_roundtrip(void **state)
{
    (void)state;
    for (int c = 1; c <= 3; c += 2) {
        image src, dst;
        fill(&src, 37, 23, c, 0);
        uint8_t *buf;
        size_t len;
        encode_png(&src, &buf, &len);
        decode_ok(buf, len, &dst);
        assert_int_equal(dst.w, 37);
        assert_int_equal(dst.h, 23);
        assert_int_equal(dst.c, c);
        assert_memory_equal(dst.px, src.px, (size_t)37 * 23 * c);
        free(buf);
        image_free(&dst);
        image_free(&src);
    }
}

static void test_png_deterministic_and_save(void **state)
{
    (void)state;
    image src, dst;
    fill(&src, 64, 40, 3, 0);
    uint8_t *a, *b;
    size_t la, lb;
    encode_png(&src, &a, &la);
    encode_png(&src, &b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    assert_int_equal(png_find_chunk(a, la, "tIME"), 0);

    char err[512];
    const char *path = tmp_path("out.png");
    assert_int_equal(image_save_png(path, &src, err, sizeof err), 0);
    size_t flen;
    char *file = read_file(path, &flen, 1 << 20, err, sizeof err);
    assert_non_null(file);
    assert_int_equal(flen, la);
    assert_memory_equal(file, a, la);
    free(file);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);

    assert_int_equal(image_load(path, &dst, err, sizeof err), IMAGE_OK);
    assert_memory_equal(dst.px, src.px, (size_t)64 * 40 * 3);
    image_free(&dst);
    free(a);
    free(b);
    image_free(&src);
}

static void test_jpeg_roundtrip_rgb(void **state)
{
    (void)state;
    image src, dst;
    fill(&src, 80, 64, 3, 1);
    uint8_t *a, *b;
    size_t la, lb;
    encode_jpeg(&src, 90, &a, &la);
    encode_jpeg(&src, 90, &b, &lb);
    assert_int_equal(la, lb); /* deterministic */
    assert_memory_equal(a, b, la);
    decode_ok(a, la, &dst);
    assert_int_equal(dst.c, 3);
    double mae = mean_abs_diff(&src, &dst);
    assert_true(mae < 3.0);
    image_free(&dst);

    /* 4:2:0: SOF0 says luma 2x2, chroma 1x1 */
    size_t i;
    for (i = 2; i + 18 < la; i++)
        if (a[i] == 0xFF && a[i + 1] == 0xC0) break;
    assert_true(i + 18 < la);
    assert_int_equal(a[i + 9], 3);       /* components */
    assert_int_equal(a[i + 11], 0x22);   /* Y sampling */
    assert_int_equal(a[i + 14], 0x11);   /* Cb */
    assert_int_equal(a[i + 17], 0x11);   /* Cr */

    char err[512];
    const char *path = tmp_path("out.jpg");
    assert_int_equal(image_save_jpeg(path, &src, 90, err, sizeof err), 0);
    assert_int_equal(image_load(path, &dst, err, sizeof err), IMAGE_OK);
    assert_int_equal(dst.c, 3);
    assert_true(mean_abs_diff(&src, &dst) < 3.0);
    size_t flen;
    char *file = read_file(path, &flen, 1 << 20, err, sizeof err);
    assert_non_null(file);
    assert_int_equal(flen, la);
    assert_memory_equal(file, a, la);
    free(file);
    image_free(&dst);
    free(a);
    free(b);
    image_free(&src);
}

static void test_jpeg_grey_stays_grey(void **state)
{
    (void)state;
    image src, dst;
    fill(&src, 48, 33, 1, 1);
    uint8_t *a;
    size_t la;
    encode_jpeg(&src, 92, &a, &la);
    decode_ok(a, la, &dst);
    assert_int_equal(dst.c, 1);
    assert_int_equal(dst.w, 48);
    assert_int_equal(dst.h, 33);
    assert_true(mean_abs_diff(&src, &dst) < 2.0);
    image_free(&dst);
    free(a);
    image_free(&src);
}

static void test_jpeg_progressive(void **state)
{
    (void)state;
    image src, dst;
    fill(&src, 40, 24, 3, 1);
    uint8_t *a;
    unsigned long la;
    progressive_jpeg_encode(&src, &a, &la);
    decode_ok(a, la, &dst);
    assert_int_equal(dst.c, 3);
    assert_true(mean_abs_diff(&src, &dst) < 3.0);
    image_free(&dst);
    free(a);
    image_free(&src);
}

static void test_one_pixel(void **state)
{
    (void)state;
    for (int c = 1; c <= 3; c += 2) {
        image src, dst;
        assert_int_equal(image_alloc(&src, 1, 1, c), 0);
        for (int k = 0; k < c; k++) src.px[k] = (uint8_t)(60 + 50 * k);
        uint8_t *buf;
        size_t len;
        encode_png(&src, &buf, &len);
        decode_ok(buf, len, &dst);
        assert_int_equal(dst.w, 1);
        assert_int_equal(dst.h, 1);
        assert_int_equal(dst.c, c);
        assert_memory_equal(dst.px, src.px, (size_t)c);
        image_free(&dst);
        free(buf);

        encode_jpeg(&src, 95, &buf, &len);
        decode_ok(buf, len, &dst);
        assert_int_equal(dst.w, 1);
        assert_int_equal(dst.h, 1);
        assert_int_equal(dst.c, c);
        for (int k = 0; k < c; k++) assert_true(abs((int)dst.px[k] - (int)src.px[k]) <= 4);
        image_free(&dst);
        free(buf);
        image_free(&src);
    }
}

static void test_empty_and_not_image(void **state)
{
    (void)state;
    static const uint8_t three[3] = {0x13, 0x37, 0x42};
    expect_fail(three, 0, "empty.png", IMAGE_ERR_FORMAT);
    expect_fail(NULL, 0, "null.png", IMAGE_ERR_FORMAT);
    expect_fail(three, 3, "three.jpg", IMAGE_ERR_FORMAT);
    static const uint8_t gif[] = "GIF89a\x01\x00\x01\x00";
    expect_fail(gif, sizeof gif - 1, "x.gif", IMAGE_ERR_FORMAT);
    static const uint8_t half_sig[] = {0x89, 'P', 'N', 'G'};
    expect_fail(half_sig, sizeof half_sig, "sig.png", IMAGE_ERR_FORMAT);

    /* the same through files */
    char err[512];
    image img;
    const char *p = tmp_path("zero.jpg");
    write_file(p, three, 0);
    assert_int_equal(image_load(p, &img, err, sizeof err), IMAGE_ERR_FORMAT);
    assert_null(img.px);
    assert_non_null(strstr(err, p));
    p = tmp_path("three.png");
    write_file(p, three, 3);
    assert_int_equal(image_load(p, &img, err, sizeof err), IMAGE_ERR_FORMAT);
    assert_non_null(strstr(err, p));
    p = tmp_path("missing.png");
    assert_int_equal(image_load(p, &img, err, sizeof err), IMAGE_ERR_IO);
    assert_null(img.px);
    assert_non_null(strstr(err, p));
    assert_int_equal(image_load(g_dir, &img, err, sizeof err), IMAGE_ERR_IO); /* a directory */
    assert_null(img.px);
}

static void test_jpeg_truncated(void **state)
{
    (void)state;
    image src;
    fill(&src, 64, 64, 3, 0);
    uint8_t *a;
    size_t la;
    encode_jpeg(&src, 90, &a, &la);
    expect_fail(a, la / 2, "half.jpg", IMAGE_ERR_CORRUPT);
    expect_fail(a, la - 2, "noeoi.jpg", IMAGE_ERR_CORRUPT); /* EOI missing */
    expect_fail(a, 3, "magic.jpg", IMAGE_ERR_CORRUPT);
    expect_fail(a, 200, "header.jpg", IMAGE_ERR_CORRUPT);

    char err[512];
    image img;
    assert_int_equal(image_load_mem(a, la / 2, "half.jpg", &img, err, sizeof err), IMAGE_ERR_CORRUPT);
    assert_non_null(strstr(err, "Premature end of JPEG file"));

    /* garbage between two markers: libjpeg would warn and go on */
    uint8_t *g = malloc(la + 3);
    size_t at = jpeg_insert_garbage(g, a, la);
    assert_true(at > 2);
    expect_fail(g, la + 3, "extraneous.jpg", IMAGE_ERR_CORRUPT);
    assert_int_equal(image_load_mem(g, la + 3, "x.jpg", &img, err, sizeof err), IMAGE_ERR_CORRUPT);
    assert_non_null(strstr(err, "extraneous bytes"));
    free(g);
    free(a);
    image_free(&src);
}

static void test_png_bad_crc(void **state)
{
    (void)state;
    image src;
    fill(&src, 30, 20, 3, 0);
    uint8_t *a;
    size_t la;
    encode_png(&src, &a, &la);
    uint8_t *b = malloc(la);

    memcpy(b, a, la);
    b[8 + 8 + 13 + 3] ^= 0x01; /* IHDR CRC, last byte */
    expect_fail(b, la, "ihdr_crc.png", IMAGE_ERR_CORRUPT);

    size_t idat = png_find_chunk(a, la, "IDAT");
    assert_true(idat > 0);
    uint32_t n = (uint32_t)a[idat] << 24 | (uint32_t)a[idat + 1] << 16 | (uint32_t)a[idat + 2] << 8 | a[idat + 3];
    memcpy(b, a, la);
    b[idat + 8 + n] ^= 0x80; /* IDAT CRC */
    expect_fail(b, la, "idat_crc.png", IMAGE_ERR_CORRUPT);

    memcpy(b, a, la);
    b[idat + 8 + n / 2] ^= 0x55; /* IDAT data (CRC then mismatches too) */
    expect_fail(b, la, "idat_data.png", IMAGE_ERR_CORRUPT);
    free(b);
    free(a);
    image_free(&src);
}

static void test_png_truncated(void **state)
{
    (void)state;
    image src;
    fill(&src, 50, 40, 3, 0);
    uint8_t *a;
    size_t la;
    encode_png(&src, &a, &la);
    expect_fail(a, la / 2, "half.png", IMAGE_ERR_CORRUPT);
    expect_fail(a, la - 12, "noiend.png", IMAGE_ERR_CORRUPT);
    expect_fail(a, 8, "sigonly.png", IMAGE_ERR_CORRUPT);
    expect_fail(a, 20, "ihdr_cut.png", IMAGE_ERR_CORRUPT);
    expect_fail(a, 33, "ihdr_only.png", IMAGE_ERR_CORRUPT);

    /* IDAT cut short but the file still well formed: zlib data ends before the rows do */
    size_t idat = png_find_chunk(a, la, "IDAT");
    uint8_t *b = malloc(la);
    size_t keep = 40;
    memcpy(b, a, idat);
    put32(b + idat, (uint32_t)keep);
    memcpy(b + idat + 4, a + idat + 4, 4 + keep);
    put32(b + idat + 8 + keep, (uint32_t)crc32(0, b + idat + 4, 4 + (uInt)keep));
    size_t n = idat + 12 + keep;
    memcpy(b + n, a + la - 12, 12); /* IEND */
    n += 12;
    expect_fail(b, n, "short_idat.png", IMAGE_ERR_CORRUPT);
    free(b);
    free(a);
    image_free(&src);
}

static void test_too_large(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t n = craft_png_header(buf, 20000, 20000);
    /* the crafted header is a valid file apart from its size */
    assert_int_equal(png_find_chunk(buf, n, "IEND"), n - 12);
    expect_fail(buf, n, "huge.png", IMAGE_ERR_TOO_LARGE);
    n = craft_png_header(buf, 16384, 8192); /* sides fine, too many pixels */
    expect_fail(buf, n, "wide.png", IMAGE_ERR_TOO_LARGE);
    n = craft_png_header(buf, 1, 100000);
    expect_fail(buf, n, "tall.png", IMAGE_ERR_TOO_LARGE);
    n = craft_png_header(buf, 0x7fffffff, 0x7fffffff);
    expect_fail(buf, n, "max.png", IMAGE_ERR_TOO_LARGE);
    /* a 2x2 claim with an empty IDAT is just corrupt */
    n = craft_png_header(buf, 2, 2);
    expect_fail(buf, n, "small.png", IMAGE_ERR_CORRUPT);

    char err[512];
    image img;
    n = craft_png_header(buf, 20000, 20000);
    assert_int_equal(image_load_mem(buf, n, "huge.png", &img, err, sizeof err), IMAGE_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "20000x20000"));

    /* JPEG: patch the SOF0 dimensions of a small valid file */
    image src;
    fill(&src, 16, 16, 3, 1);
    uint8_t *a;
    size_t la;
    encode_jpeg(&src, 80, &a, &la);
    size_t i;
    for (i = 2; i + 9 < la; i++)
        if (a[i] == 0xFF && a[i + 1] == 0xC0) break;
    assert_true(i + 9 < la);
    a[i + 5] = 20000 >> 8; /* height */
    a[i + 6] = 20000 & 0xFF;
    a[i + 7] = 20000 >> 8; /* width */
    a[i + 8] = 20000 & 0xFF;
    clock_t t0 = clock();
    expect_fail(a, la, "huge.jpg", IMAGE_ERR_TOO_LARGE);
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 0.5);
    a[i + 5] = 0x20; /* 8192 x 20000: within a side, over the pixel limit */
    a[i + 6] = 0x00;
    a[i + 7] = 20000 >> 8;
    a[i + 8] = 20000 & 0xFF;
    expect_fail(a, la, "wide.jpg", IMAGE_ERR_TOO_LARGE);
    a[i + 5] = 0; /* height 0 (DNL): not supported / corrupt, not a crash */
    a[i + 6] = 0;
    image_load_mem(a, la, "zero.jpg", &img, err, sizeof err);
    assert_null(img.px);
    free(a);
    image_free(&src);
}

static void test_cmyk_jpeg(void **state)
{
    (void)state;
    /* left half cyan, right half red (magenta + yellow), given as ink amounts */
    enum { W = 32, H = 16 };
    static const uint8_t ink[2][4] = {{255, 0, 0, 0}, {0, 255, 255, 0}};
    for (int adobe = 0; adobe <= 1; adobe++) {
        uint8_t cmyk[W * H * 4];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int k = 0; k < 4; k++) {
                    uint8_t v = ink[x >= W / 2][k];
                    /* Adobe CMYK files store 255 - ink */
                    cmyk[(y * W + x) * 4 + k] = adobe ? (uint8_t)(255 - v) : v;
                }
        uint8_t *jpg;
        unsigned long len;
        cmyk_jpeg_encode(W, H, cmyk, adobe, &jpg, &len);
        image img;
        decode_ok(jpg, len, &img);
        assert_int_equal(img.c, 3);
        assert_int_equal(img.w, W);
        const uint8_t *cyan = img.px + (size_t)(H / 2 * W + W / 4) * 3;
        const uint8_t *red = img.px + (size_t)(H / 2 * W + 3 * W / 4) * 3;
        if (!(cyan[0] < 30 && cyan[1] > 225 && cyan[2] > 225))
            fail_msg("adobe=%d cyan patch decoded as %d,%d,%d", adobe, cyan[0], cyan[1], cyan[2]);
        if (!(red[0] > 225 && red[1] < 30 && red[2] < 30))
            fail_msg("adobe=%d red patch decoded as %d,%d,%d", adobe, red[0], red[1], red[2]);
        image_free(&img);
        free(jpg);
    }

    /* black ink at half: mid grey, either way */
    uint8_t cmyk[8 * 8 * 4];
    for (int i = 0; i < 64; i++) {
        cmyk[i * 4 + 0] = cmyk[i * 4 + 1] = cmyk[i * 4 + 2] = 255; /* Adobe: no C, M, Y ink */
        cmyk[i * 4 + 3] = 128;
    }
    uint8_t *jpg;
    unsigned long len;
    cmyk_jpeg_encode(8, 8, cmyk, 1, &jpg, &len);
    image img;
    decode_ok(jpg, len, &img);
    for (int k = 0; k < 3; k++) assert_true(abs((int)img.px[27 * 3 + k] - 128) <= 6);
    image_free(&img);
    free(jpg);
}

static void test_png_16bit(void **state)
{
    (void)state;
    enum { W = 5, H = 3 };
    for (int rgb = 0; rgb <= 1; rgb++) {
        int c = rgb ? 3 : 1;
        uint8_t rows[H * W * 3 * 2];
        for (int i = 0; i < H * W * c; i++) {
            rows[i * 2] = (uint8_t)(i * 17 + 3);     /* high */
            rows[i * 2 + 1] = (uint8_t)(255 - i);    /* low */
        }
        raw_png r = {W, H, 16, rgb ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                     rows, (size_t)W * c * 2, NULL, 0, NULL, 0};
        tbuf b;
        raw_png_encode(&r, &b);
        image img;
        decode_ok(b.buf, b.len, &img);
        assert_int_equal(img.c, c);
        for (int i = 0; i < H * W * c; i++) assert_int_equal(img.px[i], rows[i * 2]);
        image_free(&img);
        free(b.buf);
    }
}

static void test_png_palette_alpha_lowdepth(void **state)
{
    (void)state;
    enum { W = 7, H = 4 };
    image img;
    tbuf b;

    /* palette with tRNS -> RGB */
    png_color pal[4] = {{10, 20, 30}, {200, 100, 50}, {0, 255, 0}, {255, 255, 255}};
    uint8_t trns[4] = {255, 0, 128, 255};
    uint8_t prow[H * W];
    for (int i = 0; i < H * W; i++) prow[i] = (uint8_t)(i % 4);
    raw_png r = {W, H, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, prow, W, pal, 4, trns, 4};
    raw_png_encode(&r, &b);
    decode_ok(b.buf, b.len, &img);
    assert_int_equal(img.c, 3);
    for (int i = 0; i < H * W; i++) {
        const png_color *p = &pal[i % 4];
        assert_int_equal(img.px[i * 3], p->red);
        assert_int_equal(img.px[i * 3 + 1], p->green);
        assert_int_equal(img.px[i * 3 + 2], p->blue);
    }
    image_free(&img);
    free(b.buf);

    /* 2-bit palette */
    uint8_t p2[H * 2];
    for (int y = 0; y < H; y++) {
        p2[y * 2] = 0x1B;     /* 0 1 2 3 */
        p2[y * 2 + 1] = 0xE0; /* 3 2 (pad) */
    }
    raw_png r2 = {6, H, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, p2, 2, pal, 4, NULL, 0};
    raw_png_encode(&r2, &b);
    decode_ok(b.buf, b.len, &img);
    assert_int_equal(img.c, 3);
    static const int idx[6] = {0, 1, 2, 3, 3, 2};
    for (int x = 0; x < 6; x++) assert_int_equal(img.px[(2 * 6 + x) * 3], pal[idx[x]].red);
    image_free(&img);
    free(b.buf);

    /* RGBA -> RGB, alpha dropped */
    uint8_t rgba[H * W * 4];
    for (int i = 0; i < H * W * 4; i++) rgba[i] = (uint8_t)(i * 7);
    raw_png r3 = {W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, rgba, W * 4, NULL, 0, NULL, 0};
    raw_png_encode(&r3, &b);
    decode_ok(b.buf, b.len, &img);
    assert_int_equal(img.c, 3);
    for (int i = 0; i < H * W; i++)
        for (int k = 0; k < 3; k++) assert_int_equal(img.px[i * 3 + k], rgba[i * 4 + k]);
    image_free(&img);
    free(b.buf);

    /* grey + alpha, 16-bit -> grey 8-bit */
    uint8_t ga[H * W * 4];
    for (int i = 0; i < H * W * 4; i++) ga[i] = (uint8_t)(i * 13 + 1);
    raw_png r4 = {W, H, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, W * 4, NULL, 0, NULL, 0};
    raw_png_encode(&r4, &b);
    decode_ok(b.buf, b.len, &img);
    assert_int_equal(img.c, 1);
    for (int i = 0; i < H * W; i++) assert_int_equal(img.px[i], ga[i * 4]);
    image_free(&img);
    free(b.buf);

    /* 1-bit grey -> 0 / 255, and grey with a tRNS colour stays grey */
    uint8_t g1[H];
    for (int y = 0; y < H; y++) g1[y] = (uint8_t)(y & 1 ? 0xAA : 0x55);
    raw_png r5 = {W, H, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g1, 1, NULL, 0, NULL, 0};
    raw_png_encode(&r5, &b);
    decode_ok(b.buf, b.len, &img);
    assert_int_equal(img.c, 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            assert_int_equal(img.px[y * W + x], ((g1[y] >> (7 - x)) & 1) ? 255 : 0);
    image_free(&img);
    free(b.buf);

    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    memset(&b, 0, sizeof b);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed writing a test fixture");
    png_set_write_fn(png, &b, tbuf_write, tbuf_flush);
    png_set_IHDR(png, info, W, H, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_color_16 key = {0, 0, 0, 0, 77};
    png_set_tRNS(png, info, NULL, 0, &key);
    png_write_info(png, info);
    uint8_t grow[W];
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) grow[x] = (uint8_t)(70 + x + y);
        png_write_row(png, grow);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    decode_ok(b.buf, b.len, &img);
    assert_int_equal(img.c, 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) assert_int_equal(img.px[y * W + x], 70 + x + y);
    image_free(&img);
    free(b.buf);
}

static void test_png_interlaced(void **state)
{
    (void)state;
    image src, img;
    fill(&src, 21, 13, 3, 0);
    raw_png r = {21, 13, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, src.px, 21 * 3, NULL, 0, NULL, 0};
    tbuf b;
    raw_png_encode(&r, &b);
    decode_ok(b.buf, b.len, &img);
    assert_int_equal(img.c, 3);
    assert_memory_equal(img.px, src.px, (size_t)21 * 13 * 3);
    image_free(&img);
    free(b.buf);
    image_free(&src);
}

static void test_encoder_errors(void **state)
{
    (void)state;
    char err[512];
    uint8_t *buf = (uint8_t *)err;
    size_t len = 1;
    image bad = {4, 4, 2, NULL};
    assert_int_equal(image_encode_png(&bad, &buf, &len, err, sizeof err), -1);
    assert_null(buf);
    assert_int_equal(len, 0);
    uint8_t px[48] = {0};
    bad.px = px;
    assert_int_equal(image_encode_jpeg(&bad, 90, &buf, &len, err, sizeof err), -1);
    assert_null(buf);
    image ok = {4, 4, 3, px};
    assert_int_equal(image_encode_jpeg(&ok, 0, &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "quality"));
    assert_int_equal(image_encode_jpeg(&ok, 101, &buf, &len, err, sizeof err), -1);
    assert_int_equal(image_encode_jpeg(&ok, 1, &buf, &len, err, sizeof err), 0);
    free(buf);
    assert_int_equal(image_encode_jpeg(&ok, 100, &buf, &len, err, sizeof err), 0);
    free(buf);

    const char *path = tmp_path("no/such/dir/x.png");
    assert_int_equal(image_save_png(path, &ok, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_null(strchr(err, '\n'));
    path = tmp_path("no/such/dir/x.jpg");
    assert_int_equal(image_save_jpeg(path, &ok, 90, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    path = tmp_path("bad.png");
    assert_int_equal(image_save_png(path, &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(access(path, F_OK), -1);
}

/* libpng and libjpeg print warnings and errors on stderr by default: none may get through. */
static void test_libraries_silent(void **state)
{
    (void)state;
    image src;
    fill(&src, 40, 40, 3, 0);
    uint8_t *png, *jpg;
    size_t lp, lj;
    encode_png(&src, &png, &lp);
    encode_jpeg(&src, 85, &jpg, &lj);
    uint8_t *b = malloc(lp + lj + 16);

    fflush(stderr);
    const char *errpath = tmp_path("stderr.txt");
    int saved = dup(2);
    assert_true(saved >= 0);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);

    image img;
    char err[512];
    int fails = 0;
    fails += image_load_mem(jpg, lj / 2, "a", &img, err, sizeof err) != IMAGE_ERR_CORRUPT;
    fails += image_load_mem(png, lp / 2, "b", &img, err, sizeof err) != IMAGE_ERR_CORRUPT;
    memcpy(b, png, lp);
    b[30] ^= 1;
    fails += image_load_mem(b, lp, "c", &img, err, sizeof err) != IMAGE_ERR_CORRUPT;
    jpeg_insert_garbage(b, jpg, lj);
    fails += image_load_mem(b, lj + 3, "d", &img, err, sizeof err) != IMAGE_ERR_CORRUPT;
    /* a tEXt chunk with a bad CRC: libpng warns and drops it; the image itself is fine */
    size_t idat = png_find_chunk(png, lp, "IDAT");
    memcpy(b, png, idat);
    put32(b + idat, 4);
    memcpy(b + idat + 4, "tEXtk\0v!\0\0\0\0", 12);
    memcpy(b + idat + 16, png + idat, lp - idat);
    fails += image_load_mem(b, lp + 16, "e", &img, err, sizeof err) != IMAGE_OK;
    image_free(&img);
    /* a JPEG with unknown JFIF version: a metadata warning, decodes */
    memcpy(b, jpg, lj);
    if (b[2] == 0xFF && b[3] == 0xE0 && memcmp(b + 6, "JFIF", 5) == 0) b[11] = 7;
    fails += image_load_mem(b, lj, "f", &img, err, sizeof err) != IMAGE_OK;
    image_free(&img);
    fflush(stderr);

    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    struct stat st;
    assert_int_equal(stat(errpath, &st), 0);
    assert_int_equal(fails, 0);
    if (st.st_size != 0) fail_msg("libraries wrote %lld bytes on stderr", (long long)st.st_size);
    free(b);
    free(png);
    free(jpg);
    image_free(&src);
}

static void test_messages(void **state)
{
    (void)state;
    char err[512];
    image img;
    const char *name = "dir/Some File.jpg";
    image_load_mem((const uint8_t *)"xyz", 3, name, &img, err, sizeof err);
    assert_int_equal(strncmp(err, "dir/Some File.jpg: ", 19), 0);
    assert_true(err[strlen(err) - 1] != '\n');
    /* a name with a newline still gives one line */
    image_load_mem((const uint8_t *)"xyz", 3, "a\nb", &img, err, sizeof err);
    assert_null(strchr(err, '\n'));
    /* tiny buffers truncate safely */
    char small[8];
    assert_int_equal(image_load_mem((const uint8_t *)"xyz", 3, name, &img, small, sizeof small), IMAGE_ERR_FORMAT);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(image_load_mem((const uint8_t *)"xyz", 3, name, &img, NULL, 0), IMAGE_ERR_FORMAT);
}

/* ------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/test_image.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(g_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_free),
        cmocka_unit_test(test_png_roundtrip),
        cmocka_unit_test(test_png_deterministic_and_save),
        cmocka_unit_test(test_jpeg_roundtrip_rgb),
        cmocka_unit_test(test_jpeg_grey_stays_grey),
        cmocka_unit_test(test_jpeg_progressive),
        cmocka_unit_test(test_one_pixel),
        cmocka_unit_test(test_empty_and_not_image),
        cmocka_unit_test(test_jpeg_truncated),
        cmocka_unit_test(test_png_bad_crc),
        cmocka_unit_test(test_png_truncated),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_cmyk_jpeg),
        cmocka_unit_test(test_png_16bit),
        cmocka_unit_test(test_png_palette_alpha_lowdepth),
        cmocka_unit_test(test_png_interlaced),
        cmocka_unit_test(test_encoder_errors),
        cmocka_unit_test(test_libraries_silent),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests_name("image", tests, setup, teardown);
}
