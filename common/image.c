/* image.c: 8-bit images and their PNG / JPEG files (libpng16, libjpeg-turbo).
 *
 * Every libpng / libjpeg error and warning goes through handlers installed
 * here: nothing is printed, errors longjmp back to the decoder, and the
 * message is kept for the caller. All state that outlives a longjmp lives in
 * a struct owned by the caller of the function that calls setjmp, so no
 * automatic variable modified after setjmp is read after the jump. */
#include "image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "util.h"

#define IMAGE_MAX_FILE_BYTES ((size_t)256 << 20) /* image_load: files larger than this are refused */
#define JPEG_MAX_SCANS 1000                      /* progressive JPEG scan limit (decoder DoS guard) */
#define JPEG_MAX_MEMORY (1024L << 20)            /* libjpeg working memory cap */
#define PNG_CHUNK_MALLOC_MAX (16UL << 20)        /* largest ancillary chunk libpng may allocate */
#define PNG_CHUNK_CACHE_MAX 1000                 /* most ancillary chunks libpng keeps */

/* ------------------------------------------------------------------------- */
/* Messages */

/* One line: control characters (from file names or library text) become '?'. */
static void one_line(char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static void set_err(char *err, size_t errlen, const char *name, const char *reason)
{
    if (!err || errlen == 0) return;
    snprintf(err, errlen, "%s: %s", name ? name : "(image)", reason);
    one_line(err);
}

/* ------------------------------------------------------------------------- */
/* Allocation */

static int dims_ok(long w, long h)
{
    return w >= 1 && h >= 1 && w <= IMAGE_MAX_SIDE && h <= IMAGE_MAX_SIDE && w * h <= IMAGE_MAX_PIXELS;
}

int image_alloc(image *img, int w, int h, int c)
{
    if (!img) return -1;
    img->w = img->h = img->c = 0;
    img->px = NULL;
    if (!dims_ok(w, h) || (c != 1 && c != 3)) return -1;
    /* dims_ok bounds w*h by IMAGE_MAX_PIXELS (2^26), so w*h*c cannot overflow size_t. */
    uint8_t *px = calloc((size_t)w * (size_t)h, (size_t)c);
    if (!px) return -1;
    img->w = w;
    img->h = h;
    img->c = c;
    img->px = px;
    return 0;
}

void image_free(image *img)
{
    if (!img) return;
    free(img->px);
    img->px = NULL;
    img->w = img->h = img->c = 0;
}

static int image_valid(const image *img)
{
    return img && img->px && dims_ok(img->w, img->h) && (img->c == 1 || img->c == 3);
}

/* Dimension check shared by both decoders, done before any pixel allocation. */
static enum image_error check_dims(unsigned long w, unsigned long h, const char *name, char *err, size_t errlen)
{
    char reason[160];
    if (w == 0 || h == 0) {
        snprintf(reason, sizeof reason, "invalid image size %lux%lu", w, h);
        set_err(err, errlen, name, reason);
        return IMAGE_ERR_CORRUPT;
    }
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (unsigned long long)w * h > (unsigned long long)IMAGE_MAX_PIXELS) {
        snprintf(reason, sizeof reason, "image too large: %lux%lu (limits: %d per side, %ld pixels)", w, h,
                 IMAGE_MAX_SIDE, (long)IMAGE_MAX_PIXELS);
        set_err(err, errlen, name, reason);
        return IMAGE_ERR_TOO_LARGE;
    }
    return IMAGE_OK;
}

/* A growing output buffer for the encoders. */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
} membuf;

