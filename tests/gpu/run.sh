#!/bin/sh
# tests/gpu/run.sh: every GPU check of the CUDA backend and the GPU
# benchmark, in one run on a GPU machine, with a summary in $OUT.
#
#   here:    sh tests/gpu/bundle.sh          (binaries, their libraries, a fixture)
#   device:  sh tests/gpu/run.sh             (carry gpu_bundle.tar.xz; at most LIMIT = 420 s)
#
# Without gpu_bundle/ it builds with make (needs the Debian packages of
# `make deps` and cudnn.h; CUDNN_HOME may point at a cuDNN).
# Steps (each bounded by `timeout`, results appended as they come, so a run
# cut short still returns what it measured):
#   1. the machine: GPU, driver, cuDNN and PyTorch found
#   2. tests/test_backend.c: every op, forward and backward, CUDA vs CPU, at
#      fp32 (NMSE <= 1e-10), tf32 (1e-5), bf16 (1e-3), and fp32 deterministic
#   3. tests/net_parity.c: whole model (eval, training forward/backward,
#      10 AdamW steps) CUDA vs CPU: fopm-tiny and fopm in fp32, with
#      --deterministic bit-identical reruns and passes replayed as CUDA
#      graphs bit for bit as direct ones; fopm-tiny in tf32 and bf16
#   4. ferbench bench --device cuda, fopm, batches 16/64/256, infer and
#      train, fp32/tf32/bf16; the same with PyTorch eager (and
#      torch.compile at batch 16) on the same GPU (bench/perf/gpu_peer.py),
#      both timing the same step: pinned inputs copied in, results copied
#      out; ours replays each step as CUDA graphs and copies the next
#      step's inputs during this one (--graphs off and --prefetch off once
#      each, tf32 batch 16, for reference); then PyTorch with its inputs
#      resident on the GPU, for reference
#   4b/4c. per-op profile (profile.txt); compute-sanitizer memcheck of test_backend if time is left
#   5. the issue's targets: fopm inference at batch 16 <= 1.0 ms/image,
#      >= 2x PyTorch eager, peak <= 2.1 GB; training step >= 1.5x eager
# Files in $OUT: summary.txt (the verdicts), tests.txt (the TAP output),
# bench.txt (every benchmark line), profile.txt (ferbench bench --profile: per-op
# times of fopm at batch 16, tf32, bf16 and fp32, as time allows).
# STEPS=ops,model,workflow,bench,profile,memcheck (any of them; default all) runs
# only those groups, for a rerun after a fix: `STEPS=ops,model sh tests/gpu/run.sh`
# spends ~3 minutes instead of ~7 (the machine, step 1, is always read).
# DRYRUN=1 checks this script's plumbing on a machine without a GPU: the
# CPU backend stands in for CUDA, fopm-tiny for fopm, small batches, and
# the GPU peer script runs on the CPU (gpu_peer.py --device cpu); its
# verdicts mean nothing else.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ferbench-gpu}
mkdir -p "$OUT"
SUM=$OUT/summary.txt TESTS=$OUT/tests.txt BENCH=$OUT/bench.txt
: >"$SUM"; : >"$TESTS"; : >"$BENCH"; : >"$OUT/profile.txt"
say() { echo "$*" | tee -a "$SUM"; }
T0=$(date +%s)
# Seconds for the whole run: later steps get what is left, or are skipped. A
# session has 15 minutes of device time, the machine's start included: 420 s
# leaves room to rerun the steps that failed (LIMIT=... for more).
LIMIT=${LIMIT:-420}
elapsed() { echo $(($(date +%s) - T0)); }
STEPS=${STEPS:-all}
for g in $(echo "$STEPS" | tr ',' ' '); do
    case $g in all | ops | model | workflow | bench | profile | memcheck) ;;
    *) echo "run.sh: STEPS: unknown group '$g' (ops, model, workflow, bench, profile, memcheck, all)" >&2; exit 2 ;;
    esac
