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

/* The float coefficients of step `step` (1 for the first) at learning rate
 * lr, rounded once on the host as PyTorch's single-tensor implementation
 * does; every backend applies them with adamw_range's arithmetic. */
typedef struct {
    float decay, b1, b2, a1, a2, step_size, bc2_sqrt, eps;
} adamw_coef;
adamw_coef adamw_coefs(long step, double lr, const adamw_config *c);

/* n elements, in PyTorch's order:
 * p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). */
void adamw_range(float *w, const float *g, float *m, float *v, size_t n, const adamw_coef *k);

/* adamw_range over every trainable tensor of p. m and v hold p->total floats
 * (zero before the first step). */
void adamw_step(model_params *p, const float *grad, float *m, float *v, long step, double lr, const adamw_config *c);

#endif
