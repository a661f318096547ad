#!/bin/sh
# landmarks_bench.sh: the bare-dlib side of masksynth's landmark speed
# comparison. Builds bench/perf/dlib_bare.cpp (g++, one thread, dlib's HOG
# detector + 68-point shape predictor, the way dlib's own examples use them)
# and runs it on every PNG / JPEG of a folder, printing images/s.
#
#   sh bench/perf/landmarks_bench.sh FOLDER [--upsample N] [--repeat R] [--predictor FILE]
#
# Environment: BUILD (default build) holds the binary, as $BUILD/perf/dlib_bare;
# CXX (default g++). The last line is dlib_bare's own key=value line:
#   dlib_bare images=N bad=B faces=F upsample=U repeat=R seconds=S images_per_s=X
#       detect_landmarks_images_per_s=Y load_predictor_s=L checksum=C
# images_per_s counts decoding too; detect_landmarks_images_per_s leaves it out.
set -eu

usage() {
    echo "usage: $0 FOLDER [--upsample N] [--repeat R] [--predictor FILE]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
folder=$1
shift
[ -d "$folder" ] || { echo "$0: $folder: not a folder" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
: "${BUILD:=build}"
: "${CXX:=g++}"
bin=$BUILD/perf/dlib_bare
src=$here/dlib_bare.cpp

if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
    mkdir -p "$BUILD/perf"
    # dlib's headers call BLAS (cblas_dgemm) and LAPACK (dgesvd_) directly; the
    # runtime libraries (libblas3, liblapack3: dependencies of libdlib) are named
    # by soname, so libblas-dev / liblapack-dev are not needed.
    $CXX -std=c++17 -O2 -Wall -Wextra -Werror "$src" -o "$bin.tmp.$$" -ldlib -l:libblas.so.3 -l:liblapack.so.3
    mv "$bin.tmp.$$" "$bin"
fi

list=$(mktemp "${TMPDIR:-/tmp}/landmarks_bench.XXXXXX")
trap 'rm -f "$list"' EXIT INT TERM
find "$folder" -maxdepth 1 -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) | LC_ALL=C sort > "$list"
n=$(wc -l < "$list")
[ "$n" -gt 0 ] || { echo "$0: no PNG or JPEG files in $folder" >&2; exit 1; }

out=$("$bin" --list "$list" "$@")
echo "$out"
echo "$out" | awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "bare dlib (one thread, upsample %s): %s images/s with decoding, %s images/s detect + 68 points, %s of %s images with a face\n",
           v["upsample"], v["images_per_s"], v["detect_landmarks_images_per_s"], v["faces"], v["images"]
}' >&2
