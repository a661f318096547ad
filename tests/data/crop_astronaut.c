/* crop_astronaut.c: makes tests/data/astronaut_face.png from the NASA portrait
 * of Eileen Collins (public domain; skimage's astronaut.png, 512x512 RGB).
 * A plain copy of a 124x124 pixel rectangle, no resampling. See README.md.
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 tests/data/crop_astronaut.c common/image.c common/util.c \
 *       -lpng16 -ljpeg -lz -lm -o /tmp/crop_astronaut
 *   /tmp/crop_astronaut ../shared/data/astronaut.png tests/data/astronaut_face.png */
#include <stdio.h>
#include <string.h>

#include "../../common/image.h"

enum { X0 = 164, Y0 = 59, SIDE = 124 };

int main(int argc, char **argv)
{
    char err[512];
    image src, dst;
    if (argc != 3) {
        fprintf(stderr, "usage: %s astronaut.png out.png\n", argv[0]);
        return 2;
    }
    if (image_load(argv[1], &src, err, sizeof err) != IMAGE_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (src.w != 512 || src.h != 512 || src.c != 3) {
        fprintf(stderr, "%s: expected a 512x512 RGB image\n", argv[1]);
        return 1;
    }
    if (image_alloc(&dst, SIDE, SIDE, 3) != 0) return 1;
    for (int y = 0; y < SIDE; y++)
        memcpy(dst.px + (size_t)y * SIDE * 3, src.px + ((size_t)(Y0 + y) * src.w + X0) * 3, (size_t)SIDE * 3);
    if (image_save_png(argv[2], &dst, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    image_free(&src);
    image_free(&dst);
    return 0;
}