done
selected() { case ",$STEPS," in *,all,* | *,"$1",*) return 0 ;; esac; return 1; } # selected GROUP
# budget SECS -> the timeout a step may have now (0: skip it)
budget() {
    left=$((LIMIT - $(elapsed)))
    if [ "$left" -lt 15 ]; then echo 0; elif [ "$1" -lt "$left" ]; then echo "$1"; else echo "$left"; fi
}

# ---- 1. the machine ------------------------------------------------------------
PY=${PY:-python3}
ORIG_LD=${LD_LIBRARY_PATH-} # the PyTorch peer runs with the machine's own library path, not the bundle's
if [ -f gpu_bundle.tar.xz ] && [ ! -d gpu_bundle/bin ]; then # without xz(1), Python's tarfile reads it too
    tar -xJf gpu_bundle.tar.xz 2>/dev/null || $PY -c "import tarfile; tarfile.open('gpu_bundle.tar.xz').extractall()" ||
        say "cannot unpack gpu_bundle.tar.xz"
fi
commit=$(head -n 1 gpu_bundle/COMMIT 2>/dev/null)
say "== ferbench GPU run, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit ${commit:-$(git rev-parse HEAD 2>/dev/null)}$([ "$STEPS" = all ] || echo ", STEPS=$STEPS")"
say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
say "python: $($PY -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 | tail -n 1)"
# cuDNN and cuBLAS: the CUDA folder, else PyTorch's wheels (nvidia.cudnn, nvidia.cublas).
libdirs=$($PY - <<'PY' 2>/dev/null
import importlib, os
for m in ("nvidia.cudnn", "nvidia.cublas", "nvidia.cu13", "nvidia.cuda_runtime"):
    try:
        for p in importlib.import_module(m).__path__:
            for sub in ("lib", "lib64"):
                d = os.path.join(p, sub)
                if os.path.isdir(d):
                    print(d)
    except Exception:
        pass
PY
)
LIBS=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $libdirs; do
    [ -d "$d" ] && LIBS="$LIBS:$d"
done
if [ -d gpu_bundle/bin ]; then
    BIN=gpu_bundle/bin TB=gpu_bundle/bin
    export LD_LIBRARY_PATH="$PWD/gpu_bundle/lib$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "binaries: gpu_bundle ($(sed -n 1p gpu_bundle/COMMIT 2>/dev/null))"
else
    say "binaries: building with make"
    if ! make --no-print-directory cuda all build/tests/test_backend build/tests/net_parity >"$OUT/build.txt" 2>&1; then
        say "FAIL build (see build.txt); no gpu_bundle/ was carried either (tests/gpu/bundle.sh makes one)"
        tail -n 20 "$OUT/build.txt"
        exit 1
    fi
    BIN=bin TB=build/tests
    export LD_LIBRARY_PATH="${LIBS#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export FERBENCH_CUDA_LIB="$PWD/$BIN/libfbcuda.so"
missing=$(ldd "$FERBENCH_CUDA_LIB" 2>&1 | grep "not found")
[ -n "$missing" ] && say "FAIL libfbcuda.so cannot load: $missing"
say "cudnn: $(ldd "$FERBENCH_CUDA_LIB" | awk '/libcudnn.so/ { print $3 }')"

fails=0
# check NAME SECONDS CMD...: runs a TAP program, keeps its output, one verdict line.
check() {
    selected "$GROUP" || return 0
    name=$1 secs=$(budget "$2")
    shift 2
    if [ "$secs" -eq 0 ]; then
        fails=$((fails + 1))
        say "FAIL $name (skipped: the run's $LIMIT s were spent)"
        return
    fi
    echo "### $name: $*" >>"$TESTS"
    t=$(date +%s)
    timeout "$secs" "$@" >>"$TESTS" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        say "PASS $name ($(($(date +%s) - t)) s)"
    else
        fails=$((fails + 1))
        say "FAIL $name (exit $rc$([ $rc -eq 124 ] && echo ", timed out after $secs s"); see tests.txt)"
    fi
}

