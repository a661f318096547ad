#!/usr/bin/python3
"""Forward test: the C engine's eval-mode forward (engine/net.c, driven by
tests/forward_dump) against the PyTorch port interop/fopm.py (TAP output).

For fopm-tiny and fopm: forward_dump writes seeded weights (with non-trivial
BN running statistics), a seeded input batch (N=2) and its logits / occ /
heat; the port loads the weights strictly (eval mode), runs the same input,
and each output must agree: max abs error <= RTOL * max|reference| (RTOL
1e-4). fopm is skipped when forward_dump alone runs longer than FOPM_LIMIT_S.

Env: TEST_BUILD (default build/tests), relative to the repository root (cwd).
Needs torch for /usr/bin/python3. Exit 0 when every test passes, 1 otherwise.
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.getcwd(), "interop"))

import torch  # noqa: E402

import fopm  # noqa: E402

sys.path.insert(0, os.path.join(os.getcwd(), "tests"))

from tap import check, finish, skip  # noqa: E402

BUILD = os.environ.get("TEST_BUILD", "build/tests")
FD = os.path.join(BUILD, "forward_dump")
RTOL = 1e-4
N = 2
SEED = 7
FOPM_LIMIT_S = 20.0
PER_CONFIG = 5
CONFIGS = ("fopm-tiny", "fopm")
PLAN = PER_CONFIG * len(CONFIGS)





def read_raw(path):
    with open(path, "rb") as f:
        data = f.read()
    return torch.frombuffer(bytearray(data), dtype=torch.float32)


def test_config(cfg, tmp):
    s, _ = fopm.CONFIGS[cfg]
    G = s // 4
    wf, xf, yf = (os.path.join(tmp, "%s.%s" % (cfg, e)) for e in ("safetensors", "in", "out"))
    t0 = time.time()
    r = subprocess.run([FD, cfg, str(SEED), wf, xf, yf], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    dt_c = time.time() - t0
    check(r.returncode == 0, "%s: forward_dump runs (%.2f s)" % (cfg, dt_c), r.stderr)
    if r.returncode != 0:
        skip(PER_CONFIG - 1, "forward_dump failed")
        return
    try:
        m = fopm.make(cfg)
        fopm.load_into(m, fopm.load(wf))
        m.eval()
        x = read_raw(xf).reshape(N, 3, s, s)
        out = read_raw(yf)
        ok, diag = out.numel() == N * (7 + G * G + 68 * G * G), "output has %d floats" % out.numel()
    except Exception as e:  # noqa: BLE001
        ok, diag = False, repr(e)
    check(ok, "%s: port loads the C weights (strict) and the C input/output" % cfg, diag)
    if not ok:
        skip(3, "load failed")
        return
    t0 = time.time()
    with torch.no_grad():
        ref = m(x)
    print("# %s PyTorch forward N=%d: %.2f s" % (cfg, N, time.time() - t0))
    sizes = [N * 7, N * G * G, N * 68 * G * G]
    got = torch.split(out, sizes)
    for name, a, b in zip(("logits", "occ", "heat"), got, ref):
        b = b.reshape(-1).double()
        a = a.double()
        err = (a - b).abs()
        scale = float(b.abs().max())
        mabs = float(err.max())
        rel = mabs / scale if scale > 0 else float("inf")
        elem = float((err / b.abs().clamp_min(1e-30)).max())
        finite = bool(torch.isfinite(a).all())
        check(finite and rel <= RTOL,
              "%s: %s max abs err %.3g, rel to max|ref| (%.3g) %.3g <= rtol %g (max elementwise rel %.3g)"
              % (cfg, name, mabs, scale, rel, RTOL, elem),
              "finite=%s" % finite)


def main():
    if not os.access(FD, os.X_OK):
        print("1..0 # SKIP %s not built" % FD)
        return 0
    t0 = time.time()
    print("1..%d" % PLAN)
    with tempfile.TemporaryDirectory(prefix="test_forward.") as tmp:
        for cfg in CONFIGS:
            if cfg == "fopm" and time.time() - t0 > FOPM_LIMIT_S:
                skip(PER_CONFIG, "fopm: time budget spent")
                continue
            test_config(cfg, tmp)
    return finish(PLAN, t0)


if __name__ == "__main__":
    sys.exit(main())
