/* numfmt.h: numbers and strings for JSON and CSV output. */
#ifndef FB_NUMFMT_H
#define FB_NUMFMT_H

#include <stdio.h>

/* Shortest decimal that reads back to the same double ("null" when not finite,
 * so no inf or NaN ever reaches a file). buf needs 32 bytes. */
const char *fmt_double(char *buf, double x);
void json_string(FILE *f, const char *s);
/* CSV field, quoted when it holds a comma, quote or line break. */
void csv_string(FILE *f, const char *s);

#endif