# ---- 2. every op against the CPU ----------------------------------------------------
DEV=cuda BIG=fopm BATCHES=16,64,256
[ "${DRYRUN:-0}" = 1 ] && DEV=cpu BIG=fopm-tiny BATCHES=2,4 && say "DRYRUN: the CPU stands in for the GPU"
export CMOCKA_MESSAGE_OUTPUT=TAP FB_TEST_DEVICE=$DEV
GROUP=ops # (check() runs a group's checks only if STEPS selects it)
for p in fp32 tf32 bf16; do
    [ "$DEV" = cpu ] && [ $p != fp32 ] && break
    # (launches synchronous: a fault is reported by the op that made it; the shapes are small)
    CUDA_LAUNCH_BLOCKING=1 FB_TEST_PRECISION=$p check "ops $p" 120 "$TB/test_backend"
done
CUDA_LAUNCH_BLOCKING=1 FB_TEST_PRECISION=fp32 FB_TEST_DETERMINISTIC=1 check "ops fp32 deterministic" 120 "$TB/test_backend"

# ---- 3. the whole model against the CPU ---------------------------------------------
GROUP=model
FB_TEST_PRECISION=fp32 check "model fopm-tiny fp32 (batch 4, 10 steps, deterministic reruns)" 150 \
    "$TB/net_parity" --config fopm-tiny --batch 4 --steps 10 --deterministic
FB_TEST_PRECISION=fp32 check "model $BIG fp32 (batch 2, 10 steps, deterministic reruns)" 240 \
    "$TB/net_parity" --config $BIG --batch 2 --steps 10 --deterministic
for p in tf32 bf16; do
    [ "$DEV" = cpu ] && break
    FB_TEST_PRECISION=$p check "model fopm-tiny $p (batch 4, 10 steps)" 120 "$TB/net_parity" --config fopm-tiny --batch 4 --steps 10
done
unset FB_TEST_DEVICE FB_TEST_PRECISION

# ---- 3b. the workflow: train and run on the GPU, the same weights on the CPU --------
# (gpu_bundle/fixture, made by bundle.sh; skipped without it)
F=gpu_bundle/fixture W=$OUT/wf GROUP=workflow
if ! selected workflow; then
    :
elif [ -f $F/d.sqlite ]; then
    rm -rf "$W" && mkdir -p "$W"
    cp $F/d.sqlite "$W/d.sqlite" # the runs write rows
    check "workflow: ferbench train --device $DEV fopm-tiny, 3 epochs" 120 sh -c \
        "'$BIN/ferbench' train --device $DEV --config fopm-tiny --db '$W/d.sqlite' --out '$W/run' --epochs 3 && echo ok 1 - trained"
    check "workflow: ferbench run --device $DEV, then --device cpu on the same weights" 90 sh -c \
        "'$BIN/ferbench' run --device $DEV --weights '$W/run/best.safetensors' --db '$W/d.sqlite' --out '$W/gpu.csv' &&
         '$BIN/ferbench' run --device cpu --weights '$W/run/best.safetensors' --db '$W/d.sqlite' --out '$W/cpu.csv' &&
         '$BIN/ferstats' metrics '$W/gpu.csv' >/dev/null && echo ok 1 - ran"
    # the two predictions files: same labels nearly everywhere, probabilities within 1e-4
    if [ -f "$W/gpu.csv" ] && [ -f "$W/cpu.csv" ]; then
        cmp=$(paste -d, "$W/gpu.csv" "$W/cpu.csv" | awk -F, 'NR > 2 { n++; h = NF / 2; if ($3 != $(h + 3)) d++;
            for (i = 4; i <= h; i++) { e = $i - $(h + i); if (e < 0) e = -e; if (e > m) m = e } }
            END { printf "%d %d %.3g", n, d, m }')
        set -- $cmp
        if [ "$1" -gt 0 ] && [ $(($2 * 100)) -le "$1" ] && awk -v m="$3" 'BEGIN { exit !(m <= 1e-4) }'; then
            say "PASS workflow: GPU and CPU predictions of the same weights: $2 of $1 labels differ, max |dp| $3"
        else
            fails=$((fails + 1))
            say "FAIL workflow: GPU and CPU predictions: $2 of $1 labels differ (at most 1%), max |dp| $3 (at most 1e-4)"
        fi
    fi
