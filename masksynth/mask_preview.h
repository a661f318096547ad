/* mask_preview.h: contact sheets for looking at masks (issue 4: `masksynth
 * preview` and `masksynth patterns --preview`).
 *
 * mask_preview_sheet draws n faces on a grid of cols columns, each cell
 * enlarged (nearest neighbour) to about 160-200 px so 48x48 crops stay
 * readable; grey faces are drawn grey. On top: the mask outline (where the
 * alpha map crosses 128, interpolated at the sheet's resolution) in a colour
 * that contrasts with the pixel under it (yellow on dark, magenta on light),
 * and the 68 landmarks as small dots, cyan when visible, red when covered
 * (alpha >= 128 at the landmark's pixel, as mask_result.visible).
 * alphas (one w*h map per face, the exact alpha that was composited) may be
 * NULL, as may any alphas[i]: that cell gets no outline and white dots. pts
 * may be NULL (no dots). faces[i] NULL leaves a blank cell.
 *
 * pattern_preview_sheet renders each of the n patterns of a bank on the same
 * synthetic grey face (so colours are judged against neutral grey), with its
 * index, type, style and texture written under it.
 *
 * Both write a PNG (atomically, through image_save_png); 0, or -1 with err. */
#ifndef MS_MASK_PREVIEW_H
#define MS_MASK_PREVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "../common/image.h"
#include "plan.h"

int mask_preview_sheet(const char *out_png, image *const *faces, const uint8_t *const *alphas,
                       const double (*pts)[68][2], int n, int cols, char *err, size_t errlen);

int pattern_preview_sheet(const char *out_png, const pattern *bank, int n, char *err, size_t errlen);

#endif
