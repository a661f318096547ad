#!/bin/sh
# make bench, part 4: the C engine (`ferbench bench`) against the project's
# PyTorch port (bench/perf/engine_peer.py on interop/fopm.py), same workloads,
# same seeded-random batch of 16, same warmup / iters / median, same threads:
#   (a) fopm inference (eval-mode forward), 3 timed after 1 warmup;
#   (b) fopm-tiny training step (train forward, Lt = MSE(occ) + 0.6 MSE(heat)
#       + 0.4 CE, backward, AdamW lr 0.002 betas 0.9/0.99 eps 1e-8 wd 1e-4),
#       20 timed after 3 warmup.
# C and PyTorch runs alternate, one pair per round; the medians over rounds
# are compared. Targets: (a) >= 1.5x PyTorch's CPU throughput, (b) >= 5x.
# A report: exits 0 even when a target is missed (non-zero only if the bench
# itself cannot run). Peak memory is each process's peak RSS (getrusage).
# Environment: FERBENCH_BIN (default bin/ferbench), PYTHON (default
# /usr/bin/python3, Debian's, which has torch), BENCH_ENGINE_ROUNDS (default 3),
# BENCH_ENGINE_THREADS (default 2).
set -eu
cd "$(dirname "$0")/../.."
FERBENCH_BIN=${FERBENCH_BIN:-bin/ferbench}
PYTHON=${PYTHON:-/usr/bin/python3}
ROUNDS=${BENCH_ENGINE_ROUNDS:-3}
T=${BENCH_ENGINE_THREADS:-2}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
if [ ! -x "$FERBENCH_BIN" ]; then
    echo "bench: $FERBENCH_BIN not built; run 'make all' first (or set FERBENCH_BIN)" >&2
    exit 2
fi
if ! torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null) || [ -z "$torch_version" ]; then
    echo "bench: $PYTHON lacks torch; install Debian's python3-torch or set PYTHON" >&2
    exit 2
fi
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
# How busy the machine was meanwhile: CPU seconds all processes used
# (/proc/stat, steal excluded) minus what this script's children used (the
# shell's `times`, run in this shell so that it sees them), over wall x CPUs.
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
ncpu=$(nproc)
tmp_times=/tmp/engine_bench.$$.times
snapshot() { # sets snap="wall all_cpu_s own_cpu_s"; call it directly, not in $(...)
    times >"$tmp_times"
    snap=$(printf '%s %s %s\n' "$(date +%s.%N)" \
        "$(awk -v hz="$hz" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat)" \
        "$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } printf "%.2f", s }' "$tmp_times")")
    rm -f "$tmp_times"
}

# run_one SIDE CONFIG MODE ITERS WARMUP -> the tool's "bench ..." line on stdout.
run_one() {
    if [ "$1" = c ]; then
        set -- "$FERBENCH_BIN" bench --device cpu --config "$2" --batch 16 --mode "$3" --iters "$4" --warmup "$5" --threads "$T"
    else
        set -- "$PYTHON" bench/perf/engine_peer.py --config "$2" --batch 16 --mode "$3" --iters "$4" --warmup "$5" --threads "$T"
    fi
    if ! out=$("$@" 2>/tmp/engine_bench.$$.err) || ! line=$(echo "$out" | grep '^bench ' | tail -n 1) || [ -z "$line" ]; then
        echo "bench: '$*' failed:" >&2
        cat /tmp/engine_bench.$$.err >&2
        echo "$out" >&2
        rm -f /tmp/engine_bench.$$.err
        exit 2
    fi
    rm -f /tmp/engine_bench.$$.err
    echo "$line"
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; } # LINE KEY -> value
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
maxof() { echo "$1" | tr ' ' '\n' | grep . | sort -n | tail -n 1; }

# bench_pair LABEL CONFIG MODE ITERS WARMUP TARGET (throughput ratio C/PyTorch)
bench_pair() {
    label=$1 config=$2 mode=$3 iters=$4 warmup=$5 target=$6
    echo "== engine: $label, batch 16, $T threads, C ($FERBENCH_BIN) vs PyTorch $torch_version, medians of $ROUNDS alternating rounds (each run: median of $iters after $warmup warmup)"
    cs="" ps="" cm="" pm=""
    snapshot
    s0=$snap
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        lc=$(run_one c "$config" "$mode" "$iters" "$warmup")
        lp=$(run_one py "$config" "$mode" "$iters" "$warmup")
        c=$(field "$lc" median_s) p=$(field "$lp" median_s)
        cs="$cs $c" ps="$ps $p"
        cm="$cm $(field "$lc" peak_bytes)" pm="$pm $(field "$lp" peak_bytes)"
        awk -v r="$r" -v c="$c" -v p="$p" 'BEGIN { printf "  round %d: C %.4f s/batch, PyTorch %.4f s/batch (%.2fx)\n", r, c, p, p / c }'
        r=$((r + 1))
    done
    snapshot
    awk -v c="$(med "$cs")" -v p="$(med "$ps")" -v cm="$(maxof "$cm")" -v pm="$(maxof "$pm")" \
        -v t="$target" -v s0="$s0" -v s1="$snap" -v n="$ncpu" 'BEGIN {
        split(s0, a, " "); split(s1, b, " ")
        other = ((b[2] - a[2]) - (b[3] - a[3])) / ((b[1] - a[1]) * n)
        printf "  C engine  %9.4f s/batch  %8.2f ms/image  %8.2f images/s  peak RSS %6.0f MiB\n", c, 1000 * c / 16, 16 / c, cm / 1048576
        printf "  PyTorch   %9.4f s/batch  %8.2f ms/image  %8.2f images/s  peak RSS %6.0f MiB (interpreter and torch included)\n", p, 1000 * p / 16, 16 / p, pm / 1048576
        printf "  throughput C/PyTorch: %.2fx (target >= %gx): %s\n", p / c, t, (p / c >= t ? "PASS" : "FAIL")
        printf "  other processes used %.0f%% of the %d CPUs meanwhile%s\n", (other > 0 ? 100 * other : 0), n,
               (other > 0.1 ? ": the machine was not idle, these timings are unreliable" : "")
    }'
}

echo "== engine bench: $(nproc) CPUs, ${cpu:-unknown CPU}; torch $torch_version ($PYTHON); load average $(cut -d' ' -f1-3 /proc/loadavg)"
bench_pair "fopm inference" fopm infer 3 1 1.5
bench_pair "fopm-tiny training step" fopm-tiny train 20 3 5
