#!/bin/sh
# tests/test_report.sh: `ferbench report` end to end (TAP).
#
# A database is made without training: two fixture datasets (masksynth
# fixture + init; no masks rendered), then synthetic model runs inserted with
# the sqlite3 CLI: on rafdb an old and a new run of ours (weights, a timings
# row), two imported baselines (source file and hash, no timing), one of them
# named with <script> in it; on fer (one image relabelled contempt, so 8
# classes) ours and one baseline; a run on the val split that must be ignored.
# Predictions are a deterministic function of the image id.
#
# Checked: report.json against ferstats metrics / compare / mcnemar /
# bootstrap --json on the same predictions exported as CSVs, and against
# scikit-learn and statsmodels (accuracy, macro-F1, exact McNemar, Holm);
# byte-identical files on a rerun and at --threads 1 vs 2; index.html parses
# and inlines one <svg per model; user strings are escaped; options select and
# order; every bad input exits 2 with one stderr line naming it.
#
#   FERBENCH_BIN  folder of masksynth, ferbench, ferstats (default bin)
. "$(dirname "$0")/tap.sh"
for tool in "$MS" "$FB" "$FS"; do
    [ -x "$tool" ] || { echo "Bail out! $tool is not built (run make all)"; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "Bail out! the sqlite3 CLI is needed"; exit 1; }
export FERBENCH_NO_PROGRESS=1

q() { sqlite3 "$T/d.sqlite" "$1"; }

# ---- the database ----------------------------------------------------------------
"$MS" fixture --layout rafdb --n 300 --seed 5 "$T/raf" >/dev/null 2>"$T/err" &&
    "$MS" init --dataset rafdb --root "$T/raf" --protocol "$T/raf/protocol.csv" --db "$T/d.sqlite" >/dev/null 2>>"$T/err" &&
    "$MS" fixture --layout ferplus --n 300 --seed 6 "$T/fp" >/dev/null 2>>"$T/err" &&
    "$MS" init --dataset ferplus --name fer --root "$T/fp" --protocol "$T/fp/protocol.csv" --db "$T/d.sqlite" \
        >/dev/null 2>>"$T/err" ||
    { echo "Bail out! fixture database: $(cat "$T/err")"; exit 1; }

# Synthetic runs. Model m gets image i right when (i * 37 + salt) mod 100 < its
# accuracy; otherwise a wrong class that depends on i.
RAF=$(q "SELECT id FROM datasets WHERE name = 'rafdb'")
FER=$(q "SELECT id FROM datasets WHERE name = 'fer'")
H1=$(printf 'a%.0s' $(seq 64)); H2=$(printf 'b%.0s' $(seq 64)); H3=$(printf 'c%.0s' $(seq 64))
run_sql() { # id dataset split model acc salt weights_path weights_hash source_path source_hash classes
    echo "INSERT INTO model_runs(id, tool_run_id, dataset_id, model, weights_path, weights_hash, split,
          predictions_path, source_path, source_hash) VALUES ($1, 100, $2, '$4', $7, $8, '$3', NULL, $9, ${10});"
    echo "INSERT INTO predictions(model_run_id, image_id, pred) SELECT $1, id,
          CASE WHEN (id * 37 + $6) % 100 < $5 THEN label ELSE (label + 1 + (id * 7 + $6) % (${11} - 1)) % ${11} END
          FROM images WHERE dataset_id = $2 AND benchmark_split = '$3' AND status = 'ok';"
}
{
    echo "BEGIN;"
    # one image of fer is contempt: that dataset has 8 classes
    echo "UPDATE images SET label = 7 WHERE id = (SELECT id FROM images WHERE dataset_id = $FER AND benchmark_split = 'test' ORDER BY name LIMIT 1);"
    echo "INSERT INTO tool_runs(id, tool, version, arguments, started, finished, exit_code)
          VALUES (100, 'ferbench', '0.1.0', '[]', '2024-01-02T03:04:05Z', '2024-01-02T03:05:00Z', 0);"
    run_sql 1 "$RAF" test ours 30 1 "'/w/old.safetensors'" "'$H1'" NULL NULL 7
    run_sql 2 "$RAF" test ours 85 2 "'/w/best.safetensors'" "'$H1'" NULL NULL 7
    run_sql 3 "$RAF" test mvt 70 3 NULL NULL "'/p/mvt.csv'" "'$H2'" 7
    run_sql 4 "$RAF" test 'res<script>x</script>' 62 4 NULL NULL "'/p/r|s.csv'" "'$H3'" 7
    run_sql 5 "$RAF" val ours 50 5 "'/w/best.safetensors'" "'$H1'" NULL NULL 7
    run_sql 6 "$FER" test ours 80 6 "'/w/best.safetensors'" "'$H1'" NULL NULL 8
    run_sql 7 "$FER" test mvt 60 7 NULL NULL "'/p/mvt-fer.csv'" "'$H2'" 8
    echo "INSERT INTO timings(model_run_id, device, batch, ms_per_image, images_per_s, peak_bytes)
          VALUES (2, 'cpu (16 threads)', 16, 12.5, 70.25, 734003200);"
    echo "COMMIT;"
} | sqlite3 "$T/d.sqlite" 2>"$T/err" || { echo "Bail out! inserting runs: $(cat "$T/err")"; exit 1; }
cp "$T/d.sqlite" "$T/pristine.sqlite"
LABELS=surprise,fear,disgust,happiness,sadness,anger,neutral

