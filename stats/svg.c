/* svg.c: the confusion-matrix heatmap (svg.h). */
#include "svg.h"

#include <stdio.h>
#include <string.h>

#include "../common/util.h"

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* White to a dark blue, linear in the share. */
static void cell_colour(double t, char out[8])
{
    int r = (int)(247 + (8 - 247) * t + 0.5), g = (int)(251 + (48 - 251) * t + 0.5), b = (int)(255 + (107 - 255) * t + 0.5);
    snprintf(out, 8, "#%02x%02x%02x", r, g, b);
}

void confusion_svg_print(FILE *f, const confusion_plot *c)
{
    int k = c->k, cell = 64, longest = 0;
    const long *cm = c->cm;
    for (int i = 0; i < k; i++)
        if ((int)strlen(c->labels[i]) > longest) longest = (int)strlen(c->labels[i]);
    int left = 40 + 8 * longest, top = 84, bottom = 36 + 6 * longest;
    int width = left + k * cell + 30, height = top + k * cell + bottom;
    if (width < 480) width = 480;
    long correct = 0, n = 0;
    for (int i = 0; i < k; i++) correct += cm[i * k + i];
    for (int i = 0; i < k * k; i++) n += cm[i];
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"Helvetica, Arial, sans-serif\">\n", width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    /* Title: the model; subtitle: dataset, split, size and accuracy. */
    fprintf(f, "<text x=\"16\" y=\"24\" font-size=\"15\" font-weight=\"bold\">");
    xml_text(f, c->title);
    fprintf(f, "</text>\n<text x=\"16\" y=\"42\" font-size=\"12\" fill=\"#444444\">");
    if (c->dataset || c->split) {
        xml_text(f, c->dataset ? c->dataset : "");
        fputs(" ", f);
        xml_text(f, c->split ? c->split : "");
        fputs(", ", f);
    }
    fprintf(f, "n = %ld, accuracy %.2f%%</text>\n", n, 100.0 * (double)correct / (double)n);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">predicted</text>\n",
            left + k * cell / 2, top - 12);
    fprintf(f, "<text x=\"14\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">true</text>\n",
            top + k * cell / 2, top + k * cell / 2);
    for (int i = 0; i < k; i++) {
        long row = 0;
        for (int j = 0; j < k; j++) row += cm[i * k + j];
        for (int j = 0; j < k; j++) {
            double share = row ? (double)cm[i * k + j] / (double)row : 0;
            char colour[8];
            cell_colour(share, colour);
            int x = left + j * cell, y = top + i * cell;
            const char *ink = share > 0.5 ? "white" : "#111111";
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#cccccc\"/>\n", x, y,
                    cell, cell, colour);
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"14\" text-anchor=\"middle\" fill=\"%s\">%ld</text>\n",
                    x + cell / 2, y + cell / 2 - 2, ink, cm[i * k + j]);
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\" fill=\"%s\">%.1f%%</text>\n",
                    x + cell / 2, y + cell / 2 + 14, ink, 100 * share);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">", left - 8, top + i * cell + cell / 2 + 4);
        xml_text(f, c->labels[i]);
        fprintf(f, "</text>\n");
        int x = left + i * cell + cell / 2, y = top + k * cell + 10;
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\" transform=\"rotate(-45 %d %d)\">", x, y,
                x, y);
        xml_text(f, c->labels[i]);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#555555\">cells: count and share of the true class "
               "(row-normalised)</text>\n</svg>\n", left, height - 10);
}

int confusion_svg_write(const char *path, const confusion_plot *c, char *err, size_t errlen)
{
    atomic_file af;
    if (atomic_open(&af, path, err, errlen)) return -1;
    confusion_svg_print(af.f, c);
    return atomic_commit(&af, err, errlen);
}

int confusion_svg(const char *path, const preds *p, const long *cm, char *err, size_t errlen)
{
    confusion_plot c = {p->nlabels, (const char *const *)p->labels, cm, p->model ? p->model : p->path, p->dataset,
                        p->split};
    return confusion_svg_write(path, &c, err, errlen);
}
