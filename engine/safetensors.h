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

/* Several buffers laid out like p->data in one file (a checkpoint: weights
 * and optimizer moments), each under its own name prefix: set s's tensor i is
 * named prefix + entries[i].name. */
typedef struct {
    const char *prefix; /* "" for the weights themselves */
    float *data;        /* p->total floats */
    int required;       /* read: 1 = every tensor must be there; 0 = all or none */
    int present;        /* read: set to 1 when the file had this set */
} st_set;

/* __metadata__ string pairs of a file. */
typedef struct {
    int n;
    char **key, **val;
} st_meta;
void st_meta_free(st_meta *m);
const char *st_meta_get(const st_meta *m, const char *key); /* NULL if absent */

/* As safetensors_write, for nsets sets; meta: extra key, value, key, value,
 * ..., NULL metadata strings (may be NULL). */
int safetensors_write_sets(const char *path, const model_params *p, const st_set *sets, int nsets,
                           const char *const *meta, char *err, size_t errlen);
/* As safetensors_read, into each set's data; meta (may be NULL) receives the
 * metadata pairs (free with st_meta_free). Tensors of no set are errors. On
 * failure nothing is written and meta is empty. */
int safetensors_read_sets(const char *path, model_params *p, st_set *sets, int nsets, st_meta *meta, char *err,
                          size_t errlen);

/* Only the __metadata__ pairs of path (the header is parsed strictly, no
 * tensor is read). */
int safetensors_read_meta(const char *path, st_meta *meta, char *err, size_t errlen);

#endif
