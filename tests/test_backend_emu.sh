#!/bin/sh
# The CUDA backend (engine/cuda/*.cu, unchanged) built over the host
# emulation of the CUDA runtime, cuBLAS and cuDNN (tests/cuda_emu/,
# libfbcuda_emu.so) and run as the "cuda" device of the GPU parity tests,
# against the CPU backend, on a machine without a GPU:
#   test_backend  every op, forward and backward, in fp32 (NMSE <= 1e-10),
#                 tf32 and bf16 (the GPU run's bounds), and fp32 deterministic;
#                 fp32 again, and test_kernels_emu, with blocks run last to first
#   net_parity    fopm-tiny: fp32 deterministic (bit-identical rerun), tf32, bf16
#   ferbench      bench --device cuda (inference and a training step) runs;
#                 train and run give the same bytes with and without graphs
#                 and with and without prefetching (upload_ahead)
# It checks the backend's logic and its use of the libraries (descriptors,
# algorithm choice and cache, workspaces, BF16 staging, BN folding, the
# fused-eval fallback, device pointers: the emulation reports a violation
# with a "# emu:" line and the program exits 1), not the GPU's arithmetic
# or speed: tests/gpu/run.sh does that on a device.
. "$(dirname "$0")/tap.sh"
TB=${TEST_BUILD:-build/tests}
export FERBENCH_CUDA_LIB="$PWD/$TB/libfbcuda_emu.so" CMOCKA_MESSAGE_OUTPUT=TAP
[ -f "$FERBENCH_CUDA_LIB" ] || { echo "Bail out! $FERBENCH_CUDA_LIB not built (make $TB/libfbcuda_emu.so)"; exit 1; }

# tap_run [--planted] DESCRIPTION COMMAND...: a TAP program, ok when it exits
# 0 with no "not ok" line, no emulation violation (--planted: the program
# plants violations and checks they are reported, so its "# emu:" lines are
# expected) and no sanitizer report; its failing lines (and the emulation's
# diagnostics) are shown otherwise.
tap_run() {
    emu='^# emu:'
    [ "$1" = --planted ] && emu='^Bail out' && shift
    d=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" = 0 ] && sane && ! grep -q -e '^not ok' -e "$emu" -e '^Bail out' "$T/out"; then
        ok "$d ($(grep -c '^ok' "$T/out") checks)"
    else
        nok "$d" "exit $rc" "$(grep -e '^not ok' -e '^# emu:' -e 'FAIL' -e '^Bail out' "$T/out" | head -n 20)" \
            "$(tail -n 5 "$T/err")"
    fi
}

for p in fp32 tf32 bf16; do
    tap_run "test_backend: every op on the emulated CUDA backend, $p" \
        env FB_TEST_DEVICE=cuda FB_TEST_PRECISION=$p "$TB/test_backend"
done
tap_run "test_backend: every op on the emulated CUDA backend, fp32 deterministic (heuristic algorithm choice)" \
    env FB_TEST_DEVICE=cuda FB_TEST_PRECISION=fp32 FB_TEST_DETERMINISTIC=1 "$TB/test_backend"
# Blocks last to first (the emulation runs them one at a time; a GPU, in any order and at once): two
# blocks that write one element, or one that reads another's output, give other results in one order.
tap_run "test_backend: every op on the emulated CUDA backend, fp32, blocks run last to first" \
    env FB_EMU_BLOCKS_REVERSED=1 FB_TEST_DEVICE=cuda FB_TEST_PRECISION=fp32 "$TB/test_backend"
tap_run --planted "test_kernels_emu: every kernel against its host reference, blocks run last to first" \
    env FB_EMU_BLOCKS_REVERSED=1 "$TB/test_kernels_emu"
