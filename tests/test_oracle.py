#!/usr/bin/python3
"""Oracle test: ferstats against scikit-learn, statsmodels, scipy and exact
rational arithmetic (TAP output, for prove).

  metrics  sklearn accuracy / precision_recall_fscore_support / balanced accuracy /
           cohen_kappa_score / matthews_corrcoef / confusion_matrix, statsmodels
           proportion_confint (wilson, beta) -- on random predictions files of
           1 to 5,000 rows, 7 classes, absent classes, perfect, constant and
           imbalanced "models", canonical v1 files (half with prob_ columns) and
           plain image,label,pred files read with --labels.
  mcnemar  statsmodels mcnemar (exact, chi2, chi2 with continuity correction),
           scipy mid-p, Fraction/math.comb exact p-values, n = b + c = 0.
  compare  pairwise mcnemar p, R p.adjust holm / bonferroni, statsmodels
           cochrans_q; for two models Q = uncorrected McNemar chi2.

Env: FERBENCH_BIN (default bin), relative to the repository root (the cwd).
Deterministic (fixed seed). Exit 0 when every test passes, 1 otherwise.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from fractions import Fraction

import numpy as np

warnings.simplefilter("ignore")
np.seterr(all="ignore")

from scipy import stats  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score, balanced_accuracy_score, cohen_kappa_score, confusion_matrix,
    matthews_corrcoef, precision_recall_fscore_support)
from statsmodels.stats.contingency_tables import cochrans_q, mcnemar  # noqa: E402
from statsmodels.stats.proportion import proportion_confint  # noqa: E402

SEED = 20240611
LABELS = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
K = len(LABELS)
LABEL_LIST = ",".join(LABELS)
REL = 1e-12          # relative tolerance against the Python oracles
REL_EXACT = 1e-13    # relative tolerance against exact rational arithmetic
FLOOR_NEAR0 = 1e-14  # absolute floor: kappa, MCC, differences, Wilson bound at 0
FLOOR_P = 1e-300     # absolute floor: p-values that underflow
FRACTION_MAX_N = 2000

BIN = os.environ.get("FERBENCH_BIN", "bin")
FERSTATS = os.path.join(BIN, "ferstats")

rng = np.random.default_rng(SEED)

# ---------------------------------------------------------------- comparison

# quantity -> [worst relative error where the relative tolerance binds, where,
#              worst absolute error where the absolute floor binds, where]
worst = {}


def relerr(a, b):
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


class Checker:
    """Collects comparisons for one TAP line; remembers the first mismatch."""

    def __init__(self, where):
        self.where = where
        self.fails = []
        self.count = 0

    def fail(self, msg):
        self.fails.append(msg)

    def eq(self, field, got, want):
        """Exact equality (integers, strings, lists of integers)."""
        self.count += 1
        if got != want:
            self.fail("%s: ferstats %r, expected %r" % (field, got, want))

    def num(self, field, got, want, quantity, floor=0.0, rel=REL):
        """|got - want| <= max(rel * max(|got|, |want|), floor); None <-> NaN."""
        self.count += 1
        want_nan = want is None or (isinstance(want, float) and math.isnan(want))
        if got is None or want_nan:
            if not (got is None and want_nan):
                self.fail("%s: ferstats %r, oracle %r (null/NaN on one side only)" % (field, got, want))
            return
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            self.fail("%s: ferstats gave a non-number %r" % (field, got))
            return
        got, want = float(got), float(want)
        if math.isinf(want):
            self.fail("%s: oracle gave %r (ferstats %r)" % (field, want, got))
            return
        r = relerr(got, want)
        a = abs(got - want)
        w = worst.setdefault(quantity, [0.0, "", None, ""])
        if rel * max(abs(got), abs(want)) >= floor:
            if r > w[0] or not w[1]:
                w[0], w[1] = r, "%s: %s" % (self.where, field)
        elif w[2] is None or a > w[2]:
            w[2], w[3] = a, "%s: %s" % (self.where, field)
        if a > max(rel * max(abs(got), abs(want)), floor):
            self.fail("%s: ferstats %r, oracle %r, relative error %.3g (abs %.3g, tolerance %.0e%s)"
                      % (field, got, want, r, a, rel, ", floor %.0e" % floor if floor else ""))

    @property
    def ok(self):
        return not self.fails


# ---------------------------------------------------------------- TAP

results = {"pass": 0, "fail": 0}
test_no = [0]


def tap(ok, desc, diag=()):
    test_no[0] += 1
    print("%s %d - %s" % ("ok" if ok else "not ok", test_no[0], desc))
    for d in diag:
        print("#   " + d)
    sys.stdout.flush()
    results["pass" if ok else "fail"] += 1


def report(checker, desc):
    diag = []
    if checker.fails:
        diag.append("first mismatch: " + checker.fails[0])
        if len(checker.fails) > 1:
            diag.append("(%d mismatching fields in all; next: %s)" % (len(checker.fails), checker.fails[1]))
    tap(checker.ok, "%s [%d values]" % (desc, checker.count), diag)


class FerstatsError(Exception):
    pass


def ferstats(*args):
    cmd = [FERSTATS] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FerstatsError("%s: %s" % (" ".join(cmd), e))
    if p.returncode != 0:
        raise FerstatsError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()[:500]))
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise FerstatsError("%s: output is not JSON (%s): %r" % (" ".join(cmd), e, p.stdout[:300]))


# ---------------------------------------------------------------- files

def write_preds(path, model, images, y, yhat, fmt, order=None):
    """fmt: 'probs' (v1 header + prob_ columns), 'v1' (v1 header), 'plain'."""
    n = len(images)
    order = range(n) if order is None else order
    lines = []
    if fmt != "plain":
        lines.append("# ferbench-predictions v1 dataset=oracle split=test model=%s labels=%s" % (model, LABEL_LIST))
    header = "image,label,pred"
    if fmt == "probs":
        header += "".join(",prob_" + name for name in LABELS)
        probs = rng.dirichlet(np.full(K, 0.6), size=n)
    lines.append(header)
    for i in order:
        row = "%s,%s,%s" % (images[i], LABELS[y[i]], LABELS[yhat[i]])
        if fmt == "probs":
            pr = probs[i].copy()
            top = int(np.argmax(pr))
            pr[top], pr[yhat[i]] = pr[yhat[i]], pr[top]  # the prediction is the argmax
            pr = pr / pr.sum()
            row += "".join("," + repr(float(v)) for v in pr)
        lines.append(row)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def labels_args(*fmts):
    return ["--labels", LABEL_LIST] if "plain" in fmts else []


def wrong_label(yi, allowed=None):
    """A label different from yi, drawn from allowed (default: all)."""
    choices = [k for k in (range(K) if allowed is None else allowed) if k != yi]
    return int(rng.choice(choices))


def class_probs(kind):
    if kind == "uniform":
        return np.full(K, 1.0 / K)
    if kind == "imbalanced":  # geometric, shuffled: the largest class ~ 20x the smallest
        w = 0.6 ** np.arange(K)
        rng.shuffle(w)
        return w / w.sum()
    if kind == "dirichlet":
        return rng.dirichlet(np.full(K, 0.4))
    raise ValueError(kind)


SCENARIOS = ["uniform", "imbalanced", "absent_truth", "absent_pred", "absent_both", "perfect", "constant",
             "guessing"]


def make_metrics_case(scenario, n):
    """Returns y, yhat (int arrays) for a scenario."""
    allowed_pred = list(range(K))
    if scenario == "uniform":
        y = rng.choice(K, size=n, p=class_probs("uniform"))
    elif scenario in ("imbalanced", "perfect", "constant", "guessing", "one_wrong", "one_right"):
        y = rng.choice(K, size=n, p=class_probs("imbalanced" if scenario != "guessing" else "dirichlet"))
    elif scenario in ("absent_truth", "absent_both"):
        present = sorted(rng.choice(K, size=int(rng.integers(1, 5)), replace=False))
        y = rng.choice(present, size=n)
        if scenario == "absent_both":
            absent = [k for k in range(K) if k not in present]
            never = set(rng.choice(absent, size=min(len(absent), int(rng.integers(1, 3))), replace=False))
            allowed_pred = [k for k in range(K) if k not in never]
    elif scenario == "absent_pred":
        y = rng.choice(K, size=n, p=class_probs("dirichlet"))
        allowed_pred = sorted(rng.choice(K, size=int(rng.integers(1, 5)), replace=False))
    else:
        raise ValueError(scenario)
    y = np.asarray(y, dtype=int)
    if scenario == "perfect":
        return y, y.copy()
    if scenario in ("one_wrong", "one_right"):
        right = scenario == "one_right"
        yhat = np.array([yi if not right else wrong_label(int(yi)) for yi in y], dtype=int)
        i = int(rng.integers(n))
        yhat[i] = y[i] if right else wrong_label(int(y[i]))
        return y, yhat
    if scenario == "constant":
        return y, np.full(n, int(rng.integers(K)), dtype=int)
    if scenario == "guessing":  # predictions independent of the truth
        return y, rng.choice(K, size=n, p=class_probs("dirichlet")).astype(int)
    acc = rng.uniform(0.2, 0.97)
    yhat = np.empty(n, dtype=int)
    for i in range(n):
        if y[i] in allowed_pred and rng.random() < acc:
            yhat[i] = y[i]
        else:
            yhat[i] = wrong_label(int(y[i]), allowed_pred) if len(allowed_pred) > 1 or y[i] not in allowed_pred \
                else allowed_pred[0]
    return y, yhat


# ---------------------------------------------------------------- metrics

def check_metrics(path, fmt, y, yhat, where, zd=0):
    ch = Checker(where)
    args = ["metrics", "--json"] + labels_args(fmt) + (["--zero-division", "1"] if zd == 1 else []) + [path]
    try:
        js = ferstats(*args)
    except FerstatsError as e:
        ch.fail(str(e))
        return ch
    labels = list(range(K))
    n = len(y)
    cm = confusion_matrix(y, yhat, labels=labels)
    correct = int(np.trace(cm))
    ch.eq("n", js.get("n"), n)
    ch.eq("labels", js.get("labels"), LABELS)
    ch.eq("correct", js.get("correct"), correct)
    ch.eq("confusion", js.get("confusion"), cm.tolist())
    ch.eq("zero_division", js.get("zero_division"), zd)
    ch.num("accuracy", js.get("accuracy"), accuracy_score(y, yhat), "accuracy")
    for method, key in (("wilson", "wilson"), ("beta", "clopper_pearson")):
        lo, hi = proportion_confint(correct, n, alpha=0.05, method=method)
        got = js.get("accuracy_ci", {}).get(key, [None, None])
        # The Wilson lower bound at 0 successes (upper at n) is 0 (1) by cancellation.
        ch.num("accuracy_ci.%s[0]" % key, got[0], lo, "ci.%s.lo" % key,
               floor=FLOOR_NEAR0 if correct == 0 and method == "wilson" else 0.0)
        ch.num("accuracy_ci.%s[1]" % key, got[1], hi, "ci.%s.hi" % key)
    P, R, F, S = precision_recall_fscore_support(y, yhat, labels=labels, average=None, zero_division=zd)
    pc = js.get("per_class", [])
    ch.eq("len(per_class)", len(pc), K)
    for i in range(min(K, len(pc))):
        ch.eq("per_class[%d].label" % i, pc[i].get("label"), LABELS[i])
        ch.eq("per_class[%s].support" % LABELS[i], pc[i].get("support"), int(S[i]))
        ch.eq("per_class[%s].predicted" % LABELS[i], pc[i].get("predicted"), int(cm[:, i].sum()))
        ch.num("per_class[%s].precision" % LABELS[i], pc[i].get("precision"), P[i], "precision")
        ch.num("per_class[%s].recall" % LABELS[i], pc[i].get("recall"), R[i], "recall")
        ch.num("per_class[%s].f1" % LABELS[i], pc[i].get("f1"), F[i], "f1")
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, yhat, labels=labels, average=avg, zero_division=zd)
        got = js.get(avg, {})
        ch.num(avg + ".precision", got.get("precision"), p, avg + ".precision")
        ch.num(avg + ".recall", got.get("recall"), r, avg + ".recall")
        ch.num(avg + ".f1", got.get("f1"), f, avg + ".f1")
    ch.num("balanced_accuracy", js.get("balanced_accuracy"), balanced_accuracy_score(y, yhat), "balanced_accuracy")
    kappa = cohen_kappa_score(y, yhat)
    ch.num("kappa", js.get("kappa"), kappa, "kappa", floor=FLOOR_NEAR0)
    ch.num("mcc", js.get("mcc"), matthews_corrcoef(y, yhat), "mcc", floor=FLOOR_NEAR0)
    notes = " | ".join(js.get("notes", []))
    ch.eq("notes mention undefined kappa", "kappa undefined" in notes, bool(np.isnan(kappa)))
    ch.eq("notes mention absent labels", "no true image" in notes, bool((S == 0).any()))
    return ch


# ---------------------------------------------------------------- McNemar oracles

def fraction_p(b, c):
    """Exact two-sided and mid-p McNemar p-values as floats (correctly rounded)."""
    n, k = b + c, min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    exact = min(Fraction(1), Fraction(2 * tail, 2 ** n))
    if b == c:
        midp = 1 - Fraction(math.comb(n, b), 2 ** (n + 1))
    else:
        midp = Fraction(2 * tail - math.comb(n, k), 2 ** n)
    return float(exact), float(midp)


def scipy_midp(b, c):
    n, k = b + c, min(b, c)
    if b == c:
        return 1 - stats.binom.pmf(b, n, 0.5) / 2
    return 2 * stats.binom.cdf(k, n, 0.5) - stats.binom.pmf(k, n, 0.5)


def check_mcnemar(pa, pb, extra, counts, where):
    n11, b, c, n00 = counts
    N = n11 + b + c + n00
    n = b + c
    ch = Checker(where)
    try:
        js = ferstats("mcnemar", "--json", *extra, pa, pb)
        js2 = ferstats("mcnemar", "--json", "--cc-convention", "statsmodels", "--method", "chi2-cc", *extra, pa, pb)
    except FerstatsError as e:
        ch.fail(str(e))
        return ch, None
    for key, want in (("images", N), ("both_right", n11), ("b", b), ("c", c), ("both_wrong", n00), ("n", n)):
        ch.eq(key, js.get(key), want)
    ch.num("accuracy_a", js.get("accuracy_a"), (n11 + b) / N, "mcnemar.accuracy")
    ch.num("accuracy_b", js.get("accuracy_b"), (n11 + c) / N, "mcnemar.accuracy")
    ch.num("difference", js.get("difference"), (b - c) / N, "mcnemar.difference", floor=FLOOR_NEAR0)
    ch.eq("method", js.get("method"), "midp")
    ch.eq("cc_convention", js.get("cc_convention"), "r")
    pv, st = js.get("p_values", {}), js.get("statistics", {})
    ch.eq("p (== p_values.midp)", js.get("p"), pv.get("midp"))
    ch.eq("statistic (== min(b, c))", js.get("statistic"), min(b, c))
    notes = js.get("notes", [])
    table = [[n11, b], [c, n00]]
    if n == 0:
        for m in ("midp", "exact", "chi2", "chi2-cc"):
            ch.eq("p_values.%s at n = 0" % m, pv.get(m), 1)
        ch.eq("statistics.chi2 at n = 0", st.get("chi2"), 0)
        ch.eq("statistics.chi2-cc at n = 0", st.get("chi2-cc"), 0)
        ch.eq("notes at n = 0", "no discordant pairs" in notes, True)
        ch.eq("--cc-convention statsmodels p at n = 0", js2.get("p"), 1)
        ch.eq("--cc-convention statsmodels statistic at n = 0", js2.get("statistic"), 0)
    else:
        ch.eq("notes (n > 0)", "no discordant pairs" in notes, False)
        ex = mcnemar(table, exact=True)
        ch.num("p_values.exact", pv.get("exact"), ex.pvalue, "p.exact~statsmodels", floor=FLOOR_P)
        ch.num("p_values.midp", pv.get("midp"), scipy_midp(b, c), "p.midp~scipy", floor=FLOOR_P)
        nc = mcnemar(table, exact=False, correction=False)
        ch.num("statistics.chi2", st.get("chi2"), nc.statistic, "stat.chi2")
        ch.num("p_values.chi2", pv.get("chi2"), nc.pvalue, "p.chi2", floor=FLOOR_P)
        cc = mcnemar(table, exact=False, correction=True)
        if b != c:
            ch.num("statistics.chi2-cc", st.get("chi2-cc"), cc.statistic, "stat.chi2-cc")
            ch.num("p_values.chi2-cc", pv.get("chi2-cc"), cc.pvalue, "p.chi2-cc", floor=FLOOR_P)
        else:  # R's convention: no correction at b = c
            ch.eq("statistics.chi2-cc at b = c (R convention)", st.get("chi2-cc"), 0)
            ch.eq("p_values.chi2-cc at b = c (R convention)", pv.get("chi2-cc"), 1)
        ch.num("statistics.chi2-cc (--cc-convention statsmodels)", js2.get("statistics", {}).get("chi2-cc"),
               cc.statistic, "stat.chi2-cc(statsmodels)")
        ch.num("p_values.chi2-cc (--cc-convention statsmodels)", js2.get("p_values", {}).get("chi2-cc"),
               cc.pvalue, "p.chi2-cc(statsmodels)", floor=FLOOR_P)
        if n <= FRACTION_MAX_N:
            fe, fm = fraction_p(b, c)
            ch.num("p_values.exact vs Fraction", pv.get("exact"), fe, "p.exact~fraction", floor=FLOOR_P,
                   rel=REL_EXACT)
            ch.num("p_values.midp vs Fraction", pv.get("midp"), fm, "p.midp~fraction", floor=FLOOR_P,
                   rel=REL_EXACT)
    ch.eq("--cc-convention statsmodels: cc_convention", js2.get("cc_convention"), "statsmodels")
    ch.eq("--method chi2-cc: method", js2.get("method"), "chi2-cc")
    ch.eq("--method chi2-cc: p == p_values.chi2-cc", js2.get("p"), js2.get("p_values", {}).get("chi2-cc"))
    ch.eq("--method chi2-cc: statistic == statistics.chi2-cc", js2.get("statistic"),
          js2.get("statistics", {}).get("chi2-cc"))
    for m in ("midp", "exact", "chi2"):
        ch.eq("p_values.%s unchanged by --cc-convention" % m, js2.get("p_values", {}).get(m), pv.get(m))
    return ch, js


# ---------------------------------------------------------------- pairs

def correctness_to_preds(y, correct):
    return np.array([y[i] if correct[i] else wrong_label(int(y[i])) for i in range(len(y))], dtype=int)


def make_pair(N, b, c, n00=None):
    """Truth and two prediction vectors with exactly b (A right only) and c (B right only)."""
    assert b + c <= N
    if n00 is None:
        n00 = int(rng.integers(0, N - b - c + 1))
    n11 = N - b - c - n00
    cat = np.array([0] * n11 + [1] * b + [2] * c + [3] * n00)
    rng.shuffle(cat)
    y = rng.choice(K, size=N, p=class_probs(["uniform", "imbalanced", "dirichlet"][int(rng.integers(3))]))
    ra = (cat == 0) | (cat == 1)
    rb = (cat == 0) | (cat == 2)
    ya = correctness_to_preds(y, ra)
    yb = correctness_to_preds(y, rb)
    same_wrong = rng.random() < 0.5  # both wrong: sometimes the same wrong label
    for i in np.nonzero(cat == 3)[0]:
        if same_wrong:
            yb[i] = ya[i]
    return y.astype(int), ya, yb, (n11, b, c, n00)


def pair_specs():
    specs = [  # (N, b, c, n00): edge cases first, STATS.md reference values among them
        (1, 0, 0, 0), (1, 0, 0, 1), (1, 1, 0, 0), (1, 0, 1, 0), (2, 1, 1, 0), (2, 0, 0, 1), (3, 2, 1, 0),
        (3, 0, 3, 0), (5, 1, 0, None), (20, 10, 2, None), (400, 150, 90, None), (60, 25, 25, None),
        (100, 1, 1, None), (1000, 0, 0, None), (5000, 0, 0, 700), (500, 0, 17, None), (5000, 0, 1200, None),
        (300, 40, 0, None), (2000, 900, 0, None), (5000, 2000, 0, 1000), (3000, 1100, 0, None),
        (5000, 1500, 20, None), (5000, 2400, 2300, 100), (4000, 1000, 900, None), (5000, 2000, 1990, 10),
        (2000, 1000, 1000, 0), (2500, 1000, 999, None), (5000, 1200, 800, None), (5000, 300, 300, None),
        (2500, 0, 2000, 0), (700, 350, 349, None), (150, 41, 40, None), (4097, 1, 1200, None),
        (12, 3, 3, None), (37, 0, 5, 0),
        # near ferstats' internal switches (direct product for n <= 1000 and min(b, c) <= 40, the stirlerr
        # table / series ranges, bd0's series where min(b, c) / n > ~0.409)
        (1000, 40, 960, 0), (1000, 41, 959, 0), (1001, 961, 40, 0), (81, 40, 41, 0), (82, 41, 41, 0),
        (1001, 1, 1000, 0), (1500, 15, 1000, None), (1500, 1000, 16, None), (2000, 35, 1500, None),
        (2000, 36, 1500, None), (1200, 80, 1000, None), (1200, 81, 1000, None), (1001, 409, 592, 0),
        (1001, 591, 410, 0), (2000, 818, 1182, 0), (2000, 819, 1181, 0), (5000, 500, 4499, None),
        (5000, 4499, 501, None), (5000, 2045, 2955, 0), (5000, 2050, 2950, 0),
    ]
    while len(specs) < 80:  # random ones, sizes log-uniform in 1..5000
        N = int(round(math.exp(rng.uniform(0, math.log(5000)))))
        shape = int(rng.integers(4))
        if shape == 0:    # similar models
            n = int(rng.integers(0, max(1, N // 4) + 1))
            b = int(rng.binomial(n, 0.5))
        elif shape == 1:  # imbalanced
            n = int(rng.integers(0, N + 1))
            b = int(rng.binomial(n, rng.uniform(0, 0.15)))
        elif shape == 2:  # b = c
            h = int(rng.integers(0, N // 2 + 1))
            n, b = 2 * h, h
        else:             # anything
            n = int(rng.integers(0, N + 1))
            b = int(rng.integers(0, n + 1))
        if rng.random() < 0.5:
            b = n - b
        specs.append((N, b, n - b, None))
    return specs


FORMATS_PAIR = [("probs", "probs"), ("v1", "v1"), ("plain", "plain"), ("probs", "plain"), ("v1", "probs"),
                ("plain", "v1")]


# ---------------------------------------------------------------- compare

def holm(p):
    """R's p.adjust(p, 'holm'): pmin(1, cummax((m - i + 1) * p[o]))[ro]."""
    m = len(p)
    out = [0.0] * m
    run = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p[j])):
        run = max(run, (m - rank) * p[i])
        out[i] = min(1.0, run)
    return out


