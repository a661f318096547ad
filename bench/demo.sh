#!/bin/sh
# make demo, part 2: the model on its embedded default. A 2,000-face synthetic
# RAF-DB -> masksynth (split, dlib landmarks, masks on every split) ->
# ferbench train fopm-tiny on the CPU for a short fixed budget -> ferbench run
# on the test split -> ferstats metrics and a confusion heatmap of the
# predictions. Outputs in build/demo/model/. About two minutes on 2 cores.
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
