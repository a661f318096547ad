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

#include "model.h"

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

/* p must outlive the net; training-mode forwards update p's BN running
 * statistics in place. NULL on allocation failure. */
net *net_create(model_params *p);
void net_free(net *t);

/* x [n,3,S,S] -> outputs below. train=1: batch norm uses batch statistics
 * (and updates the running ones) and the tape is kept for net_backward;
 * train=0: running statistics, in-place activations (less memory).
 * Training forwards and backwards use Winograd F(2x2) at most (ops.h's
 * default F(4x4) is kept for inference: see net.c).
 * Returns 0, or -1 (allocation failure, tensor missing from p; message in
 * net_error). */
int net_forward(net *t, const float *x, int n, int train);
const float *net_logits(const net *t); /* [n,7] */
const float *net_occ(const net *t);    /* [n,1,G,G], after the sigmoid */
const float *net_heat(const net *t);   /* [n,68,G,G] */

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

/* d(Lt)/d(parameters) of the last net_loss into grad (p->total floats,
 * overwritten; running-statistics entries are set to 0). Returns 0 or -1. */
int net_backward(net *t, float *grad);

/* Bytes of activations, gradients and scratch the net holds now, with the
 * ops' convolution workspace (shared by all nets). */
size_t net_bytes(const net *t);
const char *net_error(const net *t);

/* One-shot eval forward: x [n,3,S,S] -> logits [n,7], occ [n,1,G,G],
 * heat [n,68,G,G]. Returns 0 or -1. */
int model_forward_eval(const model_params *p, const float *x, int n, float *logits, float *occ, float *heat);

#endif