def bonferroni(p):
    return [min(1.0, len(p) * v) for v in p]


def check_compare(paths, fmts, corr, where):
    """paths[0] is the reference; corr is the N x k 0/1 correctness matrix in that order."""
    ch = Checker(where)
    extra = labels_args(*fmts)
    k = len(paths)
    try:
        js = ferstats("compare", "--json", *extra, *paths)
        jb = ferstats("compare", "--json", "--adjust", "bonferroni", *extra, *paths)
        pair = [ferstats("mcnemar", "--json", *extra, paths[0], p) for p in paths[1:]]
    except FerstatsError as e:
        ch.fail(str(e))
        return ch
    ch.eq("method", js.get("method"), "midp")
    ch.eq("adjust", js.get("adjust"), "holm")
    ch.eq("adjust (--adjust bonferroni)", jb.get("adjust"), "bonferroni")
    ch.eq("images", js.get("images"), corr.shape[0])
    rows, rowsb = js.get("rows", []), jb.get("rows", [])
    ch.eq("number of rows", len(rows), k - 1)
    ch.eq("number of rows (bonferroni)", len(rowsb), k - 1)
    if len(rows) != k - 1 or len(rowsb) != k - 1:
        return ch
    raw = []
    for j in range(1, k):
        r, m = rows[j - 1], pair[j - 1]
        b = int(((corr[:, 0] == 1) & (corr[:, j] == 0)).sum())
        c = int(((corr[:, 0] == 0) & (corr[:, j] == 1)).sum())
        ch.eq("rows[%d].b" % (j - 1), r.get("b"), b)
        ch.eq("rows[%d].c" % (j - 1), r.get("c"), c)
        ch.num("rows[%d].accuracy" % (j - 1), r.get("accuracy"), corr[:, j].mean(), "compare.accuracy")
        ch.num("rows[%d].p vs mcnemar p" % (j - 1), r.get("p"), m.get("p"), "compare.p~mcnemar", floor=FLOOR_P)
        if b + c:
            ch.num("rows[%d].p vs scipy mid-p" % (j - 1), r.get("p"), scipy_midp(b, c), "p.midp~scipy",
                   floor=FLOOR_P)
        else:
            ch.eq("rows[%d].p at b = c = 0" % (j - 1), r.get("p"), 1)
        ch.eq("rows[%d].p (bonferroni run)" % (j - 1), rowsb[j - 1].get("p"), r.get("p"))
        raw.append(r.get("p") if isinstance(r.get("p"), (int, float)) else float("nan"))
    for j, (h, bf) in enumerate(zip(holm(raw), bonferroni(raw))):
        ch.num("rows[%d].p_adjusted (holm)" % j, rows[j].get("p_adjusted"), h, "p.holm", floor=FLOOR_P)
        ch.num("rows[%d].p_adjusted (bonferroni)" % j, rowsb[j].get("p_adjusted"), bf, "p.bonferroni",
               floor=FLOOR_P)
    q = js.get("cochran_q", {})
    ch.eq("cochran_q.models", q.get("models"), k)
    ch.eq("cochran_q.df", q.get("df"), k - 1)
    sm = cochrans_q(corr)
    if math.isnan(sm.statistic):
        ch.eq("cochran_q.q (degenerate: statsmodels NaN)", q.get("q"), 0)
        ch.eq("cochran_q.p (degenerate: statsmodels NaN)", q.get("p"), 1)
        ch.eq("cochran_q.note present when degenerate", "note" in q, True)
    else:
        ch.num("cochran_q.q", q.get("q"), sm.statistic, "cochran.q(df>1)")
        ch.num("cochran_q.p", q.get("p"), sm.pvalue, "cochran.p(df>1)", floor=FLOOR_P)
        ch.eq("cochran_q.note absent when defined", "note" in q, False)
    return ch


