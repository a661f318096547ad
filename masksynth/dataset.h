/* dataset.h: the in-memory form of an ingested dataset, shared by ingestion,
 * splitting, identity grouping, pattern assignment and the database writer. */
#ifndef MS_DATASET_H
#define MS_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define NCLASSES 7
enum split { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST, SPLIT_NONE };
enum status { ST_OK, ST_MISSING, ST_BAD_IMAGE };

extern const char *const class_name[NCLASSES];  /* RAF-DB order: surprise .. neutral */
extern const char *const split_name[3];
extern const char *const status_name[3];

typedef struct {
    char *name;        /* canonical image id (file name, or fer2013.csv row id) */
    char *rel_path;    /* under the root; "fer2013.csv#<row>" for pixels in the CSV */
    long line;         /* line of the label file that listed it */
    long row;          /* fer2013.csv row when the pixels come from there, else -1 */
    int label;         /* 0..6 */
    int official;      /* enum split */
    int status;        /* enum status */
    char hash[65];     /* sha256 of the file bytes (or of the 48x48 pixels) */
    long size;
    int w, h;
    uint64_t phash;    /* perceptual hash of the grey face, when decodable */
    const char *identity; /* from --identities, or NULL */
    long group;        /* identity group index, or -1 */
    int split;         /* benchmark split */
    int pattern;       /* index into the pattern bank, or -1 */
    char *message;     /* why the status is not ok */
    const char *pixels; /* the fer2013.csv pixels field (points into dataset.pixels_csv) */
} record;

typedef struct {
    char *name, *reason, *file;
    long line;
} dropped;

typedef struct {
    const char *kind;          /* rafdb | ferplus | csv */
    char *name;                /* dataset name in the database */
    char *root;
    const char *vote_source;   /* fer2013new | label_csv, FER+ only */
    record *rec;
    long n, cap;
    dropped *drop;
    long ndrop, capdrop;
    char **extra;              /* image files present but listed nowhere */
    long nextra;
    char *pixels_csv;          /* fer2013.csv kept in memory when the pixels come from it */
    char *identity_csv;        /* the --identities file; record.identity points into it */
    size_t pixels_len;
} dataset;

record *dataset_add(dataset *d, const char *name, const char *rel_path, int label, int official, long line);
void dataset_drop(dataset *d, const char *name, const char *reason, const char *file, long line);
void dataset_free(dataset *d);
/* Index of name, or -1 (linear map built on demand by the caller). */
int class_index(const char *name);

/* A seeded hash of a string: the source of every per-image random draw, so
 * draws never depend on processing order or thread count. */
uint64_t seeded_hash(uint64_t seed, const char *tag, const char *name);

#endif
