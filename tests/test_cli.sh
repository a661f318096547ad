#!/bin/sh
# tests/test_cli.sh: end-to-end tests of the command-line tools (TAP).
#
# Part 1 feeds ferstats malformed predictions files and checks the contract of
# ARCHITECTURE.md (Conventions): exit 2, exactly one line on stderr that names
# the file and, for errors inside the file, "FILE:LINE:" with the right line.
# Part 2 checks CLI behaviour: --help/--version, usage errors, the regression
# gate (STATS.md), bootstrap determinism, the SVG heatmap and the input
# variants every reader must accept.
#
#   FERBENCH_BIN  directory holding ferstats, masksynth, ferbench (default bin)
#
# Run from the repository root: sh tests/test_cli.sh, or prove tests/test_cli.sh.
# Under an ASan/UBSan build (FERBENCH_BIN=build/asan/bin) a sanitizer report or
# a crash fails the case: every case also checks the exit status and that
# stderr holds no "AddressSanitizer", "LeakSanitizer" or "runtime error".

BIN=${FERBENCH_BIN:-bin}
FS=$BIN/ferstats
PY=/usr/bin/python3

for tool in ferstats masksynth ferbench; do
    if [ ! -x "$BIN/$tool" ]; then
        echo "Bail out! $BIN/$tool is not built (run make all)"
        exit 1
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferbench-cli.XXXXXX") || { echo "Bail out! mktemp -d failed"; exit 1; }
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' HUP INT TERM
D=$TMP/in          # input files
mkdir "$D"
TAP=$TMP/tap.out   # results are collected here so that the plan can come first
: >"$TAP"

n=0
failed=0
why=""

# ---- TAP helpers ------------------------------------------------------------

emit() { printf '%s\n' "$1" >>"$TAP"; }
diag() { printf '%s\n' "$1" | LC_ALL=C tr -c '\n[:print:]' '?' | sed 's/^/#   /' >>"$TAP"; }

# Adds a reason for the current case to fail.
reason() { why="$why${why:+
}$1"; }

# Ends the current case: ok when no reason was recorded.
finish() {
    n=$((n + 1))
    if [ -z "$why" ]; then
        emit "ok $n - $1"
    else
        failed=$((failed + 1))
        emit "not ok $n - $1"
        diag "$why"
        show_output
    fi
    why=""
}

skip() {
    n=$((n + 1))
    emit "ok $n - $1 # SKIP $2"
    why=""
}

show_output() {
    if [ -s "$TMP/stderr" ]; then
        diag "stderr:"
        tail -n 8 "$TMP/stderr" | head -c 1500 | while IFS= read -r l; do diag "  $l"; done
    fi
    if [ -s "$TMP/stdout" ]; then
        diag "stdout:"
        head -c 1500 "$TMP/stdout" | head -n 8 | while IFS= read -r l; do diag "  $l"; done
    fi
}

# ---- running the tools ------------------------------------------------------

# Runs a command; rc, $TMP/stdout and $TMP/stderr hold the outcome. Every run
# is checked for sanitizer reports and deaths by signal.
run() {
    "$@" >"$TMP/stdout" 2>"$TMP/stderr"
    rc=$?
    if LC_ALL=C grep -a -q -e AddressSanitizer -e LeakSanitizer -e 'runtime error' "$TMP/stderr"; then
        reason "sanitizer report on stderr"
    fi
    if [ "$rc" -ge 128 ]; then reason "died of signal $((rc - 128)) (exit $rc)"; fi
}

has() { LC_ALL=C grep -a -q -F -e "$2" "$1"; }
has_i() { LC_ALL=C grep -a -q -i -F -e "$2" "$1"; }

expect_rc() { [ "$rc" -eq "$1" ] || reason "exit status $rc, expected $1"; }

stderr_one_line() {
    nl=$(wc -l <"$TMP/stderr" | tr -d ' ')
    nr=$(LC_ALL=C awk 'END { print NR }' "$TMP/stderr")
    if [ "$nl" != 1 ] || [ "$nr" != 1 ]; then
        reason "stderr has $nr line(s) ($nl newline(s)), expected exactly one line"
    elif ! LC_ALL=C grep -a -q '[^[:space:]]' "$TMP/stderr"; then
        reason "stderr line is blank"
    fi
}

stdout_empty() { [ ! -s "$TMP/stdout" ] || reason "stdout is not empty"; }
stderr_empty() { [ ! -s "$TMP/stderr" ] || reason "stderr is not empty"; }

# expect_bad PATH LINE KEY...: exit 2, nothing on stdout, one line on stderr
# naming PATH ("PATH:LINE:" when LINE is given) and containing every KEY
# (case-insensitive fixed strings).
expect_bad() {
    _path=$1 _line=$2
    shift 2
    expect_rc 2
    stdout_empty
    stderr_one_line
    has "$TMP/stderr" "$_path" || reason "message does not name the file $_path"
    if [ -n "$_line" ]; then
        has "$TMP/stderr" "$_path:$_line:" || reason "message does not say $_path:$_line:"
    fi
    for _k in "$@"; do has_i "$TMP/stderr" "$_k" || reason "message does not mention '$_k'"; done
}

# expect_usage KEY...: exit 2, nothing on stdout, one line on stderr with every KEY.
expect_usage() {
    expect_rc 2
    stdout_empty
    stderr_one_line
    for _k in "$@"; do has_i "$TMP/stderr" "$_k" || reason "message does not mention '$_k'"; done
}

# mal DESC FILE LINE KEY [ferstats metrics options...]: one malformed-input case.
mal() {
    _d=$1 _f=$2 _l=$3 _k=$4
    shift 4
    run "$FS" metrics "$@" "$_f"
    expect_bad "$_f" "$_l" ${_k:+"$_k"}
    if [ -n "$_l" ]; then _w="line $_l"; else _w="names the path"; fi
    finish "malformed: $_d -> exit 2, one line, $_w"
}

# ---- inputs -----------------------------------------------------------------

HDR='# ferbench-predictions v1 dataset=fixture split=test model=m labels=a,b,c'
COLS='image,label,pred'
PCOLS='image,label,pred,prob_a,prob_b,prob_c'
PL="--labels a,b,c"

# mk NAME FORMAT [ARGS...]: printf into $D/NAME (octal escapes only: dash).
mk() { _f=$D/$1; shift; printf "$@" >"$_f"; }

# Deterministic "random" bytes: the ZX81 LCG, printed as octal escapes.
junk() { awk -v n="$1" 'BEGIN { x = 12345; for (i = 0; i < n; i++) { x = (x * 75 + 74) % 65537; printf "\\%03o", x % 256 } }'; }

# Predictions files for Part 2, rows "imgI,TRUE,PRED".
# gen NAME N NWRONG [FIRST]: N images of label a; images FIRST..FIRST+NWRONG-1 predicted b.
gen() {
    awk -v n="$2" -v w="$3" -v f="${4:-1}" -v h="$HDR" 'BEGIN {
        print h; print "image,label,pred"
        for (i = 1; i <= n; i++) print "img" i ",a," ((i >= f && i < f + w) ? "b" : "a") }' >"$D/$1"
}

