#!/bin/sh
# End-to-end tests of masksynth init / verify / audit / manifest on the
# synthetic fixtures (both official layouts), bad label files, determinism
# across runs and thread counts, resumption after a kill, and the real FER+
# vote files when ../shared/data is present (skipped otherwise). TAP output.
. "$(dirname "$0")/tap.sh"
export SOURCE_DATE_EPOCH=1700000000  # timestamps in the DB are then fixed: byte-identical reruns
q() { sqlite3 "$1" "$2"; }

echo "1..71"

# ---- RAF-DB layout ----
check "fixture rafdb" "$MS" fixture --layout rafdb --n 400 --seed 7 "$T/raf"
mkdir -p "$T/run1" "$T/run2"
(cd "$T/run1" && "$OLDPWD/$MS" init --dataset rafdb --root ../raf --protocol ../raf/protocol.csv --db a.sqlite --threads 2) \
    >"$T/out" 2>"$T/err" && ok "init rafdb with the fixture's protocol (2 threads)" || nok "init rafdb (2 threads)" "$(cat "$T/err")"
grep -q "400 images" "$T/out" && ok "init reports 400 images" || nok "init reports 400 images" "$(cat "$T/out")"
(cd "$T/run2" && "$OLDPWD/$MS" init --dataset rafdb --root ../raf --protocol ../raf/protocol.csv --db a.sqlite --threads 1) \
    >"$T/out" 2>"$T/err" && ok "same init with 1 thread in another folder" || nok "init rafdb (1 thread)" "$(cat "$T/err")"
cmp -s "$T/run1/a.sqlite" "$T/run2/a.sqlite" && ok "databases byte-identical across thread counts and runs" \
    || nok "databases byte-identical across thread counts and runs"
cp "$T/run1/a.sqlite" "$T/a.sqlite"
val_ok=$(q "$T/a.sqlite" "SELECT count(*) FROM (SELECT label, sum(benchmark_split='val') v, sum(benchmark_split IN ('train','val')) t FROM images GROUP BY label HAVING abs(v - 0.1*t) > 1)")
[ "$val_ok" = 0 ] && ok "validation is 10% of train per class, within one image" || nok "stratified validation" "$val_ok classes off"
check "verify: identity-disjoint assignment holds" "$MS" verify --db "$T/a.sqlite"
check "audit runs" "$MS" audit --db "$T/a.sqlite"
missing=0
if [ -f "$T/raf/duplicates.csv" ]; then
    tail -n +2 "$T/raf/duplicates.csv" | tr -d '\r' | while IFS=, read -r x y; do
        grep -F "$x" "$T/out" | grep -qF "$y" || echo "$x $y"
    done >"$T/notfound"
    [ -s "$T/notfound" ] && missing=1
fi
[ "$missing" = 0 ] && [ -f "$T/raf/duplicates.csv" ] && ok "audit finds every planted cross-split duplicate" \
    || nok "audit finds every planted cross-split duplicate" "$(head -3 "$T/notfound" 2>/dev/null)"
expect_rc "a second init of the same dataset is refused (exit 2)" 2 \
    "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/raf/protocol.csv" --db "$T/a.sqlite"
expect_rc "the built-in RAF-DB protocol rejects a partial copy (exit 2)" 2 \
    "$MS" init --dataset rafdb --root "$T/raf" --db "$T/c.sqlite"
grep -q "allow-partial" "$T/err" && ok "the refusal names --allow-partial" || nok "the refusal names --allow-partial" "$(cat "$T/err")"
check "--allow-partial ingests it and records the report" \
    "$MS" init --dataset rafdb --root "$T/raf" --db "$T/c.sqlite" --allow-partial
[ "$(q "$T/c.sqlite" "SELECT json_extract(settings, '\$.allow_partial') FROM datasets")" = 1 ] \
    && ok "allow_partial recorded" || nok "allow_partial recorded"

# A pattern leak planted by hand is caught by verify (exit 1).
cp "$T/a.sqlite" "$T/leak.sqlite"
q "$T/leak.sqlite" "UPDATE assignments SET pattern_id = (SELECT a2.pattern_id FROM assignments a2 JOIN images i2 ON i2.id = a2.image_id
  WHERE i2.identity_group_id = (SELECT identity_group_id FROM images WHERE id = assignments.image_id) AND i2.benchmark_split <> 'test' LIMIT 1)
  WHERE image_id = (SELECT i.id FROM images i WHERE i.benchmark_split = 'test' AND i.identity_group_id IN
  (SELECT identity_group_id FROM images WHERE benchmark_split <> 'test') LIMIT 1)"
