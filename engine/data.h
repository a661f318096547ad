/* data.h: the engine's data pipeline: the items of one benchmark split read
 * from the database, the per-sample tensors of MODEL.md (input, occlusion
 * target, landmark heatmap target, horizontal flip), the epoch plan (order and
 * flips from the seed), and a threaded loader that prepares batches ahead of
 * the consumer and returns them in order.
 *
 * Everything is deterministic: the same database, files, seed and epoch give
 * byte-identical batches at any thread count (every sample is a pure function
 * of its item, flip and sizes; its place in the batch is fixed by the plan).
 * Functions that can fail return -1 with one message in err (err may be NULL)
 * that names the image or file. */
#ifndef FB_DATA_H
#define FB_DATA_H

#include <stddef.h>
#include <stdint.h>

#define DATA_NPOINTS 68     /* dlib landmarks */
#define DATA_MAX_CLASSES 8  /* 7 RAF-DB classes + FER+ contempt */

/* Input normalisation of MODEL.md: x = (v/255 - mean[c]) / std[c], RGB order. */
extern const float data_mean[3], data_std[3];
/* Class names in index order (RAF-DB order, then contempt). */
extern const char *const data_label_names[DATA_MAX_CLASSES];
/* Landmark k of a flipped face is the mirror of point data_flip_perm[k] of the
 * unflipped one (MODEL.md: jaw i <-> 16-i, brows, nose, eyes, mouth). An involution. */
extern const int data_flip_perm[DATA_NPOINTS];

/* One image of a split, as rendered by `masksynth --split S`. */
typedef struct {
    long long image_id;              /* images.id */
    char *name;                      /* images.name */
    int label;                       /* class index, 0 .. nclasses-1 */
    char *image_path;                /* the masked image (PNG or JPEG), absolute */
    char *alpha_path;                /* its 8-bit alpha map PNG, absolute */
    double landmarks[DATA_NPOINTS][2]; /* dlib points (x, y) of the unmasked image, pixel indices */
    int width, height;               /* of the original image (0 if the database does not know) */
} data_item;

typedef struct {
    char *dataset;                   /* datasets.name */
    char split[8];                   /* train | val | test */
    char mode[16];                   /* assignments.mode of the renders used */
    long long mode_seed;             /* assignments.seed of the renders used */
    int nclasses;                    /* 7, or 8 if the dataset has contempt labels */
    const char *const *labels;       /* nclasses names, = data_label_names */
    int n;                           /* items, ordered by image name */
    data_item *items;
} data_split;

struct sqlite3;
/* The dataset named name (NULL: the database must hold exactly one) of an open database: its id, its name
 * (malloc'ed) and its class count (data_dataset_classes). -1 with a message naming
 * db_path ("no dataset named ...", "several datasets (a, b): name one"). */
int data_find_dataset(struct sqlite3 *db, const char *db_path, const char *name, long long *id, char **name_out,
                      int *nclasses, char *err, size_t errlen);

/* The class count of a dataset: 8 if any of its images has label 7 (contempt), else 7. -1 with a message. */
int data_dataset_classes(struct sqlite3 *db, long long dataset_id, int *nclasses, char *err, size_t errlen);

/* Which mask assignment (assignments.mode, seed) a split is evaluated on: mode is "MODE", "MODE:SEED" or
 * NULL; with NULL the split's renders must come from one (mode, seed), or, without renders, its images must
 * have one assignment. -1 with a message naming the choices ("renders of several mask assignments (identity:42
 * (400 rendered), pattern:7 (400 rendered)): choose one with MODE:SEED"). */
int data_choose_masks(struct sqlite3 *db, long long dataset_id, const char *dataset, const char *split,
                      const char *mode, char out_mode[16], long long *out_seed, char *err, size_t errlen);

