"""tap.py: the TAP plumbing shared by the Python tests (test_interop.py,
test_forward.py): numbered ok / not ok lines with diagnostics, skips, and the
closing plan check that turns the results into an exit code."""

import sys
import time

results = []


def check(ok, desc, diag=None):
    results.append(bool(ok))
    print("%s %d - %s" % ("ok" if ok else "not ok", len(results), desc))
    if not ok and diag:
        for line in str(diag).rstrip().splitlines():
            print("# " + line)
    sys.stdout.flush()


def skip(n, why):
    for _ in range(n):
        results.append(True)
        print("ok %d # SKIP %s" % (len(results), why))


def finish(plan, t0):
    """Summary line; 0 when every planned test ran and passed, else 1."""
    print("# %d tests, %.1f s" % (len(results), time.time() - t0))
    if len(results) != plan:
        print("# planned %d, ran %d" % (plan, len(results)))
        return 1
    return 0 if all(results) else 1