else
    say "workflow: skipped (no gpu_bundle/fixture)"
fi
say "tests done at $(elapsed) s: $fails failed"

# ---- 4. benchmark: ours and PyTorch on the same GPU ---------------------------------
bench() { # bench LABEL SECONDS CMD...: the tool's "bench ..." lines into bench.txt
    selected bench || return 0
    label=$1 secs=$(budget "$2")
    shift 2
    if [ "$secs" -eq 0 ]; then
        say "bench $label: skipped (the run's $LIMIT s were spent)"
        return
    fi
    timeout "$secs" "$@" >"$OUT/b.$$" 2>"$OUT/e.$$"
    rc=$?
    grep '^bench \|^# ' "$OUT/b.$$" >>"$BENCH"
    [ $rc -eq 0 ] || say "bench $label: exit $rc: $(tail -n 2 "$OUT/e.$$" | tr '\n' ' ')"
    rm -f "$OUT/b.$$" "$OUT/e.$$"
}
if ! selected bench; then
    :
elif [ "$DEV" = cpu ]; then # DRYRUN: CPU lines relabelled as the GPU ones
    for p in fp32 tf32 bf16; do
        "$BIN/ferbench" bench --device cpu --config $BIG --batch $BATCHES --iters 2 --warmup 0 |
            sed "s/device=cpu /device=cuda /; s/precision=fp32/precision=$p/" >>"$BENCH"
        # the device run's own peer script, on the CPU (bench/perf/gpu_peer.py --device cpu)
        /usr/bin/python3 bench/perf/gpu_peer.py --device cpu --config $BIG --batch $BATCHES --mode both \
            --precision $p --iters 2 --warmup 1 | sed "s/device=cpu-pytorch /device=cuda-pytorch /" >>"$BENCH"
    done
    /usr/bin/python3 bench/perf/gpu_peer.py --device cpu --config $BIG --batch ${BATCHES%%,*} --mode both \
        --precision tf32 --iters 2 --warmup 1 --compile | sed "s/device=cpu-pytorch-compile /device=cuda-pytorch-compile /" >>"$BENCH"
