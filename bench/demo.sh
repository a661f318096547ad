#!/bin/sh
# make demo, part 2: the model on its embedded default. A 2,000-face synthetic
# RAF-DB -> masksynth (split, dlib landmarks, masks on every split) ->
# ferbench train fopm-tiny on the CPU for a short fixed budget -> ferbench run
# on the test split -> ferstats metrics and a confusion heatmap of the
# predictions -> a stand-in baseline (3 epochs, trained on a copy of the
# database as if elsewhere) exported as baselines' scripts write predictions,
# imported with ferbench run --predictions, compared with McNemar -> ferbench
# report (Markdown, HTML page, SVGs, JSON). Outputs in build/demo/model/.
# About three minutes on 2 cores.
set -e
cd "$(dirname "$0")/.."
D=build/demo/model
EPOCHS=${DEMO_EPOCHS:-12}
rm -rf "$D"
mkdir -p "$D"
step() { printf '\n== %s\n$ %s\n' "$1" "$2"; }

step "1. a synthetic RAF-DB of 2,000 faces, ingested, split and masked (all splits)" \
     "bin/masksynth fixture ... && bin/masksynth init ... && bin/masksynth --split all --db $D/db.sqlite --out $D/masked"
bin/masksynth fixture --layout rafdb --n 2000 --seed 5 "$D/raf" >/dev/null
bin/masksynth init --dataset rafdb --root "$D/raf" --protocol "$D/raf/protocol.csv" --db "$D/db.sqlite"
bin/masksynth --split all --db "$D/db.sqlite" --out "$D/masked"

step "2. train MODEL.md's network, small configuration (fopm-tiny: 64 px, 208,100 parameters), $EPOCHS epochs" \
     "bin/ferbench train --config fopm-tiny --db $D/db.sqlite --out $D/run --epochs $EPOCHS --lr-step 8"
bin/ferbench train --config fopm-tiny --db "$D/db.sqlite" --out "$D/run" --epochs "$EPOCHS" --lr-step 8
echo "(per-epoch losses and validation accuracy: $D/run/log.csv; weights: $D/run/best.safetensors)"

step "3. predict the masked test split: predictions CSV, database rows, timing" \
     "bin/ferbench run --weights $D/run/best.safetensors --db $D/db.sqlite --split test --out $D/ours-test.csv"
bin/ferbench run --weights "$D/run/best.safetensors" --db "$D/db.sqlite" --split test --out "$D/ours-test.csv"

step "4. how good is it? (chance is 1/7; always answering 'happiness' scores 0.385 here)" \
     "bin/ferstats metrics $D/ours-test.csv; bin/ferstats confusion --svg $D/confusion.svg $D/ours-test.csv"
bin/ferstats metrics "$D/ours-test.csv" | head -12
bin/ferstats confusion --svg "$D/confusion.svg" "$D/ours-test.csv" >/dev/null
echo "(confusion heatmap: $D/confusion.svg)"

step "5. the weights load into the PyTorch port as they are" \
     "/usr/bin/python3 interop/fopm.py check --config fopm-tiny $D/run/best.safetensors"
/usr/bin/python3 interop/fopm.py check --config fopm-tiny "$D/run/best.safetensors"

step "6. a baseline trained elsewhere (a 3-epoch fopm-tiny on a copy of the database stands in for one), its test
   predictions exported as baselines' scripts write them (image paths, 1-based indices, logits, other column order)" \
     "bin/ferbench train ... --epochs 3 && bin/ferbench run ... && awk ... > $D/baseline-export.csv"
cp "$D/db.sqlite" "$D/elsewhere.sqlite"
bin/ferbench train --config fopm-tiny --db "$D/elsewhere.sqlite" --out "$D/baseline" --epochs 3 --lr-step 8 >/dev/null
bin/ferbench run --weights "$D/baseline/best.safetensors" --db "$D/elsewhere.sqlite" --split test \
    --out "$D/baseline-own.csv" >/dev/null
awk -F, 'BEGIN { OFS = ","; split("surprise,fear,disgust,happiness,sadness,anger,neutral", c, ",");
                 for (k = 1; k <= 7; k++) idx[c[k]] = k }
         NR == 1 { next }
         NR == 2 { printf "pred_idx,path,target"; for (k = 1; k <= 7; k++) printf ",logit%d", k; print ""; next }
         { stem = $1; sub(/\.jpg$/, "", stem); line = idx[$3] ",/data/RAF-DB/basic/Image/aligned/" stem "_aligned.jpg," idx[$2]
           for (k = 4; k <= 10; k++) line = line "," ($k > 0 ? log($k) : -1000); print line }' \
    "$D/baseline-own.csv" >"$D/baseline-export.csv"
head -3 "$D/baseline-export.csv"

step "7. import it: checked against the test split (every image once, the same ground truth), written canonically" \
     "bin/ferbench run --model tiny-3ep --predictions $D/baseline-export.csv --image-col path --label-col target --pred-col pred_idx --index-base 1 --score-kind logits --score-cols 'logit*' ..."
bin/ferbench run --model tiny-3ep --predictions "$D/baseline-export.csv" --db "$D/db.sqlite" --split test \
    --out "$D/tiny-3ep-test.csv" --image-col path --label-col target --pred-col pred_idx --index-base 1 \
    --score-kind logits --score-cols 'logit*'

step "8. is ours really better than the baseline on these masked faces? (paired McNemar, mid-p)" \
     "bin/ferstats mcnemar $D/ours-test.csv $D/tiny-3ep-test.csv"
bin/ferstats mcnemar "$D/ours-test.csv" "$D/tiny-3ep-test.csv"

step "9. the report: paper-style tables, per-class accuracy, McNemar + Holm against ours, timing, confusion matrices" \
     "bin/ferbench report --db $D/db.sqlite --out $D/report"
bin/ferbench report --db "$D/db.sqlite" --out "$D/report"
echo "(open $D/report/index.html; the same in Markdown: $D/report/report.md)"
