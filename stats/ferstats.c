/* ferstats: metrics, confusion matrices, McNemar, Cochran's Q, bootstrap and
 * the CI regression gate on predictions CSVs (STATS.md). No database needed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/log.h"
#include "../common/numfmt.h"
#include "../common/util.h"
#include "bootstrap.h"
#include "hypothesis.h"
#include "metrics.h"
#include "preds.h"
#include "svg.h"

#define ERRLEN 2048
enum output { OUT_TABLE, OUT_JSON, OUT_CSV };

/* ---- shared option handling ------------------------------------------- */

#define OPT_LABELS {"labels", "A,B,...", "label map for plain image,label,pred files"}
#define OPT_JSON {"json", NULL, "JSON output (numbers round-trip)"}
#define OPT_CSV {"csv", NULL, "CSV output"}
#define OPT_ALPHA {"alpha", "A", "1 - confidence level of intervals (default 0.05)"}

static enum output output_of(const cli_args *a)
{
    if (cli_flag(a, "json") && cli_flag(a, "csv")) {
        log_error("%s: --json and --csv exclude each other", a->cmd->name);
        exit(EXIT_BAD_INPUT);
    }
    return cli_flag(a, "json") ? OUT_JSON : cli_flag(a, "csv") ? OUT_CSV : OUT_TABLE;
}

static double alpha_of(const cli_args *a)
{
    double alpha;
    if (cli_get_double(a, "alpha", 0.05, 1e-12, 0.5, &alpha)) exit(EXIT_BAD_INPUT);
    return alpha;
}

static void load_or_exit(preds *p, const char *path, const cli_args *a)
{
    char err[ERRLEN];
    if (preds_load(p, path, cli_get(a, "labels"), err, sizeof err)) {
        log_error("%s", err);
        exit(EXIT_BAD_INPUT);
    }
}

/* Loads the reference file and the others, each aligned to the reference's row
 * order (order[f][i] = row of file f for reference row i). */
static void load_matched(const cli_args *a, int nfiles, const char *const *paths, preds *files, long **order)
{
    char err[ERRLEN];
    load_or_exit(&files[0], paths[0], a);
    for (int f = 1; f < nfiles; f++) {
        load_or_exit(&files[f], paths[f], a);
        order[f] = xmalloc(sizeof *order[f] * (size_t)files[0].n);
        if (preds_match(&files[0], &files[f], order[f], err, sizeof err)) {
            log_error("%s", err);
            exit(EXIT_BAD_INPUT);
        }
    }
}

static int correct_at(const preds *p, const long *order, long i)
{
    long r = order ? order[i] : i;
    return p->y[r] == p->yhat[r];
}

static void paired_counts(const preds *a, const preds *b, const long *order, long cnt[4])
{
    memset(cnt, 0, 4 * sizeof *cnt);  /* both right, A only, B only, both wrong */
    for (long i = 0; i < a->n; i++) {
        int ra = correct_at(a, NULL, i), rb = correct_at(b, order, i);
        cnt[ra && rb ? 0 : ra ? 1 : rb ? 2 : 3]++;
    }
}

static char nb[4][32];  /* scratch for up to four numbers per printf */
#define N0(x) fmt_double(nb[0], (x))
#define N1(x) fmt_double(nb[1], (x))
#define N2(x) fmt_double(nb[2], (x))
#define N3(x) fmt_double(nb[3], (x))

static void json_key(const char *k) { printf("\"%s\": ", k); }

static void json_labels(const preds *p)
{
    printf("[");
    for (int k = 0; k < p->nlabels; k++) {
        if (k) printf(", ");
        json_string(stdout, p->labels[k]);
    }
    printf("]");
}

static int label_width(const preds *p)
{
    int w = 12;
    for (int k = 0; k < p->nlabels; k++)
        if ((int)strlen(p->labels[k]) > w) w = (int)strlen(p->labels[k]);
    return w;
}

static void print_source(const preds *p)
{
    printf("%s: %ld images, %d classes", p->path, p->n, p->nlabels);
    if (p->model || p->dataset || p->split)
        printf(" (model %s, dataset %s, split %s)", p->model ? p->model : "?", p->dataset ? p->dataset : "?",
               p->split ? p->split : "?");
    printf("\n");
}

/* ---- metrics ------------------------------------------------------------ */

static double zero_division_of(const cli_args *a)
{
    int z = cli_get_choice(a, "zero-division", "0|1", 0);
    if (z < 0) exit(EXIT_BAD_INPUT);
    return z;
}

/* Prints s right-aligned in width columns, cut at a character boundary:
 * printf's %9.9s counts bytes and can split a UTF-8 character. */
