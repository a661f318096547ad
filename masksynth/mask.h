/* mask.h: procedural face masks (MASKS.md steps 4-6): the outline from the 68
 * landmarks per type and wearing style, appearance from the pattern, one
 * anti-aliased alpha map, and the composite out = a*mask + (1-a)*face. */
#ifndef MS_MASK_H
#define MS_MASK_H

#include <stdint.h>

#include "../common/image.h"
#include "plan.h"

typedef struct {
    uint8_t *alpha;          /* w*h, the exact 8-bit alpha used to composite */
    unsigned char visible[68]; /* 1 when landmark k is not covered (alpha < 128 at it) */
    double coverage;         /* mean alpha over the image, 0..1 */
} mask_result;

/* Renders pattern p on face (c = 1 or 3) fitted by pts (68 dlib points, pixel
 * coordinates) into out (allocated here, same size and channels as face).
 * seed varies texture placement per image. Pixels with alpha 0 are byte-identical
 * to face. Returns 0, or -1 with err when the landmarks are unusable (non-finite,
 * degenerate); the caller records a status. */
int mask_render(const image *face, const double pts[68][2], const pattern *p, uint64_t seed, image *out,
                mask_result *res, char *err, size_t errlen);
void mask_result_free(mask_result *res);

#endif
