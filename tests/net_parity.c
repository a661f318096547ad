/* net_parity: the whole network on a backend B against the CPU reference,
 * in TAP. With the same weights and inputs:
 *   1. an eval forward (logits, occ, heat),
 *   2. a training forward + losses + backward (outputs, the three losses,
 *      every parameter gradient, the updated BN running statistics),
 *   3. STEPS AdamW training steps on seeded batches (every loss of every
 *      step, every tensor at the end), with AdamW's epsilon at STEP_EPS
 *      (1e-4) instead of the paper's 1e-8: Adam moves each weight by about
 *      lr * g / (|g| + eps), so an element whose gradient is a cancelled
 *      sum (|g| ~ 1e-9, its value set by rounding) takes a step set by that
 *      rounding; two correct backends that sum in different orders then
 *      part by a sizeable fraction of lr on such elements (seen at batch 2:
 *      g -3.1e-9 summed in double against 8.4e-10 in float on the CPU,
 *      weights 6e-4 apart after one step), and the perturbed CPU run, which
 *      sums in the CPU's order, does not show it. With eps 1e-4 every step
 *      is a smooth function of g. AdamW at the paper's epsilon is checked
 *      op by op (test_backend) and against PyTorch (test_train.py),
 *   4. with --deterministic (or FB_TEST_DETERMINISTIC=1): the same STEPS
 *      again on a fresh net of B, which must be bit-identical.
 *
 * Metric: NMSE = sum (b - r)^2 / sum r^2 per tensor (r: the CPU).
 * Bound per tensor: max(FLOOR, 100 x COND), where COND is the NMSE the CPU
 * itself shows when the weights and the input are perturbed by a random
 * relative u (|u| <= the precision's unit roundoff: 2^-24 fp32, 2^-11
 * tf32, 2^-8 bf16). A well-conditioned tensor is held to FLOOR (fp32 1e-10,
 * tf32 1e-6, bf16 1e-4); an ill-conditioned one (batch norm over few values
 * after a global pool, a ReLU that flips) may be as far from the CPU as 10x
 * (in RMS) what rounding its inputs would do. Each line says which applied.
 *
 *   FB_TEST_DEVICE=cuda FB_TEST_PRECISION=fp32 build/tests/net_parity \
 *       [--config fopm-tiny|fopm] [--batch N] [--steps N] [--deterministic]
 * Without FB_TEST_DEVICE, B is a second CPU backend (CI: a check of the
 * harness; every NMSE is then 0). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../engine/backend.h"
#include "../engine/net.h"
#include "../engine/optim.h"

#define STEP_EPS 1e-4 /* AdamW epsilon of the steps (3. above) */

static int ntest, nfail;

static void tap(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", ok ? "ok" : "not ok", ++ntest);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!ok) nfail++;
}

static double nmse(const float *b, const float *r, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)b[i] - (double)r[i];
        num += d * d;
        den += (double)r[i] * (double)r[i];
    }
    return den > 0 ? num / den : num;
}

static double g_floor, g_unit;
static int g_exact; /* B computes exactly as the CPU (cpu-staged): every tensor must be equal */

/* One tensor: B against the CPU, with the CPU's perturbed run as yardstick. */
static int check(const char *what, const char *name, const float *b, const float *r, const float *rp, size_t n)
{
    double e = nmse(b, r, n), cond = nmse(rp, r, n), bound = g_exact ? 0.0 : fmax(g_floor, 100.0 * cond);
    int ok = e <= bound && !isnan(e);
    printf("# %s %-34s nmse %.3g  cond %.3g  bound %.3g (%s)%s\n", what, name, e, cond, bound,
           g_exact ? "exact" : bound == g_floor ? "floor" : "conditioning", ok ? "" : "  FAIL");
    if (!ok && n) { /* where: the element farthest from the CPU */
        size_t w = 0;
        for (size_t i = 1; i < n; i++)
            if (!(fabs((double)b[i] - r[i]) <= fabs((double)b[w] - r[w]))) w = i;
        printf("#   farthest [%zu of %zu]: B %.9g  CPU %.9g  perturbed CPU %.9g\n", w, n, b[w], r[w], rp[w]);
    }
    return ok;
}

typedef struct {
    float *logits, *occ, *heat, L[3];
    float *grad, *weights; /* after the step(s) */
} result;

