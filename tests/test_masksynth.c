/* Unit tests of masksynth's planning: FER+'s majority rule, the stratified
 * validation split, identity-disjoint assignment as a property over random
 * groupings, the pattern bank, and perceptual hashes of near duplicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/util.h"
#include "../masksynth/dataset.h"
#include "../masksynth/ingest.h"
#include "../masksynth/phash.h"
#include "../masksynth/plan.h"

static void test_majority_rule(void **state)
{
    (void)state;
    /* neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF */
    assert_int_equal(ferplus_majority((int[10]){4, 0, 0, 1, 3, 2, 0, 0, 0, 0}), 8);  /* 4 of 9 after dropping the single vote */
    assert_int_equal(ferplus_majority((int[10]){6, 0, 1, 1, 0, 0, 0, 0, 2, 0}), 0);  /* 6 of 8 */
    assert_int_equal(ferplus_majority((int[10]){0, 10, 0, 0, 0, 0, 0, 0, 0, 0}), 1);
    assert_int_equal(ferplus_majority((int[10]){0, 0, 0, 0, 0, 0, 0, 0, 0, 10}), 9);  /* not a face */
    assert_int_equal(ferplus_majority((int[10]){2, 0, 0, 0, 0, 0, 0, 6, 1, 1}), 7);  /* contempt */
    assert_int_equal(ferplus_majority((int[10]){5, 5, 0, 0, 0, 0, 0, 0, 0, 0}), 8);  /* a tie is no majority */
    assert_int_equal(ferplus_majority((int[10]){1, 1, 1, 1, 1, 1, 1, 1, 1, 0}), 8);  /* only single votes */
    assert_int_equal(ferplus_majority((int[10]){0, 0, 5, 0, 0, 0, 0, 0, 0, 4}), 2);  /* a 9-vote row */
}

/* A random dataset: n images, labels skewed, official train/test, groups. */
static void random_dataset(dataset *d, long n, uint64_t seed, int ngroups)
{
    rng_t g;
    rng_seed(&g, seed, 1);
    memset(d, 0, sizeof *d);
    d->kind = "csv";
    for (long i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "img%06ld.png", i);
        int label = (int)(rng_uniform(&g) < 0.4 ? 3 : rng_below(&g, NCLASSES));
        record *r = dataset_add(d, name, name, label, rng_uniform(&g) < 0.8 ? SPLIT_TRAIN : SPLIT_TEST, i + 1);
        r->status = ST_OK;
        r->phash = rng_next(&g);
        if (ngroups) {
            static char ids[64][16];
            int k = (int)rng_below(&g, (uint64_t)ngroups);
            snprintf(ids[k], sizeof ids[k], "person%02d", k);
            r->identity = ids[k];
        }
    }
}

static void test_split_stratified_and_deterministic(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        dataset a, b;
        random_dataset(&a, 3000 + (long)seed * 137, seed, 0);
        random_dataset(&b, 3000 + (long)seed * 137, seed, 0);
        plan_split(&a, 0.1, 0, 42);
        /* Same split whatever the order of the records: reverse b first. */
        for (long i = 0, j = b.n - 1; i < j; i++, j--) {
            record t = b.rec[i];
            b.rec[i] = b.rec[j];
            b.rec[j] = t;
        }
        plan_split(&b, 0.1, 0, 42);
        for (long i = 0; i < a.n; i++) assert_int_equal(a.rec[i].split, b.rec[a.n - 1 - i].split);
        long train[NCLASSES] = {0}, val[NCLASSES] = {0};
        for (long i = 0; i < a.n; i++) {
            if (a.rec[i].official != SPLIT_TRAIN) {
                assert_int_equal(a.rec[i].split, SPLIT_TEST);
                continue;
            }
            (a.rec[i].split == SPLIT_VAL ? val : train)[a.rec[i].label]++;
        }
        for (int c = 0; c < NCLASSES; c++) {
            double want = 0.1 * (double)(train[c] + val[c]);
            assert_true(fabs((double)val[c] - want) <= 1.0);  /* within one image of 10% */
        }
        dataset c2;
        random_dataset(&c2, a.n, seed, 0);
        plan_split(&c2, 0.1, 0, 43);  /* another seed, another split */
        long differ = 0;
        for (long i = 0; i < a.n; i++) differ += a.rec[i].split != c2.rec[i].split;
        assert_true(differ > 0);
        dataset_free(&a);
        dataset_free(&b);
        dataset_free(&c2);
    }
}