# =============================================================================
# Part 1: malformed inputs
# =============================================================================

mk empty.csv ''
mal "empty file" "$D/empty.csv" 1 empty

mk bom_only.csv '\357\273\277'
mal "only a UTF-8 BOM" "$D/bom_only.csv" 1 empty

mk plain_empty.csv ''
mal "empty plain file with --labels" "$D/plain_empty.csv" 1 empty $PL

mk header_only.csv '%s\n' "$HDR"
mal "header comment only" "$D/header_only.csv" 2 "column header"

mk header_only_nonl.csv '%s' "$HDR"
mal "header comment only, no newline" "$D/header_only_nonl.csv" 2 "column header"

mk no_rows.csv '%s\n%s\n' "$HDR" "$COLS"
mal "header comment and column header, no rows" "$D/no_rows.csv" 3 rows

mk ragged_many.csv '%s\n%s\ni1,a,a\ni2,b,b,c\n' "$HDR" "$COLS"
mal "ragged row, too many fields" "$D/ragged_many.csv" 4 fields

mk ragged_few.csv '%s\n%s\ni1,a,a\ni2,b\ni3,c,c\n' "$HDR" "$COLS"
mal "ragged row, too few fields" "$D/ragged_few.csv" 4 fields

mk ragged_plain.csv 'image,label,pred\ni1,a,a\ni2,b,b\ni3\n'
mal "ragged row in a plain file" "$D/ragged_plain.csv" 4 fields $PL

mk unterminated.csv '%s\n%s\ni1,a,a\ni2,"b,b\ni3,a,a\ni4,c,c\n' "$HDR" "$COLS"
mal "unterminated quote (reported on the line of the opening quote)" "$D/unterminated.csv" 4 unterminated

mk unterminated_hdr.csv '%s\nimage,"label,pred\ni1,a,a\n' "$HDR"
mal "unterminated quote in the column header" "$D/unterminated_hdr.csv" 2 unterminated

mk quote_inside.csv '%s\n%s\ni1,a,a\ni"2,b,b\n' "$HDR" "$COLS"
mal "quote inside an unquoted field" "$D/quote_inside.csv" 4 quote

mk quote_garbage.csv '%s\n%s\ni1,a,a\n"i2"x,b,b\n' "$HDR" "$COLS"
mal "garbage after a closing quote" "$D/quote_garbage.csv" 4 quote

mk bare_cr.csv '%s\n%s\ni1,a,a\ni2,b\rb\ni3,c,c\n' "$HDR" "$COLS"
mal "bare CR inside a row" "$D/bare_cr.csv" 4 "carriage return"

mk bare_cr_eol.csv '%s\n%s\ni1,a,a\ri2,b,b\r\n' "$HDR" "$COLS"
mal "bare CR as a line end" "$D/bare_cr_eol.csv" 3 "carriage return"

mk blank_mid.csv '%s\n%s\ni1,a,a\n\ni2,b,b\n' "$HDR" "$COLS"
mal "blank line in the middle" "$D/blank_mid.csv" 4 "empty line"

mk blank_mid_crlf.csv '%s\r\n%s\r\ni1,a,a\r\ni2,b,b\r\n\r\ni3,c,c\r\n' "$HDR" "$COLS"
mal "blank CRLF line in the middle" "$D/blank_mid_crlf.csv" 5 "empty line"

mk nul.csv '%s\n%s\ni1,a,a\ni\0002,b,b\n' "$HDR" "$COLS"
mal "NUL byte in a row" "$D/nul.csv" 4 NUL

mk nul_header.csv '# ferbench-predictions v1 \000labels=a,b,c\n%s\ni1,a,a\n' "$COLS"
mal "NUL byte in the header line" "$D/nul_header.csv" 1 NUL

mk png.csv '\211PNG\r\n\032\n\000\000\000\rIHDR\000\000\000\020\000\000\000\020\010\006\000\000\000'
mal "binary junk: PNG magic bytes" "$D/png.csv" 1 "UTF-8"

mk utf16.csv '\377\376i\000m\000a\000g\000e\000,\000l\000\n\000'
mal "binary junk: UTF-16LE text" "$D/utf16.csv" 1 ""

printf "\\377$(junk 600)" >"$D/junk.csv"
mal "binary junk: 600 pseudo-random bytes" "$D/junk.csv" 1 "" $PL

mk bad_utf8_image.csv '%s\n%s\ni1,a,a\ni2,b,b\nimg\303(.png,c,c\n' "$HDR" "$COLS"
mal "invalid UTF-8 in an image name" "$D/bad_utf8_image.csv" 5 "UTF-8"

mk bad_utf8_surrogate.csv '%s\n%s\ni1,a,a\ni\355\240\200,b,b\n' "$HDR" "$COLS"
mal "UTF-8-encoded surrogate in an image name" "$D/bad_utf8_surrogate.csv" 4 "UTF-8"

mk bad_utf8_header.csv '# ferbench-predictions v1 model=\300\257 labels=a,b,c\n%s\ni1,a,a\n' "$COLS"
mal "invalid UTF-8 in the header line" "$D/bad_utf8_header.csv" 1 "UTF-8"

mk unknown_label.csv '%s\n%s\ni1,a,a\ni2,happy,b\n' "$HDR" "$COLS"
mal "unknown label in the label column" "$D/unknown_label.csv" 4 happy

mk unknown_pred.csv '%s\n%s\ni1,a,a\ni2,b,b\ni3,c,sad\n' "$HDR" "$COLS"
mal "unknown label in the pred column" "$D/unknown_pred.csv" 5 sad

mk unknown_label_plain.csv 'image,label,pred\ni1,a,a\ni2,d,a\n'
mal "unknown label in a plain file" "$D/unknown_label_plain.csv" 3 "'d'" $PL

mk dup_image.csv '%s\n%s\ni1,a,a\ni2,b,b\ni3,c,c\ni2,a,b\n' "$HDR" "$COLS"
mal "duplicate image names both lines" "$D/dup_image.csv" 6 "first on line 4"

mk dup_image_quoted.csv '%s\n%s\n"i1",a,a\ni2,b,b\ni1,a,a\n' "$HDR" "$COLS"
mal "duplicate image, once quoted" "$D/dup_image_quoted.csv" 5 "first on line 3"

mk empty_image.csv '%s\n%s\ni1,a,a\n,b,b\n' "$HDR" "$COLS"
mal "empty image name" "$D/empty_image.csv" 4 "empty image"

mk empty_image_quoted.csv '%s\n%s\ni1,a,a\n"",b,b\n' "$HDR" "$COLS"
mal "empty quoted image name" "$D/empty_image_quoted.csv" 4 "empty image"

