#!/bin/sh
# tests/gpu/bundle.sh: prepares gpu_bundle/ (git-ignored) for a device run.
# The GPU machine has nvcc, cuDNN and PyTorch but not the Debian libraries
# the tools link (OpenBLAS, GSL, SQLite, libpng, cmocka...) and cannot fetch
# them, so the binaries are built HERE (Debian 12, glibc 2.36: they run on a
# newer glibc) and travel with those libraries:
#   gpu_bundle/bin   ferbench, libfbcuda.so, test_backend, net_parity
#   gpu_bundle/lib   every shared library they need that is not glibc's,
#                    CUDA's or cuDNN's (those are found on the device)
#   gpu_bundle/fixture  a small RAF-DB-layout fixture through masksynth
#                    (renders, alpha maps, landmarks; paths relative to the
#                    repository root) for the train/run workflow on the GPU
# and are packed into gpu_bundle.tar.xz (~17 MB; the folder is ~60 MiB, near
# the 64 MiB a device call carries). Then, with the `device` tool:
#   run(command="sh tests/gpu/run.sh", carry=["gpu_bundle.tar.xz"], timeout_s=480)
# (run.sh unpacks it).
set -eu
cd "$(dirname "$0")/../.."
make --no-print-directory cuda all build/tests/test_backend build/tests/net_parity >/dev/null
rm -rf gpu_bundle
mkdir -p gpu_bundle/bin gpu_bundle/lib
cp bin/ferbench bin/ferstats bin/libfbcuda.so build/tests/test_backend build/tests/net_parity gpu_bundle/bin/
strip --strip-debug gpu_bundle/bin/* # the 64 MiB a device call carries
# The non-system libraries of the four binaries. Left behind: glibc and the
# loader; libstdc++, libgcc_s and zlib (the device's are newer, and cuDNN
# needs its own libstdc++); CUDA's, cuDNN's and cuBLAS's (found there).
for f in gpu_bundle/bin/*; do ldd "$f"; done | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
    grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s|libz|libcudnn[^/]*|libcublas[^/]*|libcublasLt|libcudart)\.so' |
    while read -r lib; do cp -L "$lib" gpu_bundle/lib/; done
# The fixture: 500 faces; the originals are dropped after rendering (training
# and prediction read the renders).
F=gpu_bundle/fixture
bin/masksynth fixture --layout rafdb --n 500 --seed 5 $F/raf >/dev/null
bin/masksynth init --dataset rafdb --root $F/raf --protocol $F/raf/protocol.csv --db $F/d.sqlite >/dev/null
bin/masksynth --split all --db $F/d.sqlite --out $F/masked --threads 2 >/dev/null 2>&1
rm -rf $F/raf/Image
git rev-parse HEAD >gpu_bundle/COMMIT
git status --porcelain >>gpu_bundle/COMMIT
tar -cJf gpu_bundle.tar.xz gpu_bundle
du -sh gpu_bundle gpu_bundle.tar.xz
ls gpu_bundle/lib
