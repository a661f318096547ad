#!/usr/bin/python3
"""Interop test: the C engine's parameter table and safetensors files against
the PyTorch port interop/fopm.py (TAP output, for prove).

For fopm and fopm-tiny:
  (a) parameter counts of the port equal MODEL.md's (and per module for fopm);
  (b) C writes weights -> the port loads them with strict=True (every name and
      shape matches the C table) and runs forward: finite logits [N,7],
      occ [N,1,G,G], heat [N,68,G,G] (fopm's forward skipped if > 10 s);
  (c) the port exports -> `write_weights --read` accepts the file, and values
      round-trip bit-exactly (C reads then writes; the port compares all);
  (d) a truncated file is refused by both sides.

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
WW = os.path.join(BUILD, "write_weights")
FOPM_PY = os.path.join("interop", "fopm.py")

EXPECT = {
    "fopm": (9927572, {"fopm": 1278400, "unet": 1956869, "effm": 2036104, "ferm": 4656199}),
    "fopm-tiny": (208100, None),
}
FORWARD_LIMIT_S = 10.0
PLAN = 29




def run(args):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def bits_equal(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.float32:
        return torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))
    return torch.equal(a, b)


def test_config(cfg, tmp):
    total, per = EXPECT[cfg]
    s, w = fopm.CONFIGS[cfg]
    G = s // 4

    # (a) counts
    torch.manual_seed(1)
    m = fopm.make(cfg)
    n = fopm.count_params(m)
    check(n == total, "%s: port has %d trainable parameters (MODEL.md %d)" % (cfg, n, total),
          "got %d" % n)
    if per:
        got = {k: fopm.count_params(getattr(m, k)) for k in per}
        check(got == per, "%s: per-module counts %s" % (cfg, per), "got %s" % got)

    # (b) C writes -> PyTorch loads strictly and runs forward
    cfile = os.path.join(tmp, cfg + "-c.safetensors")
    r = run([WW, cfg, "7", cfile])
    check(r.returncode == 0, "%s: write_weights writes C-initialised weights" % cfg, r.stderr)
    sd_c = None
    try:
        sd_c = fopm.load(cfile)
        m2 = fopm.make(cfg)
        fopm.load_into(m2, sd_c)
        ok, diag = True, ""
    except Exception as e:  # noqa: BLE001
        ok, diag = False, repr(e)
    check(ok, "%s: port loads the C file with strict=True" % cfg, diag)
    if ok:
        names_c = list(sd_c.keys())
        names_p = [k for k in m2.state_dict() if not k.endswith(".num_batches_tracked")]
        check(names_c == names_p, "%s: C table order = port state_dict order (%d tensors)"
              % (cfg, len(names_c)),
              "first difference: %r" % (next(((a, b) for a, b in zip(names_c, names_p) if a != b),
                                            (len(names_c), len(names_p))),))
        sd2 = m2.state_dict()
        same = all(bits_equal(sd2[k], v) for k, v in sd_c.items())
        check(same, "%s: loaded values equal the file's bit-exactly" % cfg)
        m2.eval()
        N = 2 if cfg == "fopm-tiny" else 1
        x = torch.randn(N, 3, s, s, generator=torch.Generator().manual_seed(3))
        t0 = time.time()
        with torch.no_grad():
            logits, occ, heat = m2(x)
        dt = time.time() - t0
        print("# %s forward N=%d: %.2f s" % (cfg, N, dt))
        shapes_ok = (list(logits.shape) == [N, 7] and list(occ.shape) == [N, 1, G, G] and
                     list(heat.shape) == [N, 68, G, G])
        finite = all(bool(torch.isfinite(t).all()) for t in (logits, occ, heat))
        occ_ok = bool(((occ >= 0) & (occ <= 1)).all())
        if dt > FORWARD_LIMIT_S and cfg == "fopm":
            skip(1, "%s: forward took %.1f s > %.0f s" % (cfg, dt, FORWARD_LIMIT_S))
        else:
            check(shapes_ok and finite and occ_ok,
                  "%s: forward shapes logits %s occ %s heat %s, finite, occ in [0,1]"
                  % (cfg, list(logits.shape), list(occ.shape), list(heat.shape)))
    else:
        for _ in range(3):
            check(False, "%s: (skipped, load failed)" % cfg)

    # (c) PyTorch exports -> C accepts; values round-trip bit-exactly
    pfile = os.path.join(tmp, cfg + "-py.safetensors")
    r = run([sys.executable, FOPM_PY, "export", "--config", cfg, "--seed", "0", pfile])
    check(r.returncode == 0, "%s: fopm.py export" % cfg, r.stderr)
    r = run([WW, "--read", cfg, pfile])
    check(r.returncode == 0 and r.stdout.startswith("ok "),
          "%s: C reader accepts the PyTorch export (%s)" % (cfg, r.stdout.strip()), r.stderr)
    # round trip with non-trivial BN running stats too
    torch.manual_seed(11)
    m3 = fopm.make(cfg)
    with torch.no_grad():
        for k, v in m3.state_dict().items():
            if k.endswith("running_mean"):
                v.normal_()
            elif k.endswith("running_var"):
                v.uniform_(0.5, 2.0)
            elif k.endswith("num_batches_tracked"):
                v.fill_(5)
    sd3 = m3.state_dict()
    src = os.path.join(tmp, cfg + "-py2.safetensors")
    back = os.path.join(tmp, cfg + "-back.safetensors")
    fopm.save(src, sd3)
    r = run([WW, "--read", cfg, src, back])
    check(r.returncode == 0, "%s: C reads the export and writes it back" % cfg, r.stderr)
    if r.returncode == 0:
        sdb = fopm.load(back)
        want = {k: v for k, v in sd3.items() if not k.endswith(".num_batches_tracked")}
        bad = [k for k in want if k not in sdb or not bits_equal(want[k], sdb[k])]
        extra = [k for k in sdb if k not in want]
        check(not bad and not extra,
              "%s: all %d tensors round-trip PyTorch -> C -> PyTorch bit-exactly" % (cfg, len(want)),
              "differ: %s extra: %s" % (bad[:5], extra[:5]))
    else:
        check(False, "%s: round trip (C write-back failed)" % cfg)

    # (d) truncated file refused by both sides
    trunc = os.path.join(tmp, cfg + "-trunc.safetensors")
    with open(cfile, "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[:len(data) - 4])
    r = run([WW, "--read", cfg, trunc])
    check(r.returncode == 2 and r.stderr.strip(), "%s: C refuses a truncated file (%s)"
          % (cfg, r.stderr.strip()[:100]), "rc %d" % r.returncode)
    try:
        fopm.load(trunc)
        ok, msg = False, "accepted"
    except fopm.SafetensorsError as e:
        ok, msg = True, str(e)
    check(ok, "%s: fopm.load refuses a truncated file (%s)" % (cfg, msg[-80:]))
    r = run([sys.executable, FOPM_PY, "check", "--config", cfg, trunc])
    check(r.returncode == 2, "%s: fopm.py check exits 2 on a truncated file" % cfg,
          "rc %d %s" % (r.returncode, r.stderr))


def test_common(tmp):
    # malformed headers are refused by the Python reader
    import struct
    cases = {
        "short": b"\x01\x00",
        "huge-len": struct.pack("<Q", 1 << 40) + b"{}",
        "not-json": struct.pack("<Q", 4) + b"{x}}",
        "dup-key": struct.pack("<Q", 15) + b'{"a":{},"a":{}}',
        "gap": None,
    }
    hdr = b'{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
    cases["gap"] = struct.pack("<Q", len(hdr)) + hdr + b"\0" * 8
    refused = []
    for name, blob in cases.items():
        p = os.path.join(tmp, "bad-" + name)
        with open(p, "wb") as f:
            f.write(blob)
        try:
            fopm.load(p)
        except fopm.SafetensorsError:
            refused.append(name)
    check(len(refused) == len(cases), "fopm.load refuses malformed headers (%s)" % ", ".join(refused))
    check(fopm.ch(64, 0.125) == 8 and fopm.ch(224, 0.125) == 32 and fopm.ch(100, 1.0) == 104
          and fopm.ch(20, 1.0) == 24, "ch() rounds half up (floor(x + 0.5))")


def main():
    if not os.access(WW, os.X_OK):
        print("1..0 # SKIP %s not built" % WW)
        return 0
    t0 = time.time()
    print("1..%d" % PLAN)
    with tempfile.TemporaryDirectory(prefix="test_interop.") as tmp:
        test_common(tmp)
        for cfg in ("fopm-tiny", "fopm"):
            test_config(cfg, tmp)
    return finish(PLAN, t0)


if __name__ == "__main__":
    sys.exit(main())