# Probabilities: line 3 is valid, line 4 carries the defect.
mkp() { _n=$1; shift; mk "$_n" '%s\n%s\ni1,a,a,0.8,0.1,0.1\n%s\ni3,c,c,0,0,1\n' "$HDR" "$PCOLS" "$1"; }
mkp prob_nan.csv 'i2,b,b,0.5,NaN,0.5'
mal "NaN probability" "$D/prob_nan.csv" 4 prob_b
mkp prob_nan_lower.csv 'i2,b,b,nan,0.5,0.5'
mal "nan probability (lower case)" "$D/prob_nan_lower.csv" 4 prob_a
mkp prob_inf.csv 'i2,b,b,0,inf,0'
mal "inf probability" "$D/prob_inf.csv" 4 prob_b
mkp prob_ninf.csv 'i2,b,b,-Infinity,1,0'
mal "-Infinity probability" "$D/prob_ninf.csv" 4 prob_a
mkp prob_overflow.csv 'i2,b,b,0,1e400,0'
mal "probability that overflows to inf (1e400)" "$D/prob_overflow.csv" 4 prob_b
mkp prob_negative.csv 'i2,b,b,-0.1,0.6,0.5'
mal "negative probability" "$D/prob_negative.csv" 4 prob_a
mkp prob_above1.csv 'i2,b,b,0,1.5,-0.5'
mal "probability > 1" "$D/prob_above1.csv" 4 prob_b
mkp prob_sum.csv 'i2,b,b,0.2,0.2,0.2'
mal "probabilities not summing to 1" "$D/prob_sum.csv" 4 sum
mkp prob_sum_near.csv 'i2,b,b,0.3,0.3,0.402'
mal "probabilities summing to 1.002 (beyond 1e-3)" "$D/prob_sum_near.csv" 4 sum
mkp prob_text.csv 'i2,b,b,high,0.5,0.5'
mal "non-numeric probability" "$D/prob_text.csv" 4 prob_a
mkp prob_hex.csv 'i2,b,b,0x1p-1,0.5,0'
mal "hex float probability 0x1p-1" "$D/prob_hex.csv" 4 prob_a
mkp prob_empty.csv 'i2,b,b,0.5,,0.5'
mal "empty probability" "$D/prob_empty.csv" 4 prob_b
mkp prob_space.csv 'i2,b,b, 0.5,0.5,0'
mal "probability with a leading space" "$D/prob_space.csv" 4 prob_a

mk some_probs.csv '%s\nimage,label,pred,prob_a,prob_b\ni1,a,a,0.5,0.5\n' "$HDR"
mal "only some prob_ columns" "$D/some_probs.csv" 2 prob
mk prob_unknown.csv '%s\n%s,prob_d\ni1,a,a,0.7,0.1,0.1,0.1\n' "$HDR" "$PCOLS"
mal "prob_ column for an unknown label" "$D/prob_unknown.csv" 2 prob_d
mk extra_col.csv '%s\nimage,label,pred,score\ni1,a,a,0.9\n' "$HDR"
mal "unknown extra column" "$D/extra_col.csv" 2 score
mk dup_col.csv '%s\nimage,label,pred,label\ni1,a,a,a\n' "$HDR"
mal "duplicate column" "$D/dup_col.csv" 2 twice
mk dup_prob_col.csv '%s\n%s,prob_a\ni1,a,a,0.8,0.1,0.1,0.8\n' "$HDR" "$PCOLS"
mal "duplicate prob_ column" "$D/dup_prob_col.csv" 2 prob_a
mk no_pred.csv '%s\nimage,label\ni1,a\n' "$HDR"
mal "missing pred column" "$D/no_pred.csv" 2 pred
mk no_image.csv 'label,pred\na,a\n'
mal "missing image column (plain file)" "$D/no_image.csv" 1 image $PL

mk v2.csv '# ferbench-predictions v2 labels=a,b,c\n%s\ni1,a,a\n' "$COLS"
mal "unsupported format version v2" "$D/v2.csv" 1 v2
mk no_version.csv '# ferbench-predictions labels=a,b,c\n%s\ni1,a,a\n' "$COLS"
mal "header without a version" "$D/no_version.csv" 1 version
mk no_labels.csv '# ferbench-predictions v1 dataset=d split=test model=m\n%s\ni1,a,a\n' "$COLS"
mal "header without labels=" "$D/no_labels.csv" 1 labels
mk dup_label.csv '# ferbench-predictions v1 labels=a,b,a\n%s\ni1,a,a\n' "$COLS"
mal "duplicate label in labels=" "$D/dup_label.csv" 1 twice
mk one_label.csv '# ferbench-predictions v1 labels=a\n%s\ni1,a,a\n' "$COLS"
mal "a single label in labels=" "$D/one_label.csv" 1 label
mk empty_label.csv '# ferbench-predictions v1 labels=a,,b\n%s\ni1,a,a\n' "$COLS"
mal "empty label name in labels=" "$D/empty_label.csv" 1 label
mk labels_twice.csv '# ferbench-predictions v1 labels=a,b labels=a,b\n%s\ni1,a,a\n' "$COLS"
mal "labels= given twice" "$D/labels_twice.csv" 1 twice
awk 'BEGIN { printf "# ferbench-predictions v1 labels="; for (i = 1; i <= 257; i++) printf "%sl%d", (i > 1 ? "," : ""), i;
             printf "\nimage,label,pred\ni1,l1,l1\n" }' >"$D/too_many_labels.csv"
mal "257 labels" "$D/too_many_labels.csv" 1 labels

mk label_map.csv '%s\n%s\ni1,a,a\ni2,b,c\n' "$HDR" "$COLS"
mal "file label map differs from --labels (order)" "$D/label_map.csv" 1 "--labels" --labels a,c,b
mal "file label map differs from --labels (set)" "$D/label_map.csv" 1 "--labels" --labels a,b,c,d

mk plain.csv 'image,label,pred\ni1,a,a\ni2,b,c\ni3,c,c\n'
mal "plain file without --labels" "$D/plain.csv" 1 labels
mk plain_comment.csv '# exported by some script\nimage,label,pred\ni1,a,a\n'
mal "plain file with a foreign comment, without --labels" "$D/plain_comment.csv" 1 labels

awk 'BEGIN { s = "x"; while (length(s) < 100000) s = s s; s = substr(s, 1, 100000);
             print "image,label,pred"; print "i1,a,a"; print "big_" s ".png,b,b" }' >"$D/huge_field.csv"
mal "100 kB image name (over the 4096-byte field limit)" "$D/huge_field.csv" 3 4096 $PL
awk 'BEGIN { s = "y"; while (length(s) < 100000) s = s s; s = substr(s, 1, 100000);
             print "image,label,pred"; print "i1,a,a"; print "\"big_" s ".png\",b,b" }' >"$D/huge_quoted.csv"
mal "100 kB quoted image name" "$D/huge_quoted.csv" 3 4096 $PL

mk multiline_then_ragged.csv '%s\n%s\ni1,a,a\n"i2\nsecond\nthird",b,b\ni3,c\n' "$HDR" "$COLS"
mal "ragged row after a 3-line quoted record" "$D/multiline_then_ragged.csv" 7 fields

mk bom_header_error.csv '\357\273\277%s\n%s\ni1,a,a\ni2,b,zz\n' "$HDR" "$COLS"
mal "BOM, header, then an unknown label" "$D/bom_header_error.csv" 4 zz

