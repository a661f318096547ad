/* optim.c: AdamW (see optim.h). Elementwise in float, as PyTorch's
 * single-tensor implementation; each element is independent, so the result
 * never depends on the thread count. */
#include "optim.h"

#include <math.h>

adamw_config adamw_paper(void) { return (adamw_config){0.002, 0.9, 0.99, 1e-8, 1e-4}; }

void adamw_step(model_params *p, const float *grad, float *m, float *v, long step, double lr, const adamw_config *c)
{
    const float decay = (float)(1.0 - lr * c->weight_decay);
    const float b1 = (float)c->beta1, b2 = (float)c->beta2;
    const float a1 = (float)(1.0 - c->beta1), a2 = (float)(1.0 - c->beta2);
    const double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)c->eps;
    for (int e = 0; e < p->n; e++) {
        const param_entry *pe = &p->entries[e];
        if (!pe->trainable) continue;
        float *w = p->data + pe->offset, *me = m + pe->offset, *ve = v + pe->offset;
        const float *g = grad + pe->offset;
        for (size_t i = 0; i < pe->numel; i++) {
            w[i] *= decay;
            me[i] = me[i] * b1 + g[i] * a1;
            ve[i] = ve[i] * b2 + g[i] * g[i] * a2;
            float denom = sqrtf(ve[i]) / bc2_sqrt + eps;
            w[i] -= step_size * (me[i] / denom);
        }
    }
}
