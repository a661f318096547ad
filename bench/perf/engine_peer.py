#!/usr/bin/python3
"""engine_peer.py: the PyTorch side of bench/perf/engine.sh. Times the same
two workloads as `ferbench bench` on the project's PyTorch port
(interop/fopm.py) and prints the same line:

  bench device=cpu-pytorch threads=T config=C mode=M batch=N median_s=S
        ms_per_image=X images_per_s=Y peak_bytes=B

infer: model.eval() + torch.no_grad(), one forward of a seeded random batch.
train: model.train(), one step: zero_grad, forward,
  Lt = MSE(occ, occ_t) + 0.6 MSE(heat, heat_t) + 0.4 CE(logits, labels),
  backward, torch.optim.AdamW(lr 0.002, betas (0.9, 0.99), eps 1e-8,
  weight_decay 1e-4) step.
Inputs as speed.c draws them: x uniform in [-2, 2), occ_t and heat_t uniform
in [0, 1), labels uniform over the 7 classes (seeded, not the same numbers).
Median of --iters timed repetitions after --warmup untimed ones.
peak_bytes: the process's peak RSS (getrusage ru_maxrss, KiB on Linux).

  /usr/bin/python3 bench/perf/engine_peer.py --config fopm --batch 16 \
      --mode infer --iters 3 --warmup 1 --threads 2
"""

import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop"))
import fopm  # noqa: E402


def peak_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_mode(model, cfg, n, train, warmup, iters):
    size = fopm.CONFIGS[cfg][0]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, size, size, generator=g) * 4 - 2
    grid = size // 4  # G = S/4 (engine/model.h model_grid)
    occ_t = torch.rand(n, 1, grid, grid, generator=g)
    heat_t = torch.rand(n, fopm.LANDMARKS, grid, grid, generator=g)
    labels = torch.randint(0, fopm.CLASSES, (n,), generator=g)
    ts = []
    if train:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=0.002, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-4)
        for it in range(-warmup, iters):
            t0 = time.perf_counter()
            opt.zero_grad()
            logits, occ, heat = model(x)
            loss = (F.mse_loss(occ, occ_t) + 0.6 * F.mse_loss(heat, heat_t) +
                    0.4 * F.cross_entropy(logits, labels))
            loss.backward()
            opt.step()
            if it >= 0:
                ts.append(time.perf_counter() - t0)
        if not torch.isfinite(loss):
            raise RuntimeError("train: loss is not finite")
    else:
        model.eval()
        with torch.no_grad():
            for it in range(-warmup, iters):
                t0 = time.perf_counter()
                logits, occ, heat = model(x)
                if it >= 0:
                    ts.append(time.perf_counter() - t0)
    if occ.shape[-1] != grid:
        raise RuntimeError("occ is %s, expected a %dx%d grid" % (list(occ.shape), grid, grid))
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="fopm", choices=sorted(fopm.CONFIGS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mode", default="both", choices=("infer", "train", "both"))
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.batch < 1 or a.iters < 1 or a.warmup < 0 or a.threads < 1:
        ap.error("--batch, --iters and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = fopm.make(a.config)
    for train in (0, 1):
        if (a.mode == "infer" and train) or (a.mode == "train" and not train):
            continue
        med = time_mode(model, a.config, a.batch, train, a.warmup, a.iters)
        print("bench device=cpu-pytorch threads=%d config=%s mode=%s batch=%d median_s=%.6f ms_per_image=%.3f "
              "images_per_s=%.3f peak_bytes=%d" %
              (torch.get_num_threads(), a.config, "train" if train else "infer", a.batch, med,
               1000.0 * med / a.batch, a.batch / med, peak_bytes()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