mk crlf_error.csv '%s\r\n%s\r\ni1,a,a\r\ni2,b,b,b\r\n' "$HDR" "$COLS"
mal "CRLF file with a ragged row" "$D/crlf_error.csv" 4 fields

mal "missing file" "$D/no_such_file.csv" "" "no such file"
mkdir "$D/a_directory.csv"
mal "a directory given as the file" "$D/a_directory.csv" "" directory

# Other commands read files the same way.
run "$FS" confusion "$D/dup_image.csv"
expect_bad "$D/dup_image.csv" 6 "first on line 4"
finish "malformed: confusion on a duplicate image -> exit 2, line 6"
gen good.csv 8 2
run "$FS" check --min-accuracy 0.5 "$D/ragged_many.csv"
expect_bad "$D/ragged_many.csv" 4 fields
finish "malformed: check on a ragged file -> exit 2, line 4"
run "$FS" bootstrap --resamples 20 "$D/good.csv" "$D/prob_nan.csv"
expect_bad "$D/prob_nan.csv" 4 prob_b
finish "malformed: second file of bootstrap -> exit 2, names that file and line"

# ---- two-file commands: files that do not match ------------------------------

gen A.csv 8 2                          # img1..img8, all label a
gen B_missing.csv 3 0                  # img1..img3: img4..img8 missing
gen B_extra.csv 10 1                   # img9, img10 extra
awk -v h="$HDR" 'BEGIN { print h; print "image,label,pred"
    for (i = 1; i <= 8; i++) print "img" i "," (i == 5 ? "b" : i == 7 ? "c" : "a") ",a" }' >"$D/B_truth.csv"
awk 'BEGIN { print "# ferbench-predictions v1 labels=a,b,d"; print "image,label,pred"
    for (i = 1; i <= 8; i++) print "img" i ",a,a" }' >"$D/B_labels.csv"
mk B_ragged.csv '%s\n%s\nimg1,a,a\nimg2,a\n' "$HDR" "$COLS"

A=$D/A.csv
for cmd in mcnemar compare check; do
    case $cmd in
        mcnemar) set -- "$FS" mcnemar "$A" ;;
        compare) set -- "$FS" compare "$A" "$A" ;;
        check) set -- "$FS" check --max-drop 0.01 "$A" --baseline ;;
    esac
    run "$@" "$D/B_missing.csv"
    expect_bad "$A" "" "$D/B_missing.csv" "5 missing" img4 img5 img6
    finish "$cmd: second file lacks 5 images -> exit 2, one line with the count and the first names"
    run "$@" "$D/B_extra.csv"
    expect_bad "$A" "" "$D/B_extra.csv" "2 extra" img9 img10
    finish "$cmd: second file has 2 extra images -> exit 2, count and names"
    run "$@" "$D/B_truth.csv"
    expect_bad "$A" "" "$D/B_truth.csv" "2 with different" img5 img7
    finish "$cmd: second file has another ground truth for 2 images -> exit 2, count and names"
    run "$@" "$D/B_labels.csv"
    expect_bad "$A" "" "$D/B_labels.csv" "label"
    finish "$cmd: different label sets -> exit 2, one line naming both files"
    run "$@" "$D/B_ragged.csv"
    expect_bad "$D/B_ragged.csv" 4 fields
    finish "$cmd: malformed second file -> exit 2, its path and line"
done
gen A7.csv 7 1
run "$FS" compare "$A" "$A" "$D/A7.csv"
expect_bad "$A" "" "$D/A7.csv" "1 missing" img8
finish "compare: third file lacks an image -> exit 2, names the third file"

# =============================================================================
# Part 2: CLI behaviour
# =============================================================================

for tool in ferstats masksynth ferbench; do
    run "$BIN/$tool" --help
    expect_rc 0
    has_i "$TMP/stdout" usage || reason "--help prints no usage on stdout"
    finish "$tool --help exits 0 with a usage text"
    run "$BIN/$tool" --version
    expect_rc 0
    LC_ALL=C grep -q "^$tool [0-9][0-9]*\.[0-9]" "$TMP/stdout" || reason "--version does not print '$tool X.Y'"
    finish "$tool --version exits 0 and prints the version"
done
for cmd in metrics confusion mcnemar compare bootstrap check; do
    run "$FS" "$cmd" --help
    expect_rc 0
    has "$TMP/stdout" "ferstats $cmd" || reason "help does not show 'ferstats $cmd'"
    finish "ferstats $cmd --help exits 0"
done

run "$FS"
expect_rc 2
stdout_empty
finish "ferstats without a command exits 2"

for tool in ferstats masksynth ferbench; do
    run "$BIN/$tool" frobnicate
    expect_usage frobnicate
    finish "$tool: unknown command -> exit 2, one line"
done

G=$D/good.csv
run "$FS" metrics --frobnicate "$G";           expect_usage --frobnicate; finish "unknown option -> exit 2, one line"
run "$FS" metrics -q "$G";                     expect_usage -q;          finish "unknown short option -> exit 2, one line"
run "$FS" check --min-accuracy 0.5 --json "$G"; expect_usage --json;     finish "option of another command (check --json) -> exit 2"
run "$FS" metrics "$G" --alpha;                expect_usage --alpha;     finish "missing option value -> exit 2, one line"
run "$FS" metrics --json=yes "$G";             expect_usage --json;      finish "value for a flag -> exit 2, one line"
run "$FS" metrics --alpha 0.1 --alpha 0.2 "$G"; expect_usage --alpha;    finish "option given twice -> exit 2, one line"
run "$FS" metrics;                             expect_usage metrics;        finish "metrics without a file -> exit 2, one line"
run "$FS" metrics "$G" "$G";                   expect_usage metrics;        finish "metrics with two files -> exit 2, one line"
run "$FS" mcnemar "$G";                        expect_usage mcnemar;        finish "mcnemar with one file -> exit 2, one line"
run "$FS" mcnemar "$G" "$G" "$G";              expect_usage mcnemar;        finish "mcnemar with three files -> exit 2, one line"
run "$FS" compare "$G";                        expect_usage compare;        finish "compare with one file -> exit 2, one line"
run "$FS" bootstrap "$G" "$G" "$G";            expect_usage bootstrap;      finish "bootstrap with three files -> exit 2, one line"
run "$FS" check --min-accuracy 0.5;            expect_usage check;          finish "check without a file -> exit 2, one line"
run "$FS" metrics --alpha abc "$G";            expect_usage --alpha abc; finish "--alpha abc -> exit 2, one line"
run "$FS" metrics --alpha 0 "$G";              expect_usage --alpha;     finish "--alpha 0 -> exit 2, one line"
run "$FS" metrics --alpha 1.5 "$G";            expect_usage --alpha;     finish "--alpha 1.5 -> exit 2, one line"
run "$FS" metrics --alpha nan "$G";            expect_usage --alpha;     finish "--alpha nan -> exit 2, one line"
run "$FS" bootstrap --resamples -5 "$G";       expect_usage --resamples; finish "--resamples -5 -> exit 2, one line"
run "$FS" bootstrap --resamples 1e3 "$G";      expect_usage --resamples; finish "--resamples 1e3 -> exit 2, one line"
run "$FS" bootstrap --threads 0 "$G";          expect_usage --threads;   finish "--threads 0 -> exit 2, one line"
run "$FS" bootstrap --seed x "$G";             expect_usage --seed;      finish "--seed x -> exit 2, one line"
run "$FS" check --min-accuracy 2 "$G";         expect_usage --min-accuracy; finish "--min-accuracy 2 -> exit 2, one line"
run "$FS" check --min-accuracy -0.1 "$G";      expect_usage --min-accuracy; finish "--min-accuracy -0.1 -> exit 2, one line"
run "$FS" check --baseline "$G" --max-drop x "$G"; expect_usage --max-drop; finish "--max-drop x -> exit 2, one line"
run "$FS" metrics --zero-division 2 "$G";      expect_usage --zero-division; finish "--zero-division 2 -> exit 2, one line"
run "$FS" mcnemar --method fisher "$G" "$G";   expect_usage --method;    finish "--method fisher -> exit 2, one line"
run "$FS" confusion --normalize rows "$G";     expect_usage --normalize; finish "--normalize rows -> exit 2, one line"
run "$FS" check --min-accuracy 0.5 --bound upper "$G"; expect_usage --bound; finish "--bound upper -> exit 2, one line"
run "$FS" metrics --json --csv "$G";           expect_usage --json --csv; finish "--json --csv together -> exit 2, one line"
run "$FS" metrics --labels a "$D/plain.csv";   expect_usage --labels;    finish "--labels with one label -> exit 2, one line"
run "$FS" metrics --labels a,b,a "$D/plain.csv"; expect_usage --labels;  finish "--labels with a repeated label -> exit 2, one line"
run "$FS" check "$G";                          expect_usage check;          finish "check without a criterion -> exit 2, one line"
run "$FS" check --baseline "$G" "$G";          expect_usage --max-drop;  finish "check --baseline without --max-drop -> exit 2, one line"
run "$FS" check --min-accuracy 0.5 --max-drop 0.1 "$G"; expect_usage --baseline; finish "check --max-drop without --baseline -> exit 2, one line"