static void print_cell(const char *s, int width)
{
    int chars = 0;
    size_t cut = 0;
    for (size_t i = 0; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) == 0x80) continue;  /* continuation byte */
        if (chars == width) break;
        chars++;
        cut = i + 1;
        while (((unsigned char)s[cut] & 0xC0) == 0x80) cut++;
    }
    printf(" %*s%.*s", width - chars, "", (int)cut, s);
}

static void print_confusion_table(const preds *p, const long *cm, const double *share)
{
    int w = label_width(p);
    printf("%-*s", w + 2, "true \\ pred");
    for (int j = 0; j < p->nlabels; j++) print_cell(p->labels[j], 9);
    printf("\n");
    for (int i = 0; i < p->nlabels; i++) {
        printf("%-*s", w + 2, p->labels[i]);
        for (int j = 0; j < p->nlabels; j++)
            if (share) printf(" %9.4f", share[i * p->nlabels + j]);
            else printf(" %9ld", cm[i * p->nlabels + j]);
        printf("\n");
    }
}

static int cmd_metrics(const cli_args *a)
{
    enum output out = output_of(a);
    double alpha = alpha_of(a), zd = zero_division_of(a);
    preds p;
    load_or_exit(&p, a->pos[0], a);
    int k = p.nlabels;
    long *cm = xmalloc(sizeof *cm * (size_t)(k * k));
    confusion_count(k, p.n, p.y, p.yhat, cm);
    metrics m;
    metrics_compute(&m, k, cm, zd, alpha);

    if (out == OUT_JSON) {
        printf("{");
        json_key("file"); json_string(stdout, p.path);
        printf(", "); json_key("n"); printf("%ld, ", m.n);
        json_key("labels"); json_labels(&p);
        printf(", \"correct\": %ld, \"accuracy\": %s", m.correct, N0(m.accuracy));
        printf(", \"alpha\": %s", N0(alpha));
        printf(", \"accuracy_ci\": {\"wilson\": [%s, %s], \"clopper_pearson\": [%s, %s]}", N0(m.wilson[0]),
               N1(m.wilson[1]), N2(m.clopper_pearson[0]), N3(m.clopper_pearson[1]));
        printf(", \"zero_division\": %s, \"per_class\": [", N0(zd));
        for (int i = 0; i < k; i++) {
            printf("%s{\"label\": ", i ? ", " : "");
            json_string(stdout, p.labels[i]);
            printf(", \"precision\": %s, \"recall\": %s, \"f1\": %s, \"support\": %ld, \"predicted\": %ld}",
                   N0(m.precision[i]), N1(m.recall[i]), N2(m.f1[i]), m.support[i], m.predicted[i]);
        }
        printf("], \"macro\": {\"precision\": %s, \"recall\": %s, \"f1\": %s}", N0(m.macro_precision),
               N1(m.macro_recall), N2(m.macro_f1));
        printf(", \"weighted\": {\"precision\": %s, \"recall\": %s, \"f1\": %s}", N0(m.weighted_precision),
               N1(m.weighted_recall), N2(m.weighted_f1));
        printf(", \"balanced_accuracy\": %s, \"kappa\": %s, \"mcc\": %s", N0(m.balanced_accuracy),
               m.kappa_defined ? N1(m.kappa) : "null", N2(m.mcc));
        printf(", \"confusion\": [");
        for (int i = 0; i < k; i++) {
            printf("%s[", i ? ", " : "");
            for (int j = 0; j < k; j++) printf("%s%ld", j ? ", " : "", cm[i * k + j]);
            printf("]");
        }
        printf("], \"notes\": [");
        int nn = 0;
        if (!m.kappa_defined) printf("%s\"kappa undefined: expected disagreement is 0\"", nn++ ? ", " : "");
        if (m.absent_classes)
            printf("%s\"%d label(s) have no true image: their recall is zero_division, balanced accuracy skips them\"",
                   nn++ ? ", " : "", m.absent_classes);
        printf("]}\n");
    } else if (out == OUT_CSV) {
        printf("metric,label,value\n");
        printf("n,,%ld\ncorrect,,%ld\naccuracy,,%s\n", m.n, m.correct, N0(m.accuracy));
        printf("accuracy_wilson_lo,,%s\naccuracy_wilson_hi,,%s\n", N0(m.wilson[0]), N1(m.wilson[1]));
        printf("accuracy_cp_lo,,%s\naccuracy_cp_hi,,%s\n", N0(m.clopper_pearson[0]), N1(m.clopper_pearson[1]));
        for (int i = 0; i < k; i++) {
            const char *fields[] = {"precision", "recall", "f1"};
            double vals[] = {m.precision[i], m.recall[i], m.f1[i]};
            for (int f = 0; f < 3; f++) {
                printf("%s,", fields[f]);
                csv_string(stdout, p.labels[i]);
                printf(",%s\n", N0(vals[f]));
            }
            printf("support,");
            csv_string(stdout, p.labels[i]);
            printf(",%ld\n", m.support[i]);
        }
        printf("macro_precision,,%s\nmacro_recall,,%s\nmacro_f1,,%s\n", N0(m.macro_precision), N1(m.macro_recall),
               N2(m.macro_f1));
        printf("weighted_precision,,%s\nweighted_recall,,%s\nweighted_f1,,%s\n", N0(m.weighted_precision),
               N1(m.weighted_recall), N2(m.weighted_f1));
        printf("balanced_accuracy,,%s\nkappa,,%s\nmcc,,%s\n", N0(m.balanced_accuracy),
               m.kappa_defined ? N1(m.kappa) : "", N2(m.mcc));
    } else {
        print_source(&p);
        double lvl = 100 * (1 - alpha);
        printf("\naccuracy  %.4f  (%ld/%ld)   %g%% Wilson [%.4f, %.4f]   Clopper-Pearson [%.4f, %.4f]\n\n", m.accuracy,
               m.correct, m.n, lvl, m.wilson[0], m.wilson[1], m.clopper_pearson[0], m.clopper_pearson[1]);
        int w = label_width(&p);
        printf("%-*s %9s %9s %9s %9s\n", w, "class", "precision", "recall", "f1", "support");
        for (int i = 0; i < k; i++)
            printf("%-*s %9.4f %9.4f %9.4f %9ld\n", w, p.labels[i], m.precision[i], m.recall[i], m.f1[i], m.support[i]);
        printf("%-*s %9.4f %9.4f %9.4f %9ld\n", w, "macro avg", m.macro_precision, m.macro_recall, m.macro_f1, m.n);
        printf("%-*s %9.4f %9.4f %9.4f %9ld\n\n", w, "weighted avg", m.weighted_precision, m.weighted_recall,
               m.weighted_f1, m.n);
        printf("balanced accuracy %.4f   Cohen's kappa ", m.balanced_accuracy);
        if (m.kappa_defined) printf("%.4f", m.kappa);
        else printf("undefined (expected disagreement is 0)");
        printf("   MCC %.4f\n\nconfusion matrix (rows true, columns predicted)\n", m.mcc);
        print_confusion_table(&p, cm, NULL);
        if (m.absent_classes)
            printf("\nnote: %d label(s) have no true image; their recall counts as %g (--zero-division) and balanced "
                   "accuracy skips them.\n", m.absent_classes, zd);
    }
    metrics_free(&m);
    free(cm);
    preds_free(&p);
    return EXIT_OK;
}