# The predictions of run R as a plain image,label,pred file (ferstats --labels).
export_csv() { # run dataset-id out.csv labels
    { echo "image,label,pred"
      q "SELECT i.name || ',' || i.label || ',' || p.pred FROM predictions p JOIN images i ON i.id = p.image_id
         WHERE p.model_run_id = $1 ORDER BY i.name" | awk -F, -v L="$4" 'BEGIN { split(L, n, ",") }
         { print $1 "," n[$2 + 1] "," n[$3 + 1] }'; } >"$3"
}
mkdir "$T/csv"
export_csv 2 "$RAF" "$T/csv/ours.csv" "$LABELS"
export_csv 3 "$RAF" "$T/csv/mvt.csv" "$LABELS"
export_csv 4 "$RAF" "$T/csv/res.csv" "$LABELS"

# ---- the report --------------------------------------------------------------------
check "report over two datasets, three models, 2 threads" "$FB" report --db "$T/d.sqlite" --out "$T/r1" --threads 2
cp "$T/out" "$T/r1.stdout"
lines=$(grep -c '^report dataset=' "$T/r1.stdout")
[ "$lines" = 5 ] && grep -q "^wrote $T/r1/index.html$" "$T/r1.stdout" && grep -q "^wrote $T/r1/report.md$" "$T/r1.stdout" \
    && ok "stdout: one line per (dataset, model) and the paths written" || nok "stdout" "$(cat "$T/r1.stdout")"
nsvg=$(ls "$T/r1" | grep -c '^confusion-.*\.svg$')
[ -s "$T/r1/report.md" ] && [ -s "$T/r1/index.html" ] && [ -s "$T/r1/report.json" ] && [ "$nsvg" = 5 ] &&
    [ "$(ls "$T/r1" | wc -l)" = 8 ] && ok "report.md, index.html, report.json and 5 SVGs, nothing else left" ||
    nok "output files" "$(ls "$T/r1")"
bad_names=$(ls "$T/r1" | grep -v '^[A-Za-z0-9._-]*$')
[ -z "$bad_names" ] && ls "$T/r1" | grep -q '^confusion-rafdb-res_script_x__script_-[0-9a-f]\{8\}\.svg$' &&
    ok "SVG file names are sanitised (and keep a hash of a changed name)" || nok "SVG names" "$(ls "$T/r1")"

# The oracles: ferstats on the exported CSVs, then scikit-learn / statsmodels.
"$FS" metrics --json --labels "$LABELS" "$T/csv/ours.csv" >"$T/m_ours.json" 2>"$T/err"
"$FS" metrics --json --labels "$LABELS" "$T/csv/mvt.csv" >"$T/m_mvt.json" 2>>"$T/err"
"$FS" metrics --json --labels "$LABELS" "$T/csv/res.csv" >"$T/m_res.json" 2>>"$T/err"
"$FS" compare --json --labels "$LABELS" "$T/csv/ours.csv" "$T/csv/mvt.csv" "$T/csv/res.csv" >"$T/cmp.json" 2>>"$T/err"
"$FS" compare --json --labels "$LABELS" --method exact --adjust bonferroni "$T/csv/ours.csv" "$T/csv/mvt.csv" \
    "$T/csv/res.csv" >"$T/cmp_exact.json" 2>>"$T/err"
"$FS" mcnemar --json --labels "$LABELS" "$T/csv/ours.csv" "$T/csv/mvt.csv" >"$T/mc_mvt.json" 2>>"$T/err"
"$FS" mcnemar --json --labels "$LABELS" "$T/csv/ours.csv" "$T/csv/res.csv" >"$T/mc_res.json" 2>>"$T/err"
for m in ours mvt res; do
    "$FS" bootstrap --json --labels "$LABELS" --metric macro-f1 --resamples 2000 --seed 42 --threads 3 \
        "$T/csv/$m.csv" >"$T/b_$m.json" 2>>"$T/err"
done
for m in mvt res; do
    "$FS" bootstrap --json --labels "$LABELS" --metric macro-f1 --resamples 2000 --seed 42 "$T/csv/ours.csv" \
        "$T/csv/$m.csv" >"$T/bp_$m.json" 2>>"$T/err"
done
[ -s "$T/err" ] && nok "ferstats on the exported CSVs" "$(cat "$T/err")" || ok "ferstats on the exported CSVs"

cat >"$T/oracle.py" <<'EOF'
import json, math, sys
T, what = sys.argv[1], sys.argv[2]
def strict(x):  # no NaN / Infinity anywhere
    raise ValueError("non-finite number %s in report.json" % x)
R = json.load(open(T + "/r1/report.json"), parse_constant=strict)
raf = [d for d in R["datasets"] if d["name"] == "rafdb"][0]
runs = {r["model"]: r for r in raf["runs"]}
names = {"ours": "ours", "mvt": "mvt", "res": "res<script>x</script>"}
bad = []
def close(what, a, b, tol=1e-12):
    if isinstance(a, list):
        if len(a) != len(b): bad.append("%s: %r vs %r" % (what, a, b)); return
        for i, (x, y) in enumerate(zip(a, b)): close("%s[%d]" % (what, i), x, y, tol)
        return
    if a is None or b is None or isinstance(a, bool):
        if a != b: bad.append("%s: %r vs %r" % (what, a, b))
        return
    if not abs(a - b) <= tol * max(abs(a), abs(b)) + 1e-15: bad.append("%s: %r vs %r" % (what, a, b))
if what == "ferstats":
    for m, name in names.items():
        F, r = json.load(open(T + "/m_%s.json" % m)), runs[name]
        for k in ["accuracy", "balanced_accuracy", "kappa", "mcc"]: close(m + " " + k, r[k], F[k])
        close(m + " correct", r["correct"], F["correct"])
        close(m + " wilson", r["accuracy_ci"], F["accuracy_ci"]["wilson"])
        for k in ["precision", "recall", "f1"]:
            close(m + " macro " + k, r["macro_" + k], F["macro"][k])
            close(m + " weighted " + k, r["weighted_" + k], F["weighted"][k])
            close(m + " per-class " + k, [c[k] for c in r["per_class"]], [c[k] for c in F["per_class"]])
        close(m + " support", [c["support"] for c in r["per_class"]], [c["support"] for c in F["per_class"]])
        close(m + " confusion", sum(r["confusion"], []), sum(F["confusion"], []))
        B = json.load(open(T + "/b_%s.json" % m))
        close(m + " macro-F1 bootstrap interval", r["macro_f1_ci"], B["ci"])
        close(m + " macro-F1 bootstrap sd", r["macro_f1_bootstrap_sd"], B["sd"])
elif what == "compare":
    C = json.load(open(T + "/cmp.json"))
    cmps = {c["model"]: c for c in raf["comparisons"]}
    for row, m in zip(C["rows"], ["mvt", "res"]):
        c = cmps[names[m]]
        for k in ["b", "c", "difference", "p", "p_adjusted", "accuracy"]:
            close(m + " " + k, c["accuracy_model" if k == "accuracy" else k], row[k])
        M = json.load(open(T + "/mc_%s.json" % m))
        close(m + " difference interval", c["difference_ci"], M["difference_ci"])
        close(m + " statistic", c["statistic"], M["statistic"])
        for meth in ["midp", "exact", "chi2", "chi2-cc"]: close(m + " p " + meth, c["p_values"][meth], M["p_values"][meth])
        P = json.load(open(T + "/bp_%s.json" % m))
        close(m + " paired macro-F1 difference", c["macro_f1_difference"], P["estimate"])
        close(m + " paired macro-F1 interval", c["macro_f1_difference_ci"], P["ci"])
        if c["significant"] != (c["p_adjusted"] < 0.05): bad.append(m + ": significant flag")
    q = raf["cochran_q"]
    close("cochran q", q["q"], C["cochran_q"]["q"]); close("cochran p", q["p"], C["cochran_q"]["p"])
    close("cochran df", q["df"], C["cochran_q"]["df"])
elif what == "sklearn":
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, balanced_accuracy_score, cohen_kappa_score
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.multitest import multipletests
    def load(m):
        rows = [l.strip().split(",") for l in open(T + "/csv/%s.csv" % m).readlines()[1:]]
        return [r[1] for r in rows], [r[2] for r in rows]
    y, ours = load("ours")
    labels = "surprise,fear,disgust,happiness,sadness,anger,neutral".split(",")
    raw = []
    for m, name in names.items():
        yy, p = load(m)
        r = runs[name]
        close(m + " sklearn accuracy", r["accuracy"], accuracy_score(yy, p))
        close(m + " sklearn macro-F1", r["macro_f1"], f1_score(yy, p, labels=labels, average="macro", zero_division=0))
        close(m + " sklearn balanced accuracy", r["balanced_accuracy"], balanced_accuracy_score(yy, p))
        close(m + " sklearn kappa", r["kappa"], cohen_kappa_score(yy, p, labels=labels), 1e-10)
        if m == "ours": continue
        a = np.array(ours) == np.array(y); b = np.array(p) == np.array(y)
        table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
        c = [c for c in raf["comparisons"] if c["model"] == name][0]
        close(m + " statsmodels exact McNemar", c["p_values"]["exact"], mcnemar(table, exact=True).pvalue)
        raw.append(c["p"])
    holm = multipletests(raw, method="holm")[1]
    close("statsmodels Holm", [c["p_adjusted"] for c in raf["comparisons"]], list(holm))
elif what == "exact":
    E = json.load(open(T + "/r_exact/report.json"), parse_constant=strict)
    C = json.load(open(T + "/cmp_exact.json"))
    e = [d for d in E["datasets"] if d["name"] == "rafdb"][0]
    if E["conventions"]["mcnemar_method"] != "exact" or E["conventions"]["adjust"] != "bonferroni": bad.append("conventions")
    for c, row in zip(e["comparisons"], C["rows"]):
        close(c["model"] + " exact p", c["p"], row["p"]); close(c["model"] + " bonferroni", c["p_adjusted"], row["p_adjusted"])
elif what == "structure":
    if [d["name"] for d in R["datasets"]] != ["fer", "rafdb"]: bad.append("datasets not in name order")
    if R["models"] != ["ours", "mvt", "res<script>x</script>"]: bad.append("models not reference first, then by name: %r" % R["models"])
    if runs["ours"]["run_id"] != 2: bad.append("ours: run %r, not the latest (2)" % runs["ours"]["run_id"])
    if runs["ours"]["weights_path"] != "/w/best.safetensors" or runs["mvt"]["source_path"] != "/p/mvt.csv": bad.append("provenance")
    if runs["ours"]["started"] != "2024-01-02T03:04:05Z": bad.append("started")
    if len(runs["ours"]["timings"]) != 1 or runs["mvt"]["timings"] != []: bad.append("timings")
    close("peak MiB", runs["ours"]["timings"][0]["peak_mib"], 700.0)
    fer = R["datasets"][0]
    if fer["classes"] != 8 or fer["labels"][-1] != "contempt" or len(fer["runs"]) != 2: bad.append("fer: 8 classes, 2 runs")
    if fer["cochran_q"] is not None or raf["cochran_q"] is None: bad.append("Cochran's Q only with 3 or more models")
    if raf["images"] != 60 or any(r["images"] != 60 for r in raf["runs"]): bad.append("rafdb images")
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF
oracle() { # description what
    if "$PY" "$T/oracle.py" "$T" "$2" >"$T/py" 2>&1; then ok "$1"; else nok "$1" "$(cat "$T/py")"; fi
}
oracle "report.json: datasets, model order, latest run, provenance, timing, 8 classes, Q only with 3+" structure
oracle "report.json agrees with ferstats metrics and bootstrap (1e-12)" ferstats
oracle "report.json agrees with ferstats compare and mcnemar, paired bootstrap, Cochran's Q (1e-12)" compare
if "$PY" -c "import sklearn, statsmodels" 2>/dev/null; then
    oracle "report.json agrees with scikit-learn and statsmodels (accuracy, macro-F1, exact McNemar, Holm)" sklearn
else
    ok "scikit-learn / statsmodels oracle # SKIP not installed"
fi
check "--method exact --adjust bonferroni" "$FB" report --db "$T/d.sqlite" --out "$T/r_exact" --method exact --adjust bonferroni
oracle "--method exact --adjust bonferroni agrees with ferstats compare" exact

# Determinism.
check "rerun at 1 thread into another folder" "$FB" report --db "$T/d.sqlite" --out "$T/r2" --threads 1
if diff -r "$T/r1" "$T/r2" >"$T/diff" 2>&1; then ok "byte-identical files at --threads 2 and 1"
else nok "byte-identical files at --threads 2 and 1" "$(head -20 "$T/diff")"; fi
check "rerun over the same folder" "$FB" report --db "$T/d.sqlite" --out "$T/r2" --threads 2
diff -r "$T/r1" "$T/r2" >/dev/null 2>&1 && ok "byte-identical on a rerun, no temporary files left" ||
    nok "rerun" "$(ls "$T/r2")"
cmp -s "$T/d.sqlite" "$T/pristine.sqlite" && ok "the database is not modified" || nok "database modified"

# The HTML page and the escaping of user strings.
cat >"$T/page.py" <<'EOF'
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.attrs = [], [], []
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag); self.attrs += attrs
    def handle_data(self, d):
        self.text.append(d)
