/* common.c: what the ferbench commands share: model and thread options,
 * checkpoints, weights loading. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "../engine/ops.h"
#include "../engine/safetensors.h"
#include "ferbench.h"

int model_options(const cli_args *a, const char *def, model_config *cfg, char *name, size_t namelen)
{
    const char *cn = cli_get(a, "config") ? cli_get(a, "config") : def;
    if (model_config_named(cn, cfg) != 0) {
        log_error("--config: unknown configuration '%s' (fopm, fopm-tiny)", cn);
        return -1;
    }
    snprintf(name, namelen, "%s", cn);
    long size;
    double width;
    if (cli_get_long(a, "size", cfg->size, 32, 4096, &size) || cli_get_double(a, "width", cfg->width, 1e-3, 16, &width))
        return -1;
    if (size != cfg->size || width != cfg->width) {
        cfg->size = (int)size;
        cfg->width = width;
        snprintf(name, namelen, "custom");
    }
    char err[256];
    if (model_config_check(cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

int threads_option(const cli_args *a, int *threads)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN), t;
    if (cli_get_long(a, "threads", ncpu > 0 ? ncpu : 1, 1, 256, &t)) return -1;
    ops_set_threads((int)t);
    *threads = (int)t;
    return 0;
}

backend *device_option(const cli_args *a)
{
    backend_options o = {0};
    const char *dev = cli_get(a, "device") ? cli_get(a, "device") : "cpu";
    const char *prec = cli_get(a, "precision") ? cli_get(a, "precision") : "fp32";
    if (precision_parse(prec, &o.prec) != 0) {
        log_error("--precision: unknown '%s' (fp32, tf32, bf16)", prec);
        return NULL;
    }
    o.deterministic = cli_flag(a, "deterministic");
    int graphs = cli_get_choice(a, "graphs", "off|on", 1);
    if (graphs < 0) return NULL;
    o.no_graphs = !graphs;
    int prefetch = cli_get_choice(a, "prefetch", "off|on", 1);
    if (prefetch < 0) return NULL;
    o.no_prefetch = !prefetch;
    if (threads_option(a, &o.threads)) return NULL;
    char err[512];
    backend *b = backend_open(dev, &o, err, sizeof err);
    if (!b) log_error("--device %s: %s", dev, err);
    return b;
}

const char *device_summary(net *t, char *buf, size_t len)
{
    const char *st = net_graphs_state(t);
    long rec, launched;
    net_graph_counts(t, &rec, &launched);
    if (!strncmp(st, "failed", 6)) log_warn("CUDA graphs %s; every pass ran op by op", st);
    snprintf(buf, len, "graphs=%.*s graph_launches=%ld prefetched=%ld", (int)strcspn(st, ":"), st, launched,
             net_prefetched(t));
    return buf;
}

int next_batch_prefetched(data_loader *l, net *t, int train, data_batch **b)
{
    int r = data_loader_next(l, b);
    if (r == 1)
        net_prefetch(t, (*b)->x, train ? (*b)->occ_t : NULL, train ? (*b)->heat_t : NULL, train ? (*b)->labels : NULL,
                     (*b)->n);
    return r;
}

const float *eval_step_prefetching(net *t, data_loader *l, const data_batch *b, data_batch **next, int *r)
{
    *next = NULL;
    if (net_forward(t, b->x, b->n, 0) != 0) return NULL;
    *r = next_batch_prefetched(l, t, 0, next); /* its copy overlaps the forward queued above */
    return net_logits(t);                      /* waits for a device */
}

int ckpt_write(const char *path, const model_params *p, float *m, float *v, const train_state *s, char *err,
               size_t errlen)
{
    char ne[16], st[32], be[16], ba[40], bad[16], id[32];
    snprintf(ne, sizeof ne, "%d", s->next_epoch);
    snprintf(st, sizeof st, "%ld", s->step);
    snprintf(be, sizeof be, "%d", s->best_epoch);
    snprintf(ba, sizeof ba, "%.17g", s->best_acc);
    snprintf(bad, sizeof bad, "%d", s->bad_epochs);
    snprintf(id, sizeof id, "%lld", s->train_run_id);
    const char *meta[] = {"ferbench.next_epoch", ne, "ferbench.step", st, "ferbench.best_epoch", be,
                          "ferbench.best_acc", ba, "ferbench.bad_epochs", bad, "ferbench.train_run_id", id,
                          "ferbench.fingerprint", s->fingerprint, NULL};
    st_set sets[3] = {{"", p->data, 1, 0}, {"adamw.m.", m, 1, 0}, {"adamw.v.", v, 1, 0}};
    return safetensors_write_sets(path, p, sets, 3, meta, err, errlen);
}

