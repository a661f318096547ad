/* forward.h: the eval-mode forward pass of MODEL.md's network (arch `fopm`)
 * on the CPU ops of ops.h, matching interop/fopm.py's forward in eval mode
 * (batch norm uses the running statistics). */
#ifndef FB_FORWARD_H
#define FB_FORWARD_H

#include "model.h"

/* x [n,3,S,S] -> logits [n,7], occ [n,1,G,G], heat [n,68,G,G] (S, G from
 * p->cfg). Activations are malloc'ed inside and freed before returning.
 * Returns 0, or -1 on allocation failure or a tensor missing from p. */
int model_forward_eval(const model_params *p, const float *x, int n, float *logits, float *occ, float *heat);

#endif
