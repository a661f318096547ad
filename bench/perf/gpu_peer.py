#!/usr/bin/python3
"""gpu_peer.py: the PyTorch peer of `ferbench bench --device cuda`. Times the
same two workloads as the C engine's GPU bench on the project's PyTorch port
(interop/fopm.py) on a CUDA GPU and prints one line per (mode, batch):

  bench device=cuda-pytorch[-compile] gpu="NAME" precision=P config=C mode=M
        batch=N median_s=S ms_per_image=X images_per_s=Y peak_bytes=B

infer: model.eval() + torch.inference_mode() (torch.no_grad() under
  --compile), one forward of a seeded random batch.
train: model.train(), one step: zero_grad(set_to_none=True), forward,
  Lt = MSE(occ, occ_t) + 0.6 MSE(heat, heat_t) + 0.4 CE(logits, labels),
  backward, torch.optim.AdamW(lr 0.002, betas (0.9, 0.99), eps 1e-8,
  weight_decay 1e-4) step (PyTorch's default implementation for CUDA).
Inputs as speed.c draws them: x uniform in [-2, 2), occ_t and heat_t uniform
in [0, 1), labels uniform over the 7 classes (seeded, not the same numbers).
The model is rebuilt (seed 1) for every (mode, batch).
--inputs host (the default): the step does what a ferbench step does, so the
  two are timed on the same work: the inputs start in page-locked host memory
  (as ferbench's loader batches and DataLoader(pin_memory=True)'s) and are
  copied to the GPU inside the timed step (x; for train also occ_t, heat_t
  and the labels), and the step ends with its results back
  on the host (infer: the logits; train: the three loss terms, fetched after
  the forward as ferbench's net_loss does, before the backward).
--inputs gpu: the inputs are made on the GPU once and nothing is copied: the
  model alone (the copies of x cost about 0.4 ms per 16 images at fopm).
precision: fp32: TF32 off for matmul and cuDNN; tf32: TF32 on for both;
  bf16: fp32 weights, forward under torch.autocast("cuda", bfloat16), TF32 on,
  loss (train) in fp32 on the .float() outputs, outside autocast.
torch.backends.cudnn.benchmark = True throughout (algorithm search, like the
engine's cached cuDNN Find); the warmup iterations absorb it.
--compile: torch.compile(model) (default mode), torch._dynamo.reset() before
  every (mode, batch) so each batch size gets its own static graph; warmup is
  at least 3 to cover compilation. If compilation fails (no triton, ...) the
  script prints `# torch.compile unavailable: REASON` and exits 0.
Timing: the stream is synchronised before each iteration, CUDA events are
recorded around it (so a time includes any host launch gaps); median of
--iters timed iterations after --warmup untimed ones.
peak_bytes: torch.cuda.max_memory_allocated() over the timed iterations of
each (mode, batch), torch.cuda.reset_peak_memory_stats() being called after
its warmup (so cuDNN's algorithm-search workspaces and compilation are left
out): the weights, inputs, activations, gradients and AdamW state, in
caching-allocator bytes in use (not reserved, not the CUDA context).
Everything is freed (del, torch.cuda.empty_cache()) between batches.
Exit 2 (message on stderr) when CUDA is not available.
--device cpu runs the same code on the CPU, for checking the script where
there is no GPU (the test suite, tests/gpu/run.sh's DRYRUN): no page-locked
inputs, bf16 under torch.autocast("cpu"), wall-clock times
(time.perf_counter) and peak_bytes 0; its times say nothing about a GPU.
Lines are labelled cpu-pytorch[-compile][-resident] then.

  /usr/bin/python3 bench/perf/gpu_peer.py --config fopm --batch 16,64,256 \\
      --mode both --precision tf32 --iters 20 --warmup 5
  /usr/bin/python3 bench/perf/gpu_peer.py --config fopm --batch 64 \\
      --mode train --precision bf16 --compile
"""

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop"))
import fopm  # noqa: E402

COMPILE_MIN_WARMUP = 3


class CompileUnavailable(Exception):
    pass


def parse_batches(s):
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            raise ValueError("empty batch size in %r" % (s,))
        n = int(part)
        if n < 1:
            raise ValueError("batch size %d: must be >= 1" % n)
        out.append(n)
    return out


