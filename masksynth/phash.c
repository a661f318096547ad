#include "phash.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

/* Area-averaged resize of the grey version to 32 x 32: every source pixel
 * contributes by its overlap, so any input size gives a comparable hash. */
static void grey32(const image *img, double out[32][32])
{
    double *acc = calloc(32 * 32, sizeof *acc);
    for (int y = 0; y < img->h; y++) {
        double y0 = (double)y * 32 / img->h, y1 = (double)(y + 1) * 32 / img->h;
        for (int x = 0; x < img->w; x++) {
            const uint8_t *p = img->px + ((size_t)y * (size_t)img->w + (size_t)x) * (size_t)img->c;
            double v = img->c == 1 ? p[0] : 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            double x0 = (double)x * 32 / img->w, x1 = (double)(x + 1) * 32 / img->w;
            for (int ty = (int)y0; ty < 32 && ty < y1; ty++) {
                double wy = fmin(y1, ty + 1) - fmax(y0, ty);
                if (wy <= 0) continue;
                for (int tx = (int)x0; tx < 32 && tx < x1; tx++) {
                    double wx = fmin(x1, tx + 1) - fmax(x0, tx);
                    if (wx > 0) acc[ty * 32 + tx] += v * wx * wy;
                }
            }
        }
    }
    double area = (32.0 / img->w) * (32.0 / img->h);
    for (int i = 0; i < 32; i++)
        for (int j = 0; j < 32; j++) out[i][j] = acc[i * 32 + j] / area;
    free(acc);
}

static double cosines[8][32];
static pthread_once_t cosines_once = PTHREAD_ONCE_INIT;

static void init_cosines(void)
{
    for (int u = 0; u < 8; u++)
        for (int x = 0; x < 32; x++) cosines[u][x] = cos((2 * x + 1) * u * M_PI / 64);
}

uint64_t phash_image(const image *img)
{
    pthread_once(&cosines_once, init_cosines);
    double g[32][32], rows[32][8], coef[64];
    grey32(img, g);
    for (int y = 0; y < 32; y++)
        for (int u = 0; u < 8; u++) {
            double s = 0;
            for (int x = 0; x < 32; x++) s += g[y][x] * cosines[u][x];
            rows[y][u] = s;
        }
    for (int v = 0; v < 8; v++)
        for (int u = 0; u < 8; u++) {
            double s = 0;
            for (int y = 0; y < 32; y++) s += rows[y][u] * cosines[v][y];
            coef[v * 8 + u] = s;
        }
    /* Median of the 63 AC terms; the DC term only carries brightness. */
    double sorted[63];
    memcpy(sorted, coef + 1, sizeof sorted);
    qsort(sorted, 63, sizeof *sorted, cmp_double);
    double median = sorted[31];
    uint64_t h = 0;
    for (int i = 1; i < 64; i++) h = (h << 1) | (coef[i] > median);
    return h;
}
