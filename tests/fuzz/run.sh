#!/bin/sh
# make fuzz: runs each libFuzzer target (build/fuzz/fuzz_NAME) for FUZZ_SECONDS,
# one after another, one process each. New interesting inputs
# go to build/fuzz/corpus/NAME (the committed seeds in tests/fuzz/corpus/NAME
# are read, never written); a crash, leak, sanitizer report, timeout or broken
# promise is saved under build/fuzz/crashes/NAME/ and makes the run exit 1.
# To keep a finding as a regression test, fix it, then copy the file to
# tests/fuzz/corpus/NAME/crash-<what>: `make test` replays it from then on.
set -u
: "${FUZZ_SECONDS:=60}" "${FUZZ_BUILD:=build/fuzz}"
cd "$(dirname "$0")/../.."
max_len() {
    case $1 in
    ingest) echo 24000 ;;   # a FER+ row of pixels is about 9 KB
    image) echo 65536 ;;
    preds) echo 8192 ;;
    *) echo 4096 ;;
    esac
}
failed=""
for t in "$@"; do
    bin=$FUZZ_BUILD/fuzz_$t
    mkdir -p "$FUZZ_BUILD/corpus/$t" "$FUZZ_BUILD/crashes/$t" "$FUZZ_BUILD/logs"
    log=$FUZZ_BUILD/logs/$t.log
    echo "fuzz $t: ${FUZZ_SECONDS}s (log: $log)"
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 $dict \
        -artifact_prefix="$FUZZ_BUILD/crashes/$t/" "$FUZZ_BUILD/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    stats=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    found=$(ls "$FUZZ_BUILD/crashes/$t" | wc -l)
    echo "fuzz $t: exit $rc, ${stats:-0} runs, corpus $(ls "$FUZZ_BUILD/corpus/$t" | wc -l) inputs, $found findings"
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
        failed="$failed $t"
        grep -h -m 3 -E 'ERROR: |broken promise|SUMMARY' "$log" | sed 's/^/  /'
        ls "$FUZZ_BUILD/crashes/$t" | sed "s|^|  $FUZZ_BUILD/crashes/$t/|"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: findings in:$failed"
    exit 1
fi
echo "fuzz: no findings"
