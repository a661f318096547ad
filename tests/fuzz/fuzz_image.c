/* fuzz_image.c: PNG and JPEG decoding from memory (common/image.c over libpng
 * and libjpeg-turbo, with their errors turned into return codes). A decoded
 * image must be within the size limit and survive a lossless PNG round trip;
 * a refusal must say why. */
#include <stdlib.h>
#include <string.h>

#include "../../common/image.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    image img = {0};
    char err[512] = "";
    if (image_load_mem(data, size, "fuzz.img", &img, err, sizeof err) != IMAGE_OK) {
        fuzz_note("refused", err);
        FUZZ_ASSERT(strstr(err, "fuzz.img") != NULL);
        image_free(&img);
        return 0;
    }
    FUZZ_ASSERT(img.w >= 1 && img.h >= 1 && (img.c == 1 || img.c == 3));
    FUZZ_ASSERT((long)img.w * img.h <= IMAGE_MAX_PIXELS);
    uint8_t *png;
    size_t n;
    FUZZ_ASSERT(image_encode_png(&img, &png, &n, err, sizeof err) == 0);
    image back = {0};
    FUZZ_ASSERT(image_load_mem(png, n, "roundtrip.png", &back, err, sizeof err) == IMAGE_OK);
    FUZZ_ASSERT(back.w == img.w && back.h == img.h && back.c == img.c);
    FUZZ_ASSERT(memcmp(back.px, img.px, (size_t)img.w * img.h * img.c) == 0);
    fuzz_note("accepted", img.c == 1 ? "grey" : "rgb");
    free(png);
    image_free(&back);
    image_free(&img);
    return 0;
}
