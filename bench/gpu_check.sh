#!/usr/bin/env bash
# The CUDA backend's device check: ONE call of at most 8 minutes on a GPU machine that has its
# own NVIDIA driver, CUDA 13 runtime, cuDNN 9 and NCCL 2 but none of our other libraries.
#
#   bench/gpu_check.sh --make-bundle   here (with CUDA installed): builds build-cuda/ and packs
#                                       build-cuda/gpu-bundle.tar.xz — the test binary, the probe,
#                                       llamatrain and every library they link EXCEPT the CUDA
#                                       ones (driver, cudart, cuBLAS, cuDNN, NCCL, NVRTC), glibc
#                                       and its loader included; it must stay under 64 MiB
#   bench/gpu_check.sh --dry-run       anywhere: checks the bundle (size, contents, that every
#                                       library resolves) and prints the plan with its budgets
#   bench/gpu_check.sh                 on the GPU machine (the bundle carried): runs the plan,
#                                       writing results to $OUT as it goes (default ./gpu-check-out)
#
# The plan (seconds are timeouts; together 8 minutes):
#   device    10  nvidia-smi, the CUDA libraries found                     → device.txt
#   tests    120  lt_cuda_tests: every kernel against its CPU reference,    → cuda_tests.json
#                 determinism, cuDNN SDPA, NCCL, health checks, the CUDA
#                 stage against the CPU stage on the PyTorch fixtures
#   probe     40  cuda_probe: cuDNN attention support per shape, flash and  → probe.json
#                 cuDNN attention timings, cuBLASLt GEMM timings
#   stage    100  bench/gpu_stage_checks.sh: 30 steps of stories15M on CPU  → stage.txt
#                 and GPU within 1%, two GPU runs bitwise equal, resume
#                 bit-identical, checkpoints across devices
#   benchmark 210 bench/gpu_train_bench.sh: 124M and TinyLlama-1.1B         → benchmark.txt
#                 tokens/s, MFU, peak memory, time per kernel category,
#                 ours then PyTorch (torch.compile) on the same GPU
# summary.json is rewritten after every step, so a call cut short still returns what ran.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUNDLE=${LT_GPU_BUNDLE:-$ROOT/build-cuda/gpu-bundle.tar.xz}
MAX_BUNDLE_BYTES=$((64 * 1024 * 1024))
BINARIES=(tests/lt_cuda_tests bench/cuda_probe llamatrain)
# Libraries the GPU machine provides: never bundled (its driver must match its own runtime).
CUDA_LIBS='^(libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl|libnvrtc|libnvJitLink|libnvidia-[a-z-]*)\.so'

die() { echo "gpu_check: $*" >&2; exit 1; }

make_bundle() {
  [ -x /usr/local/cuda/bin/nvcc ] || die "--make-bundle needs CUDA (no /usr/local/cuda/bin/nvcc)"
  cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMATRAIN_CUDA=ON >/dev/null
  ninja -C build-cuda lt_cuda_tests cuda_probe llamatrain
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib"
  for b in "${BINARIES[@]}"; do
    cp "build-cuda/$b" "$stage/bin/"
    # Every library the loader resolves here, except the ones the GPU machine brings.
    ldd "build-cuda/$b" | awk '/=> \// { print $1, $3 } /^\t\/.*ld-linux/ { print "ld", $1 }' |
      while read -r name path; do
        if [ "$name" = ld ]; then cp -L "$path" "$stage/lib/ld-linux.so"; continue; fi
        [[ $name =~ $CUDA_LIBS ]] && continue
        cp -L "$path" "$stage/lib/$name"
      done
  done
  (cd "$stage" && find . -type f ! -name MANIFEST | sort | xargs sha256sum > MANIFEST)
  tar -C "$stage" -cJf "$BUNDLE" .
  rm -rf "$stage"
  local bytes
  bytes=$(stat -c %s "$BUNDLE")
  echo "bundle: $BUNDLE, $((bytes / 1024)) KiB compressed"
  [ "$bytes" -lt "$MAX_BUNDLE_BYTES" ] || die "the bundle is $bytes bytes, over the 64 MiB a call can carry"
}

unpack() {  # unpack DIR
  [ -f "$BUNDLE" ] || die "no bundle at $BUNDLE (make it with --make-bundle and carry it)"
  mkdir -p "$1"
  tar -C "$1" -xJf "$BUNDLE"
  (cd "$1" && sha256sum --quiet -c MANIFEST) || die "the bundle's MANIFEST does not match its files"
}

# Directories holding the CUDA libraries the binaries need: the loader cache first, then the
# usual CUDA prefixes, then the NVIDIA wheels of a Python install (torch brings cuDNN and NCCL).
cuda_lib_dirs() {
  local dirs=() lib p
  for lib in libcudart.so.13 libcublasLt.so.13 libcublas.so.13 libcudnn.so.9 libnccl.so.2 libcuda.so.1; do
    p=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l { print $NF; exit }')
    if [ -z "$p" ]; then
      p=$(find /usr/local/cuda*/lib64 /usr/local/cuda*/lib /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64 \
            /usr/local/lib/python3*/dist-packages/nvidia /usr/lib/python3*/dist-packages/nvidia \
            /usr/local/lib/python3*/site-packages/nvidia -name "$lib" 2>/dev/null | head -1)
    fi
    [ -n "$p" ] && dirs+=("$(dirname "$p")")
  done
  printf '%s\n' "${dirs[@]}" | awk '!seen[$0]++' | paste -sd:
}

