/* svg.h: the confusion matrix as an SVG heatmap a paper could print. */
#ifndef FB_SVG_H
#define FB_SVG_H

#include <stddef.h>
#include <stdio.h>

#include "preds.h"

/* What one heatmap shows. dataset and split may be NULL (then the subtitle
 * gives only n and accuracy). n and accuracy come from cm. */
typedef struct {
    int k;
    const char *const *labels; /* k class names, in cm's order */
    const long *cm;            /* k x k, rows true, columns predicted */
    const char *title;         /* e.g. the model */
    const char *dataset, *split;
} confusion_plot;

/* Cells coloured by the row-normalised share (recall per true class), each
 * showing the count and the share; class names on both axes. Every string is
 * XML-escaped, so the output may also be inlined into an HTML page. */
void confusion_svg_print(FILE *f, const confusion_plot *c);
/* The same, written to a temporary name and renamed. */
int confusion_svg_write(const char *path, const confusion_plot *c, char *err, size_t errlen);
/* A predictions file's heatmap (titled by its model=, else its path). */
int confusion_svg(const char *path, const preds *p, const long *cm, char *err, size_t errlen);

#endif
