/* net.h: MODEL.md's network (arch `fopm`) run as a recorded sequence of ops
 * of ops.h (a tape): the forward pass in eval or training mode, the three
 * losses, and the backward pass into one flat gradient buffer laid out like
 * model_params.data (same offsets; BN running statistics get no gradient).
 *
 * Activations live in slots that are allocated on the first forward and
 * reused by later ones (the tape is the same every step), so a training loop
 * allocates nothing after its first step. A net is not thread-safe; the ops
 * inside it are threaded. */
#ifndef FB_NET_H
#define FB_NET_H

#include <stddef.h>

#include "backend.h"
#include "model.h"
#include "optim.h"

typedef struct net net;

/* Loss weights of MODEL.md: Lt = Lp + 0.6 Lm + 0.4 Ld. */
#define NET_W_LP 1.0f
#define NET_W_LM 0.6f
#define NET_W_LD 0.4f

typedef struct {
    float lp;    /* MSE(occ, occ target) */
    float lm;    /* MSE(heat, heat target) */
    float ld;    /* cross-entropy(logits, label), mean over the batch */
    float total; /* lp + 0.6 lm + 0.4 ld */
} net_losses;

/* p must outlive the net. net_create runs on a CPU backend of its own and
 * works on p->data in place (training-mode forwards update p's BN running
 * statistics, net_step its weights). net_create_on runs on be (borrowed: it
 * must outlive the net): on a device the net keeps its own copy of p->data,
 * uploaded here; net_params_get brings it back, net_params_set sends p->data
 * again. NULL on allocation failure. */
net *net_create(model_params *p);
net *net_create_on(model_params *p, backend *be);
void net_free(net *t);
backend *net_backend(const net *t);
int net_params_get(net *t); /* backend -> p->data (weights and running statistics); 0 or -1 */
int net_params_set(net *t); /* p->data -> backend */

/* x [n,3,S,S] -> outputs below. train=1: batch norm uses batch statistics
 * (and updates the running ones) and the tape is kept for net_backward;
 * train=0: running statistics, in-place activations (less memory).
 * Training forwards and backwards use Winograd F(2x2) at most (ops.h's
 * default F(4x4) is kept for inference: see net.c).
 * Returns 0, or -1 (allocation failure, tensor missing from p; message in
 * net_error). */
int net_forward(net *t, const float *x, int n, int train);
/* Memory plans, on by default. Eval forwards share activation memory: the
 * first eval at a batch size records its tape without running it (a dry
 * run) and plans buffers for the tensors live at the same time, so memory
 * is about the peak of live activations, not their sum. Backward passes
 * share gradient memory the same way (planned from the training tape at
 * the first net_loss of a batch size). A plan also serves smaller batches
 * (a larger one replans). on = 0 turns both off (each tensor
 * and gradient in memory of its own: the reference the plans are tested
 * against). */
void net_memory_plan(net *t, int on);

/* Graphs (CUDA graphs, on backends that have them): a forward or backward
 * pass that repeats the previous one of its kind exactly (same batch, same
 * buffers, nothing allocated since) is recorded once and then launched as
 * one unit, sparing the host the issue of each op; results are bit for bit
 * those of direct runs. On by default; net_graphs(t, 0) turns them off (and
 * frees the graphs). net_graphs_state: "on", "off", "none" (the backend has
 * no graphs: the CPU, or --graphs off) or, once a recording has failed
 * (passes then run directly), "failed: <why>". net_graph_counts: graphs
 * recorded and launched so far. */
void net_graphs(net *t, int on);
const char *net_graphs_state(net *t);
void net_graph_counts(const net *t, long *recorded, long *launched);

/* Starts moving the next step's inputs to the device while the work queued
 * now runs (backends with upload_ahead, i.e. CUDA unless --prefetch off;
 * elsewhere it does nothing and returns 0): x [n,3,S,S] and, for a training
 * step, occ_t, heat_t and labels (all three, or NULL for an eval step). The
 * next net_forward and net_loss given these pointers and this n take the
 * staged copies instead of copying from the host behind the queued work.
 * Call it after the current step's last use of its own inputs (after
 * net_forward for eval, net_loss for training). The host buffers must stay
 * unchanged until that next step's outputs or losses are downloaded (a
 * loader batch: held until then, as without prefetching). Results are the
 * same either way. Returns how many of the buffers were staged. */
int net_prefetch(net *t, const float *x, const float *occ_t, const float *heat_t, const int *labels, int n);
/* How many of this net's uploads took a staged copy so far (0 without upload_ahead). */
long net_prefetched(const net *t);

/* Outputs of the last forward, readable on the host (a device's are
 * downloaded on the first call after each forward); NULL if that fails. */
const float *net_logits(net *t); /* [n,7] */
const float *net_occ(net *t);    /* [n,1,G,G], after the sigmoid */
const float *net_heat(net *t);   /* [n,68,G,G] */

/* The predicted class of one row of 7 logits (ties: the lowest index). */
static inline int net_argmax(const float *logits_row)
{
    int best = 0;
    for (int k = 1; k < MODEL_CLASSES; k++)
        if (logits_row[k] > logits_row[best]) best = k;
    return best;
}

/* Losses of the last training forward against occ_t [n,1,G,G], heat_t
 * [n,68,G,G], labels [n] (0..6), and the gradients of Lt at the outputs,
 * ready for net_backward. Returns 0, or -1 (no training forward, bad label). */
int net_loss(net *t, const float *occ_t, const float *heat_t, const int *labels, net_losses *out);

/* d(Lt)/d(parameters) of the last net_loss into the net's gradient buffer
 * (laid out like p->data; running-statistics entries are 0), and also into
 * grad (p->total host floats) unless it is NULL. Returns 0 or -1. */
int net_backward(net *t, float *grad);

/* One AdamW step (step = 1 for the first) with the last net_backward's
 * gradient, on the net's parameters, with moments the net keeps (zero until
 * net_opt_set). Returns 0 or -1. */
int net_step(net *t, long step, double lr, const adamw_config *c);
int net_opt_set(net *t, const float *m, const float *v); /* host -> net, p->total floats each */
int net_opt_get(net *t, float *m, float *v);             /* net -> host (zeros before any step) */

/* Bytes of activations, gradients, optimizer state and scratch the net
 * holds now, with its backend's workspaces. */
size_t net_bytes(const net *t);
const char *net_error(const net *t);

/* Per-op profile (ferbench bench --profile). net_profile(t, 1) clears the
 * counters and starts counting; every op is then closed by a backend sync
 * (no cost on the CPU; on a device it removes the overlap of queued work, so
 * profiled passes run slower than unprofiled ones). Time between API calls
 * is not counted. net_profile_rows fills up to max rows (in pass order,
 * kinds with no calls left out) and returns how many. */
typedef struct {
    const char *pass; /* "forward", "loss", "backward", "step" */
    const char *op;   /* op kind ("conv", "bn (+relu)", ...) or "input upload", "adamw", ... */
    double seconds;   /* total over the profiled calls */
    long calls;
} net_prof_row;
void net_profile(net *t, int on);
int net_profile_rows(const net *t, net_prof_row *rows, int max);

/* One-shot eval forward: x [n,3,S,S] -> logits [n,7], occ [n,1,G,G],
 * heat [n,68,G,G]. Returns 0 or -1. */
int model_forward_eval(const model_params *p, const float *x, int n, float *logits, float *occ, float *heat);

#endif