# The loader command for a bundled binary: the bundled ld.so, so the bundled glibc serves the
# binary whatever the machine's own is. Sets LOADER (an array) for the unpacked bundle DIR.
set_loader() { LOADER=("$1/lib/ld-linux.so" --library-path "$1/lib:$CUDA_DIRS"); }

STEPS=()
record() {  # record NAME STATUS SECONDS DETAIL: one step into summary.json
  STEPS+=("{\"step\": \"$1\", \"status\": \"$2\", \"seconds\": $3, \"detail\": \"$4\"}")
  { echo '{"steps": ['; (IFS=,; echo "${STEPS[*]}"); echo ']}'; } > "$OUT/summary.json"
}

# step NAME TIMEOUT OUTFILE COMMAND...: runs with a timeout; stdout to $OUT/OUTFILE and stderr
# with it, or, for a .json file, to the matching .log (at most 8 files come back from $OUT).
step() {
  local name=$1 limit=$2 file=$3 t0 rc=0 err
  shift 3
  err=$OUT/$file
  [[ $file == *.json ]] && err=$OUT/${file%.json}.log
  t0=$(date +%s)
  echo "== $name (timeout ${limit}s)"
  if [ "$err" = "$OUT/$file" ]; then timeout "$limit" "$@" > "$OUT/$file" 2>&1 || rc=$?
  else timeout "$limit" "$@" > "$OUT/$file" 2> "$err" || rc=$?; fi
  local dt=$(( $(date +%s) - t0 )) status=ok
  [ $rc -eq 0 ] || status="failed (exit $rc)"
  [ $rc -eq 124 ] && status="timed out"
  tail -5 "$err"
  record "$name" "$status" "$dt" "$file"
}

# The CUDA stage end to end and the training benchmark, with the bundled llamatrain.
stage_checks() { step stage 100 stage.txt bash bench/gpu_stage_checks.sh -- "${LOADER[@]}" "$1/bin/llamatrain"; }
train_benchmark() { step benchmark 210 benchmark.txt bash bench/gpu_train_bench.sh -- "${LOADER[@]}" "$1/bin/llamatrain"; }

dry_run() {
  echo "plan: device 10 s, tests 120 s, probe 40 s, stage 100 s, benchmark 210 s: 480 s"
  [ -f "$BUNDLE" ] || die "no bundle at $BUNDLE (make it with --make-bundle)"
  local bytes dir
  bytes=$(stat -c %s "$BUNDLE")
  echo "bundle: $BUNDLE, $((bytes / 1024)) KiB compressed (limit $((MAX_BUNDLE_BYTES / 1024)) KiB)"
  [ "$bytes" -lt "$MAX_BUNDLE_BYTES" ] || die "the bundle is over 64 MiB"
  dir=$(mktemp -d)
  unpack "$dir"
  echo "unpacked: $(du -sh "$dir" | cut -f1)"
  (cd "$dir" && ls -l bin lib | awk 'NF > 5 { printf "  %-40s %8d KiB\n", $NF, $5 / 1024 }')
  if ls "$dir/lib" | grep -Eq "$CUDA_LIBS"; then die "the bundle carries CUDA libraries: $(ls "$dir/lib" | grep -E "$CUDA_LIBS")"; fi
  CUDA_DIRS=$(cuda_lib_dirs)
  echo "CUDA libraries found in: ${CUDA_DIRS:-nowhere}"
  set_loader "$dir"
  local b missing
  for b in lt_cuda_tests cuda_probe llamatrain; do
    missing=$("${LOADER[@]}" --list "$dir/bin/$b" | grep "not found" || true)
    if [ -n "$missing" ]; then echo "  $b: unresolved here: $missing"; else echo "  $b: every library resolves"; fi
  done
  echo "the bundled test binary runs here and lists $("${LOADER[@]}" "$dir/bin/lt_cuda_tests" --gtest_list_tests | grep -c '^  ') tests"
  rm -rf "$dir"
}

case "${1:-}" in
  --make-bundle) make_bundle; exit 0 ;;
  --dry-run) dry_run; exit 0 ;;
  "") ;;
  *) die "unknown option $1 (use --make-bundle, --dry-run or nothing)" ;;
esac

OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
DIR=$(mktemp -d)
unpack "$DIR"
CUDA_DIRS=$(cuda_lib_dirs)
set_loader "$DIR"
step device 10 device.txt bash -c "nvidia-smi; echo; echo 'CUDA library directories: $CUDA_DIRS'"
export LT_TEST_SOURCE_DIR=$ROOT  # the fixtures of this checkout
step tests 120 cuda_tests.txt "${LOADER[@]}" "$DIR/bin/lt_cuda_tests" --gtest_output="json:$OUT/cuda_tests.json"
step probe 40 probe.json "${LOADER[@]}" "$DIR/bin/cuda_probe"
stage_checks "$DIR"
train_benchmark "$DIR"
cat "$OUT/summary.json"