static int membuf_reserve(membuf *m, size_t extra)
{
    if (extra <= m->cap - m->len) return 0;
    if (extra > SIZE_MAX / 2 - m->len) return -1;
    size_t cap = m->cap ? m->cap : 1 << 16;
    while (cap - m->len < extra) cap *= 2;
    uint8_t *p = realloc(m->buf, cap);
    if (!p) return -1;
    m->buf = p;
    m->cap = cap;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* PNG decoding */

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

struct png_dec {
    const uint8_t *data;
    size_t len, pos;
    char msg[200];  /* libpng's error text */
    int too_large;  /* a libpng warning said a user limit was exceeded */
    jmp_buf jb;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    image *img;
    enum image_error early; /* error found by our own checks inside the setjmp region */
    char early_msg[200];    /* its reason; empty when err was already written */
};

static void png_dec_error(png_structp png, png_const_charp msg)
{
    struct png_dec *d = png_get_error_ptr(png);
    snprintf(d->msg, sizeof d->msg, "%s", msg ? msg : "error");
    longjmp(d->jb, 1);
}

static void png_dec_warning(png_structp png, png_const_charp msg)
{
    struct png_dec *d = png_get_error_ptr(png);
    if (msg && strstr(msg, "exceeds user limit")) d->too_large = 1;
    /* Other warnings (bad ancillary chunks, sRGB profile quirks) do not affect pixels: ignored, silently. */
}

static void png_dec_read(png_structp png, png_bytep out, size_t n)
{
    struct png_dec *d = png_get_io_ptr(png);
    if (n > d->len - d->pos) png_error(png, "unexpected end of file (truncated)");
    memcpy(out, d->data + d->pos, n);
    d->pos += n;
}

/* Returns IMAGE_OK, or an error with d->msg / d->early_msg set. Cleanup is the caller's. */
static enum image_error png_decode(struct png_dec *d, const char *name, char *err, size_t errlen)
{
    if (setjmp(d->jb)) {
        if (d->early != IMAGE_OK) return d->early;
        return d->too_large ? IMAGE_ERR_TOO_LARGE : IMAGE_ERR_CORRUPT;
    }
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, png_dec_error, png_dec_warning);
    if (!d->png) {
        snprintf(d->msg, sizeof d->msg, "cannot create PNG reader (out of memory)");
        return IMAGE_ERR_CORRUPT;
    }
    d->info = png_create_info_struct(d->png);
    if (!d->info) png_error(d->png, "cannot create PNG info (out of memory)");

    png_set_read_fn(d->png, d, png_dec_read);
    png_set_user_limits(d->png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(d->png, PNG_CHUNK_MALLOC_MAX);
    png_set_chunk_cache_max(d->png, PNG_CHUNK_CACHE_MAX);

    png_read_info(d->png, d->info);
    png_uint_32 w = png_get_image_width(d->png, d->info), h = png_get_image_height(d->png, d->info);
    enum image_error e = check_dims(w, h, name, err, errlen);
    if (e != IMAGE_OK) {
        d->early = e; /* check_dims wrote err */
        return e;
    }

    /* Everything to 8 bits, grey or RGB, no alpha. png_set_expand covers palette -> RGB,
     * grey < 8 bits -> 8 bits and tRNS -> alpha (which strip_alpha then drops). */
    png_set_expand(d->png);
    png_set_strip_16(d->png); /* keeps the high byte */
    png_set_strip_alpha(d->png);
    png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);

    int channels = png_get_channels(d->png, d->info);
    int depth = png_get_bit_depth(d->png, d->info);
    if ((channels != 1 && channels != 3) || depth != 8 ||
        png_get_rowbytes(d->png, d->info) != (size_t)w * (size_t)channels) {
        d->early = IMAGE_ERR_UNSUPPORTED;
        snprintf(d->early_msg, sizeof d->early_msg, "unsupported PNG layout (%d channels, %d bits)", channels,
                 depth);
        return d->early;
    }
    if (image_alloc(d->img, (int)w, (int)h, channels) != 0) {
        d->early = IMAGE_ERR_TOO_LARGE;
        snprintf(d->early_msg, sizeof d->early_msg, "out of memory for %lux%lu pixels", (unsigned long)w,
                 (unsigned long)h);
        return d->early;
    }
    d->rows = malloc((size_t)h * sizeof *d->rows);
    if (!d->rows) png_error(d->png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) d->rows[y] = d->img->px + (size_t)y * w * channels;
    png_read_image(d->png, d->rows);
    /* Read to IEND so that a file cut after the image data, or a bad CRC on a
     * later critical chunk, is reported too. */
    png_read_end(d->png, NULL);
    return IMAGE_OK;
}

