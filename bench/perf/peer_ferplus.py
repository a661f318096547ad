#!/usr/bin/python3
"""The peer for masksynth init: what FER+ users run today, in Python.

Reads fer2013.csv (pixels) and fer2013new.csv (votes) with pandas, decodes
every 48x48 face, applies FER+'s majority rule, and hashes each face: the
same work masksynth init does before its split and database."""
import hashlib
import sys

import numpy as np
import pandas as pd

root = sys.argv[1]
pix = pd.read_csv(f"{root}/fer2013.csv")
votes = pd.read_csv(f"{root}/fer2013new.csv")
v = votes.iloc[:, 2:12].to_numpy(dtype=float)
v[v <= 1] = 0                                    # drop single votes
total = v.sum(axis=1)
best = v.argmax(axis=1)
keep = (v.max(axis=1) > 0.5 * total) & (best < 7) & votes["Image name"].notna().to_numpy()
kept = 0
for i in np.flatnonzero(keep):
    face = np.array(pix["pixels"][i].split(), dtype=np.uint8).reshape(48, 48)
    hashlib.sha256(face.tobytes()).hexdigest()
    kept += 1
print(kept)
