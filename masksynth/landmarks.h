/* landmarks.h: dlib's HOG face detector and 68-point shape predictor behind a
 * C interface (the only C++ in the project is landmarks.cpp).
 *
 * One lmk_model per thread: dlib's detector keeps scratch state. */
#ifndef MS_LANDMARKS_H
#define MS_LANDMARKS_H

#include "../common/image.h"

#define LMK_DEFAULT_PREDICTOR "/usr/share/dlib/shape_predictor_68_face_landmarks.dat"

typedef struct lmk_model lmk_model;

typedef struct {
    double box[4];      /* x, y, width, height in image pixels */
    double score;       /* detector score (0 for a fallback box) */
    double pts[68][2];  /* dlib order, pixel coordinates of img (dlib point p; add 0.5 for continuous) */
} face_fit;

/* Loads the predictor (and builds the detector). NULL with err on failure. */
lmk_model *lmk_load(const char *predictor_path, char *err, size_t errlen);
void lmk_free(lmk_model *m);

/* Detects faces on img upsampled `upsample` times (dlib's pyramid_up, each
 * doubling), keeps the largest box, and fits the 68 points. Returns 1 when a
 * face was found, 0 when none (out untouched), -1 on an internal error. */
int lmk_detect(lmk_model *m, const image *img, int upsample, face_fit *out);

/* Fits the 68 points inside a given box (used with the fallback box). */
int lmk_fit_box(lmk_model *m, const image *img, const double box[4], face_fit *out);

/* dlib's own shape_predictor on the same pixels and box as lmk_fit_box (which
 * evaluates the same model with a faster tree walk): for parity tests. dlib
 * rounds its points to whole (upsampled) pixels. */
typedef struct lmk_reference lmk_reference;
lmk_reference *lmk_reference_load(const char *predictor_path, char *err, size_t errlen);
void lmk_reference_free(lmk_reference *r);
int lmk_reference_fit(lmk_reference *r, lmk_model *m, const image *img, const double box[4], double pts[68][2]);

/* MASKS.md's fallback box for an aligned crop where no face is detected: the
 * box the dlib mean shape fits (P8 at 1.07 of box height, brows at 0.16,
 * P0/P16 at (0.03, 0.32)/(0.97, 0.32)). */
void lmk_fallback_box(int w, int h, double box[4]);

#endif