typedef struct {
    model_config cfg;
    int n, steps;
    float *x, *ot, *ht; /* per step: n samples each */
    int *lab;
} workload;

static void workload_init(workload *w, const model_config *cfg, int n, int steps)
{
    const int S = cfg->size, G = model_grid(cfg);
    size_t nx = (size_t)n * 3 * S * S, no = (size_t)n * G * G, nh = no * MODEL_LANDMARKS;
    int k = steps + 1;
    w->cfg = *cfg, w->n = n, w->steps = steps;
    w->x = malloc(k * nx * sizeof(float)), w->ot = malloc(k * no * sizeof(float));
    w->ht = malloc(k * nh * sizeof(float)), w->lab = malloc((size_t)k * n * sizeof(int));
    if (!w->x || !w->ot || !w->ht || !w->lab) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    rng_t r;
    rng_seed(&r, 7, 0);
    for (size_t i = 0; i < k * nx; i++) w->x[i] = (float)(rng_uniform(&r) * 4 - 2);
    for (size_t i = 0; i < k * no; i++) w->ot[i] = (float)rng_uniform(&r);
    for (size_t i = 0; i < k * nh; i++) w->ht[i] = (float)rng_uniform(&r);
    for (int i = 0; i < k * n; i++) w->lab[i] = (int)rng_below(&r, MODEL_CLASSES);
}

static size_t nx_of(const workload *w) { return (size_t)w->n * 3 * w->cfg.size * w->cfg.size; }
static size_t no_of(const workload *w) { return (size_t)w->n * model_grid(&w->cfg) * model_grid(&w->cfg); }

/* Multiplies every value by 1 + u, u uniform in [-unit, unit]. */
static void perturb(float *a, size_t n, double unit, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++) a[i] *= (float)(1.0 + unit * (2.0 * rng_uniform(&r) - 1.0));
}

static float *dup(const float *a, size_t n)
{
    float *d = malloc(n * sizeof *d);
    if (!d) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    memcpy(d, a, n * sizeof *d);
    return d;
}

/* Runs the three phases on be (NULL: the CPU) from weights w0; with
 * unit > 0 the weights and inputs are perturbed first. 0 or -1. */
static int run_all(backend *be, const workload *wl, const model_params *p0, double unit, result out[3])
{
    model_params p;
    if (model_params_init(&p, &wl->cfg)) return -1;
    memcpy(p.data, p0->data, p.total * sizeof(float));
    size_t nx = nx_of(wl), no = no_of(wl), nh = no * MODEL_LANDMARKS;
    float *x = dup(wl->x, nx * (wl->steps + 1));
    if (unit > 0) {
        perturb(p.data, p.total, unit, 11);
        perturb(x, nx * (wl->steps + 1), unit, 12);
    }
    int rc = -1;
    net *t = net_create_on(&p, be);
    if (!t) goto done;
    /* 1. eval forward */
    if (net_forward(t, x, wl->n, 0)) goto done;
    out[0].logits = dup(net_logits(t), (size_t)wl->n * MODEL_CLASSES);
    out[0].occ = dup(net_occ(t), no);
    out[0].heat = dup(net_heat(t), nh);
    /* 2. one training forward + backward (step 0's batch), no update */
    net_losses L;
    out[1].grad = malloc(p.total * sizeof(float));
    if (!out[1].grad || net_forward(t, x, wl->n, 1) || net_loss(t, wl->ot, wl->ht, wl->lab, &L) ||
        net_backward(t, out[1].grad) || net_params_get(t))
        goto done;
    out[1].logits = dup(net_logits(t), (size_t)wl->n * MODEL_CLASSES);
    out[1].occ = dup(net_occ(t), no);
    out[1].heat = dup(net_heat(t), nh);
    out[1].L[0] = L.lp, out[1].L[1] = L.lm, out[1].L[2] = L.ld;
    out[1].weights = dup(p.data, p.total); /* running statistics updated by the forward */
    /* 3. steps: batch s+1 at step s; losses of every step kept in grad (3 per step) */
    adamw_config ac = adamw_paper();
    ac.eps = STEP_EPS;
    out[2].grad = malloc((size_t)3 * wl->steps * sizeof(float));
    if (!out[2].grad) goto done;
    for (int s = 0; s < wl->steps; s++) {
        size_t k = (size_t)s + 1;
        if (net_forward(t, x + k * nx, wl->n, 1) ||
            net_loss(t, wl->ot + k * no, wl->ht + k * nh, wl->lab + k * wl->n, &L) || net_backward(t, NULL) ||
            net_step(t, s + 1, ac.lr, &ac))
            goto done;
        out[2].grad[3 * s] = L.lp, out[2].grad[3 * s + 1] = L.lm, out[2].grad[3 * s + 2] = L.ld;
    }
    if (net_params_get(t)) goto done;
    out[2].weights = dup(p.data, p.total);
    rc = 0;
done:
    if (rc) printf("# run on %s failed: %s\n", be ? be->desc : "cpu", t ? net_error(t) : "net_create failed");
    net_free(t);
    free(x);
    model_params_free(&p);
    return rc;
}