static enum image_error load_png(const uint8_t *data, size_t len, const char *name, image *img, char *err,
                                 size_t errlen)
{
    /* IHDR must come first: check the claimed size before libpng allocates anything. */
    if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        unsigned long w = (unsigned long)data[16] << 24 | (unsigned long)data[17] << 16 |
                          (unsigned long)data[18] << 8 | data[19];
        unsigned long h = (unsigned long)data[20] << 24 | (unsigned long)data[21] << 16 |
                          (unsigned long)data[22] << 8 | data[23];
        if (w != 0 && h != 0) {
            enum image_error e = check_dims(w, h, name, err, errlen);
            if (e != IMAGE_OK) return e;
        }
    }

    struct png_dec d;
    memset(&d, 0, sizeof d);
    d.data = data;
    d.len = len;
    d.img = img;
    d.early = IMAGE_OK;
    enum image_error e = png_decode(&d, name, err, errlen);
    if (d.png) png_destroy_read_struct(&d.png, d.info ? &d.info : NULL, NULL);
    free(d.rows);
    if (e != IMAGE_OK) {
        image_free(img);
        if (d.early != IMAGE_OK) {
            if (d.early_msg[0]) set_err(err, errlen, name, d.early_msg);
        } else if (e == IMAGE_ERR_TOO_LARGE) {
            char reason[240];
            snprintf(reason, sizeof reason, "image too large (PNG: %s)", d.msg);
            set_err(err, errlen, name, reason);
        } else {
            char reason[240];
            snprintf(reason, sizeof reason, "corrupt PNG: %s", d.msg);
            set_err(err, errlen, name, reason);
        }
    }
    return e;
}

/* ------------------------------------------------------------------------- */
/* JPEG decoding */

struct jpeg_err {
    struct jpeg_error_mgr pub; /* first: libjpeg's err pointer is cast back to this */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int code;
    enum image_error kind;
};

static void jpeg_record(j_common_ptr cinfo)
{
    struct jpeg_err *je = (struct jpeg_err *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    snprintf(je->msg, sizeof je->msg, "%s", buf);
    je->code = cinfo->err->msg_code;
}

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_err *je = (struct jpeg_err *)cinfo->err;
    jpeg_record(cinfo);
    switch (je->code) {
    case JERR_BAD_PRECISION:
    case JERR_NOTIMPL:
    case JERR_NOT_COMPILED:
        je->kind = IMAGE_ERR_UNSUPPORTED;
        break;
    case JERR_IMAGE_TOO_BIG:
    case JERR_WIDTH_OVERFLOW:
    case JERR_OUT_OF_MEMORY:
    case JERR_NO_BACKING_STORE:
        je->kind = IMAGE_ERR_TOO_LARGE;
        break;
    default:
        je->kind = IMAGE_ERR_CORRUPT;
    }
    longjmp(je->jb, 1);
}

/* Warnings (level -1) about the data itself mean the pixels are not what the
 * file's author wrote: libjpeg would fill the rest with grey and go on. They
 * fail the decode (at once, so no time is spent on garbage). Warnings about
 * metadata only are ignored. Trace messages (level >= 0) are dropped. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    struct jpeg_err *je = (struct jpeg_err *)cinfo->err;
    if (level >= 0) return;
    cinfo->err->num_warnings++;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC) return;
    jpeg_record(cinfo);
    je->kind = IMAGE_ERR_CORRUPT;
    longjmp(je->jb, 1);
}

static void jpeg_on_output(j_common_ptr cinfo)
{
    jpeg_record(cinfo); /* never printed */
}

