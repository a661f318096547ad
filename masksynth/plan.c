#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/strmap.h"
#include "../common/util.h"
#include "phash.h"

const char *const assign_mode_name[3] = {"identity", "pattern", "none"};

/* ---- split --------------------------------------------------------------- */

typedef struct {
    uint64_t key;
    long idx;
    const char *name;
} keyed;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(x->name, y->name);
}

void plan_split(dataset *d, double val_fraction, int val_official, uint64_t seed)
{
    for (long i = 0; i < d->n; i++) {
        record *r = &d->rec[i];
        r->split = r->status != ST_OK ? SPLIT_NONE : r->official;
        if (!val_official && r->split == SPLIT_VAL) r->split = SPLIT_TRAIN;  /* e.g. FER+ PublicTest joins train */
    }
    if (val_official) return;
    keyed *k = xmalloc(sizeof *k * (size_t)(d->n + 1));
    for (int c = 0; c < NCLASSES; c++) {
        long m = 0;
        for (long i = 0; i < d->n; i++)
            if (d->rec[i].split == SPLIT_TRAIN && d->rec[i].label == c)
                k[m++] = (keyed){seeded_hash(seed, "val", d->rec[i].name), i, d->rec[i].name};
        qsort(k, (size_t)m, sizeof *k, cmp_keyed);
        long take = (long)(val_fraction * (double)m + 0.5);  /* round half up: within one image of the share */
        for (long j = 0; j < take; j++) d->rec[k[j].idx].split = SPLIT_VAL;
    }
    free(k);
}

/* ---- identity groups ----------------------------------------------------- */

static long find_root(long *parent, long x)
{
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
}

static void unite(long *parent, long a, long b)
{
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a != b) parent[a > b ? a : b] = a < b ? a : b;  /* smaller index is the root: order-independent */
}

void plan_groups(dataset *d, int threshold, groups *g)
{
    long n = d->n;
    long *parent = xmalloc(sizeof *parent * (size_t)(n + 1));
    char *linked_by_csv = xcalloc((size_t)n + 1, 1), *linked = xcalloc((size_t)n + 1, 1);
    for (long i = 0; i < n; i++) parent[i] = i;
    strmap ids;
    strmap_init(&ids, 1024);
    for (long i = 0; i < n; i++) {
        if (!d->rec[i].identity) continue;
        long j = strmap_put(&ids, d->rec[i].identity, strlen(d->rec[i].identity), i);
        linked_by_csv[i] = linked[i] = 1;
        if (j >= 0) unite(parent, i, j);
    }
    strmap_free(&ids);
    if (threshold >= 0) {
        /* All pairs: 36k images are 6.4e8 popcounts, about a second. */
        for (long i = 0; i < n; i++) {
            if (d->rec[i].status != ST_OK) continue;
            uint64_t h = d->rec[i].phash;
            for (long j = i + 1; j < n; j++)
                if (d->rec[j].status == ST_OK && hamming64(h, d->rec[j].phash) <= threshold) {
                    unite(parent, i, j);
                    linked[i] = linked[j] = 1;
                }
        }
    }
    /* Number groups by their first member; singletons from phash are no group. */
    long *gid = xmalloc(sizeof *gid * (size_t)(n + 1)), *size = xcalloc((size_t)n + 1, sizeof *size);
    for (long i = 0; i < n; i++) size[find_root(parent, i)]++;
    memset(g, 0, sizeof *g);
    g->name = xmalloc(sizeof *g->name * (size_t)(n + 1));
    g->source = xmalloc(sizeof *g->source * (size_t)(n + 1));
    for (long i = 0; i < n; i++) gid[i] = -1;
    for (long i = 0; i < n; i++) {
        long root = find_root(parent, i);
        if (!linked[root] && size[root] == 1) continue;
        if (gid[root] < 0) {
            gid[root] = g->n;
            const char *idn = d->rec[root].identity;
            char buf[300];
            snprintf(buf, sizeof buf, "dup:%.200s", d->rec[root].name);
            g->name[g->n] = xstrdup(idn ? idn : buf);
            g->source[g->n] = linked_by_csv[root] ? "csv" : "phash";
            g->n++;
        }
        d->rec[i].group = gid[root];
    }
    free(parent);
    free(gid);
    free(size);
    free(linked);
    free(linked_by_csv);
}

void groups_free(groups *g)
{
    for (long i = 0; i < g->n; i++) free(g->name[i]);
    free(g->name);
    free(g->source);
    memset(g, 0, sizeof *g);
}

/* ---- pattern bank -------------------------------------------------------- */