/* Graphs (net.h): one net with graphs and one without run the same
 * schedule (eval forwards that repeat, a smaller batch, training steps with
 * a validation forward between them, as ferbench train does) and must agree
 * bit for bit after every pass; on a backend with graphs, some passes must
 * have been recorded and launched. */
static int graphs_check(backend *be, const workload *wl, const model_params *p0, char *msg, size_t msglen)
{
    const int n = wl->n, m = n > 1 ? n - 1 : 1;
    const size_t nx = nx_of(wl), no = no_of(wl), nh = no * MODEL_LANDMARKS, total = p0->total;
    model_params pa, pb;
    model_params_init(&pa, &wl->cfg), model_params_init(&pb, &wl->cfg);
    memcpy(pa.data, p0->data, total * sizeof(float)), memcpy(pb.data, p0->data, total * sizeof(float));
    net *ta = net_create_on(&pa, be), *tb = net_create_on(&pb, be);
    float *ga = malloc(total * sizeof(float)), *gb = malloc(total * sizeof(float));
    adamw_config ac = adamw_paper();
    ac.eps = STEP_EPS;
    int same = ta && tb && ga && gb, passes = 0;
    if (tb) net_graphs(tb, 0);
#define BOTH(call_a, call_b) (same = same && !(call_a) && !(call_b))
#define EQUAL(a, b, count) (same = same && (a) && (b) && !memcmp((a), (b), (count) * sizeof(float)))
    /* eval: x0, x1, x0, x1 at n; x2 at m; x0, x1, x2 at n */
    const int ev_x[] = {0, 1, 0, 1, 2, 0, 1, 2}, ev_n[] = {n, n, n, n, m, n, n, n};
    for (int k = 0; k < 8 && same; k++, passes++) {
        int b = ev_n[k];
        const float *x = wl->x + (size_t)(ev_x[k] % (wl->steps + 1)) * nx;
        BOTH(net_forward(ta, x, b, 0), net_forward(tb, x, b, 0));
        EQUAL(net_logits(ta), net_logits(tb), (size_t)b * MODEL_CLASSES);
        EQUAL(net_occ(ta), net_occ(tb), no / n * b);
        EQUAL(net_heat(ta), net_heat(tb), nh / n * b);
    }
    /* the plans dropped and made again: new buffers, likely at the old
     * addresses (the same print), so only the memory epoch tells that the
     * recorded graph is stale */
    for (int k = 0; k < 3 && same; k++, passes++) {
        if (k == 0) { /* ta's new plan first: then the blocks it just freed are the latest */
            net_memory_plan(ta, 0), net_memory_plan(ta, 1);
            same = same && !net_forward(ta, wl->x, n, 0);
            net_memory_plan(tb, 0), net_memory_plan(tb, 1);
            same = same && !net_forward(tb, wl->x, n, 0);
        } else {
            BOTH(net_forward(ta, wl->x, n, 0), net_forward(tb, wl->x, n, 0));
        }
        EQUAL(net_logits(ta), net_logits(tb), (size_t)n * MODEL_CLASSES);
        EQUAL(net_heat(ta), net_heat(tb), nh);
    }
    /* training: 7 steps on the workload's batches, a validation forward
     * after the second (the two nets share the backend, so one's
     * allocations also end the other's repeats: passes repeat from the
     * fifth step on) */
    for (int s = 0; s < 7 && same; s++, passes++) {
        size_t k = (size_t)(s % (wl->steps + 1));
        net_losses La, Lb;
        BOTH(net_forward(ta, wl->x + k * nx, n, 1), net_forward(tb, wl->x + k * nx, n, 1));
        BOTH(net_loss(ta, wl->ot + k * no, wl->ht + k * nh, wl->lab + k * n, &La),
             net_loss(tb, wl->ot + k * no, wl->ht + k * nh, wl->lab + k * n, &Lb));
        same = same && La.lp == Lb.lp && La.lm == Lb.lm && La.ld == Lb.ld;
        BOTH(net_backward(ta, ga), net_backward(tb, gb));
        EQUAL(ga, gb, total);
        BOTH(net_step(ta, s + 1, ac.lr, &ac), net_step(tb, s + 1, ac.lr, &ac));
        if (s == 1) {
            BOTH(net_forward(ta, wl->x, m, 0), net_forward(tb, wl->x, m, 0));
            EQUAL(net_logits(ta), net_logits(tb), (size_t)m * MODEL_CLASSES);
        }
    }
    BOTH(net_params_get(ta), net_params_get(tb));
    EQUAL(pa.data, pb.data, total);
#undef BOTH
#undef EQUAL
    long rec = 0, launched = 0;
    if (ta) net_graph_counts(ta, &rec, &launched);
    const char *st = ta ? net_graphs_state(ta) : "no net";
    int used = !strcmp(st, "none") || (rec >= 3 && launched > rec); /* eval, training forward, backward */
    snprintf(msg, msglen, "%s after %d passes; graphs %s, %ld recorded, %ld launched", same ? "equal" : "DIFFERENT",
             passes, st, rec, launched);
    net_free(ta), net_free(tb);
    free(ga), free(gb);
    model_params_free(&pa), model_params_free(&pb);
    return same && used;
}

