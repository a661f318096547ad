/* imgfix.c: see imgfix.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "imgfix.h"

/* A PNG written directly with libpng, for the layouts image.c never writes. */
void tbuf_write(png_structp png, png_bytep data, size_t n)
{
    tbuf *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->buf = realloc(b->buf, b->cap);
        assert_non_null(b->buf);
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
}

void tbuf_flush(png_structp png)
{
    (void)png;
}

void raw_png_encode(const raw_png *r, tbuf *out)
{
    memset(out, 0, sizeof *out);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    assert_non_null(png);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed writing a test fixture");
    png_set_write_fn(png, out, tbuf_write, tbuf_flush);
    png_set_IHDR(png, info, r->w, r->h, r->depth, r->color_type, r->interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (r->palette) png_set_PLTE(png, info, r->palette, r->npalette);
    if (r->trns) png_set_tRNS(png, info, r->trns, r->ntrns, NULL);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < r->h; y++) png_write_row(png, r->rows + (size_t)y * r->rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
}

/* A CMYK JPEG written with libjpeg (which adds an Adobe marker unless told not to). */
void cmyk_jpeg_encode(int w, int h, const uint8_t *cmyk, int adobe, uint8_t **out, unsigned long *len)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    *out = NULL;
    *len = 0;
    jpeg_mem_dest(&ci, out, len);
    ci.image_width = w;
    ci.image_height = h;
    ci.input_components = 4;
    ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_colorspace(&ci, JCS_CMYK);
    jpeg_set_quality(&ci, 95, TRUE);
    ci.write_Adobe_marker = adobe ? TRUE : FALSE;
    ci.write_JFIF_header = FALSE;
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(cmyk + (size_t)ci.next_scanline * w * 4);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
}