static void test_identity_disjoint_property(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        dataset d;
        int ngroups = 2 + (int)(seed % 60);
        random_dataset(&d, 200 + (long)(seed * 53 % 900), seed, ngroups);
        plan_split(&d, 0.1, 0, seed);
        groups g;
        plan_groups(&d, -1, &g);
        int nbank = 4 + (int)(seed % 50);
        pattern *bank = pattern_bank(seed, nbank);
        for (int mode = 0; mode < 2; mode++) {
            plan_assign(&d, &g, bank, nbank, (enum assign_mode)mode, seed);
            /* used[g][p] bit 1: training side, bit 2: test side */
            unsigned char *used = calloc((size_t)g.n * (size_t)nbank, 1), *pat = calloc((size_t)nbank, 1);
            for (long i = 0; i < d.n; i++) {
                const record *r = &d.rec[i];
                assert_true(r->pattern >= 0 && r->pattern < nbank);
                int side = r->split == SPLIT_TEST ? 2 : 1;
                pat[r->pattern] |= (unsigned char)side;
                if (r->group >= 0) used[r->group * nbank + r->pattern] |= (unsigned char)side;
            }
            for (long k = 0; k < g.n * nbank; k++)
                if (mode == ASSIGN_IDENTITY) assert_int_not_equal(used[k], 3);
            for (int p = 0; p < nbank; p++)
                if (mode == ASSIGN_PATTERN) assert_int_not_equal(pat[p], 3);
            free(used);
            free(pat);
        }
        free(bank);
        groups_free(&g);
        dataset_free(&d);
    }
}

static void test_pattern_bank(void **state)
{
    (void)state;
    pattern *a = pattern_bank(42, 48), *b = pattern_bank(42, 48), *c = pattern_bank(7, 48);
    assert_memory_equal(a, b, sizeof *a * 48);
    int same = 0, types[4] = {0};
    for (int i = 0; i < 48; i++) {
        same += !strcmp(a[i].colour, c[i].colour) && a[i].type == c[i].type;
        for (int j = 0; j < i; j++) assert_string_not_equal(a[i].stable_id, a[j].stable_id);
        types[!strcmp(a[i].type, "surgical") ? 0 : !strcmp(a[i].type, "n95") ? 1 : !strcmp(a[i].type, "kn95") ? 2 : 3]++;
    }
    assert_true(same < 48);
    for (int t = 0; t < 4; t++) assert_true(types[t] > 0);
    free(a);
    free(b);
    free(c);
}

static void test_phash_near_duplicates(void **state)
{
    (void)state;
    image a, b, c;
    assert_int_equal(image_alloc(&a, 48, 48, 1), 0);
    assert_int_equal(image_alloc(&b, 48, 48, 1), 0);
    assert_int_equal(image_alloc(&c, 48, 48, 1), 0);
    rng_t g;
    rng_seed(&g, 3, 0);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 48; x++) {
            int v = 128 + (int)(50 * sin(x / 5.0) * cos(y / 7.0) + 30 * sin(x / 2.3 + y / 9.0) + 25 * cos(y / 3.1 - x / 11.0));
            a.px[y * 48 + x] = (uint8_t)v;
            int noisy = v + (int)rng_below(&g, 7) - 3;  /* small noise: a near duplicate */
            b.px[y * 48 + x] = (uint8_t)(noisy < 0 ? 0 : noisy > 255 ? 255 : noisy);
            c.px[y * 48 + x] = (uint8_t)(128 + (int)(90 * cos(x / 3.0 + y / 4.0)));
        }
    uint64_t ha = phash_image(&a), hb = phash_image(&b), hc = phash_image(&c);
    print_message("# distances: near duplicate %d, other image %d\n", hamming64(ha, hb), hamming64(ha, hc));
    assert_true(hamming64(ha, hb) <= 4);
    assert_true(hamming64(ha, hc) > 12);
    image_free(&a);
    image_free(&b);
    image_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_majority_rule),
        cmocka_unit_test(test_split_stratified_and_deterministic),
        cmocka_unit_test(test_identity_disjoint_property),
        cmocka_unit_test(test_pattern_bank),
        cmocka_unit_test(test_phash_near_duplicates),
    };
    return cmocka_run_group_tests_name("masksynth", tests, NULL, NULL);
}
