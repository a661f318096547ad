#!/bin/sh
# Runs the whole suite under prove, the TAP harness: the cmocka unit tests
# (TAP output), the CLI and malformed-input tests, the fuzz corpora (every
# saved input of tests/fuzz/corpus/ replayed once), and the scikit-learn /
# statsmodels oracle. prove's last line is the summary ("Result: PASS|FAIL").
#   FERBENCH_BIN  folder of the tools under test (bin, or build/asan/bin)
#   TEST_BUILD    folder of the compiled unit tests
set -u
: "${FERBENCH_BIN:=bin}"
: "${TEST_BUILD:=build/tests}"
export FERBENCH_BIN CMOCKA_MESSAGE_OUTPUT=TAP
exec prove --timer \
    "$TEST_BUILD/test_csv" \
    "$TEST_BUILD/test_stats" \
    "$TEST_BUILD/test_db" \
    "$TEST_BUILD/test_image" \
    "$TEST_BUILD/test_fixture" \
    "$TEST_BUILD/test_masksynth" \
    "$TEST_BUILD/test_mask" \
    "$TEST_BUILD/test_landmarks" \
    "$TEST_BUILD/test_render_inputs" \
    "$TEST_BUILD/test_engine" \
    "$TEST_BUILD/test_ops_conv" \
    "$TEST_BUILD/test_ops_misc" \
    "$TEST_BUILD/test_ops_threads" \
    "$TEST_BUILD/test_data" \
    "$TEST_BUILD/test_backend" \
    "$TEST_BUILD/test_kernels_emu" \
    "$TEST_BUILD/net_parity" \
    tests/test_backend_emu.sh \
    "$TEST_BUILD/fuzz_csv" \
    "$TEST_BUILD/fuzz_preds" \
    "$TEST_BUILD/fuzz_image" \
    "$TEST_BUILD/fuzz_safetensors" \
    "$TEST_BUILD/fuzz_ingest" \
    "$TEST_BUILD/fuzz_manifest" \
    "$TEST_BUILD/fuzz_protocol" \
    "$TEST_BUILD/fuzz_import" \
    tests/net_parity_staged.sh \
    tests/test_masksynth_cli.sh \
    tests/test_render.sh \
    tests/test_cli.sh \
    tests/test_import.sh \
    tests/test_oracle.py \
    tests/test_interop.py \
    tests/test_forward.py \
    tests/test_train.py \
    tests/test_peers.py \
    tests/test_report.sh \
    tests/test_train_e2e.sh
