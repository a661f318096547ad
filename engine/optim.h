/* optim.h: AdamW over the flat parameter buffer (PyTorch's torch.optim.AdamW
 * with decoupled weight decay), with the first and second moments in two
 * buffers laid out like model_params.data. BN running statistics are not
 * parameters: they are skipped. */
#ifndef FB_OPTIM_H
#define FB_OPTIM_H

#include <stddef.h>

#include "model.h"

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} adamw_config;

/* MODEL.md's protocol: lr 0.002, betas 0.9/0.99, eps 1e-8, weight decay 1e-4. */
adamw_config adamw_paper(void);

/* One step (step = 1 for the first) at learning rate lr, in PyTorch's order:
 * p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). m and v hold p->total
 * floats (zero before the first step). */
void adamw_step(model_params *p, const float *grad, float *m, float *v, long step, double lr, const adamw_config *c);

#endif