expect_rc "verify exits 1 on a planted leak" 1 "$MS" verify --db "$T/leak.sqlite"

# Manifest round trip onto another copy with two images removed.
check "manifest --out" "$MS" manifest --db "$T/a.sqlite" --out "$T/m.csv"
cp -r "$T/raf" "$T/raf2"
rm -f "$T/raf2/Image/aligned/train_00003_aligned.jpg" "$T/raf2/Image/aligned/test_0002_aligned.jpg"
check "init --manifest re-creates the split on another copy" \
    "$MS" init --dataset rafdb --root "$T/raf2" --manifest "$T/m.csv" --allow-partial --db "$T/d.sqlite"
grep -q "2 images differ" "$T/err" && ok "it says which images differ (2)" || nok "it says which images differ" "$(tail -5 "$T/err")"
check "manifest of the re-created set" "$MS" manifest --db "$T/d.sqlite" --out "$T/m2.csv"
grep -v -e train_00003 -e test_0002 -e '^#' "$T/m.csv" >"$T/m1.rows"
grep -v -e train_00003 -e test_0002 -e '^#' "$T/m2.csv" >"$T/m2.rows"
cmp -s "$T/m1.rows" "$T/m2.rows" && ok "same split, groups and patterns for every common image" \
    || nok "manifest round trip" "$(diff "$T/m1.rows" "$T/m2.rows" | head -5)"
sed 's/,test,/,train,/' "$T/m.csv" >"$T/tampered.csv"
expect_rc "a tampered manifest fails its checksum (exit 2)" 2 \
    "$MS" init --dataset rafdb --root "$T/raf" --manifest "$T/tampered.csv" --allow-partial --db "$T/e.sqlite"
# Header values are checked, not read loosely (a non-numeric seed was seed 0): each edit is re-signed,
# so it is the value that is refused, not the checksum.
sign() { # body out.csv: the body, then its checksum line
    { cat "$1"; printf '# sha256=%s\n' "$(sha256sum <"$1" | cut -d' ' -f1)"; } >"$2"
}
resign() { # sed-expression out.csv: edit m.csv, then sign it
    grep -v '^# sha256=' "$T/m.csv" | sed "$1" >"$2.body"
    sign "$2.body" "$2"
}
refused() { # description manifest.csv want: init exits 2 with want on stderr and leaves no database
    rm -f "$T/e.sqlite"
    "$MS" init --dataset rafdb --root "$T/raf" --manifest "$2" --allow-partial --db "$T/e.sqlite" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" = 2 ] && grep -q -F -- "$3" "$T/err" && [ ! -e "$T/e.sqlite" ]; then ok "$1: $(grep -F -- "$3" "$T/err" | head -n 1)"
    else nok "$1" "exit $rc, want '$3'" "$(head -c 600 "$T/err")"; fi
}
for edit in "seed=42/seed=4x2" "seed=42/seed=99999999999999999999" "val=stratified/val=random" \
    "assign=identity/assign=people" "bank_size=48/bank_size=2" "val_fraction=0.1/val_fraction=1.5" \
    "kind=rafdb/kind=affectnet"; do
    resign "1s/ ${edit%%/*}/ ${edit#*/}/" "$T/edited.csv"
    refused "manifest $edit refused" "$T/edited.csv" "edited.csv:1: ${edit%%=*}="
done
resign "1s/ seed=42/ seed=42/" "$T/resigned.csv"
check "a re-signed unedited manifest is accepted" \
    "$MS" init --dataset rafdb --root "$T/raf" --manifest "$T/resigned.csv" --allow-partial --db "$T/g.sqlite"
