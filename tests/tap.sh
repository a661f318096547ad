# tests/tap.sh: the TAP helpers of the shell tests, sourced by each
# (`. "$(dirname "$0")/tap.sh"`; test_cli.sh has its own, which collect a
# case's reasons before its verdict).
#   FERBENCH_BIN  folder of the tools under test (default bin)
# Sets BIN, MS, FB, FS (the tools), PY (Debian's Python, which has torch and
# scikit-learn) and T (a temporary folder, removed on exit); n counts cases,
# failed the failures. A command run by check, expect_rc or bad leaves its
# output in $T/out and $T/err, and its exit status in rc.
BIN=${FERBENCH_BIN:-bin}
MS=$BIN/masksynth
FB=$BIN/ferbench
FS=$BIN/ferstats
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/ferbench-$(basename "$0" .sh).XXXXXX") || { echo "Bail out! mktemp -d failed"; exit 1; }
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
# nok DESCRIPTION [DETAIL...]: each detail as comment lines, at most 1500 bytes of it.
nok() {
    n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift
    for l in "$@"; do printf '%s\n' "$l" | head -c 1500 | sed 's/^/# /'; done
}
# sane [RC]: whether the last command (exit status RC, default $rc) ran clean:
# no death by signal, no sanitizer report in $T/err.
sane() { [ "${1:-$rc}" -lt 128 ] && ! grep -a -q -e AddressSanitizer -e LeakSanitizer -e 'runtime error' "$T/err"; }
# check DESCRIPTION COMMAND...: ok when the command succeeds.
check() {
    d=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" = 0 ] && sane; then ok "$d"; else nok "$d" "exit $rc" "$(cat "$T/err")"; fi
}
# expect_rc DESCRIPTION RC COMMAND...: ok when the command exits RC.
expect_rc() {
    d=$1; want=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" = "$want" ] && sane; then ok "$d"; else nok "$d" "exit $rc, wanted $want" "$(cat "$T/err")"; fi
}
# bad DESCRIPTION WANT COMMAND...: exit 2 with exactly one line on stderr, containing WANT.
bad() {
    d=$1; want=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err")
    if [ "$rc" = 2 ] && [ "$lines" = 1 ] && sane && grep -q -F -- "$want" "$T/err"; then ok "$d: $(cat "$T/err")"
    else nok "$d" "exit $rc, $lines stderr lines, want one naming '$want'" "$(cat "$T/err")"; fi
}
