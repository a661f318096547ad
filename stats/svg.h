/* svg.h: the confusion matrix as an SVG heatmap a paper could print. */
#ifndef FB_SVG_H
#define FB_SVG_H

#include <stddef.h>

#include "preds.h"

/* Cells coloured by the row-normalised share (recall per true class), each
 * showing the count and the share; class names on both axes. Written to a
 * temporary name and renamed. */
int confusion_svg(const char *path, const preds *p, const long *cm, char *err, size_t errlen);

#endif
