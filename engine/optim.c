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

/* Vectorised (the Makefile's -fno-math-errno lets sqrtf be), in AVX2 where
 * the CPU has it (chosen at load time). sqrt and division are correctly
 * rounded in every width, and gcc -std=c11 never contracts into FMAs, so
 * the bits do not depend on the clone or the width. */
#if defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
void adamw_range(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                 const adamw_coef *restrict k)
{
    const float decay = k->decay, b1 = k->b1, b2 = k->b2, a1 = k->a1, a2 = k->a2;
    const float step_size = k->step_size, bc2_sqrt = k->bc2_sqrt, eps = k->eps;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float mi = m[i] * b1 + g[i] * a1, vi = v[i] * b2 + g[i] * g[i] * a2;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi, v[i] = vi;
        w[i] = w[i] * decay - step_size * (mi / denom);
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