# ---- check: the regression gate ----------------------------------------------

gen m75.csv 20 5          # accuracy 15/20 = 0.75
gen b80.csv 20 4          # accuracy 16/20 = 0.80, same images and truth
M=$D/m75.csv

run "$FS" check --min-accuracy 0.7 "$M"
expect_rc 0; stderr_empty
finish "check: accuracy 0.75, --min-accuracy 0.7 -> exit 0"
run "$FS" check --min-accuracy 0.75 "$M"
expect_rc 0; stderr_empty
finish "check: accuracy 0.75, --min-accuracy 0.75 (equal) -> exit 0"
run "$FS" check --min-accuracy 0.8 "$M"
expect_rc 1; stderr_empty
has "$TMP/stdout" below || reason "stdout does not say 'below'"
has "$TMP/stdout" 0.0500 || reason "stdout does not give the shortfall 0.0500"
has "$TMP/stdout" 0.7500 || reason "stdout does not give the accuracy 0.7500"
finish "check: accuracy 0.75, --min-accuracy 0.8 -> exit 1, shortfall 0.0500 below the floor"
run "$FS" check --min-accuracy 0.7 --bound wilson "$M"
expect_rc 1; stderr_empty
has_i "$TMP/stdout" wilson || reason "stdout does not say it compared the Wilson bound"
has "$TMP/stdout" 0.5313 || reason "stdout does not give the Wilson lower bound 0.5313"
finish "check --bound wilson: lower bound 0.5313 < 0.7 -> exit 1"
run "$FS" check --min-accuracy 0.5 --bound wilson "$M"
expect_rc 0; stderr_empty
finish "check --bound wilson: lower bound 0.5313 >= 0.5 -> exit 0"
run "$FS" check --min-accuracy 0.7 --bound point "$M"
expect_rc 0; stderr_empty
finish "check --bound point: 0.75 >= 0.7 -> exit 0"

run "$FS" check --baseline "$D/b80.csv" --max-drop 0.1 "$M"
expect_rc 0; stderr_empty
finish "check --baseline: drop 0.05 within --max-drop 0.1 -> exit 0"
run "$FS" check --baseline "$D/b80.csv" --max-drop 0.01 "$M"
expect_rc 1; stderr_empty
has "$TMP/stdout" 0.0500 || reason "stdout does not give the drop 0.0500"
has "$TMP/stdout" "$D/b80.csv" || reason "stdout does not name the baseline"
finish "check --baseline: drop 0.05 beyond --max-drop 0.01 -> exit 1 with the drop"
run "$FS" check --baseline "$M" --max-drop 0 "$D/b80.csv"
expect_rc 0; stderr_empty
finish "check --baseline: a better model passes --max-drop 0"
run "$FS" check --baseline "$D/b80.csv" --max-drop 0.05 "$M"
expect_rc 0; stderr_empty
finish "check --baseline: drop of exactly --max-drop 0.05 (0.80 -> 0.75) passes"
run "$FS" check --min-accuracy 0.8 --baseline "$D/b80.csv" --max-drop 0.1 "$M"
expect_rc 1; stderr_empty
has "$TMP/stdout" below || reason "stdout does not explain the failed floor"
finish "check: floor fails, drop passes -> exit 1"

gen base40.csv 40 0       # 40/40 right
gen worse10.csv 40 10     # 30/40: b = 0, c = 10 against base40
gen worse2.csv 40 2       # 38/40: b = 0, c = 2
run "$FS" check --baseline "$D/base40.csv" --max-drop 1 --significance 0.05 "$D/worse10.csv"
expect_rc 1; stderr_empty
has_i "$TMP/stdout" significant || reason "stdout does not report the significant loss"
finish "check --significance 0.05: significantly worse (c = 10, b = 0) -> exit 1"
run "$FS" check --baseline "$D/base40.csv" --max-drop 1 --significance 0.05 "$D/worse2.csv"
expect_rc 0; stderr_empty
finish "check --significance 0.05: worse but not significantly (c = 2, b = 0) -> exit 0"
run "$FS" check --baseline "$D/worse10.csv" --max-drop 1 --significance 0.05 "$D/base40.csv"
expect_rc 0; stderr_empty
finish "check --significance 0.05: significantly better -> exit 0"
run "$FS" check --baseline "$D/base40.csv" --max-drop 1 --significance 0.0001 "$D/worse10.csv"
expect_rc 0; stderr_empty
finish "check --significance 0.0001: loss with p ~ 0.001 is not significant -> exit 0"
run "$FS" check --baseline "$D/base40.csv" --max-drop 1 --significance 0.05 --method exact "$D/worse10.csv"
expect_rc 1; stderr_empty
has "$TMP/stdout" exact || reason "stdout does not name the exact method"
finish "check --significance with --method exact -> exit 1"

# ---- bootstrap: determinism ------------------------------------------------

awk 'BEGIN { print "# ferbench-predictions v1 labels=a,b,c"; print "image,label,pred"
    split("a b c", L, " ")
    for (i = 0; i < 90; i++) { t = L[i % 3 + 1]; p = (i * 7 % 5 == 0) ? L[(i + 1) % 3 + 1] : t; print "img" i "," t "," p } }' >"$D/boot.csv"
