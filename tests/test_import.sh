#!/bin/sh
# tests/test_import.sh: `ferbench run --model NAME --predictions F`, the import
# of baselines' exported predictions (TAP).
#
# A 300-face fixture RAF-DB is ingested and split (no masks needed: an import
# reads no images). /usr/bin/python3 writes the kinds of files baselines' code
# exports (paths, 1-based indices, logits, FER+ and FER2013 class orders,
# numpy-style floats, no header...) from the database's ground truth; each
# import must give the canonical predictions CSV that python computes
# independently (softmax in numpy, the argmax, the split's order), pass
# ferstats, and write model_runs/predictions rows with the source file's path
# and SHA-256. Every malformed file or option must exit 2 with one stderr line
# naming the file and line, and leave no output file and no database row.
#
#   FERBENCH_BIN  folder of the tools (default bin)
. "$(dirname "$0")/tap.sh"
export SOURCE_DATE_EPOCH=1700000000
q() { sqlite3 "$T/d.sqlite" "$1"; }
runs() { q "SELECT count(*) FROM model_runs"; }

# good "description" out.csv args...: an import that must succeed.
good() {
    d=$1; o=$2; shift 2
    "$FB" run --db "$T/d.sqlite" --out "$o" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc = 0 ] && sane; then ok "$d"; else nok "$d" "exit $rc" "$(head -c 800 "$T/err")"; fi
}
# bad "description" want args... (for imports, in place of tap.sh's): exit 2, one stderr line holding $want, no output, no new database row.
bad() {
    d=$1; want=$2; shift 2
    before=$(runs)
    rm -f "$T/bad-out.csv"
    "$FB" run --db "$T/d.sqlite" --out "$T/bad-out.csv" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc = 2 ] && [ "$lines" = 1 ] && grep -q -F -- "$want" "$T/err" && [ ! -e "$T/bad-out.csv" ] &&
        [ "$(runs)" = "$before" ] && sane; then
        ok "$d: $(cat "$T/err")"
    else
        nok "$d" "exit $rc, $lines stderr lines, want '$want'; output $( [ -e "$T/bad-out.csv" ] && echo written || echo none); runs $before -> $(runs)" "$(head -c 600 "$T/err")"
    fi
}

for tool in masksynth ferbench ferstats; do
    [ -x "$BIN/$tool" ] || { echo "Bail out! $BIN/$tool is not built (run make all)"; exit 1; }
done
if "$MS" fixture --layout rafdb --n 300 --seed 5 "$T/raf" >"$T/out" 2>"$T/err" &&
    "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/raf/protocol.csv" --db "$T/d.sqlite" >"$T/out" 2>"$T/err"; then
    ok "fixture RAF-DB of 300 faces, ingested and split"
else
    nok "fixture and init" "$(head -c 600 "$T/err")"
fi
sqlite3 -csv "$T/d.sqlite" "SELECT name, rel_path, label, ifnull(benchmark_split, '') FROM images ORDER BY name" >"$T/images.csv"

# The exports, and what each must become.
$PY - "$T" <<'EOF' || echo "Bail out! the python generator failed"
import csv, math, random, sys, os
T = sys.argv[1]
names = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
ferplus = [6, 3, 0, 4, 5, 2, 1, 7]          # FER+ index -> class
fer2013 = [5, 2, 1, 3, 4, 0, 6]
imgs = [r for r in csv.reader(open(f"{T}/images.csv"))]
test = [r for r in imgs if r[3] == "test"]
train = [r for r in imgs if r[3] == "train"]
rng = random.Random(7)

def logits_for(lab):
    lg = [rng.gauss(0, 1) for _ in range(7)]
    if rng.random() < 0.7:
        lg[lab] += 3
    return lg

def softmax(lg):
    m = max(lg)
    e = [math.exp(x - m) for x in lg]
    s = sum(e)
    return [x / s for x in e]

def argmax(v):
    return max(range(len(v)), key=lambda i: (v[i], -i))

def write(name, header, rows):
    with open(f"{T}/{name}", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)