/* ---- confusion ---------------------------------------------------------- */

static int cmd_confusion(const cli_args *a)
{
    enum output out = output_of(a);
    int norm = cli_get_choice(a, "normalize", "none|true|pred|all", 0);
    if (norm < 0) return EXIT_BAD_INPUT;
    preds p;
    load_or_exit(&p, a->pos[0], a);
    int k = p.nlabels;
    long *cm = xmalloc(sizeof *cm * (size_t)(k * k));
    confusion_count(k, p.n, p.y, p.yhat, cm);
    double *share = NULL;
    if (norm) {
        /* sklearn's normalize=: divide by row, column or grand total; empty rows stay 0. */
        share = xcalloc((size_t)(k * k), sizeof *share);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                long den = 0;
                for (int t = 0; t < k; t++) den += norm == 1 ? cm[i * k + t] : norm == 2 ? cm[t * k + j] : 0;
                if (norm == 3) den = p.n;
                share[i * k + j] = den ? (double)cm[i * k + j] / (double)den : 0;
            }
    }
    const char *svg = cli_get(a, "svg");
    if (svg) {
        char err[ERRLEN];
        if (confusion_svg(svg, &p, cm, err, sizeof err)) {
            log_error("%s", err);
            free(share);
            free(cm);
            preds_free(&p);
            return EXIT_BAD_INPUT;
        }
    }
    if (out == OUT_JSON) {
        printf("{\"file\": ");
        json_string(stdout, p.path);
        printf(", \"labels\": ");
        json_labels(&p);
        printf(", \"normalize\": \"%s\", \"matrix\": [", (const char *[]){"none", "true", "pred", "all"}[norm]);
        for (int i = 0; i < k; i++) {
            printf("%s[", i ? ", " : "");
            for (int j = 0; j < k; j++)
                if (share) printf("%s%s", j ? ", " : "", N0(share[i * k + j]));
                else printf("%s%ld", j ? ", " : "", cm[i * k + j]);
            printf("]");
        }
        printf("]}\n");
    } else if (out == OUT_CSV) {
        printf("true\\pred");
        for (int j = 0; j < k; j++) {
            printf(",");
            csv_string(stdout, p.labels[j]);
        }
        printf("\n");
        for (int i = 0; i < k; i++) {
            csv_string(stdout, p.labels[i]);
            for (int j = 0; j < k; j++)
                if (share) printf(",%s", N0(share[i * k + j]));
                else printf(",%ld", cm[i * k + j]);
            printf("\n");
        }
    } else if (!svg) {
        print_source(&p);
        printf("\n");
        print_confusion_table(&p, cm, share);
    } else {
        printf("wrote %s\n", svg);
    }
    free(share);
    free(cm);
    preds_free(&p);
    return EXIT_OK;
}