# upload memory where the driver refuses page-locking: plain malloc, whose copies land after the call returns
tap_run "test_backend: uploads ahead with page-locked memory refused" \
    env FB_TEST_DEVICE=cuda FB_EMU_NO_PINNED=1 FB_TEST_ONLY=test_upload_ahead "$TB/test_backend"

tap_run "net_parity: fopm-tiny fp32, 3 steps, deterministic rerun bit-identical" \
    env FB_TEST_DEVICE=cuda FB_TEST_PRECISION=fp32 "$TB/net_parity" --config fopm-tiny --batch 2 --steps 3 --deterministic
for p in tf32 bf16; do
    tap_run "net_parity: fopm-tiny $p, 2 steps" \
        env FB_TEST_DEVICE=cuda FB_TEST_PRECISION=$p "$TB/net_parity" --config fopm-tiny --batch 2 --steps 2
done

# Upload memory: the bench's inputs come from host_alloc; with the driver
# refusing page-locked memory it falls back to malloc (and host_free knows).
# warm-up 2: the first pass of each kind runs directly, the second is recorded as a graph, the timed ones launch it
# Each step after the first takes inputs copied during the step before (prefetched: of 3 steps, 2 x;
# for training 2 x 4: x, the two targets and the labels).
if "$FB" bench --device cuda --config fopm-tiny --batch 2 --mode both --iters 1 --warmup 2 >"$T/bench" 2>"$T/err" &&
    grep -q '^bench .* mode=infer .* graphs=on graph_launches=[1-9][0-9]* prefetched=2 ' "$T/bench" &&
    grep -q '^bench .* mode=train .* graphs=on graph_launches=[1-9][0-9]* prefetched=8 ' "$T/bench" && sane 0; then
    ok "ferbench bench --device cuda, inference and a training step, replayed as graphs, inputs prefetched"
else
    nok "ferbench bench --device cuda with graphs" "$(cat "$T/bench")" "$(tail -n 5 "$T/err")"
fi
if "$FB" bench --device cuda --config fopm-tiny --batch 2 --mode infer --iters 1 --warmup 2 --graphs off >"$T/bench" \
    2>"$T/err" && grep -q '^bench .* graphs=none graph_launches=0 prefetched=[1-9]' "$T/bench" && sane 0; then
    ok "ferbench bench --device cuda --graphs off: op by op"
else
    nok "ferbench bench --device cuda --graphs off" "$(cat "$T/bench")" "$(tail -n 5 "$T/err")"
fi
check "ferbench bench --device cuda, page-locked memory refused (malloc instead)" env FB_EMU_NO_PINNED=1 "$FB" bench \
    --device cuda --config fopm-tiny --batch 2 --mode both --iters 1 --warmup 0

# The workflow: ferbench train and run with --device cuda, the same weights on the CPU.
check "fixture (80 faces) through masksynth" sh -c "'$MS' fixture --layout rafdb --n 80 --seed 5 '$T/raf' &&
    '$MS' init --dataset rafdb --root '$T/raf' --protocol '$T/raf/protocol.csv' --db '$T/d.sqlite' &&
    '$MS' --split all --db '$T/d.sqlite' --out '$T/masked' --threads 2"
# Training with CUDA graphs (validation between the epochs ends the repeats; the steps after it repeat
# again) and op by op: the same bytes (two copies of the database, so the runs get the same id).
cp "$T/d.sqlite" "$T/d_nog.sqlite"
cp "$T/d.sqlite" "$T/d_nopf.sqlite"
TRAIN="train --device cuda --config fopm-tiny --size 32 --epochs 2 --batch 8 --deterministic"
if "$FB" $TRAIN --db "$T/d.sqlite" --out "$T/run" >"$T/train" 2>"$T/err" && sane 0 &&
    grep -q 'graphs=on graph_launches=[1-9][0-9]* prefetched=[1-9]' "$T/train"; then
    ok "ferbench train --device cuda fopm-tiny (size 32), 2 epochs, steps replayed as graphs: $(grep -o 'graph_launches=[0-9]* prefetched=[0-9]*' "$T/train")"
