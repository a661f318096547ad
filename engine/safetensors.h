/* safetensors.h: weights files in the safetensors format (F32, little-endian),
 * tensors named as in the model_params table (MODEL.md names). */
#ifndef FB_SAFETENSORS_H
#define FB_SAFETENSORS_H

#include <stddef.h>

#include "model.h"

/* Largest header accepted (and written). */
#define SAFETENSORS_MAX_HEADER ((size_t)100 * 1000 * 1000)

/* Writes every tensor of p in table order, F32 little-endian, header padded
 * with spaces to a multiple of 8 bytes, __metadata__ {"format": "pt",
 * "ferbench.size", "ferbench.width"}. Atomic (temp file, then rename).
 * Returns 0, or -1 with "PATH: what" in err. */
int safetensors_write(const char *path, const model_params *p, char *err, size_t errlen);

/* Reads path into p's existing table by name. The file is untrusted: header
 * length, strict JSON, dtypes, shapes, offsets (in range, no overlaps, no gaps,
 * no trailing bytes) are all checked; `*.num_batches_tracked` is ignored;
 * missing or unexpected tensors and shape mismatches are errors. Returns 0, or
 * -1 with one message "PATH: what" in err, p->data left untouched. */
int safetensors_read(const char *path, model_params *p, char *err, size_t errlen);

#endif
