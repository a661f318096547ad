/* store.h: writing an ingested, split and assigned dataset to the database in
 * one transaction (an interrupted init leaves nothing behind), and the queries
 * behind verify, audit and manifest. */
#ifndef MS_STORE_H
#define MS_STORE_H

#include <sqlite3.h>

#include "../db/db.h"
#include <stdio.h>

#include "dataset.h"
#include "plan.h"

typedef struct {
    uint64_t seed, bank_seed;
    double val_fraction;     /* 0 with val_official */
    int val_official;
    enum assign_mode assign;
    int bank_size, phash_threshold, allow_partial;
    const char *protocol_json;  /* the protocol report, JSON */
    const char *manifest;       /* manifest file the split came from, or NULL */
    const char *argv_json;
} init_settings;

int store_dataset(sqlite3 *db, const dataset *d, const groups *g, const pattern *bank, const init_settings *s,
                  int replace, char *err, size_t errlen);

/* Dataset id by name (or the only dataset when name is NULL); -1 with err. */
long store_find_dataset(sqlite3 *db, const char *name, char *err, size_t errlen);

/* Prints violations of the assignment invariant; returns their count, -1 on error. */
long store_verify(sqlite3 *db, long dataset_id, FILE *out, char *err, size_t errlen);
/* Prints identity groups spanning training and test; returns their count. */
long store_audit(sqlite3 *db, long dataset_id, FILE *out, char *err, size_t errlen);
/* Writes the manifest CSV with its checksum line (atomically). */
int store_manifest(sqlite3 *db, long dataset_id, const char *path, char *err, size_t errlen);


#endif
