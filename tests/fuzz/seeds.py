#!/usr/bin/python3
"""Writes the seed inputs of tests/fuzz/corpus/ (stdlib only; run from the
repository root). The JPEG seeds come from ferbench's own encoder: see
tests/fuzz/README.md. Inputs the fuzzer found are added by hand, named
crash-<what>, and are not touched here."""
import json, os, struct, zlib

ROOT = "tests/fuzz/corpus"
SEP = b"\n--\n"


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


RAF = "surprise,fear,disgust,happiness,sadness,anger,neutral"

# csv: the first byte picks the field limit (even: the default)
put("csv", "plain", b"\0a,b,c\n1,2,3\n")
put("csv", "quoted", b'\0name,text\n"x, y","line1\nline2 ""q"""\r\nz,\n')
put("csv", "bom-comment", b"\0\xef\xbb\xbf# ferbench-predictions v1 model=m\nimage,label\nim1,happy\n")
put("csv", "limit", b"\x07abc,defgh\nijk,lm\n")
put("csv", "utf8", "\0caf\u00e9,na\u00efve\n\u00fc,\u4e2d\u6587\n".encode())

# preds: LABELS SEP FILE_A [SEP FILE_B]
head = f"# ferbench-predictions v1 dataset=rafdb split=test model=ours labels={RAF}\n"
cols = "image,label,pred," + ",".join("prob_" + c for c in RAF.split(",")) + "\n"
rows = "test_0001.jpg,happiness,happiness,0.01,0.0,0.02,0.9,0.03,0.01,0.03\n" \
       "test_0002.jpg,sadness,neutral,0.1,0.1,0.1,0.1,0.2,0.1,0.3\n"
canon = head + cols + rows
put("preds", "canonical", SEP + canon.encode())
put("preds", "plain-labels", b"a,b,c" + SEP + b"image,label,pred\nx,a,b\ny,c,c\nz,b,a\n")
put("preds", "match", SEP + canon.encode() + SEP +
    (head + "pred,image,label\nneutral,test_0002.jpg,sadness\nhappiness,test_0001.jpg,happiness\n").encode())
put("preds", "mismatch", b"a,b" + SEP + b"image,label,pred\nx,a,b\n" + SEP + b"image,label,pred\nx,b,b\ny,a,a\n")