static void jpeg_on_progress(j_common_ptr cinfo)
{
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        struct jpeg_err *je = (struct jpeg_err *)cinfo->err;
        snprintf(je->msg, sizeof je->msg, "more than %d scans", JPEG_MAX_SCANS);
        je->code = -1;
        je->kind = IMAGE_ERR_CORRUPT;
        longjmp(je->jb, 1);
    }
}

static void jpeg_err_init(struct jpeg_err *je)
{
    jpeg_std_error(&je->pub);
    je->pub.error_exit = jpeg_on_error;
    je->pub.emit_message = jpeg_on_message;
    je->pub.output_message = jpeg_on_output;
    je->kind = IMAGE_ERR_CORRUPT;
}

struct jpeg_dec {
    struct jpeg_err je;
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    const uint8_t *data;
    size_t len;
    image *img;
    uint8_t *cmyk_row;
    enum image_error early; /* error found by our own checks inside the setjmp region */
    char early_msg[200];    /* its reason; empty when err was already written */
};

static enum image_error jpeg_decode(struct jpeg_dec *d, const char *name, char *err, size_t errlen)
{
    struct jpeg_decompress_struct *ci = &d->cinfo;
    if (setjmp(d->je.jb)) return d->early != IMAGE_OK ? d->early : d->je.kind;
    jpeg_create_decompress(ci);
    ci->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    d->progress.progress_monitor = jpeg_on_progress;
    ci->progress = &d->progress;
    jpeg_mem_src(ci, d->data, (unsigned long)d->len);
    jpeg_read_header(ci, TRUE);

    enum image_error e = check_dims(ci->image_width, ci->image_height, name, err, errlen);
    if (e != IMAGE_OK) {
        d->early = e; /* check_dims wrote err */
        return e;
    }
    int c, cmyk = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci->out_color_space = JCS_GRAYSCALE;
        c = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        ci->out_color_space = JCS_RGB;
        c = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK; /* libjpeg turns YCCK into CMYK */
        c = 3;
        cmyk = 1;
        break;
    default:
        d->early = IMAGE_ERR_UNSUPPORTED;
        snprintf(d->early_msg, sizeof d->early_msg, "unsupported JPEG colour space (%d components)",
                 ci->num_components);
        return d->early;
    }
    ci->dct_method = JDCT_ISLOW;
    ci->scale_num = ci->scale_denom = 1;
    ci->quantize_colors = FALSE;

    jpeg_start_decompress(ci);
    if (ci->output_width != ci->image_width || ci->output_height != ci->image_height ||
        ci->output_components != (cmyk ? 4 : c)) {
        d->early = IMAGE_ERR_UNSUPPORTED;
        snprintf(d->early_msg, sizeof d->early_msg, "unexpected JPEG output layout");
        return d->early;
    }
    if (image_alloc(d->img, (int)ci->output_width, (int)ci->output_height, c) != 0) {
        d->early = IMAGE_ERR_TOO_LARGE;
        snprintf(d->early_msg, sizeof d->early_msg, "out of memory for %ux%u pixels", ci->output_width,
                 ci->output_height);
        return d->early;
    }
    size_t w = ci->output_width;
    if (cmyk) {
        d->cmyk_row = malloc(w * 4);
        if (!d->cmyk_row) ERREXIT1(ci, JERR_OUT_OF_MEMORY, 0);
    }
    /* Adobe (Photoshop) CMYK files store inverted values, 255 - ink, and libjpeg
     * returns them as stored; so with an Adobe marker each value is already the
     * "paper left" fraction and R = C' * K' / 255. Without one the values are
     * ink amounts: R = (255 - C) * (255 - K) / 255. */
    int inverted = ci->saw_Adobe_marker;
    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = d->img->px + (size_t)ci->output_scanline * w * (size_t)c;
        JSAMPROW row = cmyk ? d->cmyk_row : dst;
        if (jpeg_read_scanlines(ci, &row, 1) != 1) ERREXIT(ci, JERR_INPUT_EOF);
        if (cmyk) {
            const uint8_t *s = d->cmyk_row;
            for (size_t x = 0; x < w; x++, s += 4, dst += 3) {
                unsigned k = inverted ? s[3] : 255u - s[3];
                for (int i = 0; i < 3; i++) {
                    unsigned v = inverted ? s[i] : 255u - s[i];
                    dst[i] = (uint8_t)((v * k + 127) / 255);
                }
            }
        }
    }
    jpeg_finish_decompress(ci);
    return IMAGE_OK;
}