awk 'BEGIN { print "# ferbench-predictions v1 labels=a,b,c"; print "image,label,pred"
    split("a b c", L, " ")
    for (i = 89; i >= 0; i--) { t = L[i % 3 + 1]; p = (i * 11 % 4 == 0) ? L[(i + 2) % 3 + 1] : t; print "img" i "," t "," p } }' >"$D/boot_b.csv"
BO=$D/boot.csv
boot_case() {
    _d=$1; shift
    "$FS" bootstrap --json --resamples 400 "$@" >"$TMP/stdout" 2>"$TMP/stderr"
    rc=$?
    if LC_ALL=C grep -a -q -e AddressSanitizer -e LeakSanitizer -e 'runtime error' "$TMP/stderr"; then reason "$_d: sanitizer report"; fi
    [ "$rc" -eq 0 ] || reason "$_d: exit status $rc"
}
boot_case "seed 7 (1)" --seed 7 "$BO"; cp "$TMP/stdout" "$TMP/s7a"
boot_case "seed 7 (2)" --seed 7 "$BO"; cp "$TMP/stdout" "$TMP/s7b"
[ -s "$TMP/s7a" ] || reason "no JSON output"
cmp -s "$TMP/s7a" "$TMP/s7b" || reason "two runs with --seed 7 differ"
has "$TMP/s7a" '"seed": 7' || reason "JSON does not record the seed"
finish "bootstrap: the same seed twice gives identical JSON"
boot_case "seed 8" --seed 8 "$BO"; cp "$TMP/stdout" "$TMP/s8"
cmp -s "$TMP/s7a" "$TMP/s8" && reason "--seed 7 and --seed 8 give the same JSON"
sed 's/"seed": [0-9]*//' "$TMP/s7a" >"$TMP/s7x"; sed 's/"seed": [0-9]*//' "$TMP/s8" >"$TMP/s8x"
cmp -s "$TMP/s7x" "$TMP/s8x" && reason "--seed 7 and --seed 8 give the same interval"
finish "bootstrap: another seed gives another interval"
boot_case "threads 1" --seed 3 --threads 1 "$BO"; cp "$TMP/stdout" "$TMP/t1"
boot_case "threads 2" --seed 3 --threads 2 "$BO"; cp "$TMP/stdout" "$TMP/t2"
boot_case "threads 5" --seed 3 --threads 5 "$BO"; cp "$TMP/stdout" "$TMP/t5"
cmp -s "$TMP/t1" "$TMP/t2" || reason "--threads 1 and --threads 2 differ"
cmp -s "$TMP/t1" "$TMP/t5" || reason "--threads 1 and --threads 5 differ"
finish "bootstrap: --threads 1, 2 and 5 give identical JSON"
boot_case "paired threads 1" --seed 9 --threads 1 --metric balanced-accuracy "$BO" "$D/boot_b.csv"; cp "$TMP/stdout" "$TMP/p1"
boot_case "paired threads 2" --seed 9 --threads 2 --metric balanced-accuracy "$BO" "$D/boot_b.csv"; cp "$TMP/stdout" "$TMP/p2"
cmp -s "$TMP/p1" "$TMP/p2" || reason "paired bootstrap: --threads 1 and --threads 2 differ"
has "$TMP/p1" '"paired": true' || reason "paired bootstrap JSON does not say paired"
finish "bootstrap: paired difference, --threads 1 vs 2 identical"

# ---- confusion --svg -------------------------------------------------------

SV=$TMP/svg
mkdir "$SV"
mk svg_in.csv '# ferbench-predictions v1 dataset=raf<db> split=test model=m&m labels=surprise,fear,a<b,c&d,e"f,g>h,\303\274berrascht\n%s\n' "$COLS"
{
    printf 'i1,surprise,surprise\ni2,fear,surprise\ni3,a<b,a<b\ni4,c&d,"e""f"\ni5,"e""f","e""f"\n'
    printf 'i6,g>h,\303\274berrascht\ni7,\303\274berrascht,\303\274berrascht\ni8,fear,fear\n'
} >>"$D/svg_in.csv"
printf 'surprise\nfear\na<b\nc&d\ne"f\ng>h\n\303\274berrascht\n' >"$TMP/svg_labels.txt"
run "$FS" confusion --svg "$SV/out.svg" "$D/svg_in.csv"
expect_rc 0
stderr_empty
[ -s "$SV/out.svg" ] || reason "no SVG written"
finish "confusion --svg exits 0 and writes the file"
if [ -x "$PY" ]; then
    run "$PY" -c '
import sys, xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])
if doc.documentElement.tagName != "svg":
    sys.exit("root element is %r, not svg" % doc.documentElement.tagName)
texts = set()
def walk(node):
    for c in node.childNodes:
        if c.nodeType == c.TEXT_NODE:
            texts.add(c.data.strip())
        walk(c)
walk(doc)
labels = open(sys.argv[2], encoding="utf-8").read().split("\n")
missing = [l for l in labels if l and l not in texts]
if missing:
    sys.exit("labels missing from the SVG text: %r" % missing)
' "$SV/out.svg" "$TMP/svg_labels.txt"
    expect_rc 0
    finish "confusion --svg: well-formed XML naming every label (with <, &, \", >, UTF-8)"
else
    skip "confusion --svg: well-formed XML naming every label" "$PY not found"
fi
left=$(ls -A "$SV")
[ "$left" = out.svg ] || reason "files left next to the SVG: $(echo $left)"
finish "confusion --svg leaves no temporary file behind"
run "$FS" confusion --svg "$SV/out.svg" --json "$D/svg_in.csv"
expect_rc 0
has "$TMP/stdout" '"matrix"' || reason "no JSON matrix on stdout"
left=$(ls -A "$SV")
[ "$left" = out.svg ] || reason "files left next to the SVG: $(echo $left)"
finish "confusion --svg over an existing file with --json: exit 0, no temporary file"
run "$FS" confusion --svg "$SV/out2.svg" "$D/dup_image.csv"
expect_bad "$D/dup_image.csv" 6
[ -e "$SV/out2.svg" ] && reason "an SVG was written for a malformed input"
left=$(ls -A "$SV")
[ "$left" = out.svg ] || reason "files left next to the SVG: $(echo $left)"
finish "confusion --svg on a malformed file: exit 2, nothing written"
run "$FS" confusion --svg "$TMP/no/such/dir/x.svg" "$D/svg_in.csv"
expect_bad "$TMP/no/such/dir/x.svg" ""
finish "confusion --svg into a missing directory: exit 2, one line, no leak"
mk svg_ctrl.csv '# ferbench-predictions v1 labels=ok,bad\001label\n%s\ni1,ok,ok\n' "$COLS"
run "$FS" confusion --svg "$SV/ctrl.svg" "$D/svg_ctrl.csv"
if [ "$rc" -eq 0 ] && [ -x "$PY" ]; then
    run "$PY" -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$SV/ctrl.svg"
    expect_rc 0
elif [ "$rc" -ne 2 ]; then
    reason "exit status $rc, expected 0 (well-formed SVG) or 2 (label refused)"
