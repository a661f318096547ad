#!/usr/bin/python3
"""Deterministic 1,000,000-row canonical predictions CSV v1 for the speed bench.

RAF-DB-like class imbalance (the basic test split's proportions), a synthetic
model that is about 85% accurate with realistic confusions, and probabilities
with 6 decimals that sum to exactly 1 (integer micro-units; the last column
takes the remainder). Same seed -> byte-identical file.

usage: gen_preds.py OUT.csv [--rows N] [--seed S] [--no-probs]
"""
import argparse
import os
import sys

import numpy as np

LABELS = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
# RAF-DB basic test split class counts (same order as LABELS): the imbalance.
COUNTS = np.array([329, 74, 160, 1185, 478, 162, 680], dtype=float)
# Per-class accuracy of the synthetic model (overall ~0.85 under COUNTS).
CLASS_ACC = np.array([0.86, 0.58, 0.62, 0.93, 0.83, 0.74, 0.85])
# Where each class's errors go (rows: true class, columns: predicted), zero diagonal.
CONFUSE = np.array([
    # sur  fea  dis  hap  sad  ang  neu
    [0.00, 0.35, 0.05, 0.25, 0.05, 0.05, 0.25],  # surprise
    [0.45, 0.00, 0.10, 0.10, 0.20, 0.05, 0.10],  # fear
    [0.05, 0.05, 0.00, 0.15, 0.30, 0.20, 0.25],  # disgust
    [0.20, 0.02, 0.08, 0.00, 0.20, 0.05, 0.45],  # happiness
    [0.05, 0.08, 0.15, 0.15, 0.00, 0.07, 0.50],  # sadness
    [0.10, 0.05, 0.35, 0.10, 0.15, 0.00, 0.25],  # anger
    [0.10, 0.02, 0.08, 0.25, 0.50, 0.05, 0.00],  # neutral
])
CONFUSE = CONFUSE / CONFUSE.sum(axis=1, keepdims=True)


def generate(n, seed, probs=True):
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    y = rng.choice(k, size=n, p=COUNTS / COUNTS.sum())
    correct = rng.random(n) < CLASS_ACC[y]
    # wrong predictions: inverse-CDF sampling from the confusion row of the true class
    cdf = np.cumsum(CONFUSE, axis=1)
    u = rng.random(n)
    wrong = (u[:, None] > cdf[y]).sum(axis=1)
    wrong = np.minimum(wrong, k - 1)
    p = np.where(correct, y, wrong)
    if probs:
        # logits: noise, a bump on the true class (the model "sees" it), and a
        # larger bump on the predicted class so it is the argmax by a clear margin
        logits = rng.normal(0.0, 1.0, size=(n, k))
        logits[np.arange(n), y] += 1.0
        top = logits.max(axis=1)
        logits[np.arange(n), p] = top + rng.gamma(2.0, 1.0, size=n) + 0.3
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        pr = e / e.sum(axis=1, keepdims=True)
        micro = np.floor(pr * 1e6).astype(np.int64)
        micro[:, -1] = 1_000_000 - micro[:, :-1].sum(axis=1)  # exact sum; last >= its floor
        assert (micro >= 0).all() and (micro.sum(axis=1) == 1_000_000).all()
        # the bump keeps the predicted column the argmax after rounding
        assert (micro.argmax(axis=1) == p).all()
        ip, fp = np.divmod(micro, 1_000_000)
    lab = LABELS
    cols = [range(1, n + 1), [lab[i] for i in y.tolist()], [lab[i] for i in p.tolist()]]
    fmt = "img_%07d.jpg,%s,%s"
    if probs:
        for j in range(k):
            cols += [ip[:, j].tolist(), fp[:, j].tolist()]
        fmt += ",%d.%06d" * k
    rows = [fmt % r for r in zip(*cols)]
    head = "# ferbench-predictions v1 dataset=bench split=test model=bench labels=" + ",".join(LABELS) + "\n"
    head += "image,label,pred" + "".join(",prob_" + l for l in LABELS if probs) + "\n"
    return head, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--no-probs", action="store_true")
    a = ap.parse_args()
    head, rows = generate(a.rows, a.seed, probs=not a.no_probs)
    tmp = a.out + ".tmp.%d" % os.getpid()
    with open(tmp, "w", newline="\n") as f:
        f.write(head)
        # write in chunks to keep the peak string size bounded
        step = 100_000
        for i in range(0, len(rows), step):
            f.write("\n".join(rows[i:i + step]))
            f.write("\n")
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
