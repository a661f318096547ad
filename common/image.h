/* image.h: 8-bit images and their PNG / JPEG files (libpng, libjpeg-turbo).
 *
 * Pixels are interleaved, row-major, c = 1 (grey) or 3 (RGB). Decoding keeps
 * grey as grey; palette, grey+alpha, RGBA and 16-bit PNGs and CMYK JPEGs are
 * converted to 8-bit grey or RGB (alpha dropped). Files are treated as
 * untrusted: dimensions are checked before any allocation, every libpng /
 * libjpeg error is caught, and failures return -1 with a message naming the
 * file. Writers go through a temporary name and a rename. */
#ifndef FB_IMAGE_H
#define FB_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_MAX_SIDE 16384
#define IMAGE_MAX_PIXELS (64L * 1024 * 1024)

typedef struct {
    int w, h, c;
    uint8_t *px; /* w * h * c bytes */
} image;

/* Why a decode failed, for the status recorded by callers. */
enum image_error {
    IMAGE_OK = 0,
    IMAGE_ERR_IO,          /* cannot open or read */
    IMAGE_ERR_FORMAT,      /* neither PNG nor JPEG (by magic bytes), or empty */
    IMAGE_ERR_CORRUPT,     /* truncated data, bad CRC, decoder error */
    IMAGE_ERR_TOO_LARGE,   /* a side over IMAGE_MAX_SIDE or more than IMAGE_MAX_PIXELS */
    IMAGE_ERR_UNSUPPORTED, /* a valid file this reader does not handle */
};

/* Decode a PNG or JPEG (chosen by magic bytes) from a file or from memory.
 * name is used in messages. Returns IMAGE_OK or an error with err filled. */
enum image_error image_load(const char *path, image *img, char *err, size_t errlen);
enum image_error image_load_mem(const uint8_t *data, size_t len, const char *name, image *img, char *err,
                                size_t errlen);

int image_alloc(image *img, int w, int h, int c);  /* zeroed pixels; 0 or -1 */
void image_free(image *img);

/* Encode; 0 or -1 with err. PNG is lossless; JPEG quality 1..100 (4:2:0 for RGB). */
int image_save_png(const char *path, const image *img, char *err, size_t errlen);
int image_save_jpeg(const char *path, const image *img, int quality, char *err, size_t errlen);
/* Encode to a malloc'ed buffer (for hashing or embedding); caller frees *out. */
int image_encode_png(const image *img, uint8_t **out, size_t *len, char *err, size_t errlen);
int image_encode_jpeg(const image *img, int quality, uint8_t **out, size_t *len, char *err, size_t errlen);

#endif