def check_k2(pa, pb, extra, mc_js, corr, where):
    """For two models Cochran's Q equals the uncorrected McNemar chi2 (statistic and p)."""
    ch = Checker(where)
    try:
        js = ferstats("compare", "--json", *extra, pa, pb)
    except FerstatsError as e:
        ch.fail(str(e))
        return ch
    q = js.get("cochran_q", {})
    ch.eq("cochran_q.models", q.get("models"), 2)
    ch.eq("cochran_q.df", q.get("df"), 1)
    ch.num("cochran_q.q vs mcnemar statistics.chi2", q.get("q"), mc_js["statistics"]["chi2"], "k2.q~chi2")
    ch.num("cochran_q.p vs mcnemar p_values.chi2", q.get("p"), mc_js["p_values"]["chi2"], "k2.p~chi2",
           floor=FLOOR_P)
    sm = cochrans_q(corr)
    if not math.isnan(sm.statistic):
        ch.num("cochran_q.q vs statsmodels", q.get("q"), sm.statistic, "cochran.q(df=1)")
        ch.num("cochran_q.p vs statsmodels", q.get("p"), sm.pvalue, "cochran.p(df=1)", floor=FLOOR_P)
    return ch


def group_specs():
    """(N, k, kind): kinds shape how the baselines' correctness relates to the reference's."""
    return [(500, 3, "correlated"), (5000, 6, "correlated"), (1, 3, "correlated"), (200, 4, "identical"),
            (800, 5, "one_identical"), (1000, 4, "tied"), (3000, 3, "far_apart"), (37, 6, "correlated"),
            (2, 4, "correlated"), (400, 4, "far_apart"), (150, 5, "far_apart")]


