/* model.h: the configuration and parameter table of the network of
 * shared/design/MODEL.md (arch `fopm`): one flat float buffer holding every
 * tensor (trainable parameters and BN running statistics), each described by
 * its PyTorch module-path name, shape and offset, in state_dict order. */
#ifndef FB_MODEL_H
#define FB_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int size;     /* S: input side, a multiple of 32 */
    double width; /* w: channel multiplier, > 0 */
} model_config;

/* Fills c for "fopm" (224, 1.0) or "fopm-tiny" (64, 0.125); -1 for other names. */
int model_config_named(const char *name, model_config *c);
/* 0 when c is usable (S a positive multiple of 32 up to 4096, 0 < w <= 16);
 * otherwise -1 and a message in err. */
int model_config_check(const model_config *c, char *err, size_t errlen);
/* ch(c) = max(8, floor(c*w/8 + 0.5) * 8). */
int model_ch(const model_config *cfg, int c);
static inline int model_grid(const model_config *c) { return c->size / 4; }  /* G */
static inline int model_gpool(const model_config *c) { return c->size / 32; } /* g */

enum { MODEL_CLASSES = 7, MODEL_LANDMARKS = 68, MODEL_MAX_NDIM = 4, MODEL_NAME_MAX = 64 };

typedef enum {
    PK_WEIGHT,       /* conv or linear weight */
    PK_BIAS,         /* conv or linear bias */
    PK_BN_WEIGHT,
    PK_BN_BIAS,
    PK_BN_RUNNING_MEAN,
    PK_BN_RUNNING_VAR
} param_kind;

typedef enum {
    PI_KAIMING, /* normal, std sqrt(2 / fan_in) */
    PI_UNIFORM, /* uniform(-1/sqrt(fan_in), +1/sqrt(fan_in)) */
    PI_ONE,
    PI_ZERO
} param_init;

typedef struct {
    char name[MODEL_NAME_MAX];
    int ndim;
    int shape[MODEL_MAX_NDIM]; /* unused trailing dims are 1 */
    size_t offset;             /* in floats, into model_params.data */
    size_t numel;
    param_kind kind;
    int trainable;             /* 0 for BN running statistics (buffers) */
    param_init init;
    int fan_in;
} param_entry;

typedef struct {
    model_config cfg;
    param_entry *entries; /* table order = state_dict order; offsets ascending and contiguous */
    int n;
    size_t total;         /* floats in data, = sum of numel */
    float *data;
} model_params;

/* Builds the table for cfg and allocates data (zeroed). Returns -1 (and
 * leaves p empty) when cfg fails model_config_check. */
int model_params_init(model_params *p, const model_config *cfg);
void model_params_free(model_params *p);
/* MODEL.md "Init": conv kaiming-normal, BN weight 1 bias 0, running mean 0
 * var 1, linear and head-conv weights and biases uniform(+-1/sqrt(fan_in)).
 * Tensor i draws from rng stream i of seed, so the result is independent of
 * threads and of other tensors. */
void model_params_init_weights(model_params *p, uint64_t seed);
const param_entry *model_find(const model_params *p, const char *name);
/* Trainable parameter count (BN running stats excluded) of the tensors whose
 * names start with prefix (all tensors when prefix is NULL or ""). */
size_t model_count_params(const model_params *p, const char *prefix);

#endif