def expect(name, model, preds, probs):
    # The canonical file ferbench must write: split order (image name), label names, shortest round-trip floats.
    with open(f"{T}/{name}", "w") as f:
        f.write(f"# ferbench-predictions v1 dataset=rafdb split=test model={model} labels={','.join(names)}\n")
        f.write("image,label,pred" + ("".join(",prob_" + c for c in names) if probs else "") + "\n")
        for r in sorted(test, key=lambda r: r[0].encode()):
            i = r[0]
            f.write(f"{i},{names[int(r[2])]},{names[preds[i]]}" + ("".join("," + repr(p) for p in probs[i]) if probs else "") + "\n")

# 1. SCN-style: absolute paths of the aligned images, 1-based indices, 7 logit columns, shuffled rows and columns.
rows, preds, probs = [], {}, {}
for r in test:
    lab = int(r[2]); lg = logits_for(lab); p = softmax(lg)
    preds[r[0]], probs[r[0]] = argmax(p), p
    rows.append([argmax(lg) + 1, "/data/RAF/basic/" + r[1], lab + 1] + ["%.9f" % x for x in lg])
rng.shuffle(rows)
# the probabilities of what was written (9 decimals), as ferbench reads them
for row in rows:
    p = softmax([float(x) for x in row[3:]])
    i = os.path.basename(row[1]).replace("_aligned", "")
    probs[i] = p
write("scn.csv", ["pred_idx", "path", "gt_idx"] + [f"logit{k}" for k in range(7)], rows)
expect("scn.expected.csv", "scn", preds, probs)

# 2. names as people write them: stems, "Happy", "sad"; pred only, no label column.
alias = {"surprise": "Surprised", "fear": "fearful", "disgust": "DISGUST", "happiness": "Happy", "sadness": "sad",
         "anger": "angry", "neutral": "Neutral"}
rows, preds = [], {}
for r in test:
    lab = int(r[2]); pr = lab if rng.random() < 0.6 else rng.randrange(7)
    preds[r[0]] = pr
    rows.append([alias[names[pr]], r[0].rsplit(".", 1)[0]])
write("names.csv", ["prediction", "img"], rows)
expect("names.expected.csv", "named", preds, None)

# 3. FER+ order, 0-based, probabilities by prefix with FER+'s names (prob_happy), masked PNG file names.
fp_names = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear"]   # 7 of FER+'s 8, contempt dropped
rows, preds, probs = [], {}, {}
for r in test:
    lab = int(r[2]); p = softmax(logits_for(lab))
    ps = ["%.17g" % x for x in p]
    p = [float(x) for x in ps]
    preds[r[0]], probs[r[0]] = argmax(p), p
    fp = [ps[ferplus[j]] for j in range(7)]
    rows.append([r[0].replace(".jpg", ".png"), ferplus.index(lab), ferplus.index(argmax(p))] + fp)
write("ferplus.csv", ["file", "target", "pred"] + ["prob_" + c for c in fp_names], rows)
expect("ferplus.expected.csv", "mvt", preds, probs)

# 4. no header, numpy.savetxt-style floats for the FER2013 codes, columns by number.
rows, preds = [], {}
for r in test:
    lab = int(r[2]); pr = lab if rng.random() < 0.5 else rng.randrange(7)
    preds[r[0]] = pr
    rows.append(["%.18e" % fer2013.index(pr), "%.18e" % fer2013.index(lab), r[0]])
write("noheader.csv", None, rows)
expect("noheader.expected.csv", "ran", preds, None)

# Malformed variants of scn.csv (header + rows), each with one defect.
hdr = ["pred_idx", "path", "gt_idx"] + [f"logit{k}" for k in range(7)]
base = [row[:] for row in csv.reader(open(f"{T}/scn.csv"))][1:]
def variant(name, fn):
    rows = [row[:] for row in base]
    fn(rows)
    write(name, hdr, rows)
variant("bad_unknown.csv", lambda rows: rows[4].__setitem__(1, "/data/RAF/basic/Image/aligned/test_9999_aligned.jpg"))
variant("bad_train.csv", lambda rows: rows[4].__setitem__(1, train[0][1]))
variant("bad_dup.csv", lambda rows: rows[6].__setitem__(1, rows[2][1]))
variant("bad_missing.csv", lambda rows: rows.pop())
variant("bad_fields.csv", lambda rows: rows[3].pop())
variant("bad_nan.csv", lambda rows: rows[5].__setitem__(4, "nan"))
variant("bad_argmax.csv", lambda rows: rows[5].__setitem__(0, str((int(rows[5][0]) % 7) + 1)))
variant("bad_range.csv", lambda rows: rows[5].__setitem__(0, "8"))
def relabel(rows):
    for row in rows:
        row[2] = str(int(row[2]) - 1)      # 0-based ground truth, read as 1-based
