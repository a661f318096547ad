#!/usr/bin/python3
"""The Python a researcher would write for `ferbench report`'s statistics:
read every model's predictions of the test split from the ferbench database,
then per model accuracy with its Wilson interval, macro-F1 with a 2000-resample
percentile bootstrap, balanced accuracy, kappa, MCC, per-class
precision/recall/F1 (scikit-learn); the reference against every other model:
McNemar mid-p (scipy binomial), Holm (statsmodels), the paired macro-F1
bootstrap; Cochran's Q (statsmodels); a Markdown table. The bootstrap is
vectorised with numpy (one bincount per resample), not a loop of f1_score calls,
so this is a competent peer, not a slow one.

  peer_report.py DB OUT.json [RESAMPLES]

OUT.json gets the deterministic numbers (accuracy, macro-F1, McNemar mid-p,
Holm p per model) so the benchmark can check that both sides agree, and
_compute_s: the seconds after the imports (the rest of a run's time is the
interpreter starting and importing its libraries).
"""
import json
import sqlite3
import sys
import time

import numpy as np
from scipy.stats import binom
from sklearn.metrics import (balanced_accuracy_score, cohen_kappa_score, f1_score, matthews_corrcoef,
                             precision_recall_fscore_support)
from statsmodels.stats.contingency_tables import cochrans_q
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint


def macro_f1_rows(y, yhat, k):
    """Macro-F1 of each row of (R, n) index arrays, sklearn's definition with zero_division 0."""
    r = y.shape[0]
    cm = np.zeros((r, k * k), dtype=np.int64)
    for i in range(r):
        cm[i] = np.bincount(y[i] * k + yhat[i], minlength=k * k)
    cm = cm.reshape(r, k, k)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    fp = cm.sum(axis=1) - tp
    fn = cm.sum(axis=2) - tp
    den = 2 * tp + fp + fn
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
    return f1.mean(axis=1)


def main():
    t0 = time.perf_counter()  # after the imports: the bench reports both
    db, out = sys.argv[1], sys.argv[2]
    resamples = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    con = sqlite3.connect(db)
    img = con.execute("SELECT id, label FROM images WHERE status = 'ok' AND benchmark_split = 'test' ORDER BY name").fetchall()
    ids = np.array([r[0] for r in img])
    y = np.array([r[1] for r in img])
    pos = {int(i): j for j, i in enumerate(ids)}
    k = 7
    models = [r[0] for r in con.execute("SELECT DISTINCT model FROM model_runs WHERE split = 'test' ORDER BY model")]
    models.sort(key=lambda m: (m != "ours", m))
    preds = {}
    for m in models:
        run = con.execute("SELECT max(id) FROM model_runs WHERE model = ? AND split = 'test'", (m,)).fetchone()[0]
        yh = np.full(len(y), -1)
        for img_id, p in con.execute("SELECT image_id, pred FROM predictions WHERE model_run_id = ?", (run,)):
            yh[pos[img_id]] = p
        assert (yh >= 0).all()
        preds[m] = yh
    rng = np.random.default_rng(42)
    idx = rng.integers(0, len(y), size=(resamples, len(y)))
    yb = y[idx]
    res, lines = {}, ["| model | accuracy | Wilson | macro-F1 | bootstrap | balanced | kappa | MCC |", "|---|---|---|---|---|---|---|---|"]
    boot = {}
    for m in models:
        yh = preds[m]
        acc = float((yh == y).mean())
        lo, hi = proportion_confint((yh == y).sum(), len(y), alpha=0.05, method="wilson")
        f1 = f1_score(y, yh, labels=list(range(k)), average="macro", zero_division=0)
        boot[m] = macro_f1_rows(yb, yh[idx], k)
        blo, bhi = np.percentile(boot[m], [2.5, 97.5])
        precision_recall_fscore_support(y, yh, labels=list(range(k)), zero_division=0)
        ba = balanced_accuracy_score(y, yh)
        kappa, mcc = cohen_kappa_score(y, yh), matthews_corrcoef(y, yh)
        res[m] = {"accuracy": acc, "macro_f1": float(f1)}
        lines.append("| %s | %.4f | [%.4f, %.4f] | %.4f | [%.4f, %.4f] | %.4f | %.4f | %.4f |"
                     % (m, acc, lo, hi, f1, blo, bhi, ba, kappa, mcc))
    ref = models[0]
    raw = []
    for m in models[1:]:
        a, b = preds[ref] == y, preds[m] == y
        n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
        n, kk = n01 + n10, min(n01, n10)
        exact = 1.0 if n == 0 else min(1.0, 2 * binom.cdf(kk, n, 0.5))
        midp = 1.0 if n == 0 else (1 - binom.pmf(n01, n, 0.5) / 2 if n01 == n10 else exact - binom.pmf(kk, n, 0.5))
        np.percentile(boot[ref] - boot[m], [2.5, 97.5])
        raw.append(midp)
        res[m]["p_midp"] = float(midp)
    adj = multipletests(raw, method="holm")[1] if raw else []
    for m, p in zip(models[1:], adj):
        res[m]["p_holm"] = float(p)
        lines.append("McNemar %s vs %s: mid-p %.3g, Holm %.3g" % (ref, m, res[m]["p_midp"], p))
    if len(models) >= 3:
        q = cochrans_q(np.stack([preds[m] == y for m in models], axis=1).astype(int))
        lines.append("Cochran's Q %.4f p %.3g" % (q.statistic, q.pvalue))
    res["_compute_s"] = time.perf_counter() - t0
    with open(out, "w") as f:
        json.dump(res, f)
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
