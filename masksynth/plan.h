/* plan.h: the decisions made after ingestion, all pure functions of the
 * dataset and a seed: the benchmark split, identity groups, the mask pattern
 * bank and which pattern each image gets (MASKS.md, "Patterns and their
 * assignment"). Every per-image draw comes from seeded_hash(seed, name). */
#ifndef MS_PLAN_H
#define MS_PLAN_H

#include <stdint.h>

#include "dataset.h"

/* Validation = val_fraction of each class of official train (the images with
 * the smallest seeded hashes), or the official validation set. */
void plan_split(dataset *d, double val_fraction, int val_official, uint64_t seed);

/* Identity groups: images sharing an --identities name, or whose perceptual
 * hashes are within threshold bits (union-find). threshold < 0 disables the
 * near-duplicate search. Returns the number of groups; names[g] is the
 * group's name (identity, or "dup:<first image>"), source[g] 'csv'/'phash'. */
typedef struct {
    long n;
    char **name;
    const char **source;
} groups;
void plan_groups(dataset *d, int threshold, groups *g);
void groups_free(groups *g);

typedef struct {
    char stable_id[64];
    const char *type, *style, *texture;
    char colour[8];
    char params[160];  /* JSON */
} pattern;

/* The bank: count patterns drawn from seed (stable ids "b<seed>-NN-type-style-texture"). */
pattern *pattern_bank(uint64_t seed, int count);

enum assign_mode { ASSIGN_IDENTITY, ASSIGN_PATTERN, ASSIGN_NONE };
extern const char *const assign_mode_name[3];
void plan_assign(dataset *d, const groups *g, const pattern *bank, int nbank, enum assign_mode mode, uint64_t seed);

#endif
