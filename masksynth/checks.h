/* checks.h: comparing an ingested copy with what it should be: the protocol
 * file of expected per-class counts, and a published manifest. */
#ifndef MS_CHECKS_H
#define MS_CHECKS_H

#include <stdio.h>

#include "dataset.h"
#include "plan.h"

/* Compares d with a protocol CSV (split,label,count) given as text. Prints the
 * report to out, stores it as JSON in *json (malloc'ed) and returns the number
 * of problems (count mismatches, missing, unreadable and extra files), or -1
 * with err when the protocol text is malformed. */
long protocol_check(const dataset *d, const char *name, const char *text, FILE *out, char **json, char *err,
                    size_t errlen);

/* The embedded protocol for a dataset kind and vote source, or NULL. */
const char *protocol_builtin(const char *kind, const char *vote_source, const char **name);

typedef struct {
    char dataset[128], kind[16], val[16], assign[16];
    unsigned long long seed, bank_seed;
    double val_fraction;
    int bank_size;
} manifest_header;

/* Reads a manifest's header and checks its sha256 line: 0, or -1 with err. */
int manifest_read_header(const char *path, manifest_header *h, char *err, size_t errlen);
/* Sets split, group and pattern of every record from the manifest; reports on
 * out the images that differ (absent here, absent there, other label).
 * Returns the number of differences, or -1 with err. */
long manifest_apply(dataset *d, groups *g, const pattern *bank, int nbank, const char *path, FILE *out, char *err,
                    size_t errlen);

#endif