/* Loads the items of one split.
 *   dataset  a datasets.name, or NULL when the database holds exactly one dataset.
 *   split    train | val | test.
 *   mode     which renders: "MODE" (assignments.mode: identity | pattern | none) or "MODE:SEED",
 *            or NULL when the split's renders come from exactly one (mode, seed).
 * Rules (no image is ever dropped silently; every failure is an error naming images and the fix):
 *   - the items are the images of the dataset with status 'ok' and benchmark_split = split, in image-name
 *     order (C collation); an empty split is an error;
 *   - each needs a render row of the chosen (mode, seed) with output: an image without one, or whose render
 *     has no output (status bad_image / failed / no_face: no files, no landmarks), fails the whole call with
 *     the count and the first image ("12 test images have no render ...: run `masksynth --split test`");
 *   - renders from several (mode, seed) and mode NULL: an error listing them;
 *   - render paths are stored as masksynth wrote them (absolute, or relative to the folder it ran in):
 *     a relative path is tried against the current directory, then against the database's folder, and
 *     stored absolute; a file found in neither is an error naming it (contents are checked when decoded);
 *   - nclasses is 8 if any image of the dataset has label 7 (contempt), else 7; labels outside it fail.
 * The database must exist (it is never created here). On failure *out is zeroed. */
int data_open_split(const char *db_path, const char *dataset, const char *split, const char *mode, data_split *out,
                    char *err, size_t errlen);
void data_split_free(data_split *s);

/* Mirrors landmarks of a W-wide image: continuous x_c = x + 0.5 becomes W - x_c, and index k takes the
 * mirrored point of data_flip_perm[k]. Outputs stay in dlib pixel-index coordinates (x = x_c' - 0.5). in and
 * out must not overlap. Applying it twice gives the input back. */
void data_flip_landmarks(const double in[DATA_NPOINTS][2], int W, double out[DATA_NPOINTS][2]);

/* Bilinear resize of an interleaved 8-bit image plane c of (w, h, nc) to S x S floats (0..255), as
 * PyTorch F.interpolate(mode='bilinear', align_corners=False, antialias=False) on float input:
 * src = (dst + 0.5) * in/out - 0.5, negative clamped to 0, the upper neighbour clamped to the edge; the same
 * indices and weights as PyTorch 1.13, values within about one float ulp of its. */
void data_resize_bilinear(const uint8_t *px, int w, int h, int nc, int c, int S, float *out /* S*S */);

/* Area average of an 8-bit w x h map onto G x G (values /255): cell (i, j) is the mean over the source
 * rectangle [j*w/G, (j+1)*w/G) x [i*h/G, (i+1)*h/G) weighted by exact fractional pixel overlaps, so any
 * w, h (not multiples of G, or smaller than G) work. */
void data_area_average(const uint8_t *px, int w, int h, int G, float *out /* G*G */);

/* Landmark heatmaps for points in dlib pixel coordinates of a W x H image (MODEL.md):
 * (x, y) = (p.x + 0.5, p.y + 0.5), u = x*G/W - 0.5, v = y*G/H - 0.5,
 * out[k][i][j] = exp(-((j-u)^2 + (i-v)^2) / (2 * 1.5^2)). */
void data_heatmaps(const double pts[DATA_NPOINTS][2], int W, int H, int G, float *out /* 68*G*G */);

/* One sample of MODEL.md. Pure and thread-safe.
 *   x       3*S*S: the masked image (grey -> 3 copies, alpha channel dropped), flipped if flip, resized as
 *           data_resize_bilinear, normalised with data_mean / data_std; planar RGB.
 *   occ_t   G*G or NULL: the alpha map (flipped if flip), data_area_average.
 *   heat_t  68*G*G or NULL: data_heatmaps of the landmarks (data_flip_landmarks if flip).
 * The alpha map is read only when occ_t is wanted. Fails (-1, message naming the file) on a file that cannot
 * be read or decoded, an alpha map that is not one 8-bit channel of the image's size, or an image whose size
 * differs from the database's. */
int data_make_sample(const data_item *it, int S, int G, int flip, float *x, float *occ_t, float *heat_t, char *err,
                     size_t errlen);

