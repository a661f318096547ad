/* test_ops_threads.c: the whole network is bitwise identical at 1, 2 and 3
 * threads (ops_set_threads): two fopm-tiny training steps (outputs, losses,
 * every gradient, the BN running statistics they update), the fopm eval
 * forward, and one fopm training step. The per-op checks are in
 * test_ops_conv.c and test_ops_misc.c; this one guards the composition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../engine/model.h"
#include "../engine/net.h"
#include "../engine/ops.h"

enum { NT = 3 };

static float *randv(rng_t *r, size_t n, double lo, double hi)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * rng_uniform(r));
    return v;
}

typedef struct {
    float *grad, *logits, *params; /* params: after the steps (BN running statistics) */
    net_losses loss;
} step_out;

/* `steps` training steps of config `name` at batch n from the same weights, at threads 1..NT. */
static void train_at_threads(const char *name, int n, int steps, uint64_t seed)
{
    model_config cfg;
    model_params p;
    assert_int_equal(model_config_named(name, &cfg), 0);
    assert_int_equal(model_params_init(&p, &cfg), 0);
    model_params_init_weights(&p, seed);
    const int S = cfg.size, G = model_grid(&cfg);
    rng_t r;
    rng_seed(&r, seed, 1);
    float *x = randv(&r, (size_t)n * 3 * S * S, -1, 1), *occ_t = randv(&r, (size_t)n * G * G, 0, 1);
    float *heat_t = randv(&r, (size_t)n * MODEL_LANDMARKS * G * G, 0, 1), *p0 = malloc(p.total * sizeof(float));
    int *labels = malloc((size_t)n * sizeof(int));
    assert_true(p0 && labels);
    for (int i = 0; i < n; i++)
        labels[i] = (i * 5 + 3) % MODEL_CLASSES;
    memcpy(p0, p.data, p.total * sizeof(float));
    step_out o[NT];
    for (int t = 0; t < NT; t++) {
        ops_set_threads(t + 1);
        memcpy(p.data, p0, p.total * sizeof(float));
        net *nt = net_create(&p);
        assert_non_null(nt);
        o[t].grad = malloc(p.total * sizeof(float)), o[t].logits = malloc((size_t)n * MODEL_CLASSES * sizeof(float));
        o[t].params = malloc(p.total * sizeof(float));
        assert_true(o[t].grad && o[t].logits && o[t].params);
        for (int s = 0; s < steps; s++) {
            assert_int_equal(net_forward(nt, x, n, 1), 0);
            assert_int_equal(net_loss(nt, occ_t, heat_t, labels, &o[t].loss), 0);
            assert_int_equal(net_backward(nt, o[t].grad), 0);
        }
        memcpy(o[t].logits, net_logits(nt), (size_t)n * MODEL_CLASSES * sizeof(float));
        memcpy(o[t].params, p.data, p.total * sizeof(float));
        net_free(nt);
    }
    for (int t = 1; t < NT; t++) {
        assert_memory_equal(&o[0].loss, &o[t].loss, sizeof o[0].loss);
        assert_memory_equal(o[0].logits, o[t].logits, (size_t)n * MODEL_CLASSES * sizeof(float));
        assert_memory_equal(o[0].grad, o[t].grad, p.total * sizeof(float));
        assert_memory_equal(o[0].params, o[t].params, p.total * sizeof(float));
    }
    for (int t = 0; t < NT; t++)
        free(o[t].grad), free(o[t].logits), free(o[t].params);
    free(x), free(occ_t), free(heat_t), free(p0), free(labels);
    model_params_free(&p);
    ops_set_threads(0);
}

static void test_tiny_training(void **state)
{
    (void)state;
    train_at_threads("fopm-tiny", 16, 2, 5);
}

static void test_fopm_training(void **state)
{
    (void)state;
    train_at_threads("fopm", 2, 1, 6);
}

static void test_fopm_eval(void **state)
{
    (void)state;
    model_config cfg;
    model_params p;
    assert_int_equal(model_config_named("fopm", &cfg), 0);
    assert_int_equal(model_params_init(&p, &cfg), 0);
    model_params_init_weights(&p, 7);
    const int n = 2, S = cfg.size, G = model_grid(&cfg);
    rng_t r;
    rng_seed(&r, 7, 1);
    float *x = randv(&r, (size_t)n * 3 * S * S, -1, 1);
    size_t nl = (size_t)n * MODEL_CLASSES, no = (size_t)n * G * G, nh = (size_t)n * MODEL_LANDMARKS * G * G;
    float *out[NT];
    for (int t = 0; t < NT; t++) {
        ops_set_threads(t + 1);
        out[t] = malloc((nl + no + nh) * sizeof(float));
        assert_non_null(out[t]);
        assert_int_equal(model_forward_eval(&p, x, n, out[t], out[t] + nl, out[t] + nl + no), 0);
    }
    for (int t = 1; t < NT; t++)
        assert_memory_equal(out[0], out[t], (nl + no + nh) * sizeof(float));
    for (int t = 0; t < NT; t++)
        free(out[t]);
    free(x);
    model_params_free(&p);
    ops_set_threads(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_training),
        cmocka_unit_test(test_fopm_eval),
        cmocka_unit_test(test_fopm_training),
    };
    return cmocka_run_group_tests_name("ops_threads", tests, NULL, NULL);
}