variant("bad_zero_based.csv", relabel)
# probabilities that are not (scn's logits read as probabilities), a negative one, an 8th class
write("bad_probsum.csv", ["image", "pred"] + ["prob_" + c for c in names],
      [[r[0], "0", "0.5", "0.1", "0.1", "0.1", "0.1", "0.1", "0.1"] for r in test])
write("bad_negative.csv", ["image", "pred"] + ["prob_" + c for c in names],
      [[r[0], "1", "-0.1", "1.1", "0", "0", "0", "0", "0"] for r in test])
write("bad_sixprobs.csv", ["image"] + ["prob_" + c for c in names[:6]],
      [[r[0]] + ["0.2"] * 5 + ["0"] for r in test])
write("bad_contempt.csv", ["image", "pred"], [[r[0], "7" if k == 3 else "0"] for k, r in enumerate(test)])
EOF

# 1. SCN-style export.
good "SCN-style export: paths, 1-based indices, logits listed in class order" "$T/scn.out.csv" \
    --model scn --predictions "$T/scn.csv" --image-col path --label-col gt_idx --pred-col pred_idx --index-base 1 \
    --score-kind logits --score-cols logit0,logit1,logit2,logit3,logit4,logit5,logit6
echo "# $(cat "$T/out")"
cmp -s "$T/scn.out.csv" "$T/scn.expected.csv" && ok "SCN: the canonical CSV python computed (softmax, split order), byte for byte" ||
    nok "SCN canonical CSV" "$(diff "$T/scn.out.csv" "$T/scn.expected.csv" | head -5)"
"$FS" metrics "$T/scn.out.csv" >"$T/out" 2>"$T/err" && ok "ferstats reads the result" || nok "ferstats metrics" "$(cat "$T/err")"
[ "$(q "SELECT model || ' ' || split || ' ' || (weights_path IS NULL) || ' ' || source_hash FROM model_runs ORDER BY id DESC LIMIT 1")" = \
  "scn test 1 $(sha256sum "$T/scn.csv" | cut -d' ' -f1)" ] &&
  [ "$(q "SELECT source_path FROM model_runs ORDER BY id DESC LIMIT 1")" = "$(realpath "$T/scn.csv")" ] &&
  [ "$(q "SELECT mask_mode || ':' || mask_seed FROM model_runs ORDER BY id DESC LIMIT 1")" = identity:42 ] &&
  ok "model_runs: model scn, split test, masks identity:42, no weights, the source's absolute path and SHA-256" ||
  nok "model_runs row" "$(q "SELECT * FROM model_runs")"
[ "$(q "SELECT count(*), count(probabilities) FROM predictions p JOIN model_runs m ON m.id = p.model_run_id WHERE m.model = 'scn'")" = "60|60" ] &&
  [ "$(q "SELECT count(*) FROM timings")" = 0 ] &&
  ok "60 prediction rows with probabilities; no timings row (nothing ran here)" || nok "prediction rows" "$(q "SELECT count(*) FROM predictions")"
[ "$(q "SELECT group_concat(pred, '') FROM (SELECT p.pred FROM predictions p JOIN images i ON i.id = p.image_id ORDER BY i.name)")" = \
  "$($PY -c "
import csv,sys
n=['surprise','fear','disgust','happiness','sadness','anger','neutral']
r=list(csv.reader(open('$T/scn.expected.csv')))[2:]
print(''.join(str(n.index(x[2])) for x in r))")" ] && ok "database predictions equal the CSV's" || nok "database predictions"
[ "$(q "SELECT exit_code FROM tool_runs ORDER BY id DESC LIMIT 1")" = 0 ] && ok "tool_runs row closed with exit 0" || nok "tool_runs"

# 2. Class names and image stems; predictions only.
good "names (Happy, sad, fearful...), image stems, pred only" "$T/names.out.csv" --model named \
    --predictions "$T/names.csv" --image-col img --pred-col prediction