static enum image_error load_jpeg(const uint8_t *data, size_t len, const char *name, image *img, char *err,
                                  size_t errlen)
{
    struct jpeg_dec *d = calloc(1, sizeof *d);
    if (!d) {
        set_err(err, errlen, name, "out of memory");
        return IMAGE_ERR_TOO_LARGE;
    }
    jpeg_err_init(&d->je);
    d->cinfo.err = &d->je.pub;
    d->data = data;
    d->len = len;
    d->img = img;
    d->early = IMAGE_OK;
    enum image_error e = jpeg_decode(d, name, err, errlen);
    jpeg_destroy_decompress(&d->cinfo); /* safe even if creation failed: mem is NULL then */
    free(d->cmyk_row);
    if (e != IMAGE_OK) {
        image_free(img);
        if (d->early != IMAGE_OK) {
            if (d->early_msg[0]) set_err(err, errlen, name, d->early_msg);
        } else {
            char reason[JMSG_LENGTH_MAX + 64];
            snprintf(reason, sizeof reason, "%s JPEG: %s",
                     e == IMAGE_ERR_UNSUPPORTED ? "unsupported" : e == IMAGE_ERR_TOO_LARGE ? "too large" : "corrupt",
                     d->je.msg);
            set_err(err, errlen, name, reason);
        }
    }
    free(d);
    return e;
}

/* ------------------------------------------------------------------------- */
/* Loading */

enum image_error image_load_mem(const uint8_t *data, size_t len, const char *name, image *img, char *err,
                                size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!img) {
        set_err(err, errlen, name, "no image to decode into");
        return IMAGE_ERR_IO;
    }
    img->w = img->h = img->c = 0;
    img->px = NULL;
    if (!data || len == 0) {
        set_err(err, errlen, name, "empty file");
        return IMAGE_ERR_FORMAT;
    }
    if (len >= sizeof png_magic && memcmp(data, png_magic, sizeof png_magic) == 0)
        return load_png(data, len, name, img, err, errlen);
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return load_jpeg(data, len, name, img, err, errlen);
    set_err(err, errlen, name, "not a PNG or JPEG file");
    return IMAGE_ERR_FORMAT;
}

enum image_error image_load(const char *path, image *img, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (img) {
        img->w = img->h = img->c = 0;
        img->px = NULL;
    }
    if (!path) {
        set_err(err, errlen, "(image)", "no path");
        return IMAGE_ERR_IO;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (unsigned long long)st.st_size > IMAGE_MAX_FILE_BYTES) {
        char reason[96];
        snprintf(reason, sizeof reason, "file too large (%lld bytes, limit %zu)", (long long)st.st_size,
                 IMAGE_MAX_FILE_BYTES);
        set_err(err, errlen, path, reason);
        return IMAGE_ERR_TOO_LARGE;
    }
    size_t len = 0;
    char ebuf[512];
    char *data = read_file(path, &len, IMAGE_MAX_FILE_BYTES, ebuf, sizeof ebuf);
    if (!data) {
        if (err && errlen) {
            snprintf(err, errlen, "%s", ebuf); /* read_file's message is "path: reason" */
            one_line(err);
        }
        return IMAGE_ERR_IO;
    }
    enum image_error e = image_load_mem((const uint8_t *)data, len, path, img, err, errlen);
    free(data);
    return e;
}

/* ------------------------------------------------------------------------- */
/* PNG encoding */

