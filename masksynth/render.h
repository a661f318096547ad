/* render.h: masksynth --split S: landmarks (dlib, or the dataset's own),
 * the mask of each image's assigned pattern, the masked image and its alpha
 * map on disk, and one renders row per image in the database.
 *
 * Deterministic and resumable: images are processed in database order in
 * chunks; each chunk's rows are committed in order after its files are
 * written (atomically), and a rerun skips images whose row and files are
 * already there, so a killed run finishes with the same files and rows. */
#ifndef MS_RENDER_H
#define MS_RENDER_H

#include <sqlite3.h>

typedef struct {
    const char *split;        /* train | val | test | all */
    const char *out_dir;      /* where masked images go */
    const char *predictor;    /* dlib model file */
    const char *landmarks;    /* NULL: dlib; else a CSV image,x0,y0,...,x67,y67 */
    int upsample;             /* dlib pyramid_up steps; -1: 1 for >= 80 px, 2 below */
    int jpeg_quality;         /* 0: PNG */
    int threads;
    int shard, nshards;       /* process images with index % nshards == shard */
    const char *argv_json;
} render_opts;

/* Returns the exit code: 0, or 2 with a message (bad input); per-image
 * problems are statuses, not errors. */
int render_split(sqlite3 *db, long dataset_id, const render_opts *o);

/* A contact sheet of the first n rendered images of split with landmarks and
 * mask outlines. */
int render_preview(sqlite3 *db, long dataset_id, const char *split, int n, const char *out_png);

/* Adds the renders rows of shard databases (copies of this one made after
 * init, each run with --shard K/N) in image order. */
int render_merge(sqlite3 *db, const char *const *shards, int nshards);

#endif