/* ---- mcnemar ------------------------------------------------------------ */

static int mcnemar_options(const cli_args *a, enum mcnemar_method *method, enum cc_convention *cc)
{
    int m = cli_get_choice(a, "method", "midp|exact|chi2|chi2-cc", MC_MIDP);
    int c = cli_get_choice(a, "cc-convention", "r|statsmodels", CC_R);
    if (m < 0 || c < 0) return -1;
    *method = (enum mcnemar_method)m;
    *cc = (enum cc_convention)c;
    return 0;
}

/* The statistic each method reports: min(b, c) for the binomial ones (as statsmodels). */
static double mcnemar_statistic(const mcnemar_result *r, enum mcnemar_method m)
{
    return m == MC_CHI2 ? r->stat_chi2 : m == MC_CHI2_CC ? r->stat_chi2_cc : (double)(r->b < r->c ? r->b : r->c);
}

static int cmd_mcnemar(const cli_args *a)
{
    enum output out = output_of(a);
    double alpha = alpha_of(a);
    enum mcnemar_method method;
    enum cc_convention cc;
    if (mcnemar_options(a, &method, &cc)) return EXIT_BAD_INPUT;
    preds f[2];
    long *order[2] = {NULL, NULL};
    load_matched(a, 2, a->pos, f, order);
    long cnt[4];
    paired_counts(&f[0], &f[1], order[1], cnt);
    mcnemar_result r;
    mcnemar(cnt[0], cnt[1], cnt[2], cnt[3], cc, alpha, &r);
    double n = (double)f[0].n, acc_a = (double)(cnt[0] + cnt[1]) / n, acc_b = (double)(cnt[0] + cnt[2]) / n;
    const char *cc_name = cc == CC_R ? "r" : "statsmodels";
    if (out == OUT_JSON) {
        printf("{\"files\": [");
        json_string(stdout, f[0].path);
        printf(", ");
        json_string(stdout, f[1].path);
        printf("], \"images\": %ld, \"both_right\": %ld, \"b\": %ld, \"c\": %ld, \"both_wrong\": %ld, \"n\": %ld",
               f[0].n, cnt[0], cnt[1], cnt[2], cnt[3], r.n);
        printf(", \"accuracy_a\": %s, \"accuracy_b\": %s, \"difference\": %s", N0(acc_a), N1(acc_b), N2(r.diff));
        printf(", \"alpha\": %s, \"difference_ci\": [%s, %s], \"difference_ci_method\": \"newcombe-wilson\"", N0(alpha),
               N1(r.diff_lo), N2(r.diff_hi));
        printf(", \"method\": \"%s\", \"cc_convention\": \"%s\"", mcnemar_method_name[method], cc_name);
        printf(", \"statistic\": %s, \"p\": %s", N0(mcnemar_statistic(&r, method)), N1(r.p[method]));
        printf(", \"p_values\": {\"midp\": %s, \"exact\": %s, \"chi2\": %s, \"chi2-cc\": %s}", N0(r.p[MC_MIDP]),
               N1(r.p[MC_EXACT]), N2(r.p[MC_CHI2]), N3(r.p[MC_CHI2_CC]));
        printf(", \"statistics\": {\"chi2\": %s, \"chi2-cc\": %s}", N0(r.stat_chi2), N1(r.stat_chi2_cc));
        printf(", \"notes\": [%s]}\n", r.n == 0 ? "\"no discordant pairs\"" : "");
    } else if (out == OUT_CSV) {
        printf("key,value\nimages,%ld\nboth_right,%ld\nb,%ld\nc,%ld\nboth_wrong,%ld\nn,%ld\n", f[0].n, cnt[0], cnt[1],
               cnt[2], cnt[3], r.n);
        printf("accuracy_a,%s\naccuracy_b,%s\ndifference,%s\n", N0(acc_a), N1(acc_b), N2(r.diff));
        printf("difference_lo,%s\ndifference_hi,%s\nmethod,%s\ncc_convention,%s\n", N0(r.diff_lo), N1(r.diff_hi),
               mcnemar_method_name[method], cc_name);
        printf("chi2,%s\nchi2-cc,%s\n", N0(r.stat_chi2), N1(r.stat_chi2_cc));
        for (int m = 0; m < MC_NMETHODS; m++) printf("p_%s,%s\n", mcnemar_method_name[m], N0(r.p[m]));
    } else {
        printf("A = %s (%s)\nB = %s (%s)\n%ld paired images\n\n", f[0].path, preds_name(&f[0]), f[1].path,
               preds_name(&f[1]), f[0].n);
        printf("                B right   B wrong\nA right  %14ld %9ld\nA wrong  %14ld %9ld\n\n", cnt[0], cnt[1],
               cnt[2], cnt[3]);
        printf("b = %ld (A right, B wrong), c = %ld (A wrong, B right), n = b + c = %ld\n", r.b, r.c, r.n);
        printf("accuracy A %.4f, B %.4f, difference A - B %+.4f, %g%% CI [%+.4f, %+.4f] (Newcombe, paired)\n\n", acc_a,
               acc_b, r.diff, 100 * (1 - alpha), r.diff_lo, r.diff_hi);
        if (r.n == 0) printf("no discordant pairs: the models agree on every image's correctness; p = 1\n\n");
        printf("%-10s %12s %12s\n", "method", "statistic", "p");
        for (int m = 0; m < MC_NMETHODS; m++) {
            printf("%-10s %12.6g %12.6g%s\n", mcnemar_method_name[m], mcnemar_statistic(&r, (enum mcnemar_method)m),
                   r.p[m], m == (int)method ? "   <- chosen" : "");
        }
        printf("\nchi2-cc convention: %s%s\n", cc_name,
               cc == CC_R ? " (no correction when b = c; --cc-convention statsmodels subtracts 1 anyway)" : "");
    }
    for (int i = 0; i < 2; i++) preds_free(&f[i]);
    free(order[1]);
    return EXIT_OK;
}

