/* preds.h: reading predictions files (ARCHITECTURE.md, Formats).
 *
 *   # ferbench-predictions v1 dataset=rafdb split=test model=ours labels=surprise,fear,...
 *   image,label,pred[,prob_<label>...]
 *
 * Plain "image,label,pred" files without the header line are accepted when the
 * label map comes from --labels. Every refusal names the file and line. */
#ifndef FB_PREDS_H
#define FB_PREDS_H

#include <stddef.h>

#define PREDS_MAX_LABELS 256

typedef struct {
    char *path;
    int nlabels;
    char **labels;     /* label names in declared order */
    long n;
    char **image;      /* image names, one per row (point into buf) */
    long *line;        /* file line of each row, for messages */
    int *y, *yhat;     /* true and predicted label indices */
    int has_probs;
    char *dataset, *split, *model;  /* from the header line, or NULL */
    char *buf;         /* owned CSV buffer */
} preds;

/* Loads path. labels_opt is the --labels list (comma separated) or NULL.
 * Returns 0, or -1 with err = "path:line: message". */
int preds_load(preds *p, const char *path, const char *labels_opt, char *err, size_t errlen);
void preds_free(preds *p);

/* Checks that b covers the same images as a with the same ground truth and
 * the same label set. On success fills order[i] = row of b holding a's image i
 * and recodes b's labels into a's label order. Returns -1 with a message
 * giving counts of missing, extra and disagreeing images and the first names. */
int preds_match(const preds *a, preds *b, long *order, char *err, size_t errlen);

/* A short display name for a file: its model= or its file name. */
const char *preds_name(const preds *p);

#endif