resign "1s/kind=rafdb/kind=csv/" "$T/kind.csv"
refused "a manifest of another dataset kind is refused" "$T/kind.csv" "the manifest is of a csv dataset, not --dataset rafdb"
# Rows: an image listed twice (each row could open a group: 450 rows of one image, each with its own
# group, overflowed the 401-entry group table; found by fuzz_manifest) and a split that is not train, val, test or empty.
sed -n 3p "$T/m.csv" | awk -F, -v OFS=, '{ for (i = 1; i <= 450; i++) { $4 = "g" i; print } }' >"$T/dup.rows"
grep -v '^# sha256=' "$T/m.csv" | sed '3r '"$T/dup.rows" >"$T/dup.body"
sign "$T/dup.body" "$T/dup.csv"
refused "a manifest listing an image 451 times is refused at its second row" "$T/dup.csv" \
    "dup.csv:4: $(sed -n 3p "$T/m.csv" | cut -d, -f1) is listed twice"
resign "s/,test,/,tset,/" "$T/split.csv"
refused "a manifest row with split 'tset' is refused" "$T/split.csv" "split 'tset' is not train, val, test or empty"

# Protocol files: the reader's own refusals, empty counts and repeated lines are exit 2 with file:line
# (a header line of invalid UTF-8 crashed init for a while); a name JSON must escape is fine.
printf '# \377\nsplit,label,count\n' >"$T/proto-utf8.csv"
printf 'split,label,count\ntrain,happiness,\n' >"$T/proto-empty.csv"
printf 'split,label,count\ntrain,happiness,3\ntrain,happiness,4\n' >"$T/proto-twice.csv"
for case in "utf8:proto-utf8.csv:1: header line is not valid UTF-8" \
    "empty:proto-empty.csv:2: expected <train|val|test>,<label>,<count>" \
    "twice:proto-twice.csv:3: train,happiness was already given on line 2"; do
    f=proto-${case%%:*}.csv want=${case#*:}
    rm -f "$T/p.sqlite"
    "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/$f" --db "$T/p.sqlite" >"$T/out" 2>"$T/err"; rc=$?
    [ "$rc" = 2 ] && grep -q -F "$want" "$T/err" && ok "protocol $f refused: $want" || nok "protocol $f" "exit $rc" "$(cat "$T/err")"
done
mkdir -p "$T/we\"ird"
cp "$T/raf/protocol.csv" "$T/we\"ird/protocol.csv"
rm -f "$T/p.sqlite"
check "a protocol path holding a quote is recorded (valid JSON)" \
    "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/we\"ird/protocol.csv" --db "$T/p.sqlite"

# Bad label files: exit 2 with file:line.
mkdir -p "$T/bad/EmoLabel" "$T/bad/Image/aligned"
printf 'train_00001.jpg 5\ntrain_00002.jpg 9\n' >"$T/bad/EmoLabel/list_patition_label.txt"
expect_rc "label 9 is refused" 2 "$MS" init --dataset rafdb --root "$T/bad" --db "$T/f.sqlite" --allow-partial
grep -q "list_patition_label.txt:2:" "$T/err" && ok "the message names file and line 2" || nok "file:line" "$(cat "$T/err")"
printf 'train_00001.jpg 5\r\nimage7.jpg 3\r\n' >"$T/bad/EmoLabel/list_patition_label.txt"
expect_rc "a non-RAF-DB name is refused" 2 "$MS" init --dataset rafdb --root "$T/bad" --db "$T/f.sqlite" --allow-partial
expect_rc "a missing label file is refused" 2 "$MS" init --dataset rafdb --root "$T/nowhere" --db "$T/f.sqlite"
# Empty label files: the message names the path (fuzz_ingest found the bare base name).
mkdir -p "$T/emptyfp"
: >"$T/emptyfp/fer2013.csv"
expect_rc "an empty fer2013.csv is refused" 2 "$MS" init --dataset ferplus --votes new --root "$T/emptyfp" --db "$T/f.sqlite"
grep -q -F "$T/emptyfp/fer2013.csv:1: empty file" "$T/err" && ok "the message names the empty fer2013.csv by its path" \
    || nok "the message names the empty fer2013.csv by its path" "$(cat "$T/err")"
: >"$T/emptyfp/list.csv"
expect_rc "an empty --list is refused" 2 "$MS" init --dataset csv --list "$T/emptyfp/list.csv" --db "$T/f.sqlite"
grep -q -F "$T/emptyfp/list.csv:1: empty file" "$T/err" && ok "the message names the empty list by its path" \
    || nok "the message names the empty list by its path" "$(cat "$T/err")"

# A corrupt image gets a status and a message; the run goes on.
cp -r "$T/raf" "$T/raf3"
head -c 300 "$T/raf/Image/aligned/train_00005_aligned.jpg" >"$T/raf3/Image/aligned/train_00005_aligned.jpg"
check "a truncated JPEG does not stop init" \
    "$MS" init --dataset rafdb --root "$T/raf3" --protocol "$T/raf3/protocol.csv" --allow-partial --db "$T/i.sqlite"
st=$(q "$T/i.sqlite" "SELECT status || ': ' || message FROM images WHERE name = 'train_00005.jpg'")
case "$st" in bad_image:*train_00005_aligned.jpg*) ok "it is recorded as bad_image with a message naming the file" ;;
    *) nok "bad_image recorded" "$st" ;; esac

