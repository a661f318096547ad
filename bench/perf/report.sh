#!/bin/sh
# make bench, part 5: ferbench report on a RAF-DB-sized comparison (3,068 test
# images in RAF-DB's class proportions, ours and five baselines), against the
# Python a researcher would write for the same statistics
# (bench/perf/peer_report.py: scikit-learn, statsmodels, scipy and a
# vectorised numpy bootstrap, 2000 resamples). Both read the same database;
# the numbers they share (accuracy, macro-F1, McNemar mid-p, Holm) must agree
# before the times mean anything. Medians of 3 alternating rounds. A report:
# exits 0 even when slower (non-zero only if the bench cannot run).
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
D=build/bench/report
rm -rf "$D"
mkdir -p "$D"
# The schema and a dataset row from masksynth; then 3,068 test images and six models' predictions.
bin/masksynth fixture --layout rafdb --n 60 --seed 1 "$D/raf" >/dev/null
bin/masksynth init --dataset rafdb --root "$D/raf" --protocol "$D/raf/protocol.csv" --db "$D/db.sqlite" >/dev/null 2>&1
"$PYTHON" - "$D/db.sqlite" <<'EOF'
import random, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
rng = random.Random(3)
counts = [329, 74, 160, 1185, 478, 162, 680]          # RAF-DB test split
ds = con.execute("SELECT id FROM datasets").fetchone()[0]
con.execute("UPDATE images SET benchmark_split = 'train'")
labels = [c for c, n in enumerate(counts) for _ in range(n)]
rng.shuffle(labels)
for i, lab in enumerate(labels):
    con.execute("INSERT INTO images(dataset_id, name, rel_path, label, official_split, benchmark_split) "
                "VALUES (?, ?, ?, ?, 'test', 'test')", (ds, "bench_%04d.jpg" % i, "x/bench_%04d.jpg" % i, lab))
ids = [r[0] for r in con.execute("SELECT id, label FROM images WHERE benchmark_split = 'test' ORDER BY name")]
lab = dict(con.execute("SELECT id, label FROM images WHERE benchmark_split = 'test'").fetchall())
hard = {i: rng.random() for i in ids}                 # shared difficulty: the models' errors correlate
for model, acc in (("ours", 0.89), ("ran", 0.84), ("scn", 0.86), ("cvt", 0.87), ("mvt", 0.88), ("pacvt", 0.885)):
    cur = con.execute("INSERT INTO model_runs(dataset_id, model, split, mask_mode, mask_seed) "
                      "VALUES (?, ?, 'test', 'identity', 42)", (ds, model))
    run = cur.lastrowid
    for i in ids:
        right = 0.7 * hard[i] + 0.3 * rng.random() < acc
        p = lab[i] if right else rng.choice([c for c in range(7) if c != lab[i]])
        con.execute("INSERT INTO predictions(model_run_id, image_id, pred) VALUES (?, ?, ?)", (run, i, p))
con.commit()
EOF
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ours=""
peer=""
for round in 1 2 3; do
    t0=$(date +%s.%N)
    bin/ferbench report --db "$D/db.sqlite" --out "$D/out" --resamples 2000 --threads 2 >/dev/null
    t1=$(date +%s.%N)
    "$PYTHON" bench/perf/peer_report.py "$D/db.sqlite" "$D/peer.json" 2000
    t2=$(date +%s.%N)
    o=$(awk "BEGIN { print $t1 - $t0 }")
    p=$(awk "BEGIN { print $t2 - $t1 }")
    c=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["_compute_s"])' "$D/peer.json")
    printf '  round %d: ferbench report %.3f s, python peer %.3f s (%.3f s after its imports)\n' "$round" "$o" "$p" "$c"
    ours="$ours $o"
    peer="$peer $p"
    comp="${comp:-} $c"
done
"$PYTHON" - "$D/out/report.json" "$D/peer.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["datasets"][0]
peer = json.load(open(sys.argv[2]))
worst = 0.0
del peer["_compute_s"]
for x in r["runs"]:
    p = peer[x["model"]]
    worst = max(worst, abs(x["accuracy"] - p["accuracy"]), abs(x["macro_f1"] - p["macro_f1"]))
for c in r["comparisons"]:
    p = peer[c["model"]]
    for mine, theirs in ((c["p_values"]["midp"], p["p_midp"]), (c["p_adjusted"], p["p_holm"])):
        worst = max(worst, abs(mine - theirs) / max(abs(theirs), 1e-300))
print("  agreement with the peer (accuracy, macro-F1, mid-p, Holm): worst difference %.2g (%s)"
      % (worst, "ok" if worst < 1e-9 else "MISMATCH"))
sys.exit(0 if worst < 1e-9 else 1)
EOF
mo=$(echo "$ours" | tr ' ' '\n' | grep . | median)
mp=$(echo "$peer" | tr ' ' '\n' | grep . | median)
mc=$(echo "$comp" | tr ' ' '\n' | grep . | median)
printf '== ferbench report, 6 models x 3,068 images, 2000 bootstrap resamples per model and per pair, medians of 3\n'
printf '  ferbench report (the whole command: tables, SVGs, HTML, JSON):  %.3f s\n' "$mo"
printf '  python peer (sklearn, statsmodels, numpy; a Markdown table):    %.3f s, %.3f s after its imports\n' "$mp" "$mc"
awk -v o="$mo" -v p="$mp" -v c="$mc" \
    'BEGIN { printf "  ratio peer/ours: %.1fx as commands, %.1fx counting only the peer'"'"'s work after its imports\n", p / o, c / o }'