cmp -s "$T/names.out.csv" "$T/names.expected.csv" && ok "names: canonical CSV without probability columns" ||
    nok "names canonical CSV" "$(diff "$T/names.out.csv" "$T/names.expected.csv" | head -5)"
[ "$(q "SELECT count(*) FROM predictions p JOIN model_runs m ON m.id = p.model_run_id WHERE m.model = 'named' AND probabilities IS NULL")" = 60 ] &&
    ok "no probabilities: the rows hold NULL" || nok "NULL probabilities"

# 3. FER+ order.
good "FER+ order, 0-based, prob_happy... by prefix, masked PNG names" "$T/ferplus.out.csv" --model mvt \
    --predictions "$T/ferplus.csv" --image-col file --label-col target --classes ferplus
cmp -s "$T/ferplus.out.csv" "$T/ferplus.expected.csv" && ok "FER+: probabilities reordered into RAF-DB order, exact" ||
    nok "FER+ canonical CSV" "$(diff "$T/ferplus.out.csv" "$T/ferplus.expected.csv" | head -5)"

# 4. No header.
good "no header, FER2013 codes as numpy floats, columns by number" "$T/noheader.out.csv" --model ran \
    --predictions "$T/noheader.csv" --no-header --image-col 3 --pred-col 1 --label-col 2 --classes fer2013
cmp -s "$T/noheader.out.csv" "$T/noheader.expected.csv" && ok "no header: canonical CSV" ||
    nok "no-header canonical CSV" "$(diff "$T/noheader.out.csv" "$T/noheader.expected.csv" | head -5)"

# 5. A canonical file imports as it is, and the result is the same file under the new name.
good "the canonical form imports without options" "$T/copy.out.csv" --model scn-copy --predictions "$T/scn.out.csv"
sed 's/model=scn-copy/model=scn/' "$T/copy.out.csv" | cmp -s - "$T/scn.out.csv" && ok "canonical round trip: identical but for model=" ||
    nok "canonical round trip" "$(diff "$T/copy.out.csv" "$T/scn.out.csv" | head -3)"
good "importing the same file again adds a second run" "$T/scn2.out.csv" --model scn --predictions "$T/scn.out.csv"
[ "$(q "SELECT count(*) FROM model_runs WHERE model = 'scn'")" = 2 ] && cmp -s "$T/scn2.out.csv" "$T/scn.out.csv" &&
    ok "two runs of scn recorded, same predictions" || nok "second import"

# Bad files.
L='--model scn --image-col path --label-col gt_idx --pred-col pred_idx --index-base 1 --score-kind logits --score-cols logit0,logit1,logit2,logit3,logit4,logit5,logit6'
bad "an image the dataset does not have" "bad_unknown.csv:6: '/data/RAF/basic/Image/aligned/test_9999_aligned.jpg' is not an image of dataset rafdb" \
    --predictions "$T/bad_unknown.csv" $L
bad "an image of the train split" "bad_train.csv:6: image train_" --predictions "$T/bad_train.csv" $L
grep -q "is in the train split, not test" "$T/err" && ok "... says which split it is in" || nok "other split message" "$(cat "$T/err")"
bad "an image twice" "bad_dup.csv:8: image test_" --predictions "$T/bad_dup.csv" $L
grep -q "again (first on line 4)" "$T/err" && ok "... names the first line" || nok "duplicate message" "$(cat "$T/err")"
bad "a split image without a row" "bad_missing.csv: 1 of the 60 test images of dataset rafdb have no row (first: test_" \
    --predictions "$T/bad_missing.csv" $L
bad "a row with a field missing" "bad_fields.csv:5: 9 fields, the header has 10" --predictions "$T/bad_fields.csv" $L
bad "a NaN logit" "bad_nan.csv:7: fear score 'nan' is not a finite number" --predictions "$T/bad_nan.csv" $L
bad "pred that is not the highest score" "bad_argmax.csv:7: pred is" --predictions "$T/bad_argmax.csv" $L
bad "an index past the classes" "bad_range.csv:7: pred: 8 is outside 1..7" --predictions "$T/bad_range.csv" $L
bad "0-based ground truth read as 1-based: the hint" "with --classes rafdb --index-base 0 every label agrees" \
    --predictions "$T/bad_zero_based.csv" $L
