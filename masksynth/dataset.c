#include "dataset.h"

#include <stdlib.h>
#include <string.h>

#include "../common/strmap.h"
#include "../common/util.h"

const char *const class_name[NCLASSES] = {"surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"};
const char *const split_name[3] = {"train", "val", "test"};
const char *const status_name[3] = {"ok", "missing", "bad_image"};

record *dataset_add(dataset *d, const char *name, const char *rel_path, int label, int official, long line)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->rec = xrealloc(d->rec, sizeof *d->rec * (size_t)d->cap);
    }
    record *r = &d->rec[d->n++];
    memset(r, 0, sizeof *r);
    r->name = xstrdup(name);
    r->rel_path = xstrdup(rel_path);
    r->label = label;
    r->official = official;
    r->line = line;
    r->row = -1;
    r->group = -1;
    r->split = SPLIT_NONE;
    r->pattern = -1;
    return r;
}

void dataset_drop(dataset *d, const char *name, const char *reason, const char *file, long line)
{
    if (d->ndrop == d->capdrop) {
        d->capdrop = d->capdrop ? d->capdrop * 2 : 256;
        d->drop = xrealloc(d->drop, sizeof *d->drop * (size_t)d->capdrop);
    }
    d->drop[d->ndrop++] = (dropped){xstrdup(name), xstrdup(reason), xstrdup(file), line};
}

void dataset_free(dataset *d)
{
    for (long i = 0; i < d->n; i++) {
        free(d->rec[i].name);
        free(d->rec[i].rel_path);
        free(d->rec[i].message);
    }
    for (long i = 0; i < d->ndrop; i++) {
        free(d->drop[i].name);
        free(d->drop[i].reason);
        free(d->drop[i].file);
    }
    for (long i = 0; i < d->nextra; i++) free(d->extra[i]);
    free(d->extra);
    free(d->rec);
    free(d->drop);
    free(d->root);
    free(d->name);
    free(d->pixels_csv);
    free(d->identity_csv);
    memset(d, 0, sizeof *d);
}

int class_index(const char *name)
{
    for (int i = 0; i < NCLASSES; i++)
        if (!strcmp(class_name[i], name)) return i;
    return -1;
}

uint64_t seeded_hash(uint64_t seed, const char *tag, const char *name)
{
    uint64_t h = hash_bytes(tag, strlen(tag), seed);
    return hash_bytes(name, strlen(name), h);
}
