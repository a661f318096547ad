#!/bin/sh
# make bench, part 2: masksynth init on a synthetic FER+ of FER2013's size
# (35,887 rows in fer2013.csv), against the Python peer. Target: < 30 s on 2 cores.
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
D=build/bench/ferplus-35887
if [ ! -f "$D/fer2013new.csv" ]; then
    echo "bench: writing a 35,887-image FER+ fixture to $D"
    bin/masksynth fixture --layout ferplus --n 35887 --seed 1 "$D" >/dev/null
fi
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ours=""
peer=""
for round in 1 2 3; do
    rm -f build/bench/ingest.sqlite*
    t0=$(date +%s.%N)
    bin/masksynth init --dataset ferplus --root "$D" --votes new --allow-partial --threads 2 \
        --db build/bench/ingest.sqlite >/dev/null 2>&1
    t1=$(date +%s.%N)
    "$PYTHON" bench/perf/peer_ferplus.py "$D" >/dev/null
    t2=$(date +%s.%N)
    o=$(awk "BEGIN { print $t1 - $t0 }")
    p=$(awk "BEGIN { print $t2 - $t1 }")
    printf '  round %d: masksynth init %.2f s, python peer %.2f s\n' "$round" "$o" "$p"
    ours="$ours $o"
    peer="$peer $p"
done
mo=$(echo "$ours" | tr ' ' '\n' | grep . | median)
mp=$(echo "$peer" | tr ' ' '\n' | grep . | median)
printf '== masksynth init, FER+ from fer2013.csv (35,887 rows), medians of 3\n'
printf '  masksynth init (hash, decode, pHash, split, groups, assignment, SQLite): %.2f s\n' "$mo"
printf '  python peer (pandas read, majority rule, decode and hash only):         %.2f s\n' "$mp"
awk -v o="$mo" -v p="$mp" 'BEGIN { printf "  ratio peer/ours: %.1fx; target < 30 s: %s\n", p / o, (o < 30 ? "PASS" : "FAIL") }' 