fi
rm -f "$SV/ctrl.svg"
finish "label with a control character: refused, or the SVG stays well-formed"

# ---- accepted input variants -------------------------------------------------

# accept DESC FILE N CORRECT [options...]: metrics --json exits 0 with these counts.
accept() {
    _d=$1 _f=$2 _n=$3 _c=$4
    shift 4
    run "$FS" metrics --json "$@" "$_f"
    expect_rc 0
    stderr_empty
    has "$TMP/stdout" "\"n\": $_n," || reason "JSON does not say \"n\": $_n"
    has "$TMP/stdout" "\"correct\": $_c," || reason "JSON does not say \"correct\": $_c"
    finish "accepted: $_d -> exit 0, n = $_n, correct = $_c"
}
accept "canonical file" "$D/good.csv" 8 6
mk crlf.csv '%s\r\n%s\r\ni1,a,a\r\ni2,b,c\r\ni3,c,c\r\n' "$HDR" "$COLS"
accept "CRLF line ends" "$D/crlf.csv" 3 2
mk bom.csv '\357\273\277%s\n%s\ni1,a,a\ni2,b,c\ni3,c,c\ni4,a,b\n' "$HDR" "$COLS"
accept "UTF-8 BOM before the header comment" "$D/bom.csv" 4 2
mk bom_plain.csv '\357\273\277image,label,pred\ni1,a,a\ni2,b,c\n'
accept "UTF-8 BOM before a plain column header" "$D/bom_plain.csv" 2 1 $PL
mk quoted.csv '%s\n%s\n"img, one.png",a,a\n"say ""hi"".png",b,c\n"two\nlines.png",c,c\n"plain.png","a","b"\n' "$HDR" "$COLS"
accept "quoted fields with commas, doubled quotes and a newline" "$D/quoted.csv" 4 2
mk no_newline.csv '%s\n%s\ni1,a,a\ni2,b,c\ni3,c,c' "$HDR" "$COLS"
accept "no trailing newline" "$D/no_newline.csv" 3 2
mk no_newline_quoted.csv '%s\n%s\ni1,a,a\n"i2","b","b"' "$HDR" "$COLS"
accept "no trailing newline after a quoted field" "$D/no_newline_quoted.csv" 2 2
mk crlf_bom_nonl.csv '\357\273\277%s\r\n%s\r\ni1,a,a\r\ni2,b,c' "$HDR" "$COLS"
accept "BOM, CRLF and no trailing newline together" "$D/crlf_bom_nonl.csv" 2 1
mk trailing_blank.csv '%s\n%s\ni1,a,a\ni2,b,c\n\n\n' "$HDR" "$COLS"
accept "blank lines at the very end" "$D/trailing_blank.csv" 2 1
mk reordered.csv '%s\npred,prob_c,label,prob_a,image,prob_b\na,0.1,a,0.8,i1,0.1\nc,0.5,b,0.2,i2,0.3\nc,1,c,0,i3,0\nb,0.25,a,0.5,i4,0.25\n' "$HDR"
accept "columns in another order, with probabilities" "$D/reordered.csv" 4 2
mk reordered_plain.csv 'label,image,pred\na,i1,a\nb,i2,b\nc,i3,a\n'
accept "plain file, columns in another order, --labels" "$D/reordered_plain.csv" 3 2 $PL
mk probs_ok.csv '%s\n%s\ni1,a,a,1,0,0\ni2,b,c,0.3333333333,0.3333333333,0.3333333334\ni3,c,c,.2,2e-1,6E-1\ni4,a,b,0.4995,0.5,0\n' "$HDR" "$PCOLS"
accept "probabilities in several notations, sum within 1e-3" "$D/probs_ok.csv" 4 2
mk foreign_comment.csv '# exported by some script\nimage,label,pred\ni1,a,a\ni2,b,b\n'
accept "plain file with a foreign comment line and --labels" "$D/foreign_comment.csv" 2 2 $PL
accept "--labels equal to the header's label map" "$D/good.csv" 8 6 $PL

# Quoted names are decoded: a second file with the same images written
# differently (other order, other quoting) matches, and a mismatch message
# shows the decoded names.
mk quoted_same.csv '%s\n%s\nplain.png,a,a\n"two\nlines.png",c,b\n"say ""hi"".png",b,b\n"img, one.png",a,a\n' "$HDR" "$COLS"
run "$FS" mcnemar --json "$D/quoted.csv" "$D/quoted_same.csv"
expect_rc 0
stderr_empty
has "$TMP/stdout" '"images": 4' || reason "JSON does not say 4 paired images"
finish "accepted: quoted image names match across differently quoted files"
mk quoted_truth.csv '%s\n%s\nplain.png,a,a\n"two\nlines.png",c,b\n"say ""hi"".png",c,b\n"img, one.png",b,a\n' "$HDR" "$COLS"
run "$FS" mcnemar "$D/quoted.csv" "$D/quoted_truth.csv"
expect_bad "$D/quoted.csv" "" "2 with different" 'say "hi".png' "img, one.png"
finish "mismatch message shows decoded quoted image names"
mk reordered_labels.csv '# ferbench-predictions v1 labels=c,a,b\n%s\nimg8,a,a\nimg7,a,a\nimg6,a,a\nimg5,a,a\nimg4,a,a\nimg3,a,a\nimg2,a,b\nimg1,a,c\n' "$COLS"
run "$FS" mcnemar --json "$D/A.csv" "$D/reordered_labels.csv"
expect_rc 0
stderr_empty
has "$TMP/stdout" '"images": 8' || reason "JSON does not say 8 paired images"
finish "accepted: second file with the same label set in another order"

# ---- machine-readable output -------------------------------------------------

# Every --json output parses as JSON, with no NaN or Infinity (STATS.md: never
# print inf or NaN), also on degenerate inputs.
mk one_right.csv '%s\n%s\ni1,a,a\n' "$HDR" "$COLS"
mk one_wrong.csv '%s\n%s\ni1,a,b\n' "$HDR" "$COLS"
json_ok() {
    _d=$1
    shift
    run "$@"
    expect_rc 0
    if [ "$rc" -eq 0 ] && [ -x "$PY" ]; then
        cp "$TMP/stdout" "$TMP/json"
        run "$PY" -c '
import json, sys
def bad(c): raise ValueError("non-finite number " + c)
json.loads(open(sys.argv[1], encoding="utf-8").read(), parse_constant=bad)
' "$TMP/json"
        expect_rc 0
    fi
    finish "--json parses, no NaN/inf: $_d"
}
if [ -x "$PY" ]; then
    json_ok "metrics, UTF-8 and quote labels" "$FS" metrics --json "$D/svg_in.csv"
    json_ok "metrics, a single right image" "$FS" metrics --json "$D/one_right.csv"
    json_ok "metrics, a single wrong image" "$FS" metrics --json "$D/one_wrong.csv"
    json_ok "confusion --normalize pred, empty columns" "$FS" confusion --json --normalize pred "$D/one_wrong.csv"
    json_ok "mcnemar, no discordant pairs" "$FS" mcnemar --json "$D/one_right.csv" "$D/one_right.csv"
    json_ok "mcnemar, quoted image names" "$FS" mcnemar --json "$D/quoted.csv" "$D/quoted_same.csv"
    json_ok "compare, three models" "$FS" compare --json "$D/base40.csv" "$D/worse10.csv" "$D/worse2.csv"
    json_ok "compare, identical models (degenerate Q)" "$FS" compare --json "$D/one_right.csv" "$D/one_right.csv"
    json_ok "bootstrap, one image" "$FS" bootstrap --json --resamples 50 "$D/one_wrong.csv"