/* ---- compare ------------------------------------------------------------ */

static int cmd_compare(const cli_args *a)
{
    enum output out = output_of(a);
    double alpha = alpha_of(a);
    enum mcnemar_method method;
    enum cc_convention cc;
    if (mcnemar_options(a, &method, &cc)) return EXIT_BAD_INPUT;
    int adj = cli_get_choice(a, "adjust", "holm|bonferroni|none", ADJ_HOLM);
    if (adj < 0) return EXIT_BAD_INPUT;
    int nf = a->npos, nb_ = nf - 1;
    preds *f = xcalloc((size_t)nf, sizeof *f);
    long **order = xcalloc((size_t)nf, sizeof *order);
    load_matched(a, nf, a->pos, f, order);
    long n = f[0].n;
    mcnemar_result *r = xmalloc(sizeof *r * (size_t)nb_);
    double *raw = xmalloc(sizeof *raw * (size_t)nb_), *adjusted = xmalloc(sizeof *adjusted * (size_t)nb_);
    for (int b = 0; b < nb_; b++) {
        long cnt[4];
        paired_counts(&f[0], &f[b + 1], order[b + 1], cnt);
        mcnemar(cnt[0], cnt[1], cnt[2], cnt[3], cc, alpha, &r[b]);
        raw[b] = r[b].p[method];
    }
    p_adjust(raw, nb_, (enum adjust_method)adj, adjusted);
    unsigned char *correct = xmalloc((size_t)n * (size_t)nf);
    for (long i = 0; i < n; i++)
        for (int m = 0; m < nf; m++) correct[i * nf + m] = (unsigned char)correct_at(&f[m], order[m], i);
    double q, qp;
    int df, degenerate = cochran_q(correct, n, nf, &q, &df, &qp) != 0;
    const char *adj_name = (const char *[]){"holm", "bonferroni", "none"}[adj];
    double acc0 = (double)(r[0].both_right + r[0].b) / (double)n;

    if (out == OUT_JSON) {
        printf("{\"reference\": ");
        json_string(stdout, f[0].path);
        printf(", \"images\": %ld, \"accuracy\": %s, \"method\": \"%s\", \"adjust\": \"%s\", \"rows\": [", n, N0(acc0),
               mcnemar_method_name[method], adj_name);
        for (int b = 0; b < nb_; b++) {
            printf("%s{\"file\": ", b ? ", " : "");
            json_string(stdout, f[b + 1].path);
            printf(", \"model\": ");
            json_string(stdout, preds_name(&f[b + 1]));
            printf(", \"accuracy\": %s, \"b\": %ld, \"c\": %ld, \"difference\": %s, \"p\": %s, \"p_adjusted\": %s}",
                   N0((double)(r[b].both_right + r[b].c) / (double)n), r[b].b, r[b].c, N1(r[b].diff), N2(raw[b]),
                   N3(adjusted[b]));
        }
        printf("], \"cochran_q\": {\"models\": %d, \"q\": %s, \"df\": %d, \"p\": %s%s}}\n", nf, N0(q), df, N1(qp),
               degenerate ? ", \"note\": \"every image is right for all models or wrong for all\"" : "");
    } else if (out == OUT_CSV) {
        printf("model,file,accuracy,b,c,difference,p,p_adjusted\n");
        for (int b = 0; b < nb_; b++) {
            csv_string(stdout, preds_name(&f[b + 1]));
            printf(",");
            csv_string(stdout, f[b + 1].path);
            printf(",%s,%ld,%ld,%s,%s,%s\n", N0((double)(r[b].both_right + r[b].c) / (double)n), r[b].b, r[b].c,
                   N1(r[b].diff), N2(raw[b]), N3(adjusted[b]));
        }
    } else {
        printf("reference %s (%s): accuracy %.4f on %ld images\n", f[0].path, preds_name(&f[0]), acc0, n);
        printf("McNemar %s per baseline, %s-adjusted over %d comparisons\n\n", mcnemar_method_name[method], adj_name, nb_);
        int w = 12;
        for (int b = 1; b < nf; b++)
            if ((int)strlen(preds_name(&f[b])) > w) w = (int)strlen(preds_name(&f[b]));
        printf("%-*s %9s %7s %7s %10s %12s %12s\n", w, "baseline", "accuracy", "b", "c", "ref - base", "p", "p adjusted");
        for (int b = 0; b < nb_; b++)
            printf("%-*s %9.4f %7ld %7ld %+10.4f %12.6g %12.6g\n", w, preds_name(&f[b + 1]),
                   (double)(r[b].both_right + r[b].c) / (double)n, r[b].b, r[b].c, r[b].diff, raw[b], adjusted[b]);
        printf("\nCochran's Q over %d models: Q = %.6g, df = %d, p = %.6g%s\n", nf, q, df, qp,
               degenerate ? " (every image right for all models or wrong for all)" : "");
    }
    for (int m = 0; m < nf; m++) {
        preds_free(&f[m]);
        free(order[m]);
    }
    free(f);
    free(order);
    free(r);
    free(raw);
    free(adjusted);
    free(correct);
    return EXIT_OK;
}