src = open(sys.argv[1], encoding="utf-8").read()
p = P(); p.feed(src); p.close()
bad = []
if p.tags.count("svg") != int(sys.argv[2]): bad.append("%d <svg> elements, want %s" % (p.tags.count("svg"), sys.argv[2]))
for t in ["script", "img", "link", "iframe", "object"]:
    if t in p.tags: bad.append("a <%s> element" % t)
if any(k.startswith("on") for k, v in p.attrs): bad.append("an event handler attribute")
if any(k in ("src",) or (k == "href" and (v or "").startswith(("http", "//", "javascript"))) for k, v in p.attrs):
    bad.append("an external reference")
if "style" not in p.tags: bad.append("no inline CSS")
text = "".join(p.text)
if "res<script>x</script>" not in text: bad.append("the model name is not shown as text")
# Every "script" is in the escaped model name (or the sanitised SVG file name).
esc = src.count("&lt;script&gt;") + src.count("&lt;/script&gt;") + src.count("_script_")
if src.count("script") != esc: bad.append("%d 'script', %d of them escaped" % (src.count("script"), esc))
if src.count("<svg") != int(sys.argv[2]): bad.append("'<svg' occurs %d times" % src.count("<svg"))
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF
if "$PY" "$T/page.py" "$T/r1/index.html" 5 >"$T/py" 2>&1; then
    ok "index.html parses, one inline <svg per model, no script or external asset, the name shown escaped"
