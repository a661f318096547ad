/* imgfix.h: test fixtures written straight with libpng and libjpeg, for the
 * image layouts common/image.c never writes (16-bit, palette, CMYK, ...). */
#ifndef TESTS_IMGFIX_H
#define TESTS_IMGFIX_H

#include <png.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} tbuf;

typedef struct {
    int w, h, depth, color_type, interlace;
    const uint8_t *rows; /* packed rows, rowbytes each */
    size_t rowbytes;
    const png_color *palette;
    int npalette;
    const uint8_t *trns;
    int ntrns;
} raw_png;

void tbuf_write(png_structp png, png_bytep data, size_t n);
void tbuf_flush(png_structp png);
/* Encodes r into out (out->buf is malloc'ed). */
void raw_png_encode(const raw_png *r, tbuf *out);
/* A CMYK JPEG (with an Adobe marker when adobe is non-zero); *out from jpeg_mem_dest. */
void cmyk_jpeg_encode(int w, int h, const uint8_t *cmyk, int adobe, uint8_t **out, unsigned long *len);

#endif