# Known identities, and the other assignment modes.
check "init with --identities" "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/raf/protocol.csv" \
    --identities "$T/raf/identities.csv" --db "$T/j.sqlite"
[ "$(q "$T/j.sqlite" "SELECT count(*) FROM identity_groups WHERE source = 'csv'")" -gt 0 ] \
    && ok "identity groups from the file are recorded" || nok "identity groups from the file"
check "verify with known identities" "$MS" verify --db "$T/j.sqlite"
check "init --assign pattern" "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/raf/protocol.csv" \
    --assign pattern --db "$T/k.sqlite"
check "verify --assign pattern: no test pattern is seen in training" "$MS" verify --db "$T/k.sqlite"
check "init --assign none" "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/raf/protocol.csv" \
    --assign none --db "$T/l.sqlite"
check "verify --assign none reports the leakage it measures and passes" "$MS" verify --db "$T/l.sqlite"
grep -q "no constraint" "$T/out" && ok "the report says mode none promises nothing" || nok "mode none report" "$(cat "$T/out")"
check "patterns lists the bank" "$MS" patterns --bank-size 12
[ "$(grep -c '^b42-' "$T/out")" = 12 ] && ok "12 patterns with stable ids" || nok "patterns list" "$(head -3 "$T/out")"

# ---- FER+ layout, both vote sources ----
check "fixture ferplus" "$MS" fixture --layout ferplus --n 600 --seed 3 "$T/fer"
check "init ferplus from the folders' label.csv" \
    "$MS" init --dataset ferplus --root "$T/fer" --votes folder --protocol "$T/fer/protocol.csv" --db "$T/g.sqlite"
reasons=$(q "$T/g.sqlite" "SELECT group_concat(DISTINCT substr(reason, 1, instr(reason || ' ', ' ') - 1)) FROM dropped_images")
echo "# drop reasons (label.csv): $reasons"
check "init ferplus --val official" "$MS" init --dataset ferplus --root "$T/fer" --votes folder --val official \
    --protocol "$T/fer/protocol.csv" --db "$T/g2.sqlite"
[ "$(q "$T/g2.sqlite" "SELECT count(*) FROM images WHERE benchmark_split IS NOT official_split AND status = 'ok'")" = 0 ] \
    && ok "--val official keeps FER+'s own Valid set" || nok "--val official"
check "init ferplus from fer2013.csv + fer2013new.csv" \
    "$MS" init --dataset ferplus --root "$T/fer" --votes new --allow-partial --db "$T/h.sqlite"
reasons=$(q "$T/h.sqlite" "SELECT group_concat(DISTINCT substr(reason, 1, instr(reason || ' ', ' ') - 1)) FROM dropped_images")
case "$reasons" in *empty*) ok "fer2013new: empty-name rows recorded as dropped ($reasons)" ;;
    *) nok "fer2013new: empty-name rows recorded as dropped" "$reasons" ;; esac

# Malformed FER+ files: exit 2 naming file and line.
cp -r "$T/fer" "$T/fer2"
sed -i '5s/,[0-9]*$/,x/' "$T/fer2/FER2013Valid/label.csv"
expect_rc "label.csv with a non-numeric vote is refused" 2 \
    "$MS" init --dataset ferplus --root "$T/fer2" --votes folder --allow-partial --db "$T/m.sqlite"
grep -q "FER2013Valid/label.csv:5:" "$T/err" && ok "the message names label.csv line 5" || nok "label.csv:5" "$(cat "$T/err")"
head -n 100 "$T/fer/fer2013new.csv" >"$T/fer2/fer2013new.csv"
expect_rc "fer2013new.csv shorter than fer2013.csv is refused" 2 \
    "$MS" init --dataset ferplus --root "$T/fer2" --votes new --allow-partial --db "$T/m.sqlite"