bad "probabilities that do not sum to 1" "bad_probsum.csv:2: probabilities sum to 1.0999999999999999, not 1 +- 1e-3 (logits? --score-kind logits)" \
    --model x --predictions "$T/bad_probsum.csv"
bad "a negative probability" "bad_negative.csv:2: probability of surprise is -0.10000000000000001, outside [0, 1]" \
    --model x --predictions "$T/bad_negative.csv"
bad "a class without a score column" "bad_sixprobs.csv:1: no score column for neutral" --model x --predictions "$T/bad_sixprobs.csv"
bad "contempt predicted on a 7-class dataset" "bad_contempt.csv:5: pred is contempt, which dataset rafdb does not have" \
    --model x --predictions "$T/bad_contempt.csv" --classes ferplus
bad "score columns for FER+'s 8 classes on a 7-class dataset" "scn.csv:1: score column 'gt_idx' is for contempt, which the dataset does not have" \
    --model x --predictions "$T/scn.csv" --image-col path --pred-col pred_idx --score-kind logits --classes ferplus \
    --score-cols logit0,logit1,logit2,logit3,logit4,logit5,logit6,gt_idx
bad "more score columns than classes" "scn.csv: --score-cols lists more columns than the 7 classes of rafdb" \
    --model x --predictions "$T/scn.csv" --image-col path --pred-col pred_idx --index-base 1 --score-kind logits \
    --score-cols logit0,logit1,logit2,logit3,logit4,logit5,logit6,gt_idx
bad "a suffix index outside the classes" "score column 'logit0': its suffix 0 is outside 1..7" \
    --model x --predictions "$T/scn.csv" --image-col path --pred-col pred_idx --index-base 1 --score-kind logits --score-cols 'logit*'
bad "no pred and no scores" "names.csv:1: no predictions" --model x --predictions "$T/names.csv" --image-col img
bad "a column that is not there" "scn.csv:1: no column 'file' (--image-col); the header has 'pred_idx'," --model x \
    --predictions "$T/scn.csv" --image-col file
bad "the canonical header says another split" "scn.out.csv:1: the file says split=test; importing split val" \
    --model x --predictions "$T/scn.out.csv" --split val
bad "a file that is not there" "nothere.csv" --model x --predictions "$T/nothere.csv"

# An image name two images could share is refused, never guessed.
cp "$T/d.sqlite" "$T/d0.sqlite"
q "INSERT INTO images(dataset_id, name, rel_path, label, official_split) SELECT dataset_id, 'test_0001.png', 'other/test_0001.png', 0, 'test' FROM images LIMIT 1"
printf 'image,pred\n' >"$T/ambig.csv"; sed -n '3,$p' "$T/names.expected.csv" | cut -d, -f1 | sed 's/\.jpg$//;s/$/,happy/' >>"$T/ambig.csv"
bad "an ambiguous stem" "ambig.csv:2: 'test_0001' could name several images of dataset rafdb" --model x --predictions "$T/ambig.csv"
cp "$T/d0.sqlite" "$T/d.sqlite"

# Bad options.
bad "--model ours for an import" "'ours' is the model trained here" --model ours --predictions "$T/scn.out.csv"
bad "a model name with markup" "1 to 64 letters, digits or ._+-" --model '<b>x' --predictions "$T/scn.out.csv"
bad "--weights with --predictions" "--weights is for running ours; an import (--predictions) runs nothing" --model x --weights w --predictions "$T/scn.out.csv"
bad "--classes with a stranger" "--classes: 'joyful' is not a class" --model x --predictions "$T/scn.out.csv" --classes 'happy,joyful'
bad "--classes with a class twice" "--classes: 'sad' is listed twice" --model x --predictions "$T/scn.out.csv" --classes 'sadness,sad'
bad "--index-base 2" "--index-base" --model x --predictions "$T/scn.out.csv" --index-base 2
bad "an import option without --predictions" "--classes describes an imported file: it needs --predictions F" --classes rafdb --weights w
bad "a baseline name without --predictions" "import a baseline's predictions with --predictions F" --model scn --weights w
before=$(runs)
"$FB" run --db "$T/d.sqlite" --out "$T/no/such/dir/p.csv" --model x --predictions "$T/scn.out.csv" >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$T/err")" = 1 ] && [ "$(runs)" = "$before" ] && ok "unwritable --out: exit 2, nothing recorded: $(cat "$T/err")" ||
    nok "unwritable --out" "exit $rc" "$(cat "$T/err")"
