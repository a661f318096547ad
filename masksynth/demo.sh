#!/bin/sh
# make demo, part 1: masksynth on its embedded default, a synthetic RAF-DB
# fixture: ingestion with the protocol check, split, identity groups,
# identity-disjoint patterns, audit, verify, a manifest, then the masks of the
# test split and a contact sheet. Outputs in build/demo/.
set -e
cd "$(dirname "$0")/.."
D=build/demo
rm -rf "$D/rafdb-fixture" "$D/masksynth.sqlite" "$D/rafdb-fixture-manifest.csv" "$D/masked"
mkdir -p "$D"
step() { printf '\n== %s\n$ %s\n' "$1" "$2"; }

step "1. a synthetic RAF-DB in the official layout (procedural faces, planted near duplicates)" \
     "bin/masksynth fixture --layout rafdb --n 1000 --seed 42 $D/rafdb-fixture"
bin/masksynth fixture --layout rafdb --n 1000 --seed 42 "$D/rafdb-fixture"

step "2. ingest it: hashes, protocol check, 10% stratified validation, identity groups, patterns" \
     "bin/masksynth init --dataset rafdb --root $D/rafdb-fixture --protocol $D/rafdb-fixture/protocol.csv --db $D/masksynth.sqlite"
bin/masksynth init --dataset rafdb --root "$D/rafdb-fixture" --protocol "$D/rafdb-fixture/protocol.csv" --db "$D/masksynth.sqlite"

step "3. near duplicates that cross training and test (first lines)" "bin/masksynth audit --db $D/masksynth.sqlite"
bin/masksynth audit --db "$D/masksynth.sqlite" | tail -4

step "4. the identity-disjoint invariant, checked with one SQL query" "bin/masksynth verify --db $D/masksynth.sqlite"
bin/masksynth verify --db "$D/masksynth.sqlite"

step "5. a manifest others can re-create the split and patterns from" \
     "bin/masksynth manifest --db $D/masksynth.sqlite --out $D/rafdb-fixture-manifest.csv"
bin/masksynth manifest --db "$D/masksynth.sqlite" --out "$D/rafdb-fixture-manifest.csv"
head -4 "$D/rafdb-fixture-manifest.csv"

step "6. mask the test split: dlib landmarks, each image's assigned pattern, alpha maps, database rows" \
     "bin/masksynth --split test --db $D/masksynth.sqlite --out $D/masked"
bin/masksynth --split test --db "$D/masksynth.sqlite" --out "$D/masked"

step "7. a contact sheet to look at, and the pattern bank" \
     "bin/masksynth preview --split test --n 36 $D/preview.png; bin/masksynth patterns --preview $D/patterns.png"
bin/masksynth preview --db "$D/masksynth.sqlite" --split test --n 36 "$D/preview.png"
bin/masksynth patterns --preview "$D/patterns.png"
