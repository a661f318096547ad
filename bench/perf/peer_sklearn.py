#!/usr/bin/python3
"""The Python peer of `ferstats metrics`: what users run today.

pandas.read_csv(FILE, comment='#'), then scikit-learn's classification_report
(digits=4) and confusion_matrix on the label/pred string columns, over the
label map declared in the v1 header line. Prints both.

usage: peer_sklearn.py P.csv
"""
import sys

import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix


def header_labels(path):
    with open(path) as f:
        first = f.readline()
    for tok in first.split():
        if tok.startswith("labels="):
            return tok[len("labels="):].split(",")
    raise SystemExit("%s: no labels= in the header line" % path)


def main(path):
    labels = header_labels(path)
    df = pd.read_csv(path, comment="#")
    y, p = df["label"], df["pred"]
    print(classification_report(y, p, labels=labels, digits=4))
    print(confusion_matrix(y, p, labels=labels))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    sys.exit(main(sys.argv[1]))