else
    # Batch 16 (the targets' batch) at every precision first, then torch.compile,
    # then the larger batches: a run short of time loses the least important lines.
    N0=${BATCHES%%,*} REST=${BATCHES#*,}
    sweep() { # sweep BATCHES SECONDS ITERS: ours and PyTorch eager at each precision
        for p in fp32 tf32 bf16; do
            bench "ours $p batch $1" "$2" "$BIN/ferbench" bench --device cuda --precision "$p" --config fopm --batch "$1" \
                --mode both --iters "$3" --warmup 2
            bench "pytorch $p batch $1" "$2" env LD_LIBRARY_PATH="$ORIG_LD" PYTHONUNBUFFERED=1 $PY bench/perf/gpu_peer.py \
                --config fopm --batch "$1" --mode both --precision "$p" --iters "$3" --warmup 3
        done
    }
    sweep "$N0" 90 10
    # for reference: ours op by op, without graphs (device label cuda-nographs)
    bench "ours tf32 batch $N0 without graphs" 60 sh -c "'$BIN/ferbench' bench --device cuda --precision tf32 \
        --config fopm --batch $N0 --mode both --iters 10 --warmup 2 --graphs off | sed 's/^bench device=cuda /bench device=cuda-nographs /'"
    # for reference: ours with each batch copied at its turn (device label cuda-noprefetch)
    bench "ours tf32 batch $N0 without prefetching" 60 sh -c "'$BIN/ferbench' bench --device cuda --precision tf32 \
        --config fopm --batch $N0 --mode both --iters 10 --warmup 2 --prefetch off | sed 's/^bench device=cuda /bench device=cuda-noprefetch /'"
    bench "pytorch compile tf32" 150 env LD_LIBRARY_PATH="$ORIG_LD" PYTHONUNBUFFERED=1 $PY bench/perf/gpu_peer.py --config fopm --batch "$N0" \
        --mode both --precision tf32 --iters 10 --warmup 3 --compile
    sweep "$REST" 120 5
    # for reference: PyTorch's model alone (inputs made on the GPU, nothing copied)
    bench "pytorch resident tf32" 60 env LD_LIBRARY_PATH="$ORIG_LD" PYTHONUNBUFFERED=1 $PY bench/perf/gpu_peer.py --config fopm \
        --batch "$N0" --mode both --precision tf32 --iters 10 --warmup 3 --inputs gpu
fi
say "benchmarks done at $(elapsed) s"

# ---- 4b. where our time goes: per-op profile of fopm at batch 16 (profile.txt) -----------
for p in tf32 bf16 fp32; do # the precisions the targets are likeliest to be met in first
    selected profile || break
    secs=$(budget 60)
    [ "$secs" -gt 0 ] || { say "profile $p: skipped (the run's $LIMIT s were spent)"; continue; }
    prec=$([ "$DEV" = cpu ] && echo fp32 || echo "$p")
    timeout "$secs" "$BIN/ferbench" bench --device "$DEV" --precision "$prec" --config $BIG --batch ${BATCHES%%,*} \
        --mode both --iters 5 --warmup 1 --profile >"$OUT/p.$$" 2>&1 || say "profile $p: exit $?: $(tail -n 2 "$OUT/p.$$" | tr '\n' ' ')"
    { echo "# $p"; grep '^bench \|^profile ' "$OUT/p.$$"; } >>"$OUT/profile.txt"
    rm -f "$OUT/p.$$"
done

# ---- 4c. our kernels' memory accesses under compute-sanitizer, if time is left ------
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
if selected memcheck && [ "$DEV" = cuda ] && [ -n "$CS" ] && [ "$(budget 90)" -ge 60 ]; then
    secs=$(budget 90)
    echo "### memcheck: $CS --tool memcheck $TB/test_backend (fp32)" >>"$TESTS"
    CMOCKA_MESSAGE_OUTPUT=TAP FB_TEST_DEVICE=cuda FB_TEST_PRECISION=fp32 \
        timeout "$secs" "$CS" --tool memcheck --error-exitcode 99 "$TB/test_backend" >>"$TESTS" 2>&1
    rc=$?
    case $rc in
    0) say "PASS memcheck: test_backend fp32 under compute-sanitizer, no error" ;;
    99) fails=$((fails + 1)); say "FAIL memcheck: compute-sanitizer found errors (see tests.txt)" ;;
    124) say "memcheck: incomplete after $secs s (no verdict)" ;;
    *) say "memcheck: no sanitizer error reported; test_backend exited $rc (its verdict is 'ops fp32' above)" ;;
    esac
fi

# ---- 5. the table and the targets ---------------------------------------------------
# field LINE KEY; ms DEVICE PREC MODE BATCH -> ms/image (empty if absent)
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
pick() { grep "^bench device=$1 .*precision=$2 .*mode=$3 batch=$4 " "$BENCH" | head -n 1; }
if [ ! -s "$BENCH" ]; then
    say ""
    say "== $fails failed; $(elapsed) s in all (no benchmark lines: no table, no targets)"
    exit $([ "$fails" -eq 0 ] && echo 0 || echo 1)