# image: PNGs of each colour type; JPEGs: see README
def png(w, h, ctype, depth, rows, interlace=0, extra=b"", raw=None):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace)
    raw = raw if raw is not None else b"".join(b"\0" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


put("image", "grey.png", png(3, 2, 0, 8, [b"\x00\x80\xff", b"\x10\x20\x30"]))
put("image", "rgb.png", png(2, 2, 2, 8, [bytes(range(6)), bytes(range(6, 12))]))
put("image", "rgba.png", png(2, 1, 6, 8, [bytes(range(8))]))
put("image", "grey16.png", png(2, 1, 0, 16, [b"\x12\x34\xff\xff"]))
plte = struct.pack(">I", 6) + b"PLTE" + b"\xff\0\0\0\xff\0" + struct.pack(">I", zlib.crc32(b"PLTE\xff\0\0\0\xff\0") & 0xffffffff)
put("image", "palette.png", png(4, 1, 3, 2, [b"\x1b"], extra=plte))
# Adam7 on 3x3: passes 1, 4, 5, 6 (two rows) and 7 are not empty, each row with its filter byte
put("image", "interlaced.png", png(3, 3, 0, 8, None, interlace=1,
                                   raw=b"\0\1" + b"\0\3" + b"\0\7\x09" + b"\0\2" + b"\0\x08" + b"\0\4\5\6"))


# safetensors: the stand-in table of fuzz_safetensors.c
def st(tensors, meta=None):
    header, blob = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, shape, vals in tensors:
        data = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


W = [("conv.weight", [2, 1, 1, 2], [1, 2, 3, 4]), ("conv.bias", [2], [0.5, -0.5]),
     ("bn.running_mean", [3], [0, 1, 2])]
put("safetensors", "weights", st(W, {"format": "pt"}))
put("safetensors", "checkpoint", st(W + [("adam_m." + n, s, v) for n, s, v in W]
                                    + [("bn.num_batches_tracked", [], [0])], {"format": "pt", "ferbench.size": "64"}))
put("safetensors", "no-meta", st(W))

# ingest: MODE byte, then files split at SEP
put("ingest", "rafdb", b"\0train_00001.jpg 5\r\ntrain_00002.jpg 1\ntest_0001.jpg 7\n")
lab = b'fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0\nfer0000001.png,"(0, 0, 48, 48)",6,0,1,1,0,0,0,0,2,0\n'
put("ingest", "ferplus-folders", b"\1" + lab + SEP + b'fer0000002.png,"(0, 0, 48, 48)",0,10,0,0,0,0,0,0,0,0\n' + SEP + b"")
pix = " ".join(str(i % 256) for i in range(2304))
put("ingest", "ferplus-csv", b"\2" + ("emotion, Usage, pixels\n0,Training,%s\n3,PrivateTest,%s\n" % (pix, pix)).encode() + SEP +
    b"Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    b"Training,fer0000000.png,4,0,0,1,3,2,0,0,0,0\nPrivateTest,,0,0,0,0,0,0,0,0,0,10\n")
put("ingest", "list", b"\3image,label,split\na/1.png,happiness,train\nb/2.jpg,fear,test\nc.png,neutral,val\n")
put("ingest", "identities", b"\4image,label,split\na.png,happiness,train\nb.png,fear,test\n" + SEP +
    b"image,identity\na.png,p1\nb.png,p2\nzz.png,p3\n")

# import: OPTIONS SEP CSV, for the 50-face fixture of fuzz_import.c (seed 5): its 10 test images and labels
names = ["test_%04d" % i for i in range(1, 11)]
truth = [3, 6, 0, 5, 3, 4, 3, 6, 3, 4]
raf = RAF.split(",")
pred = [t if i % 3 else (t + 1) % 7 for i, t in enumerate(truth)]
put("import", "names", SEP + ("image,label,pred\n" + "".join(
    "%s.jpg,%s,%s\n" % (n, raf[t], raf[p]) for n, t, p in zip(names, truth, pred))).encode())


def onehot(k, n=7, hi=0.7):
    return [hi if j == k else (1 - hi) / (n - 1) for j in range(n)]


put("import", "probs", SEP + ("image,label,pred," + ",".join("prob_" + c for c in raf) + "\n" + "".join(
    "%s_aligned.jpg,%s,%s,%s\n" % (n, raf[t], raf[p], ",".join("%.6f" % v for v in onehot(p)))
    for n, t, p in zip(names, truth, pred))).encode())
put("import", "paths-1based-logits", b"--index-base 1 --score-kind logits" + SEP + (
    "path,target,logit_1,logit_2,logit_3,logit_4,logit_5,logit_6,logit_7\n" + "".join(
        "/data/RAF/basic/Image/aligned/%s_aligned.jpg,%d,%s\n" % (n, t + 1, ",".join(
            "%.3f" % (2.5 if j == p else -1.0 + 0.1 * j) for j in range(7)))
        for n, t, p in zip(names, truth, pred))).encode().replace(b"path,target", b"image,label"))
FER2013 = [5, 2, 1, 3, 4, 0, 6]  # RAF-DB class of each FER2013 emotion code
put("import", "no-header", b"--no-header --image-col 2 --pred-col 1 --classes fer2013" + SEP + "".join(
    "%d.0,%s.png\n" % (FER2013.index(p), n) for n, p in zip(names, pred)).encode())
FERPLUS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
put("import", "ferplus-stems", b"--classes ferplus" + SEP + ("image,pred\n" + "".join(
    "%s,%d\n" % (n, FERPLUS.index(raf[p])) for n, p in zip(names, pred))).encode())
put("import", "wrong-split", SEP + (
    "# ferbench-predictions v1 dataset=rafdb split=val model=x labels=" + RAF + "\nimage,label,pred\n" +
    "".join("%s.jpg,%s,%s\n" % (n, raf[t], raf[t]) for n, t in zip(names, truth))).encode())

# manifest: the text before the checksum line (fuzz_manifest.c signs it), for its six images
MH = "# masksynth-manifest v1 dataset=rafdb kind=rafdb seed=42 val=%s val_fraction=%s assign=identity " \
     "bank_seed=42 bank_size=48\nimage,label,split,group,pattern\n"
rows = ("train_00001.jpg,surprise,train,g1,b42-43-n95-below_nose-plain\n"
        "train_00002.jpg,fear,val,,b42-00-n95-full-plain\n"
        "train_00003.jpg,disgust,,,\n"
        "train_00004.jpg,happiness,train,g1,b42-41-surgical-full-pleats\n"
        "test_0001.jpg,sadness,test,,b42-39-surgical-full-plain\n"
        "test_0002.jpg,anger,test,g2,b42-23-surgical-below_nose-pleats\n")
put("manifest", "stratified", MH % ("stratified", "0.1") + rows)
put("manifest", "official-missing-row", MH % ("official", "") + rows.replace("test_0002.jpg,anger,test,g2,b42-23-surgical-below_nose-pleats\n", "other.jpg,neutral,test,,\n"))

# protocol: the first byte picks the file name (odd: one JSON must escape)
put("protocol", "counts", b"\0split,label,count\ntrain,surprise,1\ntrain,fear,2\ntest,happiness,0\n")
put("protocol", "escaped-name", b"\1split,label,count\r\ntrain,disgust,1\r\nval,neutral,3\r\n")
put("protocol", "bom-comment", b"\0\xef\xbb\xbf# expected counts\nsplit,label,count\ntest,anger,1\n")