static void result_free(result r[3])
{
    for (int i = 0; i < 3; i++) free(r[i].logits), free(r[i].occ), free(r[i].heat), free(r[i].grad), free(r[i].weights);
}

/* Every tensor of the parameter table in flat buffers b, r, rp;
 * `only_trainable` selects gradients (1) or running statistics (2) or all (0). */
static int check_table(const char *what, const model_params *p, const float *b, const float *r, const float *rp,
                       int select, int *count)
{
    int ok = 1;
    *count = 0;
    for (int e = 0; e < p->n; e++) {
        const param_entry *pe = &p->entries[e];
        if ((select == 1 && !pe->trainable) || (select == 2 && pe->trainable)) continue;
        ok &= check(what, pe->name, b + pe->offset, r + pe->offset, rp + pe->offset, pe->numel);
        (*count)++;
    }
    return ok;
}

int main(int argc, char **argv)
{
    const char *cname = "fopm-tiny";
    int n = 4, steps = 10, det = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) cname = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--deterministic")) det = 1;
        else {
            fprintf(stderr, "usage: net_parity [--config C] [--batch N] [--steps N] [--deterministic]\n");
            return 2;
        }
    }
    const char *dev = getenv("FB_TEST_DEVICE"), *prec = getenv("FB_TEST_PRECISION");
    const char *de = getenv("FB_TEST_DETERMINISTIC");
    if (de && !strcmp(de, "1")) det = 1;
    backend_options o = {0};
    o.deterministic = det;
    if (prec && precision_parse(prec, &o.prec)) {
        printf("Bail out! FB_TEST_PRECISION=%s: expected fp32, tf32 or bf16\n", prec);
        return 1;
    }
    model_config cfg;
    if (model_config_named(cname, &cfg) || n < 1 || steps < 1) {
        printf("Bail out! bad --config/--batch/--steps\n");
        return 1;
    }
    printf("1..%d\n", det ? 13 : 12);
    char err[512];
    backend *be = backend_open(dev && *dev ? dev : "cpu", &o, err, sizeof err);
    if (!be) {
        printf("Bail out! %s\n", err);
        return 1;
    }
    g_unit = o.prec == PREC_BF16 ? ldexp(1, -7) : o.prec == PREC_TF32 ? ldexp(1, -10) : ldexp(1, -22);
    g_floor = o.prec == PREC_BF16 ? 1e-4 : o.prec == PREC_TF32 ? 1e-6 : 1e-10;
    g_exact = strcmp(be->name, "cpu-staged") == 0;
    printf("# B = %s; config %s, batch %d, %d steps; floor %.0e, perturbation %.3g\n", be->desc, cname, n, steps,
           g_floor, g_unit);

    model_params p0;
    model_params_init(&p0, &cfg);
    model_params_init_weights(&p0, 1);
    workload wl;
    workload_init(&wl, &cfg, n, steps);
    result rb[3] = {0}, rr[3] = {0}, rp[3] = {0};
    int okb = run_all(be, &wl, &p0, 0, rb) == 0;
    int okr = run_all(NULL, &wl, &p0, 0, rr) == 0;
    int okp = run_all(NULL, &wl, &p0, g_unit, rp) == 0;
    tap(okb && okr && okp, "all runs completed (B, CPU, perturbed CPU)");
    if (!(okb && okr && okp)) {
        printf("Bail out! a run failed\n");
        return 1;
    }
    size_t nl = (size_t)n * MODEL_CLASSES, no = no_of(&wl), nh = no * MODEL_LANDMARKS;
    int ok = check("eval", "logits", rb[0].logits, rr[0].logits, rp[0].logits, nl) &
             check("eval", "occ", rb[0].occ, rr[0].occ, rp[0].occ, no) &
             check("eval", "heat", rb[0].heat, rr[0].heat, rp[0].heat, nh);
    tap(ok, "eval forward: logits, occ, heat");
    ok = check("train", "logits", rb[1].logits, rr[1].logits, rp[1].logits, nl) &
         check("train", "occ", rb[1].occ, rr[1].occ, rp[1].occ, no) &
         check("train", "heat", rb[1].heat, rr[1].heat, rp[1].heat, nh);
    static const char *ln[3] = {"Lp", "Lm", "Ld"};
    for (int k = 0; k < 3; k++) ok &= check("train", ln[k], &rb[1].L[k], &rr[1].L[k], &rp[1].L[k], 1);
    tap(ok, "training forward: outputs and the three losses");
    int cnt;
    ok = check_table("grad", &p0, rb[1].grad, rr[1].grad, rp[1].grad, 1, &cnt);
    tap(ok, "backward: all %d parameter gradients", cnt);
    ok = check_table("stats", &p0, rb[1].weights, rr[1].weights, rp[1].weights, 2, &cnt);
    tap(ok, "training forward: all %d running statistics", cnt);
    ok = check("steps", "losses (Lp, Lm, Ld per step)", rb[2].grad, rr[2].grad, rp[2].grad, (size_t)3 * steps);
    for (int s = 0; s < steps; s++)
        printf("#   step %2d  B Lp %.7g Lm %.7g Ld %.7g   CPU Lp %.7g Lm %.7g Ld %.7g\n", s + 1, rb[2].grad[3 * s],
               rb[2].grad[3 * s + 1], rb[2].grad[3 * s + 2], rr[2].grad[3 * s], rr[2].grad[3 * s + 1],
               rr[2].grad[3 * s + 2]);
    tap(ok, "%d AdamW steps: the losses of every step", steps);
    ok = check_table("steps", &p0, rb[2].weights, rr[2].weights, rp[2].weights, 0, &cnt);
    tap(ok, "%d AdamW steps: all %d tensors at the end", steps, cnt);
    if (det) {
        result r2[3] = {0};
        int same = run_all(be, &wl, &p0, 0, r2) == 0 &&
                   !memcmp(r2[2].weights, rb[2].weights, p0.total * sizeof(float)) &&
                   !memcmp(r2[2].grad, rb[2].grad, (size_t)3 * steps * sizeof(float)) &&
                   !memcmp(r2[1].grad, rb[1].grad, p0.total * sizeof(float)) &&
                   !memcmp(r2[0].logits, rb[0].logits, nl * sizeof(float));
        tap(same, "deterministic: a second run on %s is bit-identical (eval logits, gradients, %d steps)", be->desc,
            steps);
        result_free(r2);
    }
    /* The eval memory plan: eval forwards run in shared buffers; the second
     * one at a batch (buffers holding the first one's values) must give what
     * a net without the plan gives, bit for bit. Bitwise comparisons need a
     * backend whose reruns are bit-identical: the CPU, or --deterministic. */
    if (!det && strncmp(be->name, "cpu", 3) != 0) {
        static const char *what[4] = {"eval memory plan", "gradient memory plan", "eval plan serving a smaller batch",
                                      "graphs"};
        for (int k = 0; k < 4; k++)
            printf("ok %d - %s # SKIP bitwise, and %s is not deterministic: run with --deterministic\n", ++ntest,
                   what[k], be->desc);
    } else {
        model_params pa, pb;
        model_params_init(&pa, &cfg), model_params_init(&pb, &cfg);
        memcpy(pa.data, p0.data, p0.total * sizeof(float)), memcpy(pb.data, p0.data, p0.total * sizeof(float));
        net *ta = net_create_on(&pa, be), *tb = net_create_on(&pb, be);
        const float *xb = wl.x + nx_of(&wl);
        if (tb) net_memory_plan(tb, 0);
        int same = ta && tb && !net_forward(ta, wl.x, n, 0) && !net_forward(ta, xb, n, 0) && !net_forward(tb, xb, n, 0);
        size_t planned = same ? net_bytes(ta) : 0, unplanned = same ? net_bytes(tb) : 0;
        const float *la = same ? net_logits(ta) : NULL, *lb = same ? net_logits(tb) : NULL;
        const float *ha = same ? net_heat(ta) : NULL, *hb = same ? net_heat(tb) : NULL;
        const float *oa = same ? net_occ(ta) : NULL, *ob = same ? net_occ(tb) : NULL;
        same = same && la && lb && ha && hb && oa && ob && !memcmp(la, lb, nl * sizeof(float)) &&
               !memcmp(ha, hb, nh * sizeof(float)) && !memcmp(oa, ob, no * sizeof(float));
        printf("# eval net bytes: %.2f MiB planned, %.2f MiB with a buffer per tensor\n", planned / 1048576.0,
               unplanned / 1048576.0);
        tap(same && planned < unplanned, "eval memory plan: the second planned forward equals an unplanned one bit for "
                                         "bit, in less memory");
        /* training: the gradients of two steps (the second in buffers that
         * held the first one's) with the gradient plan and without */
        float *ga = malloc(p0.total * sizeof(float)), *gb = malloc(p0.total * sizeof(float));
        net_losses L;
        int gsame = ga && gb;
        for (int step = 0; step < 2 && gsame; step++) {
            size_t k = (size_t)step;
            const float *xs = wl.x + k * nx_of(&wl), *ot = wl.ot + k * no, *ht = wl.ht + k * nh;
            const int *lab = wl.lab + k * n;
            gsame = !net_forward(ta, xs, n, 1) && !net_loss(ta, ot, ht, lab, &L) && !net_backward(ta, ga) &&
                    !net_forward(tb, xs, n, 1) && !net_loss(tb, ot, ht, lab, &L) && !net_backward(tb, gb) &&
                    !memcmp(ga, gb, p0.total * sizeof(float));
        }
        planned = gsame ? net_bytes(ta) : 0, unplanned = gsame ? net_bytes(tb) : 0;
        printf("# training net bytes: %.2f MiB with the gradient plan, %.2f MiB with a buffer per gradient\n",
               planned / 1048576.0, unplanned / 1048576.0);
        tap(gsame && planned < unplanned,
            "gradient memory plan: two training steps give the same gradients bit for bit, in less memory");
        /* a smaller batch runs in the plan of a larger one (validation's last batch) */
        int m = n > 1 ? n - 1 : 1;
        int ssame = !net_forward(ta, wl.x, n, 0) && !net_forward(ta, xb, m, 0) && !net_forward(tb, xb, m, 0);
        la = ssame ? net_logits(ta) : NULL, lb = ssame ? net_logits(tb) : NULL;
        ha = ssame ? net_heat(ta) : NULL, hb = ssame ? net_heat(tb) : NULL;
        size_t ml = (size_t)m * MODEL_CLASSES, mh = nh / (size_t)n * (size_t)m;
        ssame = ssame && la && lb && ha && hb && !memcmp(la, lb, ml * sizeof(float)) && !memcmp(ha, hb, mh * sizeof(float));
        tap(ssame, "eval memory plan of batch %d serves batch %d: bit for bit as without a plan", n, m);
        free(ga), free(gb);
        net_free(ta), net_free(tb);
        model_params_free(&pa), model_params_free(&pb);
        char gm[200];
        tap(graphs_check(be, &wl, &p0, gm, sizeof gm), "graphs: a net with graphs and one without agree bit for bit "
                                                       "(%s)", gm);
    }
    const char *e = be->error(be);
    tap(!e, "backend error state clean%s%s", e ? ": " : "", e ? e : "");
    result_free(rb), result_free(rr), result_free(rp);
    free(wl.x), free(wl.ot), free(wl.ht), free(wl.lab);
    model_params_free(&p0);
    backend_close(be);
    return nfail ? 1 : 0;
}
