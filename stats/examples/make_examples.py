#!/usr/bin/python3
"""Writes the synthetic example predictions stats/examples/{ours,ran,scn}.csv.

SYNTHETIC: these are not outputs of any real model. They mimic the shape of a
masked RAF-DB basic test split (3,068 images, the real per-class test counts)
and the kind of results masked-FER papers report: errors concentrated on the
classes the mask hides (fear, disgust, anger: mouth-driven expressions), with
the usual confusions (fear<->surprise, disgust<->sadness/neutral,
anger<->disgust), and errors shared across models (the same hard images).

Deterministic (seed 42): running it again gives byte-identical files.
usage: /usr/bin/python3 stats/examples/make_examples.py [OUTDIR]
"""
import os
import sys

import numpy as np

SEED = 42
LABELS = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
COUNTS = [329, 74, 160, 1185, 478, 162, 680]  # RAF-DB basic test split, same order
N = sum(COUNTS)  # 3068

# Per-class recall a masked-FER model of ~0.80 accuracy might reach: the
# mouth-occluded classes suffer most. Sets the class part of each image's hardness.
RECALL = np.array([0.82, 0.45, 0.46, 0.90, 0.78, 0.60, 0.82])
# Errors per model (exact): ours 608 -> 0.8018, ran 733 -> 0.7611, scn 674 -> 0.7803.
MODELS = [("ours", 608), ("ran", 733), ("scn", 674)]
# Where each true class's errors go (rows true, columns predicted; diagonal 0).
CONFUSE = np.array([
    # sur   fea   dis   hap   sad   ang   neu
    [0.00, 0.40, 0.04, 0.22, 0.06, 0.04, 0.24],  # surprise -> fear, neutral, happiness
    [0.55, 0.00, 0.10, 0.04, 0.18, 0.05, 0.08],  # fear     -> surprise, sadness
    [0.03, 0.04, 0.00, 0.08, 0.38, 0.17, 0.30],  # disgust  -> sadness, neutral, anger
    [0.14, 0.02, 0.10, 0.00, 0.18, 0.04, 0.52],  # happiness-> neutral, sadness
    [0.04, 0.07, 0.17, 0.08, 0.00, 0.08, 0.56],  # sadness  -> neutral, disgust
    [0.07, 0.04, 0.40, 0.04, 0.15, 0.00, 0.30],  # anger    -> disgust, neutral
    [0.08, 0.02, 0.08, 0.18, 0.56, 0.08, 0.00],  # neutral  -> sadness, happiness
])
CONFUSE = CONFUSE / CONFUSE.sum(axis=1, keepdims=True)
SHARED_HARDNESS = 1.0   # sd of the image's own hardness, common to all models
MODEL_NOISE = 0.55      # sd of each model's private noise on top of it
SHARED_CONFUSION = 0.7  # chance that a wrong model picks the image's "common" wrong class


def probit(p):
    """Inverse standard normal CDF (Acklam's rational approximation; ample here)."""
    a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
         1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
    b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
         6.680131188771901e+01, -1.328068155327270e+01]
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
         -2.549671010228078e+00, 4.374664141464968e+00, 2.938163982698783e+00]
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
         3.754408661907416e+00]
    p = np.asarray(p, dtype=float)
    q = np.where(p < 0.5, p, 1 - p)
    r = np.sqrt(-2 * np.log(q))
    x = (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / \
        ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1)
    return np.where(p < 0.5, x, -x)


def sample_rows(cdf_rows, u):
    return np.minimum((u[:, None] > cdf_rows).sum(axis=1), len(LABELS) - 1)


def generate():
    rng = np.random.default_rng(SEED)
    k = len(LABELS)
    y = np.repeat(np.arange(k), COUNTS)
    rng.shuffle(y)
    # shared hardness: class part (fear/disgust/anger hard) + the image's own part
    hard = -probit(RECALL)[y] + SHARED_HARDNESS * rng.normal(size=N)
    # the wrong class most models would pick on this image (shared confusion)
    cdf = np.cumsum(CONFUSE, axis=1)
    common_wrong = sample_rows(cdf[y], rng.random(N))
    # logits noise shared across models (an ambiguous face looks ambiguous to all)
    shared_logits = rng.normal(size=(N, k))
    out = {}
    for name, n_err in MODELS:
        score = hard + MODEL_NOISE * rng.normal(size=N)
        wrong = np.zeros(N, dtype=bool)
        wrong[np.argsort(-score, kind="stable")[:n_err]] = True
        own_wrong = sample_rows(cdf[y], rng.random(N))
        use_common = rng.random(N) < SHARED_CONFUSION
        wrong_cls = np.where(use_common, common_wrong, own_wrong)
        pred = np.where(wrong, wrong_cls, y)
        # probabilities: shared + private noise, some pull towards the true class
        # and the common confusion, then a clear margin on the predicted class;
        # confidence falls with hardness and on errors
        logits = 0.8 * shared_logits + 0.6 * rng.normal(size=(N, k))
        logits[np.arange(N), y] += 1.2
        logits[np.arange(N), common_wrong] += 0.6
        top = logits.max(axis=1)
        margin = rng.gamma(2.0, 0.9, size=N) * np.where(wrong, 0.35, 1.0) \
            * np.clip(1.2 - 0.35 * hard, 0.3, 2.0) + 0.25
        logits[np.arange(N), pred] = top + margin
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        pr = e / e.sum(axis=1, keepdims=True)
        q = np.floor(pr * 1e4).astype(np.int64)          # units of 1e-4
        q[:, -1] = 10_000 - q[:, :-1].sum(axis=1)         # sums to exactly 1
        assert (q >= 0).all() and (q.argmax(axis=1) == pred).all()
        out[name] = (pred, q)
    return y, out


def write(path, model, y, pred, q):
    lines = ["# ferbench-predictions v1 dataset=rafdb-masked-example split=test model=%s labels=%s"
             % (model, ",".join(LABELS)),
             "image,label,pred," + ",".join("prob_" + l for l in LABELS)]
    ip, fp = np.divmod(q, 10_000)
    for i in range(N):
        probs = ",".join("%d.%04d" % (ip[i, j], fp[i, j]) for j in range(len(LABELS)))
        lines.append("test_%04d_aligned.jpg,%s,%s,%s" % (i + 1, LABELS[y[i]], LABELS[pred[i]], probs))
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "w", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    y, out = generate()
    for name, _ in MODELS:
        pred, q = out[name]
        path = os.path.join(outdir, name + ".csv")
        write(path, name, y, pred, q)
        print("%s: %d images, accuracy %.4f, %d bytes" % (path, N, (pred == y).mean(), os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