def set_precision(precision):
    tf32 = precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def autocast_ctx(precision, device):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def is_cuda(device):
    return device.type == "cuda"


def sync(device):
    if is_cuda(device):
        torch.cuda.synchronize(device)


class Stopwatch:
    """One iteration's time: CUDA events on the GPU (read after a final
    synchronisation), time.perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = is_cuda(device)
        if self.cuda:
            self.start_ev = torch.cuda.Event(enable_timing=True)
            self.end_ev = torch.cuda.Event(enable_timing=True)

    def start(self):
        if self.cuda:
            self.start_ev.record()
        else:
            self.t0 = time.perf_counter()

    def stop(self):
        if self.cuda:
            self.end_ev.record()
        else:
            self.t1 = time.perf_counter()

    def seconds(self):
        return self.start_ev.elapsed_time(self.end_ev) / 1000.0 if self.cuda else self.t1 - self.t0


def make_inputs(cfg, n, device):
    """The four inputs on `device` (cuda, or cpu for --inputs host)."""
    size = fopm.CONFIGS[cfg][0]
    grid = size // 4  # G = S/4 (engine/model.h model_grid)
    g = torch.Generator(device=device)
    g.manual_seed(1)
    x = torch.rand(n, 3, size, size, generator=g, device=device) * 4 - 2
    occ_t = torch.rand(n, 1, grid, grid, generator=g, device=device)
    heat_t = torch.rand(n, fopm.LANDMARKS, grid, grid, generator=g, device=device)
    labels = torch.randint(0, fopm.CLASSES, (n,), generator=g, device=device)
    return x, occ_t, heat_t, labels, grid


def make_infer_step(net, x, precision, compiled, device, host_io):
    # inference_mode for eager; no_grad under torch.compile, whose graphs do
    # not mix well with inference tensors in some 2.x releases.
    grad_ctx = torch.no_grad if compiled else torch.inference_mode

    def step():
        with grad_ctx():
            xd = x.to(device, non_blocking=True) if host_io else x
            with autocast_ctx(precision, device):
                out = net(xd)
            if host_io:
                out[0].float().cpu()  # the logits back, as ferbench's net_logits
            return out
    return step


def make_train_step(net, params, inputs, precision, device, host_io):
    opt = torch.optim.AdamW(params, lr=0.002, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-4)

    def step():
        x, occ_t, heat_t, labels = (t.to(device, non_blocking=True) for t in inputs) if host_io else inputs
        opt.zero_grad(set_to_none=True)
        with autocast_ctx(precision, device):
            logits, occ, heat = net(x)
        logits, occ, heat = logits.float(), occ.float(), heat.float()
        lp, lm, ld = F.mse_loss(occ, occ_t), F.mse_loss(heat, heat_t), F.cross_entropy(logits, labels)
        if host_io:
            torch.stack([lp, lm, ld]).detach().cpu()  # the loss terms back, as ferbench's net_loss
        loss = lp + 0.6 * lm + 0.4 * ld
        loss.backward()
        opt.step()
        return loss, occ
    return step, opt


def is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e)


def time_mode(cfg, n, train, precision, compile_, warmup, iters, device, host_io):
    """Returns (median seconds, peak bytes) for one (mode, batch)."""
    torch.manual_seed(1)
    model = fopm.make(cfg).to(device)
    if train:
        model.train()
    else:
        model.eval()
    net = model
    if compile_:
        if hasattr(torch, "_dynamo"):
            torch._dynamo.reset()
        try:
            net = torch.compile(model)
        except Exception as e:  # torch.compile missing or refusing
            raise CompileUnavailable(e)
        warmup = max(warmup, COMPILE_MIN_WARMUP)
    x, occ_t, heat_t, labels, grid = make_inputs(cfg, n, torch.device("cpu") if host_io else device)
    if host_io and is_cuda(device):
        x, occ_t, heat_t, labels = (t.pin_memory() for t in (x, occ_t, heat_t, labels))
    opt = None
    if train:
        step, opt = make_train_step(net, model.parameters(), (x, occ_t, heat_t, labels), precision, device, host_io)
    else:
        step = make_infer_step(net, x, precision, compile_, device, host_io)
    watches = []
    out = None
    for it in range(-warmup, iters):
        sync(device)
        if it == 0 and is_cuda(device):
            # after the warmup: not cudnn.benchmark's trial workspaces nor
            # compilation, but weights, inputs, AdamW state and the step itself
            torch.cuda.reset_peak_memory_stats(device)
        watch = Stopwatch(device)
        watch.start()
        if compile_ and it == -warmup:
            # the first call compiles (forward; backward on its first use)
            try:
                out = step()
                sync(device)
            except Exception as e:
                if is_oom(e):
                    raise
                raise CompileUnavailable(e)
        else:
            out = step()
        watch.stop()
        if it >= 0:
            watches.append(watch)
    sync(device)
    ts = [w.seconds() for w in watches]
    peak = torch.cuda.max_memory_allocated(device) if is_cuda(device) else 0
    if train:
        loss, occ = out
        if not bool(torch.isfinite(loss)):
            raise RuntimeError("train: loss is not finite")
    else:
        occ = out[1]
    if occ.shape[-1] != grid:
        raise RuntimeError("occ is %s, expected a %dx%d grid" % (list(occ.shape), grid, grid))
    del out, occ, step, opt, x, occ_t, heat_t, labels, net, model, watches
    if train:
        del loss
    gc.collect()
    if is_cuda(device):
        torch.cuda.empty_cache()
    return statistics.median(ts), peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="fopm", choices=sorted(fopm.CONFIGS))
    ap.add_argument("--batch", default="16", help="batch size(s), comma-separated, e.g. 16,64,256")
    ap.add_argument("--mode", default="both", choices=("infer", "train", "both"))
    ap.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    ap.add_argument("--compile", action="store_true", help="torch.compile(model), default mode")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda:0", help="cuda, cuda:N, or cpu (to check the script alone)")
    ap.add_argument("--inputs", default="host", choices=("host", "gpu"),
                    help="host: copy inputs in and results out inside each step, as ferbench does (default)")
    a = ap.parse_args()
    try:
        batches = parse_batches(a.batch)
    except ValueError as e:
        ap.error("--batch: %s" % e)
    if a.iters < 1 or a.warmup < 0:
        ap.error("--iters must be >= 1, --warmup >= 0")
    try:
        device = torch.device(a.device)
    except RuntimeError as e:
        ap.error("--device: %s" % e)
    if device.type not in ("cuda", "cpu"):
        ap.error("--device %s: must be cuda, cuda:N or cpu" % a.device)
    if is_cuda(device):
        if not torch.cuda.is_available():
            print("gpu_peer: CUDA is not available (torch %s)" % torch.__version__, file=sys.stderr)
            return 2
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device.index >= torch.cuda.device_count():
            ap.error("--device %s: only %d CUDA device(s)" % (a.device, torch.cuda.device_count()))
        torch.cuda.set_device(device)
        set_precision(a.precision)
        gpu = torch.cuda.get_device_name(device).replace('"', "'")
    else:
        gpu = "cpu"
    label = device.type + ("-pytorch-compile" if a.compile else "-pytorch")
    if a.inputs == "gpu":
        label += "-resident"  # not the same work as ferbench's step: kept apart in the tables
    for train in (0, 1):
        if (a.mode == "infer" and train) or (a.mode == "train" and not train):
            continue
        for n in batches:
            try:
                med, peak = time_mode(a.config, n, train, a.precision, a.compile, a.warmup, a.iters, device,
                                      a.inputs == "host")
            except CompileUnavailable as e:
                reason = " ".join(str(e.args[0] if e.args else e).split()) or type(e).__name__
                if e.args and isinstance(e.args[0], BaseException):
                    reason = "%s: %s" % (type(e.args[0]).__name__, reason)
                print("# torch.compile unavailable: %s" % reason[:300], flush=True)
                return 0
            print('bench device=%s gpu="%s" precision=%s config=%s mode=%s batch=%d median_s=%.6f '
                  "ms_per_image=%.3f images_per_s=%.3f peak_bytes=%d inputs=%s" %
                  (label, gpu, a.precision, a.config, "train" if train else "infer", n, med,
                   1000.0 * med / n, n / med, peak, a.inputs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