/* ---- bootstrap ---------------------------------------------------------- */

static int cmd_bootstrap(const cli_args *a)
{
    enum output out = output_of(a);
    double alpha = alpha_of(a), zd = zero_division_of(a);
    int metric = cli_get_choice(a, "metric", "macro-f1|balanced-accuracy|accuracy", BOOT_MACRO_F1);
    long resamples, seed, threads;
    if (metric < 0 || cli_get_long(a, "resamples", 10000, 2, 100000000, &resamples) ||
        cli_get_long(a, "seed", 42, 0, 0x7fffffffffffffffL, &seed) ||
        cli_get_long(a, "threads", sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1, 1, 256, &threads))
        return EXIT_BAD_INPUT;
    int paired = a->npos == 2;
    preds f[2];
    long *order[2] = {NULL, NULL};
    load_matched(a, paired ? 2 : 1, a->pos, f, order);
    int *yhat_b = NULL;
    if (paired) {
        yhat_b = xmalloc(sizeof *yhat_b * (size_t)f[0].n);
        for (long i = 0; i < f[0].n; i++) yhat_b[i] = f[1].yhat[order[1][i]];
    }
    boot_result r;
    bootstrap(f[0].nlabels, f[0].n, f[0].y, f[0].yhat, yhat_b, (enum boot_metric)metric, resamples, (uint64_t)seed,
              alpha, zd, (int)threads, out == OUT_TABLE, &r);
    const char *mname = boot_metric_name[metric];
    if (out == OUT_JSON) {
        printf("{\"files\": [");
        json_string(stdout, f[0].path);
        if (paired) {
            printf(", ");
            json_string(stdout, f[1].path);
        }
        printf("], \"metric\": \"%s\", \"paired\": %s, \"estimate\": %s, \"ci\": [%s, %s], \"method\": \"percentile\"",
               mname, paired ? "true" : "false", N0(r.estimate), N1(r.lo), N2(r.hi));
        printf(", \"alpha\": %s, \"resamples\": %ld, \"seed\": %ld, \"mean\": %s, \"sd\": %s}\n", N0(alpha), resamples,
               seed, N1(r.mean), N2(r.sd));
    } else if (out == OUT_CSV) {
        printf("metric,paired,estimate,lo,hi,alpha,resamples,seed,mean,sd\n%s,%d,%s,%s,%s,", mname, paired,
               N0(r.estimate), N1(r.lo), N2(r.hi));
        printf("%s,%ld,%ld,%s,%s\n", N0(alpha), resamples, seed, N1(r.mean), N2(r.sd));
    } else {
        if (paired)
            printf("%s: %s(A) - %s(B), paired over %ld images\nA = %s\nB = %s\n", mname, mname, mname, f[0].n,
                   f[0].path, f[1].path);
        else
            printf("%s of %s over %ld images\n", mname, f[0].path, f[0].n);
        printf("estimate %.4f   %g%% percentile interval [%.4f, %.4f]   (bootstrap: %ld resamples, seed %ld; sd %.4f)\n",
               r.estimate, 100 * (1 - alpha), r.lo, r.hi, resamples, seed, r.sd);
    }
    for (int i = 0; i < (paired ? 2 : 1); i++) preds_free(&f[i]);
    free(order[1]);
    free(yhat_b);
    return EXIT_OK;
}