fi
say ""
say "ms/image (images/s) and peak MiB; ratio = PyTorch eager ms / ours ms"
say "precision mode  batch | ours                      | pytorch eager             | ratio"
for p in fp32 tf32 bf16; do
    for m in infer train; do
        for n in $(echo $BATCHES | tr ',' ' '); do
            o=$(pick cuda "$p" "$m" "$n") t=$(pick cuda-pytorch "$p" "$m" "$n")
            om=$(field "$o" ms_per_image) tm=$(field "$t" ms_per_image)
            ratio=$([ -n "$om" ] && [ -n "$tm" ] && awk -v a="$tm" -v b="$om" 'BEGIN { printf "%.2fx", a / b }')
            say "$(printf '%-9s %-5s %5s | %8s (%7s) %6s | %8s (%7s) %6s | %s' "$p" "$m" "$n" \
                "${om:--}" "$(field "$o" images_per_s)" "$(field "$o" peak_bytes | awk '{ if ($1) printf "%.0f", $1 / 1048576 }')" \
                "${tm:--}" "$(field "$t" images_per_s)" "$(field "$t" peak_bytes | awk '{ if ($1) printf "%.0f", $1 / 1048576 }')" \
                "${ratio:--}")"
        done
    done
done
g=$(grep '^bench device=cuda .*batch='"${BATCHES%%,*}"' ' "$BENCH" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(precision|mode|graphs|graph_launches|prefetched)=/) printf "%s ", $i; print "" }' | tr '\n' ';')
[ -n "$g" ] && say "our CUDA graphs and prefetched uploads at batch ${BATCHES%%,*}: $g"
grep '^# graphs failed' "$BENCH" | sort -u | while read -r l; do say "${l#\# }"; done
# reference DEVICE TEXT: one summary line of mode, batch and ms/image of DEVICE's bench lines (none: nothing)
reference() {
    r=$(grep "^bench device=$1 " "$BENCH")
    [ -n "$r" ] && say "$2: $(echo "$r" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(mode|batch|ms_per_image)=/) printf "%s ", $i; print "" }' | tr '\n' ';')"
}
reference cuda-nographs "ours without graphs (tf32)"
reference cuda-noprefetch "ours with each batch copied at its turn, --prefetch off (tf32)"
reference cuda-pytorch-resident "PyTorch eager, inputs resident on the GPU (tf32)"
reference cuda-pytorch-compile "torch.compile (tf32)"
grep '^# torch.compile unavailable' "$BENCH" | head -n 1 | while read -r l; do say "${l#\# }"; done

# target TEXT CONDITION: CONDITION is an awk expression of numbers.
target() {
    desc=$1 cond=$2
    if awk "BEGIN { exit !($cond) }" 2>/dev/null; then
        say "PASS target: $desc"
    else
        fails=$((fails + 1))
        say "FAIL target: $desc"
    fi
}
say ""
N0=${BATCHES%%,*} # 16 (the issue's batch)
for p in fp32 tf32; do
    o=$(pick cuda $p infer $N0) t=$(pick cuda-pytorch $p infer $N0)
    om=$(field "$o" ms_per_image) tm=$(field "$t" ms_per_image) pk=$(field "$o" peak_bytes)
    ot=$(field "$(pick cuda $p train $N0)" ms_per_image) tt=$(field "$(pick cuda-pytorch $p train $N0)" ms_per_image)
    [ -n "$om" ] && target "$p fopm inference batch 16: ${om} ms/image <= 1.0" "$om <= 1.0"
    [ -n "$om" ] && [ -n "$tm" ] && target "$p fopm inference batch 16: $(awk -v a="$tm" -v b="$om" 'BEGIN { printf "%.2f", a / b }')x PyTorch eager >= 2" "$tm / $om >= 2"
    [ -n "$pk" ] && target "$p fopm inference batch 16: peak $(awk -v b="$pk" 'BEGIN { printf "%.2f", b / 1e9 }') GB <= 2.1" "$pk <= 2.1e9"
    [ -n "$ot" ] && [ -n "$tt" ] && target "$p fopm training step batch 16: $(awk -v a="$tt" -v b="$ot" 'BEGIN { printf "%.2f", a / b }')x PyTorch eager >= 1.5" "$tt / $ot >= 1.5"
done
say ""
say "== $fails failed; $(elapsed) s in all"
exit $([ "$fails" -eq 0 ] && echo 0 || echo 1)