else
    skip "--json parses" "$PY not found"
fi

# ---- regressions: defects found and fixed (long names, tiny files, UTF-8 cells) ----

awk 'BEGIN { s = "x"; while (length(s) < 3000) s = s s; s = substr(s, 1, 3000)
             print "# ferbench-predictions v1 labels=a,b"; print "image,label,pred"
             print s ",a,a"; print "i2,b,b"; print s ",b,b" }' >"$D/long_dup.csv"
run "$FS" metrics "$D/long_dup.csv"
expect_bad "$D/long_dup.csv" 5 "first on line 3"
finish "duplicate 3000-byte image name (within the field limit): message keeps 'first on line 3'"
mk three_bytes.csv '#ab'
run "$FS" metrics $PL "$D/three_bytes.csv"
expect_bad "$D/three_bytes.csv" ""
has_i "$TMP/stderr" "empty" && reason "a 3-byte comment-only file is called empty"
finish "a 3-byte comment-only file is not reported as empty"
if command -v iconv >/dev/null 2>&1; then
    mk utf8_labels.csv '# ferbench-predictions v1 labels=surprise\342\202\254,b\n%s\ni1,b,b\n' "$COLS"
    run "$FS" confusion "$D/utf8_labels.csv"
    expect_rc 0
    iconv -f UTF-8 -t UTF-8 <"$TMP/stdout" >/dev/null 2>&1 || reason "stdout is not valid UTF-8"
    finish "confusion table keeps multi-byte label names valid UTF-8"
else
    skip "confusion table keeps multi-byte label names valid UTF-8" "iconv not found"
fi

# ---- ferbench --device: a GPU that is not there is a usage error ------------
# Whether bin/libfbcuda.so was built (nvcc found) or not, --device cuda on a
# machine without a GPU exits 2 with one line saying why; so do a bad device
# name and a precision the CPU cannot do.
FB=$BIN/ferbench
run "$FB" bench --device cuda --config fopm-tiny --batch 1 --iters 1 --warmup 0
expect_usage "--device cuda"
{ has_i "$TMP/stderr" "no CUDA device" || has_i "$TMP/stderr" "no CUDA backend" || has_i "$TMP/stderr" "cannot load"; } ||
    reason "message says neither 'no CUDA device' nor 'no CUDA backend'"
finish "ferbench bench --device cuda without a GPU: exit 2, one line"
run "$FB" bench --device tpu --config fopm-tiny
expect_usage "unknown device 'tpu'"
finish "ferbench bench --device tpu: exit 2, names the device"
run "$FB" bench --device cuda:x --config fopm-tiny
expect_usage "bad device 'cuda:x'"
finish "ferbench bench --device cuda:x: exit 2"
run "$FB" run --weights /nonexistent --out "$TMP/p.csv" --device cpu --precision bf16
expect_usage "--precision bf16 needs --device cuda"
finish "ferbench run --device cpu --precision bf16: exit 2"
run "$FB" train --out "$TMP/t" --precision fp16
expect_usage "--precision: unknown 'fp16'"
finish "ferbench train --precision fp16: exit 2"
run "$FB" bench --config fopm-tiny --graphs maybe
expect_usage "--graphs must be one of off|on, got 'maybe'"
finish "ferbench bench --graphs maybe: exit 2"
FERBENCH_CUDA_LIB=$TMP/nonexistent.so run "$FB" bench --device cuda
expect_usage "no CUDA backend" "nonexistent.so"
finish "ferbench --device cuda with the backend library missing: exit 2, names it"

# ---- ferbench bench --profile: one line per (pass, op kind), every op counted once
run "$FB" bench --device cpu --config fopm-tiny --batch 2 --mode both --iters 2 --warmup 0 --threads 1 --profile
expect_rc 0
[ "$(grep -c '^bench ' "$TMP/stdout")" = 2 ] || reason "expected 2 bench lines"
# MODEL.md has 36 CBR blocks (fused in eval) and 6 plain convs (occ, lmk, 4 attention heads)
has "$TMP/stdout" 'mode=infer batch=2 pass=forward op="conv+bn (+relu)" calls=36 ' || reason "eval: not 36 conv+bn calls"
has "$TMP/stdout" 'mode=train batch=2 pass=forward op="conv" calls=42 ' || reason "train: not 42 forward convs"
has "$TMP/stdout" 'mode=train batch=2 pass=backward op="conv" calls=42 ' || reason "train: not 42 backward convs"
has "$TMP/stdout" 'mode=train batch=2 pass=step op="adamw" calls=1 ' || reason "train: no adamw row"
for m in infer train; do
    awk -v m="mode=$m" '$1 == "profile" && $2 == m && $4 != "pass=all" { sub("share=", "", $NF); sub("%", "", $NF); s += $NF }
        END { exit !(s > 99.4 && s < 100.6) }' "$TMP/stdout" || reason "$m: shares do not sum to 100%"
done
finish "ferbench bench --profile: per-op rows, every op of the tape counted once, shares sum to 100%"

# ---- ferbench pins OpenBLAS's kernels on AVX2 machines (same bits everywhere); the user's choice wins
if grep -q -w avx2 /proc/cpuinfo && grep -q -w fma /proc/cpuinfo; then
    (unset OPENBLAS_CORETYPE; "$FB" bench --device cpu --config fopm-tiny --batch 1 --mode infer --iters 1 --warmup 0 \
        >"$TMP/stdout" 2>"$TMP/stderr")
    has "$TMP/stdout" 'desc="cpu:' || reason "no bench line"
    has "$TMP/stdout" ' OpenBLAS Haswell"' || reason "OpenBLAS not pinned to its Haswell kernels"
    OPENBLAS_CORETYPE=Sandybridge "$FB" bench --device cpu --config fopm-tiny --batch 1 --mode infer --iters 1 \
        --warmup 0 >"$TMP/stdout" 2>"$TMP/stderr"
    has "$TMP/stdout" ' OpenBLAS Sandybridge"' || reason "OPENBLAS_CORETYPE=Sandybridge not respected"
    finish "ferbench: OpenBLAS's Haswell kernels on an AVX2 CPU, OPENBLAS_CORETYPE when set"
else
    skip "ferbench: OpenBLAS kernels pinned on AVX2" "no AVX2 + FMA here: OpenBLAS keeps its own choice"
fi

# ---- report -------------------------------------------------------------------

echo "1..$n"
cat "$TAP"
if [ "$failed" -gt 0 ]; then
    echo "# $failed of $n test(s) failed"
    exit 1
fi
exit 0
