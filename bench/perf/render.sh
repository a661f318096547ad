#!/bin/sh
# make bench, part 3: masksynth --split all (dlib landmarks + masks + PNGs + DB)
# against bare dlib (decode, upsample, HOG detect, 68 points) on the same
# 100x100 fixture images with the same upsampling, whole processes timed.
# Targets: masksynth at 1 thread >= 85% of bare dlib; 2 threads >= 1.7x its
# own 1-thread speed and >= 100 images/s.
set -eu
cd "$(dirname "$0")/../.."
N=${BENCH_RENDER_N:-1000}
D=build/bench/render
mkdir -p "$D"
[ -x "$D/dlib_bare" ] && [ "$D/dlib_bare" -nt bench/perf/dlib_bare.cpp ] || \
    g++ -std=c++17 -O2 -o "$D/dlib_bare" bench/perf/dlib_bare.cpp -ldlib -llapack -lblas -lpng -ljpeg -lpthread
if [ ! -f "$D/raf/EmoLabel/list_patition_label.txt" ]; then
    rm -rf "$D/raf"
    bin/masksynth fixture --layout rafdb --n "$N" --seed 1 "$D/raf" >/dev/null
fi
rm -f "$D/init.sqlite"
bin/masksynth init --dataset rafdb --root "$D/raf" --protocol "$D/raf/protocol.csv" --db "$D/init.sqlite" >/dev/null 2>&1
now() { date +%s.%N; }
# Each run writes into a folder never used before: writing files right after
# deleting thousands of others costs ext4 extra inode checks that a real run
# does not pay. The folders are removed at the end.
run_ours() { # threads -> "wall_seconds images_per_s" (the rate excludes loading the model, as dlib_bare's does)
    rm -f "$D/run.sqlite"
    cp "$D/init.sqlite" "$D/run.sqlite"
    t0=$(now)
    bin/masksynth --split all --db "$D/run.sqlite" --out "$D/out-$$-$1" --upsample 1 --threads "$1" >"$D/ours.txt" 2>/dev/null
    t1=$(now)
    rate=$(sed -n 's/^time: .*(\([0-9.]*\) images\/s.*/\1/p' "$D/ours.txt")
    awk "BEGIN { print $t1 - $t0, $rate }"
}
run_bare() {
    t0=$(now)
    ls "$D"/raf/Image/aligned/*.jpg | "$D/dlib_bare" --upsample 1 --list - >"$D/bare.txt"
    t1=$(now)
    rate=$(tr ' ' '\n' <"$D/bare.txt" | sed -n 's/^images_per_s=//p')
    awk "BEGIN { print $t1 - $t0, $rate }"
}
echo "== masksynth --split all vs bare dlib, $N fixture images of 100x100, upsample 1, medians of 3 alternating runs"
echo "   rates: decode + detect + 68 points (+ mask, PNGs, hashes, database for masksynth), model loading excluded on both sides"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
bw=""; br=""; w1=""; r1=""; w2=""; r2=""
for round in 1 2 3; do  # the machine is noisy
    set -- $(run_bare); bw="$bw $1"; br="$br $2"
    set -- $(run_ours 1); w1="$w1 $1"; r1="$r1 $2"
    set -- $(run_ours 2); w2="$w2 $1"; r2="$r2 $2"
    rm -rf "$D"/out-*
done
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
echo "   runs, images/s: bare$br; masksynth 1 thread$r1; 2 threads$r2"
awk -v n="$N" -v b="$(med "$br")" -v o1="$(med "$r1")" -v o2="$(med "$r2")" \
    -v bw="$(med "$bw")" -v w1="$(med "$w1")" -v w2="$(med "$w2")" 'BEGIN {
    printf "  bare dlib, 1 thread   %7.1f images/s  (whole process %.1f s)\n", b, bw
    printf "  masksynth, 1 thread   %7.1f images/s  (whole process %.1f s)   %.0f%% of bare dlib (target >= 85%%): %s\n", o1, w1, 100 * o1 / b, (o1 / b >= 0.85 ? "PASS" : "FAIL")
    printf "  masksynth, 2 threads  %7.1f images/s  (whole process %.1f s)   %.2fx its 1-thread rate (target >= 1.7x): %s; >= 100 images/s: %s\n", o2, w2, o2 / o1, (o2 / o1 >= 1.7 ? "PASS" : "FAIL"), (o2 >= 100 ? "PASS" : "FAIL")
    printf "  whole processes: masksynth 2 threads %.2fx its 1-thread time (the model loads once, about 1 s, serially)\n", w1 / w2
}'