else nok "index.html" "$(cat "$T/py")"; fi
all=$(grep -o 'script' "$T/r1/report.md" | wc -l)
escaped=$(grep -o -e '&lt;script&gt;' -e '&lt;/script&gt;' -e '_script_' "$T/r1/report.md" | wc -l)
[ "$all" -gt 0 ] && [ "$all" = "$escaped" ] && ok "report.md escapes the model name ($all times)" ||
    nok "report.md escaping: $escaped of $all escaped" "$(grep -n script "$T/r1/report.md" | head -5)"
grep -q '/p/r\\|s.csv' "$T/r1/report.md" && ok "report.md escapes | in a table cell" || nok "| in report.md"
for f in "$T"/r1/*.svg; do
    "$PY" -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$f" 2>"$T/py" || { nok "SVG $f" "$(cat "$T/py")"; break; }
done && ok "every SVG is well-formed XML"
sed -n '/^## Summary/,/^## Conventions/p' "$T/r1/report.md" | grep -q '^| ours † | [0-9.]* | [0-9.]* |$' &&
    grep -q 'Reference model: ours (marked †)' "$T/r1/report.md" && ok "the summary table marks the reference" ||
    nok "reference mark" "$(sed -n '/^## Summary/,/^## Conventions/p' "$T/r1/report.md")"
for s in '## Summary' '### Metrics' '### Per-class accuracy' '### McNemar against ours' '### Timing' \
    'not measured here' 'seed 42' '2000 resamples' 'holm' 'Cochran' '(confusion-rafdb-ours.svg)' \
    'weights /w/best.safetensors (sha256 '"$H1"')' 'imported from /p/mvt.csv (sha256 '"$H2"')' '700.0'; do
    grep -q -F -- "$s" "$T/r1/report.md" || { nok "report.md holds '$s'"; s=missing; break; }
done
[ "$s" != missing ] && ok "report.md: sections, conventions, provenance, timing, SVG links"
grep -q -i -e 'nan' -e 'inf' "$T/r1/report.json" && nok "report.json prints nan or inf" || ok "no nan or inf in report.json"

# Options that select and order.
check "--models mvt,ours --reference mvt --dataset rafdb" "$FB" report --db "$T/d.sqlite" --out "$T/r3" \
    --models mvt,ours --reference mvt --dataset rafdb
"$PY" -c '
import json, sys
R = json.load(open(sys.argv[1]))
d = R["datasets"]
assert [x["name"] for x in d] == ["rafdb"], d
assert R["models"] == ["mvt", "ours"] and R["reference"] == "mvt", R["models"]
assert [r["model"] for r in d[0]["runs"]] == ["mvt", "ours"]
c = d[0]["comparisons"]
assert len(c) == 1 and c[0]["model"] == "ours" and c[0]["difference"] < 0, c
' "$T/r3/report.json" >"$T/py" 2>&1 && ok "--models selects and orders, --reference compares against it" || nok "--models" "$(cat "$T/py")"

# Identical predictions: no discordant pairs, p = 1, a note; no undefined numbers.
cp "$T/pristine.sqlite" "$T/twin.sqlite"
sqlite3 "$T/twin.sqlite" "INSERT INTO model_runs(id, dataset_id, model, split) VALUES (9, $RAF, 'twin', 'test');
    INSERT INTO predictions(model_run_id, image_id, pred) SELECT 9, image_id, pred FROM predictions WHERE model_run_id = 2;"
check "a model identical to the reference" "$FB" report --db "$T/twin.sqlite" --out "$T/r4" --models ours,twin
"$PY" -c '
import json, sys
def strict(x): raise ValueError(x)
R = json.load(open(sys.argv[1]), parse_constant=strict)
c = R["datasets"][1]["comparisons"][0]
assert c["n"] == 0 and c["p"] == 1 and c["p_adjusted"] == 1 and c["notes"] == ["no discordant pairs"], c
assert not c["significant"] and c["difference"] == 0
t = R["datasets"][1]["runs"][1]
assert t["started"] is None and t["tool_run_id"] is None and t["weights_path"] is None and t["source_path"] is None
' "$T/r4/report.json" >"$T/py" 2>&1 && grep -q 'no discordant pairs' "$T/r4/report.md" &&
    ok "no discordant pairs: p = 1 and a note; unrecorded provenance is null" || nok "twin" "$(cat "$T/py")"

# A dataset without a run of the reference: its models are reported, not compared.
cp "$T/pristine.sqlite" "$T/noref.sqlite"
sqlite3 "$T/noref.sqlite" "PRAGMA foreign_keys = ON; DELETE FROM model_runs WHERE id = 6"
check "the reference has no run on one dataset" "$FB" report --db "$T/noref.sqlite" --out "$T/r6"
"$PY" -c '
import json, sys
R = json.load(open(sys.argv[1]))
fer, raf = R["datasets"]
assert fer["name"] == "fer" and fer["reference"] is None and fer["comparisons"] == [] and fer["notes"], fer["notes"]
assert [r["model"] for r in fer["runs"]] == ["mvt"] and len(raf["comparisons"]) == 2
' "$T/r6/report.json" >"$T/py" 2>&1 && grep -q '^| ours † | — | [0-9.]* |$' "$T/r6/report.md" &&
    grep -q 'The reference model ours has no run on this dataset' "$T/r6/report.md" &&
    ok "... no comparisons there, a dash in the summary, a note" || nok "no reference run" "$(cat "$T/py")"

# File names that would differ only in case both get a hash of the names.
cp "$T/pristine.sqlite" "$T/case.sqlite"
sqlite3 "$T/case.sqlite" "INSERT INTO model_runs(id, dataset_id, model, split) VALUES (10, $RAF, 'MVT', 'test');
    INSERT INTO predictions(model_run_id, image_id, pred) SELECT 10, image_id, pred FROM predictions WHERE model_run_id = 3;"
check "models mvt and MVT" "$FB" report --db "$T/case.sqlite" --out "$T/r7" --models mvt,MVT --dataset rafdb
svgs=$(ls "$T/r7" | grep '\.svg$' | tr '\n' ' ')
echo "$svgs" | grep -q '^confusion-rafdb-MVT-[0-9a-f]\{8\}\.svg confusion-rafdb-mvt-[0-9a-f]\{8\}\.svg $' &&
    ok "... two SVGs, each name with its own hash" || nok "case clash" "$svgs"

# ---- bad input: exit 2, one line naming it ---------------------------------------
bad "missing database" "$T/none.sqlite" "$FB" report --db "$T/none.sqlite" --out "$T/x1"
[ ! -e "$T/none.sqlite" ] && [ ! -e "$T/x1" ] && ok "no database and no output folder created" || nok "files created"
: >"$T/empty.sqlite"
bad "an empty file is not a database" "$T/empty.sqlite" "$FB" report --db "$T/empty.sqlite" --out "$T/x1"
[ ! -s "$T/empty.sqlite" ] && ok "the empty file is left empty" || nok "empty file written"
bad "unknown --models name" "nosuch" "$FB" report --db "$T/d.sqlite" --out "$T/x1" --models ours,nosuch
bad "a model named twice in --models" "'ours'" "$FB" report --db "$T/d.sqlite" --out "$T/x1" --models ours,mvt,ours
bad "--reference not among the models" "--reference mvt" "$FB" report --db "$T/d.sqlite" --out "$T/x1" \
    --models ours,'res<script>x</script>' --reference mvt
bad "no runs on the split" "train split" "$FB" report --db "$T/d.sqlite" --out "$T/x1" --split train
bad "unknown --dataset" "nosuch" "$FB" report --db "$T/d.sqlite" --out "$T/x1" --dataset nosuch
bad "bad --method" "--method" "$FB" report --db "$T/d.sqlite" --out "$T/x1" --method fisher
bad "bad --adjust" "--adjust" "$FB" report --db "$T/d.sqlite" --out "$T/x1" --adjust sidak
bad "bad --alpha" "--alpha" "$FB" report --db "$T/d.sqlite" --out "$T/x1" --alpha 2
bad "bad --split" "--split" "$FB" report --db "$T/d.sqlite" --out "$T/x1" --split dev
bad "no --out" "--out" "$FB" report --db "$T/d.sqlite"
: >"$T/afile"
bad "unwritable --out (under a file)" "$T/afile/sub" "$FB" report --db "$T/d.sqlite" --out "$T/afile/sub"
cp "$T/pristine.sqlite" "$T/miss.sqlite"
sqlite3 "$T/miss.sqlite" "DELETE FROM predictions WHERE id = (SELECT min(id) FROM predictions WHERE model_run_id = 3)"
bad "a run with a missing prediction" "model mvt (run 3)" "$FB" report --db "$T/miss.sqlite" --out "$T/x1"
grep -q '1 missing' "$T/err" && ok "... the message counts it" || nok "missing count" "$(cat "$T/err")"
cp "$T/pristine.sqlite" "$T/extra.sqlite"
sqlite3 "$T/extra.sqlite" "INSERT INTO predictions(model_run_id, image_id, pred) SELECT 3, id, 0 FROM images
    WHERE dataset_id = $RAF AND benchmark_split = 'train' LIMIT 2"
bad "a run with predictions for images outside the split" "2 extra" "$FB" report --db "$T/extra.sqlite" --out "$T/x1"
cp "$T/pristine.sqlite" "$T/range.sqlite"
sqlite3 "$T/range.sqlite" "UPDATE predictions SET pred = 7 WHERE id = (SELECT min(id) FROM predictions WHERE model_run_id = 4)"
bad "a prediction outside the dataset's 7 classes" "predicts class 7" "$FB" report --db "$T/range.sqlite" --out "$T/x1"
[ ! -e "$T/x1" ] && ok "bad input leaves no output folder" || nok "output folder created on bad input"
# An old run with a hole does not matter: only the latest run of each model is read.
cp "$T/pristine.sqlite" "$T/old.sqlite"
sqlite3 "$T/old.sqlite" "DELETE FROM predictions WHERE model_run_id = 1"
check "an incomplete older run of a model is ignored" "$FB" report --db "$T/old.sqlite" --out "$T/r5"

echo "1..$n"
[ "$failed" = 0 ] || echo "# $failed of $n failed"
[ "$failed" = 0 ]