else
    nok "ferbench train --device cuda with graphs" "$(cat "$T/train")" "$(tail -n 5 "$T/err")"
fi
check "ferbench train --device cuda --graphs off, the same" "$FB" $TRAIN --graphs off --db "$T/d_nog.sqlite" \
    --out "$T/run_nog"
if cmp "$T/run/last.ckpt.safetensors" "$T/run_nog/last.ckpt.safetensors" >/dev/null 2>&1 &&
    cmp "$T/run/best.safetensors" "$T/run_nog/best.safetensors" >/dev/null 2>&1; then
    ok "training with and without graphs: byte-identical checkpoints (weights, AdamW state)"
else
    nok "training with and without graphs: the checkpoints differ"
fi
# Each batch's copy to the device started during the step before (upload_ahead, on by default) or made
# at its turn: the same bytes. On the emulation a staged copy runs only when the step waits for it, so a
# missing wait would train on stale inputs.
if "$FB" $TRAIN --prefetch off --db "$T/d_nopf.sqlite" --out "$T/run_nopf" >"$T/train" 2>"$T/err" && sane 0 &&
    grep -q ' prefetched=0' "$T/train"; then
    ok "ferbench train --device cuda --prefetch off, the same: $(grep -o 'prefetched=[0-9]*' "$T/train")"
else
    nok "ferbench train --device cuda --prefetch off" "$(cat "$T/train")" "$(tail -n 5 "$T/err")"
fi
if cmp "$T/run/last.ckpt.safetensors" "$T/run_nopf/last.ckpt.safetensors" >/dev/null 2>&1 &&
    cmp "$T/run/best.safetensors" "$T/run_nopf/best.safetensors" >/dev/null 2>&1; then
    ok "training with and without prefetching: byte-identical checkpoints"
else
    nok "training with and without prefetching: the checkpoints differ"
fi
check "ferbench run --device cuda on the test split" "$FB" run --device cuda --weights "$T/run/best.safetensors" \
    --db "$T/d.sqlite" --split test --out "$T/gpu.csv"
check "ferbench run --device cpu, the same weights" "$FB" run --device cpu --weights "$T/run/best.safetensors" \
    --db "$T/d.sqlite" --split test --out "$T/cpu.csv"
# the same predicted labels, probabilities within 1e-5
d=$(awk -F, 'NR == FNR { if (FNR > 2) { p[FNR] = $3; for (i = 4; i <= NF; i++) v[FNR, i] = $i }; next }
    FNR > 2 { rows++; if ($3 != p[FNR]) bad++; for (i = 4; i <= NF; i++) { e = $i - v[FNR, i]; if (e < 0) e = -e; if (e > m) m = e } }
    END { printf "%d rows, %d labels differ, max |dp| %.3g", rows, bad, m; exit !(rows > 0 && bad == 0 && m <= 1e-5) }' \
    "$T/cpu.csv" "$T/gpu.csv") && ok "predictions on cuda and cpu agree: $d" || nok "predictions on cuda and cpu" "$d"
check "ferbench run --device cuda --prefetch off" "$FB" run --device cuda --prefetch off \
    --weights "$T/run/best.safetensors" --db "$T/d.sqlite" --split test --out "$T/gpu_nopf.csv"
# the predictions (after the two header lines, which carry the timing) are the same bytes
tail -n +3 "$T/gpu.csv" >"$T/a.rows" 2>/dev/null
tail -n +3 "$T/gpu_nopf.csv" >"$T/b.rows" 2>/dev/null
if [ -s "$T/a.rows" ] && cmp "$T/a.rows" "$T/b.rows" >/dev/null 2>&1; then
    ok "predictions with and without prefetching: the same bytes"
else
    nok "predictions with and without prefetching differ"
fi

echo "1..$n"
[ "$failed" = 0 ]