struct png_enc {
    membuf out;
    char msg[200];
    jmp_buf jb;
    png_structp png;
    png_infop info;
};

static void png_enc_error(png_structp png, png_const_charp msg)
{
    struct png_enc *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "error");
    longjmp(s->jb, 1);
}

static void png_enc_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_enc_write(png_structp png, png_bytep data, size_t n)
{
    struct png_enc *s = png_get_io_ptr(png);
    if (membuf_reserve(&s->out, n) != 0) png_error(png, "out of memory");
    memcpy(s->out.buf + s->out.len, data, n);
    s->out.len += n;
}

static void png_enc_flush(png_structp png)
{
    (void)png;
}

static int png_encode(struct png_enc *s, const image *img)
{
    if (setjmp(s->jb)) return -1;
    s->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s, png_enc_error, png_enc_warning);
    if (!s->png) {
        snprintf(s->msg, sizeof s->msg, "cannot create PNG writer (out of memory)");
        return -1;
    }
    s->info = png_create_info_struct(s->png);
    if (!s->info) png_error(s->png, "cannot create PNG info (out of memory)");
    png_set_write_fn(s->png, s, png_enc_write, png_enc_flush);
    /* Speed over a few percent of size: masksynth writes two PNGs per face, and
     * level 1 with the Paeth filter is about 3x faster than level 6 here. */
    png_set_compression_level(s->png, 1);
    png_set_filter(s->png, 0, PNG_FILTER_PAETH);
    png_set_IHDR(s->png, s->info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* No tIME, text or other chunks: identical pixels give identical bytes. */
    png_write_info(s->png, s->info);
    size_t stride = (size_t)img->w * (size_t)img->c;
    for (int y = 0; y < img->h; y++) png_write_row(s->png, (png_const_bytep)(img->px + (size_t)y * stride));
    png_write_end(s->png, NULL);
    return 0;
}

int image_encode_png(const image *img, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!out || !len || !image_valid(img)) {
        set_err(err, errlen, "PNG encoder", "invalid image");
        return -1;
    }
    struct png_enc s;
    memset(&s, 0, sizeof s);
    int rc = png_encode(&s, img);
    if (s.png) png_destroy_write_struct(&s.png, s.info ? &s.info : NULL);
    if (rc != 0) {
        free(s.out.buf);
        set_err(err, errlen, "PNG encoder", s.msg);
        return -1;
    }
    *out = s.out.buf;
    *len = s.out.len;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* JPEG encoding */

struct jpeg_enc_dest {
    struct jpeg_destination_mgr pub; /* first: cinfo->dest is cast back to this */
    membuf out;
};

static void jdest_init(j_compress_ptr cinfo)
{
    struct jpeg_enc_dest *d = (struct jpeg_enc_dest *)cinfo->dest;
    if (membuf_reserve(&d->out, 1 << 16) != 0) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    d->pub.next_output_byte = d->out.buf + d->out.len;
    d->pub.free_in_buffer = d->out.cap - d->out.len;
}

static boolean jdest_empty(j_compress_ptr cinfo)
{
    /* Called only when the whole buffer is full. */
    struct jpeg_enc_dest *d = (struct jpeg_enc_dest *)cinfo->dest;
    d->out.len = d->out.cap;
    if (membuf_reserve(&d->out, d->out.cap) != 0) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    d->pub.next_output_byte = d->out.buf + d->out.len;
    d->pub.free_in_buffer = d->out.cap - d->out.len;
    return TRUE;
}

static void jdest_term(j_compress_ptr cinfo)
{
    struct jpeg_enc_dest *d = (struct jpeg_enc_dest *)cinfo->dest;
    d->out.len = d->out.cap - d->pub.free_in_buffer;
}

struct jpeg_enc {
    struct jpeg_err je;
    struct jpeg_compress_struct cinfo;
    struct jpeg_enc_dest dest;
};

