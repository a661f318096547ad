/* face.h: procedural faces for the synthetic fixture datasets.
 *
 * A face is drawn from an identity (face_params: shape, colours, placement,
 * lighting, noise) and a sample (expression + sample_seed: expression
 * intensity, small jitter of placement, gaze, background, noise). Shapes are
 * polygons rasterised with exact-area anti-aliasing; the 68 landmarks written
 * out are points of the very curves that are drawn, in dlib order:
 *   jaw 0-16, brows 17-21 / 22-26 (image left to right), nose bridge 27-30,
 *   nose base 31-35, eyes 36-41 / 42-47, mouth outer 48-59, inner 60-67.
 * Landmark coordinates use the dlib / OpenCV convention: pixel (i, j) has its
 * centre at (i, j).
 *
 * Expressions are in RAF-DB order (0 surprise, 1 fear, 2 disgust, 3 happiness,
 * 4 sadness, 5 anger, 6 neutral); 7 (FACE_CONTEMPT, a one-sided smirk) is an
 * extra for FER+'s contempt votes. Happiness and neutral differ only below the
 * nose (mouth, smile folds); disgust and anger share brows and eyes and differ
 * in the mouth and nose wings: a mask over the mouth makes these pairs hard.
 *
 * Everything is a function of its inputs: the project's RNG and plain double
 * arithmetic, no global state, safe to call from several threads. */
#ifndef FB_FACE_H
#define FB_FACE_H

#include <stdint.h>

#include "../common/image.h"

enum {
    FACE_SURPRISE = 0,
    FACE_FEAR,
    FACE_DISGUST,
    FACE_HAPPINESS,
    FACE_SADNESS,
    FACE_ANGER,
    FACE_NEUTRAL,
    FACE_CONTEMPT, /* extra, not a RAF-DB class */
    FACE_N_EXPRESSIONS
};

/* Lower-case names in the order above (index 0..7). */
extern const char *const face_expression_name[FACE_N_EXPRESSIONS];

/* An identity. Geometry is in "box units": the face box is [0,1]^2 (dlib's
 * mean-shape frame: eyes near y 0.33, mouth near 0.75, chin near 1.05). */
typedef struct {
    /* shape */
    double jaw_width;   /* half-width of the face at the jaw top (P0/P16), 0.40..0.47 */
    double jaw_square;  /* superellipse exponent of the jaw, 2.0 (round) .. 3.2 (square) */
    double jaw_top;     /* y of P0/P16 */
    double chin_y;      /* y of the chin P8: the face height ratio */
    double eye_y, eye_sep, eye_w, eye_h; /* eye centre line, half distance, half-width, half-height */
    double brow_gap, brow_thick, brow_arch;
    double nose_len, nose_w;
    double mouth_y, mouth_w, lip_upper, lip_lower;
    double hairline;    /* y of the hairline at the centre */
    int hair_style;     /* 0 none (bald), 1 short, 2 long */
    /* colours, linear 0..255 sRGB-ish values */
    double skin[3], lip[3], hair[3], iris[3];
    /* placement in the image: scale (box side over image side), offset of the
     * face centre (fractions of the image side), roll (radians, +-10 deg) */
    double scale, off_x, off_y, roll;
    /* lighting: direction in the image plane (radians) and strength 0..1 */
    double light_dir, light_strength;
    double noise;       /* pixel noise standard deviation, grey levels */
} face_params;

void face_params_from_seed(face_params *p, uint64_t identity_seed);

/* Renders into img (already allocated, c = 1 or 3, sides >= 8; grey is the
 * luma of the RGB rendering; anything else is left alone, with zero
 * landmarks). landmarks may be NULL. Expression 0..7; out of range is drawn as
 * neutral. The face is placed so that all 68 landmarks lie inside the image. */
void face_draw(image *img, const face_params *id, int expression, uint64_t sample_seed, double landmarks[68][2]);

/* A non-face picture (blank, gradient, stripes, blobs or text-like marks), as
 * FER2013's non-face rows; c = 1 or 3. */
void face_draw_nonface(image *img, uint64_t seed);

#endif
