/* ingest.h: reading RAF-DB basic, FER+ and plain CSV lists exactly as
 * DATASETS.md describes, then probing every image (content hash, size,
 * decode, perceptual hash) on worker threads. */
#ifndef MS_INGEST_H
#define MS_INGEST_H

#include <stddef.h>

#include "../common/image.h"
#include "dataset.h"

enum votes_source { VOTES_AUTO, VOTES_NEW, VOTES_FOLDER };

typedef struct {
    const char *kind;   /* rafdb | ferplus | csv */
    const char *root;   /* dataset folder (rafdb, ferplus) */
    const char *list;   /* image,label,split file (csv) */
    int votes;          /* enum votes_source (ferplus) */
    int threads;
} ingest_opts;

/* Fills d. Returns 0, or -1 with err ("file:line: message") when a label file
 * is missing or malformed: the caller exits 2. Unreadable images are not
 * errors: they get a status and a message. */
int ingest(dataset *d, const ingest_opts *o, char *err, size_t errlen);

/* Reads an image,identity CSV and sets each listed image's identity. Names
 * not in the dataset are counted in a warning. 0, or -1 with err. */
int ingest_identities(dataset *d, const char *path, char *err, size_t errlen);

/* FER+'s official majority rule on 10 vote counts (neutral, happiness, surprise,
 * sadness, anger, disgust, fear, contempt, unknown, NF): returns the FER+ class
 * index 0..7, or 8 unknown / 9 not a face. */
int ferplus_majority(const int votes[10]);
/* The RAF-DB class of a FER+ class index, or -1 (contempt, unknown, NF). */
int ferplus_to_raf(int cls);

/* fer2013.csv as rows of pixel fields (for rendering): *buf owns the text. */
int fer2013_rows(const char *root, char **buf, const char ***pixels, long *nrows, char *err, size_t errlen);
/* 2304 space-separated grey values -> a 48x48 grey image; -1 when malformed. */
int fer2013_decode(const char *pixels, image *img);

#endif