static int jpeg_encode(struct jpeg_enc *s, const image *img, int quality)
{
    struct jpeg_compress_struct *ci = &s->cinfo;
    if (setjmp(s->je.jb)) return -1;
    jpeg_create_compress(ci);
    s->dest.pub.init_destination = jdest_init;
    s->dest.pub.empty_output_buffer = jdest_empty;
    s->dest.pub.term_destination = jdest_term;
    ci->dest = &s->dest.pub;
    ci->image_width = (JDIMENSION)img->w;
    ci->image_height = (JDIMENSION)img->h;
    ci->input_components = img->c;
    ci->in_color_space = img->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(ci);
    jpeg_set_quality(ci, quality, TRUE);
    ci->dct_method = JDCT_ISLOW;
    ci->optimize_coding = TRUE;
    if (img->c == 3) { /* 4:2:0 */
        ci->comp_info[0].h_samp_factor = 2;
        ci->comp_info[0].v_samp_factor = 2;
        ci->comp_info[1].h_samp_factor = ci->comp_info[1].v_samp_factor = 1;
        ci->comp_info[2].h_samp_factor = ci->comp_info[2].v_samp_factor = 1;
    }
    jpeg_start_compress(ci, TRUE);
    size_t stride = (size_t)img->w * (size_t)img->c;
    while (ci->next_scanline < ci->image_height) {
        JSAMPROW row = (JSAMPROW)(img->px + (size_t)ci->next_scanline * stride);
        jpeg_write_scanlines(ci, &row, 1);
    }
    jpeg_finish_compress(ci);
    return 0;
}

int image_encode_jpeg(const image *img, int quality, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!out || !len || !image_valid(img)) {
        set_err(err, errlen, "JPEG encoder", "invalid image");
        return -1;
    }
    if (quality < 1 || quality > 100) {
        char reason[64];
        snprintf(reason, sizeof reason, "quality %d is outside 1..100", quality);
        set_err(err, errlen, "JPEG encoder", reason);
        return -1;
    }
    struct jpeg_enc *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "JPEG encoder", "out of memory");
        return -1;
    }
    jpeg_err_init(&s->je);
    s->cinfo.err = &s->je.pub;
    int rc = jpeg_encode(s, img, quality);
    jpeg_destroy_compress(&s->cinfo);
    if (rc != 0) {
        free(s->dest.out.buf);
        set_err(err, errlen, "JPEG encoder", s->je.msg);
    } else {
        *out = s->dest.out.buf;
        *len = s->dest.out.len;
    }
    free(s);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Saving: encode in memory, then write "<path>.tmp.<pid>" and rename. */

static int save_bytes(const char *path, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    atomic_file af;
    if (atomic_open(&af, path, err, errlen) != 0) {
        one_line(err);
        return -1;
    }
    if (len && fwrite(buf, 1, len, af.f) != len) {
        atomic_abort(&af);
        set_err(err, errlen, path, "cannot write: short write");
        return -1;
    }
    if (atomic_commit(&af, err, errlen) != 0) {
        one_line(err);
        return -1;
    }
    return 0;
}

static void rename_err(char *err, size_t errlen, const char *path)
{
    /* The encoders name themselves; a failed save names the file. */
    if (!err || !errlen) return;
    char tmp[512];
    const char *reason = strchr(err, ':');
    snprintf(tmp, sizeof tmp, "%s", reason && reason[1] == ' ' ? reason + 2 : err);
    set_err(err, errlen, path, tmp);
}

int image_save_png(const char *path, const image *img, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    if (image_encode_png(img, &buf, &len, err, errlen) != 0) {
        rename_err(err, errlen, path);
        return -1;
    }
    int rc = save_bytes(path, buf, len, err, errlen);
    free(buf);
    return rc;
}

int image_save_jpeg(const char *path, const image *img, int quality, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    if (image_encode_jpeg(img, quality, &buf, &len, err, errlen) != 0) {
        rename_err(err, errlen, path);
        return -1;
    }
    int rc = save_bytes(path, buf, len, err, errlen);
    free(buf);
    return rc;
}
