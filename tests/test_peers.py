#!/usr/bin/python3
"""Peer test: the PyTorch benchmark scripts the ratios are taken against
(bench/perf/gpu_peer.py, the GPU run's peer; bench/perf/engine_peer.py,
`make bench`'s CPU peer) run, print the `bench ...` lines that
tests/gpu/run.sh and bench/perf/engine.sh read, and refuse bad options
with exit 2. gpu_peer.py runs with --device cpu here (its times mean
nothing; the point is that the script the device run depends on works
before a GPU is lent). TAP output.

Needs torch for /usr/bin/python3. Exit 0 when every test passes, 1 otherwise.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.getcwd(), "tests"))

from tap import check, finish  # noqa: E402

GPU_PEER = "bench/perf/gpu_peer.py"
ENGINE_PEER = "bench/perf/engine_peer.py"
TINY = ["--config", "fopm-tiny", "--iters", "2", "--warmup", "1"]
PLAN = 11


def run(script, *args):
    p = subprocess.run([sys.executable, script] + list(args), capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def bench_lines(out):
    """The `bench` lines of out as dicts (key=value fields; gpu="..." unquoted)."""
    rows = []
    for line in out.splitlines():
        if not line.startswith("bench "):
            continue
        fields = {}
        for tok in line[len("bench "):].split():
            k, _, v = tok.partition("=")
            fields[k] = v.strip('"')
        rows.append(fields)
    return rows


def consistent(row):
    """The numbers of one line agree with each other and are positive."""
    n, s = int(row["batch"]), float(row["median_s"])
    ms, ips = float(row["ms_per_image"]), float(row["images_per_s"])
    return s > 0 and abs(ms - 1000 * s / n) <= 1e-3 + 1e-3 * ms and abs(ips - n / s) <= 1e-3 * ips + 1e-2


def expect_lines(desc, rc, out, err, want):
    """want: the (device, precision, mode, batch, inputs) of each line, in order."""
    rows = bench_lines(out)
    got = [(r.get("device"), r.get("precision"), r.get("mode"), r.get("batch"), r.get("inputs")) for r in rows]
    ok = rc == 0 and got == want and all(consistent(r) and r.get("config") == "fopm-tiny" for r in rows)
    check(ok, desc, "exit %d\nwant %s\ngot  %s\n%s%s" % (rc, want, got, out, err[-2000:]))


def main():
    t0 = time.time()
    print("1..%d" % PLAN)
    rc, out, err = run(GPU_PEER, "--device", "cpu", "--batch", "2,3", "--mode", "both", "--precision", "fp32", *TINY)
    expect_lines("gpu_peer.py --device cpu fp32: infer and train lines at batches 2 and 3", rc, out, err,
                 [("cpu-pytorch", "fp32", m, b, "host") for m in ("infer", "train") for b in ("2", "3")])
    rows = bench_lines(out)
    check(rows and all(r.get("peak_bytes") == "0" and r.get("gpu") == "cpu" for r in rows),
          "gpu_peer.py --device cpu: gpu=\"cpu\", peak_bytes=0 (no GPU memory measured)", out)

    rc, out, err = run(GPU_PEER, "--device", "cpu", "--batch", "2", "--mode", "both", "--precision", "bf16", *TINY)
    expect_lines("gpu_peer.py --device cpu bf16 (autocast): both modes", rc, out, err,
                 [("cpu-pytorch", "bf16", "infer", "2", "host"), ("cpu-pytorch", "bf16", "train", "2", "host")])

    rc, out, err = run(GPU_PEER, "--device", "cpu", "--batch", "2", "--mode", "train", "--precision", "tf32",
                       "--inputs", "gpu", *TINY)
    expect_lines("gpu_peer.py --inputs gpu: labelled -resident, inputs=gpu", rc, out, err,
                 [("cpu-pytorch-resident", "tf32", "train", "2", "gpu")])

    # torch.compile: a line where it works (torch 2), else one '# torch.compile unavailable' note and exit 0
    rc, out, err = run(GPU_PEER, "--device", "cpu", "--batch", "2", "--mode", "infer", "--compile", *TINY)
    rows = bench_lines(out)
    unavailable = [l for l in out.splitlines() if l.startswith("# torch.compile unavailable: ")]
    check(rc == 0 and ((len(unavailable) == 1 and not rows) or
                       (not unavailable and [r.get("device") for r in rows] == ["cpu-pytorch-compile"])),
          "gpu_peer.py --compile: a compiled line, or one 'unavailable' note with exit 0 (torch %s)" %
          subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                         text=True).stdout.strip(), "exit %d\n%s%s" % (rc, out, err[-2000:]))

    for args, what in ((["--batch", "0"], "--batch"), (["--batch", "2,,4"], "--batch"),
                       (["--device", "tpu"], "--device"), (["--iters", "0"], "--iters")):
        rc, out, err = run(GPU_PEER, "--device", "cpu", "--config", "fopm-tiny", *args)
        check(rc == 2 and what in err and not bench_lines(out),
              "gpu_peer.py %s: exit 2, the option named on stderr" % " ".join(args), "exit %d\n%s%s" % (rc, out, err))

    rc, out, err = run(ENGINE_PEER, "--batch", "2", "--mode", "both", "--threads", "1", *TINY)
    rows = bench_lines(out)
    check(rc == 0 and [(r.get("device"), r.get("mode"), r.get("threads")) for r in rows] ==
          [("cpu-pytorch", "infer", "1"), ("cpu-pytorch", "train", "1")] and all(consistent(r) for r in rows) and
          all(int(r["peak_bytes"]) > 0 for r in rows),
          "engine_peer.py: infer and train lines with threads=1 and a peak RSS", "exit %d\n%s%s" % (rc, out, err))

    rc, out, err = run(ENGINE_PEER, "--batch", "0", "--config", "fopm-tiny")
    check(rc == 2 and "--batch" in err and not bench_lines(out), "engine_peer.py --batch 0: exit 2, the option named",
          "exit %d\n%s%s" % (rc, out, err))

    return finish(PLAN, t0)


if __name__ == "__main__":
    sys.exit(main())