/* ---- check: the CI regression gate -------------------------------------- */

static int cmd_check(const cli_args *a)
{
    double alpha = alpha_of(a);
    const char *base = cli_get(a, "baseline");
    int has_min = cli_get(a, "min-accuracy") != NULL;
    int bound = cli_get_choice(a, "bound", "point|wilson", 0);
    double min_acc, max_drop, significance;
    if (bound < 0 || cli_get_double(a, "min-accuracy", 0, 0, 1, &min_acc) ||
        cli_get_double(a, "max-drop", 0, 0, 1, &max_drop) || cli_get_double(a, "significance", 0, 0, 1, &significance))
        return EXIT_BAD_INPUT;
    if (!base && (cli_get(a, "max-drop") || cli_get(a, "significance"))) {
        log_error("check: --max-drop and --significance need --baseline B.csv");
        return EXIT_BAD_INPUT;
    }
    if (!has_min && cli_get(a, "bound")) {
        log_error("check: --bound needs --min-accuracy X");
        return EXIT_BAD_INPUT;
    }
    if (!has_min && !base) {
        log_error("check: give --min-accuracy X, or --baseline B.csv --max-drop D (see ferstats check --help)");
        return EXIT_BAD_INPUT;
    }
    if (base && !cli_get(a, "max-drop")) {
        log_error("check: --baseline needs --max-drop D (the largest accuracy drop you accept, e.g. 0.01)");
        return EXIT_BAD_INPUT;
    }
    enum mcnemar_method method;
    enum cc_convention cc;
    if (mcnemar_options(a, &method, &cc)) return EXIT_BAD_INPUT;
    const char *paths[2] = {a->pos[0], base};
    preds f[2];
    long *order[2] = {NULL, NULL};
    load_matched(a, base ? 2 : 1, paths, f, order);
    int failed = 0;
    long correct = 0;
    for (long i = 0; i < f[0].n; i++) correct += f[0].y[i] == f[0].yhat[i];
    double acc = (double)correct / (double)f[0].n;
    if (has_min) {
        double lo, hi, value = acc;
        const char *what = "accuracy";
        if (bound == 1) {
            wilson_interval(correct, f[0].n, alpha, &lo, &hi);
            value = lo;
            what = "Wilson lower bound of accuracy";
        }
        if (value < min_acc) {
            printf("FAIL %s: %s %.4f (%ld/%ld) is below the floor %.4f by %.4f\n", f[0].path, what, value, correct,
                   f[0].n, min_acc, min_acc - value);
            failed = 1;
        } else {
            printf("ok   %s: %s %.4f (%ld/%ld) >= floor %.4f (margin %.4f)\n", f[0].path, what, value, correct, f[0].n,
                   min_acc, value - min_acc);
        }
    }
    if (base) {
        long cnt[4];
        paired_counts(&f[0], &f[1], order[1], cnt);
        mcnemar_result r;
        mcnemar(cnt[0], cnt[1], cnt[2], cnt[3], cc, alpha, &r);
        /* From the integer difference, so a drop of exactly D compares equal to D. */
        double acc_b = (double)(cnt[0] + cnt[2]) / (double)f[0].n, drop = (double)(cnt[2] - cnt[1]) / (double)f[0].n;
        if (drop > max_drop) {
            printf("FAIL %s: accuracy %.4f is %.4f below the baseline %s (%.4f); the allowed drop is %.4f (exceeded by %.4f)\n",
                   f[0].path, acc, drop, f[1].path, acc_b, max_drop, drop - max_drop);
            failed = 1;
        } else {
            printf("ok   %s: accuracy %.4f vs baseline %.4f: change %+.4f, allowed drop %.4f\n", f[0].path, acc, acc_b,
                   -drop, max_drop);
        }
        if (cli_get(a, "significance")) {
            int worse = r.c > r.b;
            if (worse && r.p[method] < significance) {
                printf("FAIL %s: significantly worse than the baseline: McNemar %s p = %.6g < %g (b = %ld, c = %ld)\n",
                       f[0].path, mcnemar_method_name[method], r.p[method], significance, r.b, r.c);
                failed = 1;
            } else {
                printf("ok   %s: no significant loss: McNemar %s p = %.6g (b = %ld, c = %ld, level %g)\n", f[0].path,
                       mcnemar_method_name[method], r.p[method], r.b, r.c, significance);
            }
        }
    }
    for (int i = 0; i < (base ? 2 : 1); i++) preds_free(&f[i]);
    free(order[1]);
    return failed ? EXIT_CHECK_FAILED : EXIT_OK;
}

