/* phash.h: a perceptual hash of a face (DCT of the 32x32 grey image, 8x8
 * lowest frequencies against their median), for near-duplicate grouping. */
#ifndef MS_PHASH_H
#define MS_PHASH_H

#include <stdint.h>

#include "../common/image.h"

uint64_t phash_image(const image *img);
static inline int hamming64(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

#endif
