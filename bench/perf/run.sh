#!/bin/sh
# make bench: ferstats metrics on 1,000,000 predictions vs pandas + scikit-learn.
# Run from the repository root after `make all`. A report: exits 0 even when
# the target is missed (non-zero only if the bench itself cannot run).
# Environment: PYTHON (default /usr/bin/python3, Debian's, which has numpy,
# pandas and scikit-learn), BENCH_ROWS, BENCH_REPS, BENCH_BUDGET_S, FERSTATS:
# see bench/perf/bench_metrics.py.
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
if [ ! -x "${FERSTATS:-bin/ferstats}" ]; then
    echo "bench: ${FERSTATS:-bin/ferstats} not built; run 'make all' first" >&2
    exit 2
fi
if ! "$PYTHON" -c 'import numpy, pandas, sklearn' 2>/dev/null; then
    echo "bench: $PYTHON lacks numpy/pandas/scikit-learn; run 'make deps' or set PYTHON" >&2
    exit 2
fi
"$PYTHON" bench/perf/bench_metrics.py
sh bench/perf/ingest.sh
sh bench/perf/render.sh
sh bench/perf/engine.sh
sh bench/perf/report.sh
