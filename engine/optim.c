/* optim.c: AdamW (see optim.h). Elementwise in float, as PyTorch's
 * single-tensor implementation; each element is independent, so the result
 * never depends on the thread count. */
#include "optim.h"

#include <math.h>

adamw_config adamw_paper(void) { return (adamw_config){0.002, 0.9, 0.99, 1e-8, 1e-4}; }

adamw_coef adamw_coefs(long step, double lr, const adamw_config *c)
{
    const double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    return (adamw_coef){
        .decay = (float)(1.0 - lr * c->weight_decay),
        .b1 = (float)c->beta1,
        .b2 = (float)c->beta2,
        .a1 = (float)(1.0 - c->beta1),
        .a2 = (float)(1.0 - c->beta2),
        .step_size = (float)(lr / bc1),
        .bc2_sqrt = (float)sqrt(bc2),
        .eps = (float)c->eps,
    };
}

void adamw_range(float *w, const float *g, float *m, float *v, size_t n, const adamw_coef *k)
{
    for (size_t i = 0; i < n; i++) {
        w[i] *= k->decay;
        m[i] = m[i] * k->b1 + g[i] * k->a1;
        v[i] = v[i] * k->b2 + g[i] * g[i] * k->a2;
        float denom = sqrtf(v[i]) / k->bc2_sqrt + k->eps;
        w[i] -= k->step_size * (m[i] / denom);
    }
}

void adamw_step(model_params *p, const float *grad, float *m, float *v, long step, double lr, const adamw_config *c)
{
    const adamw_coef k = adamw_coefs(step, lr, c);
    for (int e = 0; e < p->n; e++) {
        const param_entry *pe = &p->entries[e];
        if (pe->trainable)
            adamw_range(p->data + pe->offset, grad + pe->offset, m + pe->offset, v + pe->offset, pe->numel, &k);
    }
}