/* ---- command table ------------------------------------------------------ */

static const cli_opt metrics_opts[] = {OPT_LABELS, OPT_JSON, OPT_CSV, OPT_ALPHA,
    {"zero-division", "0|1", "value of an undefined precision/recall/F1 (default 0, as sklearn)"}, {0}};
static const cli_opt confusion_opts[] = {OPT_LABELS, OPT_JSON, OPT_CSV,
    {"normalize", "true|pred|all", "divide by true counts (rows), predicted counts (columns) or all"},
    {"svg", "OUT.svg", "write a heatmap with class names, counts and row shares"}, {0}};
#define MCNEMAR_OPTS \
    {"method", "midp|exact|chi2|chi2-cc", "McNemar variant (default midp)"}, \
    {"cc-convention", "r|statsmodels", "chi2-cc at b = c: R skips the correction (default), statsmodels applies it"}
static const cli_opt mcnemar_opts[] = {OPT_LABELS, OPT_JSON, OPT_CSV, OPT_ALPHA, MCNEMAR_OPTS, {0}};
static const cli_opt compare_opts[] = {OPT_LABELS, OPT_JSON, OPT_CSV, OPT_ALPHA, MCNEMAR_OPTS,
    {"adjust", "holm|bonferroni|none", "multiple-comparison adjustment (default holm)"}, {0}};
static const cli_opt bootstrap_opts[] = {OPT_LABELS, OPT_JSON, OPT_CSV, OPT_ALPHA,
    {"metric", "macro-f1|balanced-accuracy|accuracy", "statistic to resample (default macro-f1)"},
    {"resamples", "N", "number of resamples (default 10000)"},
    {"seed", "S", "seed of the resampling (default 42)"},
    {"threads", "N", "worker threads (results do not depend on it)"},
    {"zero-division", "0|1", "value of an undefined F1 (default 0)"}, {0}};
static const cli_opt check_opts[] = {OPT_LABELS, OPT_ALPHA,
    {"min-accuracy", "X", "fail when accuracy is below X"},
    {"bound", "point|wilson", "compare the point accuracy (default) or its Wilson lower bound with X"},
    {"baseline", "B.csv", "baseline predictions on the same images"},
    {"max-drop", "D", "fail when accuracy falls more than D below the baseline"},
    {"significance", "A", "also fail on a McNemar loss with p < A"}, MCNEMAR_OPTS, {0}};

static const cli_command commands[] = {
    {"metrics", "P.csv", "accuracy with intervals, per-class precision/recall/F1, macro, weighted, balanced accuracy, "
     "kappa, MCC and the confusion matrix", metrics_opts, 1, 1, cmd_metrics},
    {"confusion", "P.csv", "confusion matrix as text, CSV, JSON or an SVG heatmap", confusion_opts, 1, 1, cmd_confusion},
    {"mcnemar", "A.csv B.csv", "paired McNemar test of two models on the same images", mcnemar_opts, 2, 2, cmd_mcnemar},
    {"compare", "OURS.csv BASE.csv...", "McNemar of one model against each baseline, adjusted, plus Cochran's Q",
     compare_opts, 2, -1, cmd_compare},
    {"bootstrap", "P.csv [B.csv]", "seeded percentile bootstrap interval (paired for a difference)", bootstrap_opts, 1,
     2, cmd_bootstrap},
    {"check", "P.csv", "regression gate for CI: exit 1 when the model falls short", check_opts, 1, 1, cmd_check},
    {0},
};

int main(int argc, char **argv)
{
    return cli_main("ferstats", "Statistics on ferbench predictions CSVs: metrics, confusion matrices, McNemar, "
                    "Cochran's Q, bootstrap intervals and the CI regression gate.\nExit 0 ok, 1 a failed check, 2 bad "
                    "usage or input.", commands, argc, argv);
}