grep -q "different row counts" "$T/err" && ok "the message says the row counts differ" || nok "row counts" "$(cat "$T/err")"

# ---- the real FER+ vote files, when this checkout has them ----
VOTES=../shared/data/ferplus-votes
if [ -f "$VOTES/FER2013Train/label.csv" ]; then
    for d in Train Valid Test; do mkdir -p "$T/real/FER2013$d"; cp "$VOTES/FER2013$d/label.csv" "$T/real/FER2013$d/"; done
    "$MS" init --dataset ferplus --root "$T/real" --votes folder --allow-partial --db "$T/r.sqlite" >"$T/out" 2>"$T/err"
    kept=$(q "$T/r.sqlite" "SELECT group_concat(c) FROM (SELECT count(*) c FROM images GROUP BY official_split ORDER BY official_split='test', official_split='val')")
    with_contempt=$(q "$T/r.sqlite" "SELECT group_concat(c) FROM (SELECT official_split s, count(*) c FROM images GROUP BY s
        ORDER BY s='test', s='val')")
    contempt=$(q "$T/r.sqlite" "SELECT group_concat(c) FROM (SELECT count(*) c FROM dropped_images WHERE reason LIKE 'contempt%'
        GROUP BY source_file ORDER BY source_file LIKE '%/FER2013Test/%', source_file LIKE '%/FER2013Valid/%')")
    [ "$kept" = "24925,3175,3122" ] && ok "real label.csv: 24,925 / 3,175 / 3,122 kept in 7 classes" || nok "real FER+ 7-class counts" "$kept"
    [ "$contempt" = "120,16,15" ] && ok "real label.csv: 25,045 / 3,191 / 3,137 with contempt (8 classes)" \
        || nok "real FER+ 8-class counts" "contempt drops $contempt"
    : "$with_contempt"
else
    n=$((n + 1)); echo "ok $n # SKIP ../shared/data/ferplus-votes not present"
    n=$((n + 1)); echo "ok $n # SKIP ../shared/data/ferplus-votes not present"
fi

# ---- a killed init leaves nothing half-written; the rerun gives the same file ----
# FERBENCH_FAULT=before-commit kills masksynth (SIGKILL) with its one write transaction open.
mkdir -p "$T/clean" "$T/killed"
(cd "$T/clean" && "$OLDPWD/$MS" init --dataset rafdb --root ../raf --protocol ../raf/protocol.csv --db x.sqlite) >/dev/null 2>&1
{ (cd "$T/killed" && FERBENCH_FAULT=before-commit "$OLDPWD/$MS" init --dataset rafdb --root ../raf --protocol ../raf/protocol.csv \
    --db x.sqlite) >/dev/null 2>&1; rc=$?; } 2>/dev/null  # the shell's "Killed" notice goes too
[ "$rc" = 137 ] && [ ! -e "$T/killed/x.sqlite" ] \
    && ok "killed inside its transaction: no database left behind" || nok "killed inside its transaction" "rc $rc"
cp "$T/a.sqlite" "$T/killed2.sqlite"
{ FERBENCH_FAULT=before-commit "$MS" init --dataset rafdb --name other --root "$T/raf" --protocol "$T/raf/protocol.csv" \
    --db "$T/killed2.sqlite" >/dev/null 2>&1; } 2>/dev/null
[ "$(q "$T/killed2.sqlite" "SELECT count(*) FROM datasets WHERE name = 'other'")" = 0 ] && \
  [ "$(q "$T/killed2.sqlite" "SELECT count(*) FROM images")" = 400 ] \
    && ok "killed while adding to an existing database: the transaction leaves nothing" \
    || nok "killed while adding to an existing database"
(cd "$T/killed" && "$OLDPWD/$MS" init --dataset rafdb --root ../raf --protocol ../raf/protocol.csv --db x.sqlite) >/dev/null 2>"$T/err"
cmp -s "$T/clean/x.sqlite" "$T/killed/x.sqlite" && ok "killed then rerun: byte-identical to an uninterrupted run" \
    || nok "killed then rerun: byte-identical to an uninterrupted run" "$(cat "$T/err")"

[ "$failed" = 0 ]