/* The epoch plan, from the training seed alone. perm (n entries) gets a Fisher-Yates shuffle of 0..n-1 from
 * rng stream DATA_STREAM_ORDER(epoch); data_flip says whether the sample at position index of the epoch is
 * flipped (p 0.5), from stream DATA_STREAM_FLIP(epoch, index). Both families carry a tag in the high bits,
 * so they cannot meet each other or the small stream numbers used elsewhere (model init: one per tensor).
 * epoch in [0, 32767], index in [0, 2^32). */
#define DATA_STREAM_ORDER(epoch) ((0xDA7Aull << 48) | ((uint64_t)(epoch) << 32))
#define DATA_STREAM_FLIP(epoch, index) ((0xDA7Aull << 48) | (1ull << 47) | ((uint64_t)(epoch) << 32) | (uint32_t)(index))
void data_epoch_order(int n, uint64_t seed, int epoch, int *perm);
int data_flip(uint64_t seed, int epoch, int index_in_epoch);

typedef struct {
    int S, G;            /* input side and target grid (MODEL.md: G = S/4) */
    int batch;           /* samples per batch, > 0 */
    uint64_t seed;       /* training seed (MODEL.md: 42) */
    int epoch;           /* which epoch's order and flips */
    int shuffle;         /* 0: split order (evaluation); 1: data_epoch_order */
    int augment;         /* 1: flip per data_flip; 0: never */
    int drop_last;       /* 1: no final partial batch (training) */
    int with_targets;    /* 1: occ_t and heat_t too; 0: only x (inference, alpha maps not read) */
    int nthreads;        /* workers (at most 64); <= 0: the online CPUs, at most 32 (a GPU step of fopm eats
                          * ~1 ms of one core's decoding per image: 8 could starve inference on a fast card) */
    int depth;           /* batches in flight (being filled or held); <= 0: 3 */
    /* Allocator of the buffers that are uploaded (x, occ_t, heat_t, labels), e.g. a device backend's
     * page-locked host memory (backend_host_alloc / backend_host_free with ctx the backend); NULL: malloc.
     * A released batch is refilled at once, so the consumer must have waited for its uploads (any
     * download does) before releasing it. */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *p);
    void *host_ctx;
} data_loader_opts;

/* One batch; buffers belong to the loader (valid until data_loader_release). */
typedef struct {
    int n;               /* samples, <= opts.batch (smaller only for the final batch) */
    int index;           /* batch number in the epoch, from 0 */
    float *x;            /* [n, 3, S, S] */
    float *occ_t;        /* [n, 1, G, G], NULL without targets */
    float *heat_t;       /* [n, 68, G, G], NULL without targets */
    int *labels;         /* [n] class indices */
    int *items;          /* [n] indices into the split's items */
    uint8_t *flipped;    /* [n] 1 if the sample was flipped */
} data_batch;

typedef struct data_loader data_loader;

/* Starts background workers on one epoch of split s (which must outlive the loader). They prepare samples
 * in plan order into up to depth batch buffers, so decoding overlaps the consumer's compute. NULL on bad
 * options (message in err). */
data_loader *data_loader_start(const data_split *s, const data_loader_opts *o, char *err, size_t errlen);
/* Number of batches the epoch gives. */
int data_loader_nbatches(const data_loader *l);
/* The next batch in order: 1 and *b set, 0 at the end of the epoch, -1 on error (data_loader_error: the
 * first failing sample of that batch, naming its image; later calls fail the same way). Holding depth
 * batches without releasing any is an error too (nothing could be prepared). */
int data_loader_next(data_loader *l, data_batch **b);
/* Gives a batch's buffers back for reuse; batches may be released in any order. */
void data_loader_release(data_loader *l, data_batch *b);
/* The message of the last -1 from data_loader_next, or "". */
const char *data_loader_error(const data_loader *l);
/* Stops the workers (also mid-epoch) and frees everything; NULL is allowed. */
void data_loader_stop(data_loader *l);

#endif