pattern *pattern_bank(uint64_t seed, int count)
{
    static const char *const types[4] = {"surgical", "n95", "kn95", "cloth"};
    static const char *const textures[6] = {"plain", "pleats", "stripes", "checks", "dots", "motif"};
    /* Base colours people actually wear: surgical blues and greens, white, greys, black, and cloth colours. */
    static const unsigned base[12] = {0x8fb8de, 0x9fd3c7, 0xf2f2f2, 0xd9d9d9, 0x4a4a4a, 0x1c1c1c,
                                      0x2e4a7d, 0x7d2e3a, 0xc9a27e, 0x5b7f4b, 0xe8b4c8, 0x6c5b7b};
    pattern *bank = xcalloc((size_t)count, sizeof *bank);
    for (int i = 0; i < count; i++) {
        rng_t r;
        rng_seed(&r, seed, 0x70a77e40u + (uint64_t)i);
        pattern *p = &bank[i];
        p->type = types[rng_below(&r, 4)];
        double u = rng_uniform(&r);
        p->style = u < 0.7 ? "full" : u < 0.9 ? "below_nose" : "chin";
        p->texture = !strcmp(p->type, "surgical") ? (rng_uniform(&r) < 0.8 ? "pleats" : "plain")
                   : !strcmp(p->type, "cloth") ? textures[rng_below(&r, 6)]
                   : (rng_uniform(&r) < 0.8 ? "plain" : textures[2 + rng_below(&r, 4)]);
        unsigned c = base[rng_below(&r, 12)];
        int ch[3];
        for (int k = 0; k < 3; k++) {
            int v = (int)((c >> (16 - 8 * k)) & 0xff) + (int)rng_below(&r, 25) - 12;  /* +-12 jitter */
            ch[k] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
        snprintf(p->colour, sizeof p->colour, "#%02x%02x%02x", ch[0], ch[1], ch[2]);
        snprintf(p->params, sizeof p->params,
                 "{\"scale\": %.3f, \"angle\": %.1f, \"contrast\": %.3f, \"texture_seed\": %llu, \"ear_loops\": %s}",
                 0.5 + rng_uniform(&r), -30 + 60 * rng_uniform(&r), 0.1 + 0.3 * rng_uniform(&r),
                 (unsigned long long)(rng_next(&r) >> 40), rng_uniform(&r) < 0.7 ? "true" : "false");
        snprintf(p->stable_id, sizeof p->stable_id, "b%llu-%02d-%s-%s-%s", (unsigned long long)seed, i, p->type,
                 p->style, p->texture);
    }
    return bank;
}

/* ---- assignment ---------------------------------------------------------- */

static int test_side(const record *r) { return r->split == SPLIT_TEST; }

/* Patterns ordered by a hash of (seed, tag, stable id): a seeded permutation. */
static void permute(const pattern *bank, int n, uint64_t seed, const char *tag, int *out)
{
    keyed *k = xmalloc(sizeof *k * (size_t)n);
    for (int i = 0; i < n; i++) k[i] = (keyed){seeded_hash(seed, tag, bank[i].stable_id), i, bank[i].stable_id};
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    for (int i = 0; i < n; i++) out[i] = (int)k[i].idx;
    free(k);
}

void plan_assign(dataset *d, const groups *g, const pattern *bank, int nbank, enum assign_mode mode, uint64_t seed)
{
    int *perm = xmalloc(sizeof *perm * (size_t)nbank);
    /* Which groups have images on both sides (training = train + val, and test). */
    char *sides = xcalloc((size_t)g->n + 1, 1);
    for (long i = 0; i < d->n; i++)
        if (d->rec[i].group >= 0 && d->rec[i].split != SPLIT_NONE) sides[d->rec[i].group] |= test_side(&d->rec[i]) ? 2 : 1;
    int test_count = nbank / 4 > 0 ? nbank / 4 : 1;  /* pattern mode: a quarter of the bank is test-only */
    if (mode == ASSIGN_PATTERN) permute(bank, nbank, seed, "test-patterns", perm);
    for (long i = 0; i < d->n; i++) {
        record *r = &d->rec[i];
        if (r->split == SPLIT_NONE) continue;
        uint64_t h = seeded_hash(seed, "pattern", r->name);
        if (mode == ASSIGN_NONE) {
            r->pattern = (int)(h % (uint64_t)nbank);
        } else if (mode == ASSIGN_PATTERN) {
            r->pattern = test_side(r) ? perm[h % (uint64_t)test_count]
                                      : perm[test_count + (int)(h % (uint64_t)(nbank - test_count))];
        } else if (r->group >= 0 && sides[r->group] == 3) {
            /* A group seen on both sides: its own split of the bank, half per side. */
            permute(bank, nbank, seed, g->name[r->group], perm);
            int half = nbank / 2;
            r->pattern = test_side(r) ? perm[half + (int)(h % (uint64_t)(nbank - half))] : perm[h % (uint64_t)half];
        } else {
            r->pattern = (int)(h % (uint64_t)nbank);
        }
    }
    free(sides);
    free(perm);
}