"$FB" run --db "$T/none.sqlite" --out "$T/x.csv" --model x --predictions "$T/scn.out.csv" >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 2 ] && grep -q "none.sqlite" "$T/err" && [ ! -e "$T/none.sqlite" ] && ok "a database that is not there: exit 2, not created" ||
    nok "missing database" "exit $rc" "$(cat "$T/err")"
# Masks: with a second assignment in the database the import must be told which one the baseline saw,
# and the report warns that the models did not all see the same masks.
cp "$T/d.sqlite" "$T/d1.sqlite"
q "INSERT INTO assignments(image_id, pattern_id, mode, seed) SELECT image_id, pattern_id, 'pattern', 7 FROM assignments"
bad "two mask assignments and no --mode" "images of several mask assignments (identity:42 (60 assigned), pattern:7 (60 assigned)): choose one with MODE:SEED" \
    --model pacvt --predictions "$T/scn.out.csv"
bad "an unknown --mode" "mode 'ident': unknown (identity, pattern or none)" --model pacvt --predictions "$T/scn.out.csv" --mode ident
good "--mode pattern:7" "$T/pacvt.out.csv" --model pacvt --predictions "$T/scn.out.csv" --mode pattern:7
[ "$(q "SELECT mask_mode || ':' || mask_seed FROM model_runs WHERE model = 'pacvt'")" = pattern:7 ] &&
    ok "the import records the masks it was evaluated on (pattern:7)" || nok "pacvt masks"
"$FB" report --db "$T/d.sqlite" --out "$T/report-masks" --resamples 50 >"$T/out" 2>"$T/err" &&
    grep -q "Warning: these runs were not all evaluated on the same recorded mask assignment" "$T/report-masks/report.md" &&
    grep -q '| pacvt | [0-9]* | [^|]* | pattern:7 |' "$T/report-masks/report.md" &&
    ok "the report shows each run's masks and warns when they differ" ||
    nok "report masks warning" "$(cat "$T/err")" "$(grep -n 'pacvt' "$T/report-masks/report.md" | head -3)"
cp "$T/d1.sqlite" "$T/d.sqlite"

# The imports feed the report: each model's latest run, with the accuracy ferstats gives its canonical CSV.
"$FB" report --db "$T/d.sqlite" --out "$T/report" --resamples 200 >"$T/out" 2>"$T/err"
rc=$?
if [ $rc = 0 ] && sane; then
    want=""
    for m in mvt named ran scn scn-copy; do
        f=$T/$m.out.csv; [ "$m" = mvt ] && f=$T/ferplus.out.csv; [ "$m" = named ] && f=$T/names.out.csv
        [ "$m" = ran ] && f=$T/noheader.out.csv; [ "$m" = scn-copy ] && f=$T/copy.out.csv
        want="$want $m=$("$FS" metrics --json "$f" | $PY -c 'import json,sys; print(repr(json.load(sys.stdin)["accuracy"]))')"
    done
    got=$($PY -c "
import json
r = json.load(open('$T/report/report.json'))['datasets'][0]['runs']
print(''.join(' %s=%r' % (x['model'], x['accuracy']) for x in sorted(r, key=lambda x: x['model'])))")
    latest=$($PY -c "
import json
r = json.load(open('$T/report/report.json'))['datasets'][0]['runs']
print([x['run_id'] for x in r if x['model'] == 'scn'][0])")
    [ "$got" = "$want" ] && [ "$latest" = "$(q "SELECT max(id) FROM model_runs WHERE model = 'scn'")" ] &&
        ok "ferbench report on the imports: the latest run of each, accuracies as ferstats ($got)" ||
        nok "report on the imports" "got$got" "want$want" "scn run $latest"
else
    nok "ferbench report on the imports" "exit $rc" "$(head -c 600 "$T/err")"
fi
[ "$failed" = 0 ] || echo "# $failed failed"
echo "1..$n"