def make_group(N, k, kind):
    y = rng.choice(K, size=N, p=class_probs("imbalanced"))
    acc = rng.uniform(0.4, 0.9)
    corr = np.zeros((N, k), dtype=int)
    corr[:, 0] = rng.random(N) < acc
    for j in range(1, k):
        if kind == "identical" or (kind == "one_identical" and j == 1):
            corr[:, j] = corr[:, 0]
        elif kind == "tied" and j == 2:
            # same b and c as baseline 1 (tied raw p), other images
            corr[:, j] = corr[:, 0]
            b = int(((corr[:, 0] == 1) & (corr[:, 1] == 0)).sum())
            c = int(((corr[:, 0] == 0) & (corr[:, 1] == 1)).sum())
            right = rng.permutation(np.nonzero(corr[:, 0] == 1)[0])[:b]
            wrong = rng.permutation(np.nonzero(corr[:, 0] == 0)[0])[:c]
            corr[right, j] = 0
            corr[wrong, j] = 1
        elif kind == "far_apart":
            corr[:, j] = rng.random(N) < (0.15 * j)  # Q from about 50 to thousands
        else:
            flip = rng.random(N) < rng.uniform(0.02, 0.3)
            corr[:, j] = np.where(flip, 1 - corr[:, 0], corr[:, 0])
    preds = [correctness_to_preds(y, corr[:, j].astype(bool)) for j in range(k)]
    return y.astype(int), preds, corr


