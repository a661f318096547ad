#!/bin/sh
# End-to-end tests of masksynth --split S: fixture -> init -> render with the
# fixture's true landmarks and with dlib; byte-identical files and rows at 1
# and 2 threads; a kill after the first chunk and a rerun give the same result;
# bad images get a status and the run goes on. TAP output.
. "$(dirname "$0")/tap.sh"
export SOURCE_DATE_EPOCH=1700000000
q() { sqlite3 "$1" "$2"; }
dump() { sqlite3 "$1" "SELECT image_id, status, box_x, box_y, box_w, box_h, score, landmarks, visibility, coverage,
    replace(output_path, '$2', ''), output_hash, replace(alpha_path, '$2', ''), alpha_hash FROM renders ORDER BY image_id"; }

echo "1..26"
check "fixture" "$MS" fixture --layout rafdb --n 600 --seed 5 "$T/raf"
check "init" "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/raf/protocol.csv" --db "$T/a.sqlite"
cp "$T/a.sqlite" "$T/b.sqlite"
cp "$T/a.sqlite" "$T/k.sqlite"
cp "$T/a.sqlite" "$T/d.sqlite"
cp "$T/a.sqlite" "$T/s1.sqlite"
cp "$T/a.sqlite" "$T/s2.sqlite"
cp "$T/a.sqlite" "$T/merged.sqlite"
check "render all splits with the fixture's landmarks, 2 threads" \
    "$MS" --split all --landmarks dataset --db "$T/a.sqlite" --out "$T/m1" --threads 2
# The same command from two folders with relative paths, at 1 and 2 threads: byte-identical databases.
mkdir -p "$T/w1" "$T/w2"
cp "$T/b.sqlite" "$T/w1/x.sqlite"
cp "$T/b.sqlite" "$T/w2/x.sqlite"
(cd "$T/w1" && "$OLDPWD/$MS" --split all --landmarks dataset --db x.sqlite --out out --threads 1 >/dev/null 2>&1)
(cd "$T/w2" && "$OLDPWD/$MS" --split all --landmarks dataset --db x.sqlite --out out --threads 2 >/dev/null 2>&1)
cmp -s "$T/w1/x.sqlite" "$T/w2/x.sqlite" && diff -r "$T/w1/out" "$T/w2/out" >/dev/null \
    && ok "databases and files byte-identical at 1 and 2 threads" || nok "byte-identical databases at 1 and 2 threads"
grep -q "masked 600 images" "$T/out" && ok "600 images masked" || nok "600 images masked" "$(cat "$T/out")"
check "the same with 1 thread" "$MS" render --split all --landmarks "$T/raf/landmarks.csv" --db "$T/b.sqlite" \
    --out "$T/m2" --threads 1
if diff -r "$T/m1" "$T/m2" >/dev/null && [ "$(dump "$T/a.sqlite" "$T/m1")" = "$(dump "$T/b.sqlite" "$T/m2")" ]; then
    ok "files and rows identical at 1 and 2 threads"
else nok "files and rows identical at 1 and 2 threads"; fi
bad=$(q "$T/a.sqlite" "SELECT count(*) FROM renders WHERE status <> 'ok' OR coverage <= 0 OR coverage >= 1")
[ "$bad" = 0 ] && ok "every render ok with 0 < coverage < 1" || nok "render statuses" "$bad not ok"
# Mouth covered, eyes visible in style full (visibility string: 1 visible, 0 covered).
wrong=$(q "$T/a.sqlite" "SELECT count(*) FROM renders r JOIN assignments a ON a.id = r.assignment_id
    JOIN patterns p ON p.id = a.pattern_id WHERE p.style = 'full' AND
    (substr(r.visibility, 49, 20) <> '00000000000000000000' OR substr(r.visibility, 37, 12) <> '111111111111')")
[ "$wrong" = 0 ] && ok "style full: every mouth landmark covered, every eye landmark visible" || nok "full style visibility" "$wrong images"
check "a second run does nothing" "$MS" --split all --landmarks "$T/raf/landmarks.csv" --db "$T/a.sqlite" --out "$T/m1"
grep -q "masked 0 images.*600 already done" "$T/out" && ok "it reports 600 already done" || nok "rerun report" "$(cat "$T/out")"

# Killed after its first chunk, then run again: the same files and rows.
{ FERBENCH_FAULT=after-first-chunk "$MS" --split all --landmarks "$T/raf/landmarks.csv" --db "$T/k.sqlite" \
    --out "$T/m3" >/dev/null 2>&1; } 2>/dev/null
partial=$(q "$T/k.sqlite" "SELECT count(*) FROM renders")
echo junk >"$T/m3/train/train_00001.png.tmp.99999"  # as if killed while writing a file
check "rerun after a kill" "$MS" --split all --landmarks "$T/raf/landmarks.csv" --db "$T/k.sqlite" --out "$T/m3"
if [ "$partial" -gt 0 ] && [ "$partial" -lt 600 ] && diff -r "$T/m1" "$T/m3" >/dev/null &&
   [ "$(dump "$T/a.sqlite" "$T/m1")" = "$(dump "$T/k.sqlite" "$T/m3")" ]; then
    ok "killed after $partial rows, rerun: same files and rows as an uninterrupted run"
else nok "resume after a kill" "partial $partial"; fi

# A cluster array job: two shards into one folder, merged: the same rows as one run.
check "shard 1/2" "$MS" --split all --landmarks "$T/raf/landmarks.csv" --db "$T/s1.sqlite" --out "$T/m6" --shard 1/2
check "shard 2/2" "$MS" --split all --landmarks "$T/raf/landmarks.csv" --db "$T/s2.sqlite" --out "$T/m6" --shard 2/2
check "merge" "$MS" merge --db "$T/merged.sqlite" "$T/s1.sqlite" "$T/s2.sqlite"
if diff -r "$T/m1" "$T/m6" >/dev/null && [ "$(dump "$T/a.sqlite" "$T/m1")" = "$(dump "$T/merged.sqlite" "$T/m6")" ]; then
    ok "merged shards: same files and rows as a single run"
else nok "merged shards equal a single run"; fi
check "preview contact sheet" "$MS" preview --db "$T/a.sqlite" --split test --n 12 "$T/preview.png"
check "pattern bank preview" "$MS" patterns --preview "$T/patterns.png" --bank-size 8
[ -s "$T/preview.png" ] && [ -s "$T/patterns.png" ] && ok "both sheets written" || nok "preview files"

# dlib on a subset: found or fallback, never dropped.
check "render the test split with dlib" "$MS" --split test --db "$T/d.sqlite" --out "$T/m4" --threads 2
tests=$(q "$T/d.sqlite" "SELECT count(*) FROM images WHERE benchmark_split = 'test'")
st=$(q "$T/d.sqlite" "SELECT count(*) FROM renders WHERE status IN ('ok', 'fallback_box')")
echo "# dlib on $tests test images: $(q "$T/d.sqlite" "SELECT group_concat(status || ' ' || c) FROM (SELECT status, count(*) c FROM renders GROUP BY status)")"
[ "$st" = "$tests" ] && ok "dlib: every test image found or fallback, none dropped" || nok "dlib statuses" "$st of $tests"

# Images broken after ingestion: a status each, and the run goes on.
cp "$T/a.sqlite" "$T/c.sqlite"
q "$T/c.sqlite" "DELETE FROM renders"
: >"$T/raf/Image/aligned/train_00002_aligned.jpg"
head -c 200 "$T/raf/Image/aligned/train_00003_aligned.jpg" >"$T/x" && mv "$T/x" "$T/raf/Image/aligned/train_00003_aligned.jpg"
check "render with two broken images" "$MS" --split train --landmarks "$T/raf/landmarks.csv" --db "$T/c.sqlite" --out "$T/m5"
[ "$(q "$T/c.sqlite" "SELECT count(*) FROM renders WHERE status = 'bad_image'")" = 2 ] \
    && ok "both recorded as bad_image, the rest rendered" || nok "bad images" "$(cat "$T/err")"
# A landmarks file that is empty or missing: exit 2, the message names it, nothing rendered.
: >"$T/empty-landmarks.csv"
cp "$T/a.sqlite" "$T/e.sqlite"
q "$T/e.sqlite" "DELETE FROM renders"
for f in "$T/empty-landmarks.csv" "$T/no-such-landmarks.csv"; do
    "$MS" --split train --landmarks "$f" --db "$T/e.sqlite" --out "$T/m7" >"$T/out" 2>"$T/err"
    rc=$?
    want=$([ -e "$f" ] && echo "$f:1: empty file" || echo "$f")
    if [ "$rc" = 2 ] && grep -q -F "$want" "$T/err" && [ "$(q "$T/e.sqlite" "SELECT count(*) FROM renders")" = 0 ]; then
        ok "landmarks $(basename "$f") refused (exit 2): $(head -n 1 "$T/err")"
    else nok "landmarks $(basename "$f")" "exit $rc, want '$want'" "$(head -c 600 "$T/err")"; fi
done
[ "$failed" = 0 ]