static int meta_long(const st_meta *md, const char *key, long long *out)
{
    const char *s = st_meta_get(md, key);
    char *end;
    if (!s || !*s) return -1;
    *out = strtoll(s, &end, 10);
    return *end ? -1 : 0;
}

int ckpt_read(const char *path, model_params *p, float *m, float *v, train_state *s, char *err, size_t errlen)
{
    st_set sets[3] = {{"", p->data, 1, 0}, {"adamw.m.", m, 1, 0}, {"adamw.v.", v, 1, 0}};
    st_meta md;
    if (safetensors_read_sets(path, p, sets, 3, &md, err, errlen) != 0) return -1;
    long long ne, st, be, bad, id;
    const char *ba = st_meta_get(&md, "ferbench.best_acc"), *fp = st_meta_get(&md, "ferbench.fingerprint");
    int rc = 0;
    if (meta_long(&md, "ferbench.next_epoch", &ne) || meta_long(&md, "ferbench.step", &st) ||
        meta_long(&md, "ferbench.best_epoch", &be) || meta_long(&md, "ferbench.bad_epochs", &bad) ||
        meta_long(&md, "ferbench.train_run_id", &id) || !ba || !fp || strlen(fp) >= sizeof s->fingerprint) {
        snprintf(err, errlen, "%s: not a ferbench training checkpoint (training state missing from its metadata)", path);
        rc = -1;
    } else {
        s->next_epoch = (int)ne, s->step = (long)st, s->best_epoch = (int)be, s->bad_epochs = (int)bad;
        s->train_run_id = id;
        s->best_acc = strtod(ba, NULL);
        snprintf(s->fingerprint, sizeof s->fingerprint, "%s", fp);
    }
    st_meta_free(&md);
    return rc;
}

/* The configuration a weights file declares in its metadata: 1 found, 0 not
 * there (e.g. a file from elsewhere), -1 unreadable (message in err). */
static int file_config(const char *path, model_config *cfg, char *err, size_t errlen)
{
    st_meta md;
    if (safetensors_read_meta(path, &md, err, errlen) != 0) return -1;
    const char *s = st_meta_get(&md, "ferbench.size"), *w = st_meta_get(&md, "ferbench.width");
    char *e1 = NULL, *e2 = NULL;
    int found = 0;
    if (s && w) {
        long sz = strtol(s, &e1, 10);
        double wd = strtod(w, &e2);
        if (*s && *w && !*e1 && !*e2) {
            cfg->size = (int)sz;
            cfg->width = wd;
            found = 1;
        }
    }
    st_meta_free(&md);
    return found;
}

int weights_load(const char *path, const model_config *cfg, int cfg_given, model_params *p, char *err,
                 size_t errlen)
{
    model_config fc, use = *cfg;
    int have = file_config(path, &fc, err, errlen);
    if (have < 0) return -1;
    if (have && cfg_given && (fc.size != cfg->size || fc.width != cfg->width)) {
        snprintf(err, errlen, "%s: weights are for size %d width %g, but the configuration asked for is size %d width %g",
                 path, fc.size, fc.width, cfg->size, cfg->width);
        return -1;
    }
    if (have && !cfg_given) use = fc;
    char cerr[256];
    if (model_config_check(&use, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: %s", path, cerr);
        return -1;
    }
    if (model_params_init(p, &use) != 0) {
        snprintf(err, errlen, "%s: cannot set up the model", path);
        return -1;
    }
    float *scratch = malloc(2 * p->total * sizeof(float));
    if (!scratch) {
        model_params_free(p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st_set sets[3] = {{"", p->data, 1, 0}, {"adamw.m.", scratch, 0, 0}, {"adamw.v.", scratch + p->total, 0, 0}};
    int rc = safetensors_read_sets(path, p, sets, 3, NULL, err, errlen);
    free(scratch);
    if (rc != 0) model_params_free(p);
    return rc;
}