# ---------------------------------------------------------------- main

def main():
    t0 = time.time()
    if not (os.path.isfile(FERSTATS) and os.access(FERSTATS, os.X_OK)):
        print("Bail out! %s not found or not executable (set FERBENCH_BIN; run make all)" % FERSTATS)
        return 1

    # Plan everything first (deterministic), so the TAP plan comes first.
    metric_cases = []
    for scen in SCENARIOS:
        sizes = [1, 2, 3, int(rng.integers(4, 31)), int(rng.integers(31, 501)), int(rng.integers(501, 2001)),
                 int(rng.integers(2001, 5000)), 5000]
        for n in sizes:
            metric_cases.append((scen, n))
    metric_cases += [("stats_md_example", 12), ("uniform", 7), ("absent_both", 5000), ("constant", 1),
                     ("one_wrong", 5000), ("one_right", 5000), ("one_wrong", 2), ("one_right", 3),
                     ("one_wrong", 1000), ("one_right", 999)]
    zd_candidates = []  # files with absent classes, for --zero-division 1
    pairs = pair_specs()
    groups = group_specs()
    k2_pairs = [i for i, (N, b, c, _) in enumerate(pairs) if i % 4 == 0 or b == c]
    n_zd = 8
    plan = len(metric_cases) + n_zd + len(pairs) + len(k2_pairs) + len(groups)
    print("1..%d" % plan)
    print("# ferstats: %s; seed %d; sklearn/statsmodels/scipy oracles, relative tolerance %.0e" % (FERSTATS, SEED, REL))

    with tempfile.TemporaryDirectory(prefix="ferbench_oracle_") as tmp:
        # ---- metrics
        for i, (scen, n) in enumerate(metric_cases):
            fmt = ["probs", "probs", "v1", "plain"][i % 4]
            if scen == "stats_md_example":
                y = np.array([0, 0, 1, 1, 2, 2, 2, 3, 4, 5, 6, 6])
                yhat = np.array([0, 1, 1, 1, 2, 0, 2, 3, 5, 5, 6, 0])
            else:
                y, yhat = make_metrics_case(scen, n)
            images = ["f%03d_img%05d" % (i, j) for j in range(n)]
            path = os.path.join(tmp, "m%03d.csv" % i)
            order = rng.permutation(n) if i % 3 == 0 else None
            write_preds(path, "m%d" % i, images, y, yhat, fmt, order)
            absent_t = [LABELS[k][:3] for k in range(K) if not (y == k).any()]
            absent_p = [LABELS[k][:3] for k in range(K) if not (yhat == k).any()]
            desc = "metrics %s n=%d %s acc=%.3f absent-truth=%s absent-pred=%s" % (
                scen, n, fmt, float((y == yhat).mean()), ",".join(absent_t) or "-", ",".join(absent_p) or "-")
            ch = check_metrics(path, fmt, y, yhat, "metrics file %d" % i)
            report(ch, desc)
            if (absent_t or absent_p) and n > 1:
                zd_candidates.append((scen, n, path, fmt, y, yhat, absent_t, absent_p))
        # ---- --zero-division 1: files with absent classes, spread over the sizes
        zd_candidates.sort(key=lambda case: case[1])
        if len(zd_candidates) >= n_zd:
            zd_cases = [zd_candidates[round(j * (len(zd_candidates) - 1) / (n_zd - 1))] for j in range(n_zd)]
        else:
            zd_cases = zd_candidates
        for j in range(n_zd):
            if j < len(zd_cases):
                scen, n, path, fmt, y, yhat, absent_t, absent_p = zd_cases[j]
                ch = check_metrics(path, fmt, y, yhat, "zero-division file %d" % j, zd=1)
                report(ch, "metrics --zero-division 1 %s n=%d absent-truth=%s absent-pred=%s" % (
                    scen, n, ",".join(absent_t) or "-", ",".join(absent_p) or "-"))
            else:
                tap(False, "metrics --zero-division 1: not enough files with absent classes")

        # ---- pairs
        pair_files = []
        for i, (N, b, c, n00) in enumerate(pairs):
            y, ya, yb, counts = make_pair(N, b, c, n00)
            fa, fb = FORMATS_PAIR[i % len(FORMATS_PAIR)]
            images = ["p%03d_img%05d" % (i, j) for j in range(N)]
            pa, pb = os.path.join(tmp, "pa%03d.csv" % i), os.path.join(tmp, "pb%03d.csv" % i)
            write_preds(pa, "A%d" % i, images, y, ya, fa)
            shuffled = i % 2 == 1
            write_preds(pb, "B%d" % i, images, y, yb, fb, rng.permutation(N) if shuffled else None)
            extra = labels_args(fa, fb)
            ch, js = check_mcnemar(pa, pb, extra, counts, "pair %d" % i)
            report(ch, "mcnemar N=%d b=%d c=%d n00=%d %s/%s%s" % (N, b, c, counts[3], fa, fb,
                                                                 " B-shuffled" if shuffled else ""))
            corr = np.column_stack([ya == y, yb == y]).astype(int)
            pair_files.append((pa, pb, extra, js, corr, N, b, c))
        for i in k2_pairs:
            pa, pb, extra, js, corr, N, b, c = pair_files[i]
            desc = "compare k=2: Cochran Q == McNemar chi2, N=%d b=%d c=%d" % (N, b, c)
            if js is None:
                tap(False, desc, ["mcnemar run of this pair failed"])
                continue
            report(check_k2(pa, pb, extra, js, corr, "k2 pair %d" % i), desc)

        # ---- groups
        for g, (N, k, kind) in enumerate(groups):
            y, preds, corr = make_group(N, k, kind)
            images = ["g%02d_img%05d" % (g, j) for j in range(N)]
            fmts = [["probs", "v1", "plain"][(g + j) % 3] for j in range(k)]
            paths = []
            for j in range(k):
                p = os.path.join(tmp, "g%02d_%d.csv" % (g, j))
                write_preds(p, "g%dm%d" % (g, j), images, y, preds[j], fmts[j],
                            rng.permutation(N) if j % 2 else None)
                paths.append(p)
            ch = check_compare(paths, fmts, corr, "group %d" % g)
            bc = ["%d/%d" % (((corr[:, 0] == 1) & (corr[:, j] == 0)).sum(), ((corr[:, 0] == 0) & (corr[:, j] == 1)).sum())
                  for j in range(1, k)]
            report(ch, "compare %s N=%d models=%d b/c=%s" % (kind, N, k, ",".join(bc)))

    elapsed = time.time() - t0
    print("# worst relative error per quantity (and, where values fell below the absolute floor, the worst")
    print("# absolute error there):")
    for qn in sorted(worst):
        r, rw, a, aw = worst[qn]
        line = "#   %-30s rel %-9.3g" % (qn, r) + (" (%s)" % rw if r > 0 else "")
        if a is not None:
            line += "; below floor: abs %.3g" % a + (" (%s)" % aw if a > 0 else "")
        print(line)
    print("# %d passed, %d failed, %.1f s" % (results["pass"], results["fail"], elapsed))
    if test_no[0] != plan:
        print("# plan mismatch: ran %d of %d" % (test_no[0], plan))
        return 1
    return 0 if results["fail"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
