#!/usr/bin/python3
"""PyTorch port of the benchmark's network (shared/design/MODEL.md, arch `fopm`),
plus a pure-Python safetensors reader/writer (no pip packages: json, struct,
torch.frombuffer).

state_dict() names are exactly MODEL.md's / engine/model.c's, so weights
written by the C engine load here with strict=True and vice versa.

CLI:
  python3 interop/fopm.py export --config fopm-tiny --seed 0 OUT.safetensors
  python3 interop/fopm.py check  --config fopm-tiny FILE
Exit 0 on success, 2 on a bad file or bad arguments.
"""

import argparse
import json
import math
import os
import struct
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {"fopm": (224, 1.0), "fopm-tiny": (64, 0.125)}
CLASSES = 7
LANDMARKS = 68
GEO = 128


def ch(c, w):
    """ch(c) = max(8, floor(c*w/8 + 0.5) * 8) (floor(x + 0.5), not round())."""
    return max(8, int(math.floor(c * w / 8.0 + 0.5)) * 8)


class CBR(nn.Module):
    """conv(k, stride s, padding k/2, no bias) -> BN(eps 1e-5, momentum 0.1) -> ReLU."""

    def __init__(self, cin, cout, k, s=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class ResBlock(nn.Module):
    """y = relu(x + bn2(conv2(relu(bn1(conv1(x))))))."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class PG(nn.Module):
    def __init__(self, c256, c128):
        super().__init__()
        self.feat = CBR(c256, c128, 3)
        self.att = nn.Conv2d(c128 + 1, 1, 1, bias=True)


class FRN(nn.Module):
    def __init__(self, c128):
        super().__init__()
        self.fc1 = nn.Linear(c128, c128)
        self.fc2 = nn.Linear(c128, c128)


class FOPMStem(nn.Module):
    def __init__(self, c64, c128, c256, c512):
        super().__init__()
        self.g1 = nn.Sequential(CBR(3, c64, 3, 2), CBR(c64, c64, 3))
        self.g2 = nn.Sequential(CBR(c64, c128, 3), CBR(c128, c128, 3))
        self.g3 = nn.Sequential(CBR(c128, c256, 3), CBR(c256, c256, 3), CBR(c256, c512, 1))

    def forward(self, x):
        x = self.g2(self.g1(x))
        x = F.max_pool2d(x, 2, 2)
        return self.g3(x)


class UNet(nn.Module):
    def __init__(self, c64, c128, c256, c512):
        super().__init__()
        self.inp = CBR(c512, c64, 1)
        self.enc1 = nn.Sequential(CBR(c64, c64, 3), CBR(c64, c64, 3))
        self.enc2 = nn.Sequential(CBR(c64, c128, 3), CBR(c128, c128, 3))
        self.mid = nn.Sequential(CBR(c128, c256, 3), CBR(c256, c256, 3))
        self.dec2 = nn.Sequential(CBR(c256 + c128, c128, 3), CBR(c128, c128, 3))
        self.dec1 = nn.Sequential(CBR(c128 + c64, c64, 3), CBR(c64, c64, 3))
        self.occ = nn.Conv2d(c64, 1, 1, bias=True)
        self.lmk = nn.Conv2d(c64, LANDMARKS, 1, bias=True)

    def forward(self, p):
        x = self.inp(p)
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2, 2))
        m = self.mid(F.max_pool2d(e2, 2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, scale_factor=2, mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), e1], 1))
        occ = torch.sigmoid(self.occ(d1))
        heat = self.lmk(d1)
        return occ, heat


class EFFM(nn.Module):
    def __init__(self, c128, c256, c512, g):
        super().__init__()
        self.g = g
        self.reduce = CBR(c512, c256, 1)
        self.geo = nn.Linear(LANDMARKS * g * g, GEO)
        self.pg = nn.ModuleList([PG(c256, c128) for _ in range(4)])
        self.frn = nn.ModuleList([FRN(c128) for _ in range(4)])
        self.gate = nn.ModuleList([nn.Linear(c128 + GEO, c128) for _ in range(4)])
        self.glob = CBR(c256, c128, 1)

    def forward(self, p, occ, heat):
        f = self.reduce(p)
        vis = 1.0 - occ
        G = f.shape[-1]
        cell = G // self.g  # block mean of (G/g)^2 cells
        geo = F.relu(self.geo(torch.flatten(F.avg_pool2d(heat, cell, cell), 1)))
        h = G // 2
        slices = [(slice(0, h), slice(0, h)), (slice(0, h), slice(h, G)),
                  (slice(h, G), slice(0, h)), (slice(h, G), slice(h, G))]
        eq = []
        for q, (ys, xs) in enumerate(slices):
            fq = f[:, :, ys, xs]
            vq = vis[:, :, ys, xs]
            r = self.pg[q].feat(fq)
            a = torch.sigmoid(self.pg[q].att(torch.cat([r, vq], 1)))
            rt = r * a
            v = rt.mean(dim=(2, 3))
            u = F.relu(v + self.frn[q].fc2(F.relu(self.frn[q].fc1(v))))
            s = torch.sigmoid(self.gate[q](torch.cat([u, geo], 1)))
            eq.append(rt * s[:, :, None, None])
        e = torch.cat([torch.cat([eq[0], eq[1]], 3), torch.cat([eq[2], eq[3]], 3)], 2)
        return torch.cat([e, self.glob(f)], 1)


class FERM(nn.Module):
    def __init__(self, c128, c224, c256, c512):
        super().__init__()
        self.enc = nn.Sequential(CBR(2 * c128, c128, 3, 2), CBR(c128, c128, 3), CBR(c128, c224, 3, 2))
        self.res = nn.Sequential(ResBlock(c224), ResBlock(c224), ResBlock(c224))
        self.post = nn.Sequential(CBR(c224, c256, 3), CBR(c256, c256, 3), CBR(c256, c512, 1))
        self.fc = nn.Linear(c512, CLASSES)

    def forward(self, x):
        x = self.post(self.res(self.enc(x)))
        return self.fc(x.mean(dim=(2, 3)))


class FOPM(nn.Module):
    """MODEL.md's network. forward(x: N x 3 x S x S) -> (logits N x 7,
    occ N x 1 x G x G, heat N x 68 x G x G)."""

    def __init__(self, size=224, width=1.0):
        super().__init__()
        if size <= 0 or size % 32 != 0:
            raise ValueError("size %r: must be a positive multiple of 32" % (size,))
        if not width > 0:
            raise ValueError("width %r: must be > 0" % (width,))
        self.size, self.width = size, width
        c64, c128, c224, c256, c512 = (ch(c, width) for c in (64, 128, 224, 256, 512))
        self.fopm = FOPMStem(c64, c128, c256, c512)
        self.unet = UNet(c64, c128, c256, c512)
        self.effm = EFFM(c128, c256, c512, size // 32)
        self.ferm = FERM(c128, c224, c256, c512)

    def forward(self, x):
        p = self.fopm(x)
        occ, heat = self.unet(p)
        logits = self.ferm(self.effm(p, occ, heat))
        return logits, occ, heat


def make(config):
    if config not in CONFIGS:
        raise ValueError("unknown config %r (known: %s)" % (config, ", ".join(sorted(CONFIGS))))
    s, w = CONFIGS[config]
    return FOPM(s, w)


def count_params(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ---------------------------------------------------------------- safetensors

MAX_HEADER = 100 * 1000 * 1000
_DTYPES = {"F32": (torch.float32, 4), "I64": (torch.int64, 8)}
_TORCH_TO_ST = {torch.float32: "F32", torch.int64: "I64"}


class SafetensorsError(ValueError):
    pass


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if sys.byteorder != "little":
        raise SafetensorsError("big-endian hosts are not supported")
    if t.dtype == torch.float32:
        return t.numpy().tobytes() if t.numel() else b""
    if t.dtype == torch.int64:
        return struct.pack("<%dq" % t.numel(), *t.reshape(-1).tolist())
    raise SafetensorsError("dtype %s not supported (F32 and I64 only)" % t.dtype)


def save(path, state_dict, metadata=None):
    """Writes state_dict (F32 / I64 tensors) to path, in the dict's order,
    header padded with spaces to a multiple of 8. Atomic (temp + rename)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, t in state_dict.items():
        if t.dtype not in _TORCH_TO_ST:
            raise SafetensorsError("tensor %r: dtype %s not supported" % (name, t.dtype))
        b = _tensor_bytes(t)
        header[name] = {"dtype": _TORCH_TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fopm-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _no_dups(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise SafetensorsError("duplicate key %r in header" % (k,))
        d[k] = v
    return d


def _reject_const(c):
    raise SafetensorsError("invalid JSON constant %s in header" % c)


def load(path, keep_num_batches_tracked=False):
    """Reads a safetensors file (F32 and I64 tensors) into an ordered dict of
    tensors. The file is untrusted: header length, JSON, dtypes, shapes and
    offsets (in range, no overlaps, no gaps, no trailing bytes) are checked;
    raises SafetensorsError. `*.num_batches_tracked` is dropped unless asked."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise SafetensorsError("%s: file too short (%d bytes)" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER:
        raise SafetensorsError("%s: header length %d too large" % (path, n))
    if 8 + n > len(data):
        raise SafetensorsError("%s: header length %d beyond end of file (%d bytes)" % (path, n, len(data)))
    try:
        text = data[8:8 + n].decode("utf-8")
        hdr = json.loads(text, object_pairs_hook=_no_dups, parse_constant=_reject_const)
    except SafetensorsError as e:
        raise SafetensorsError("%s: %s" % (path, e))
    except ValueError as e:
        raise SafetensorsError("%s: malformed header: %s" % (path, e))
    if not isinstance(hdr, dict):
        raise SafetensorsError("%s: header is not a JSON object" % path)
    base = 8 + n
    body = len(data) - base
    recs = []
    for name, r in hdr.items():
        if name == "__metadata__":
            if not isinstance(r, dict) or not all(isinstance(v, str) for v in r.values()):
                raise SafetensorsError("%s: __metadata__ must map strings to strings" % path)
            continue
        if not isinstance(r, dict) or set(r) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError("%s: tensor %r: need exactly dtype, shape, data_offsets" % (path, name))
        dt, shape, offs = r["dtype"], r["shape"], r["data_offsets"]
        if dt not in _DTYPES:
            raise SafetensorsError("%s: tensor %r: unsupported dtype %r" % (path, name, dt))
        if (not isinstance(shape, list) or
                not all(type(s) is int and s >= 0 for s in shape)):
            raise SafetensorsError("%s: tensor %r: bad shape %r" % (path, name, shape))
        if (not isinstance(offs, list) or len(offs) != 2 or
                not all(type(o) is int and o >= 0 for o in offs) or offs[0] > offs[1]):
            raise SafetensorsError("%s: tensor %r: bad data_offsets %r" % (path, name, offs))
        numel = 1
        for s in shape:
            numel *= s
        if offs[1] - offs[0] != numel * _DTYPES[dt][1]:
            raise SafetensorsError("%s: tensor %r: %d bytes for shape %r %s" %
                                   (path, name, offs[1] - offs[0], shape, dt))
        if offs[1] > body:
            raise SafetensorsError("%s: tensor %r: data_offsets %r beyond end of data (%d bytes)" %
                                   (path, name, offs, body))
        recs.append((offs[0], offs[1], name, dt, shape))
    pos = 0
    for b, e, name, _, _ in sorted(recs, key=lambda r: (r[0], r[1])):
        if b != pos:
            raise SafetensorsError("%s: tensor %r: %s at byte %d" %
                                   (path, name, "overlap" if b < pos else "gap", b))
        pos = e
    if pos != body:
        raise SafetensorsError("%s: %d trailing bytes after the last tensor" % (path, body - pos))
    if sys.byteorder != "little":
        raise SafetensorsError("big-endian hosts are not supported")
    out = {}
    for b, e, name, dt, shape in recs:
        if name.endswith(".num_batches_tracked") and not keep_num_batches_tracked:
            continue
        tdt = _DTYPES[dt][0]
        if e == b:
            t = torch.empty(shape, dtype=tdt)
        else:
            t = torch.frombuffer(bytearray(data[base + b:base + e]), dtype=tdt).reshape(shape)
        out[name] = t
    return out


def load_into(model, sd):
    """load_state_dict(strict=True) after dropping num_batches_tracked from
    sd (the model keeps its own), so every other name and shape must match."""
    sd = {k: v for k, v in sd.items() if not k.endswith(".num_batches_tracked")}
    for k, v in model.state_dict().items():
        if k.endswith(".num_batches_tracked"):
            sd[k] = v
    model.load_state_dict(sd, strict=True)


# ---------------------------------------------------------------- CLI

def checksum(t):
    t = t.double().reshape(-1)
    w = torch.arange(1, t.numel() + 1, dtype=torch.float64)
    return float(t.sum()), float((t * w).sum())


def cmd_export(a):
    torch.manual_seed(a.seed)
    m = make(a.config)
    s, w = CONFIGS[a.config]
    save(a.out, m.state_dict(), {"format": "pt", "ferbench.size": s, "ferbench.width": w})
    print("wrote %s: %d tensors, %d parameters" % (a.out, len(m.state_dict()), count_params(m)))
    return 0


def cmd_check(a):
    m = make(a.config)
    try:
        sd = load(a.file)
        load_into(m, sd)
    except (OSError, ValueError, RuntimeError) as e:
        lines = str(e).strip().splitlines() or [repr(e)]
        if len(lines) > 4:
            lines = lines[:4] + ["\t... (%d more lines)" % (len(lines) - 4)]
        print("fopm.py check: %s: %s" % (a.file, "\n".join(lines)), file=sys.stderr)
        return 2
    m.eval()
    s = CONFIGS[a.config][0]
    g = torch.Generator().manual_seed(a.seed)
    x = torch.randn(2, 3, s, s, generator=g)
    with torch.no_grad():
        logits, occ, heat = m(x)
    ok = all(bool(torch.isfinite(t).all()) for t in (logits, occ, heat))
    print("logits %s occ %s heat %s" % (list(logits.shape), list(occ.shape), list(heat.shape)))
    print("logits checksum sum=%.9g weighted=%.9g finite=%s" % (checksum(logits) + (ok,)))
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fopm.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    e = sub.add_parser("export", help="write PyTorch-initialised weights")
    e.add_argument("--config", default="fopm-tiny", choices=sorted(CONFIGS))
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("out")
    c = sub.add_parser("check", help="load weights (strict) and run a forward pass")
    c.add_argument("--config", default="fopm-tiny", choices=sorted(CONFIGS))
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("file")
    a = ap.parse_args(argv)
    if a.cmd == "export":
        return cmd_export(a)
    if a.cmd == "check":
        return cmd_check(a)
    ap.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
