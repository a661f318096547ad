#!/bin/sh
# make demo: a narrated walk-through of ferstats on the bundled example
# predictions (synthetic, see stats/examples/README.md). Run from the
# repository root after `make all`; outputs go to build/demo/.
set -e
cd "$(dirname "$0")/../.."
FERSTATS=${FERSTATS:-bin/ferstats}
EX=stats/examples
OUT=build/demo
if [ ! -x "$FERSTATS" ]; then
    echo "demo: $FERSTATS not built; run 'make all' first" >&2
    exit 2
fi
mkdir -p "$OUT"

echo "== 1. metrics of our model (accuracy with Wilson and Clopper-Pearson intervals, per class, macro, kappa, MCC)"
echo "\$ $FERSTATS metrics $EX/ours.csv"
"$FERSTATS" metrics "$EX/ours.csv"
echo

echo "== 2. confusion matrix as an SVG heatmap"
echo "\$ $FERSTATS confusion --svg $OUT/confusion_ours.svg $EX/ours.csv"
"$FERSTATS" confusion --svg "$OUT/confusion_ours.svg" "$EX/ours.csv"
echo "(heatmap written to $OUT/confusion_ours.svg)"
echo

echo "== 3. is ours really better than RAN on the same images? McNemar (mid-p, the default)"
echo "\$ $FERSTATS mcnemar $EX/ours.csv $EX/ran.csv"
"$FERSTATS" mcnemar "$EX/ours.csv" "$EX/ran.csv"
echo

echo "== 4. ours against every baseline: McNemar per pair, Holm-adjusted, plus Cochran's Q"
echo "\$ $FERSTATS compare --adjust holm $EX/ours.csv $EX/ran.csv $EX/scn.csv"
"$FERSTATS" compare --adjust holm "$EX/ours.csv" "$EX/ran.csv" "$EX/scn.csv"
echo

echo "== 5. paired bootstrap of the macro-F1 difference, ours - SCN"
echo "\$ $FERSTATS bootstrap --metric macro-f1 --resamples 2000 --seed 42 $EX/ours.csv $EX/scn.csv"
"$FERSTATS" bootstrap --metric macro-f1 --resamples 2000 --seed 42 "$EX/ours.csv" "$EX/scn.csv"
echo

echo "== 6. CI gate: an absolute accuracy floor (passes: exit 0)"
echo "\$ $FERSTATS check --min-accuracy 0.75 $EX/ours.csv"
"$FERSTATS" check --min-accuracy 0.75 "$EX/ours.csv"
echo

echo "== 7. CI gate: non-inferiority against a baseline (drop <= 0.01 and no significant McNemar loss; passes)"
echo "\$ $FERSTATS check --baseline $EX/ran.csv --max-drop 0.01 --significance 0.05 $EX/ours.csv"
"$FERSTATS" check --baseline "$EX/ran.csv" --max-drop 0.01 --significance 0.05 "$EX/ours.csv"
echo

echo "== 8. CI gate that fails on purpose: RAN checked against ours as the baseline"
echo "\$ $FERSTATS check --baseline $EX/ours.csv --max-drop 0.01 $EX/ran.csv"
set +e
"$FERSTATS" check --baseline "$EX/ours.csv" --max-drop 0.01 "$EX/ran.csv"
rc=$?
set -e
echo "exit code: $rc (1 = the check failed: in CI this step would fail the build; the demo goes on)"
if [ "$rc" -ne 1 ]; then
    echo "demo: expected exit code 1 from the failing gate, got $rc" >&2
    exit 1
fi
echo

echo "demo done: outputs in $OUT/"
