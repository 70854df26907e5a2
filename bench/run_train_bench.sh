#!/usr/bin/env bash
# Training throughput side by side: our train_bench and PyTorch (bench/pytorch_train.py, Debian
# /usr/bin/python3, torch 1.13, tcmalloc preloaded) in ONE run, stories15M and stories110M
# shapes, fp32 and bf16, plus our activation-recomputation cost; PyTorch also without tcmalloc
# (glibc malloc) for the models in LT_BENCH_GLIBC (default: stories15m — at stories110M a
# glibc-malloc PyTorch step takes minutes; LT_BENCH_GLIBC="" skips them). One JSON line per run.
# Heavy (minutes, GBs of RSS): run it once, on a quiet machine (check `uptime`).
#
# Usage: bench/run_train_bench.sh <build-dir> [steps] [warmup] [models...]
#   e.g. bench/run_train_bench.sh build 3 1 stories15m stories110m
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run_train_bench.sh <build-dir> [steps] [warmup] [models...]}"
steps="${2:-3}"
warmup="${3:-1}"
shift $(( $# < 3 ? $# : 3 ))
models=("$@")
[[ ${#models[@]} -eq 0 ]] && models=(stories15m stories110m)
bench="$build/bench/train_bench"
peak="$build/bench/peak_bench"
[[ -x "$bench" && -x "$peak" ]] || { echo "run_train_bench.sh: build $bench and $peak first (ninja -C $build train_bench peak_bench)" >&2; exit 1; }
py=/usr/bin/python3
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4
# Ours: one OpenMP team of 2 pinned threads, shared with oneDNN (same GOMP runtime). PyTorch gets
# no OMP_PROC_BIND/OMP_PLACES: with them its run here took > 9 min instead of ~30 s.
export OMP_NUM_THREADS=2
# Every run starts after a pause (LT_BENCH_SETTLE_S, default 20 s): right after PyTorch's
# 17 GB stories110M run our next run measured up to ~10% slower than alone (the VM reclaiming
# the freed memory competes for the 2 cores); the pause applies to both sides alike.
settle() { sleep "${LT_BENCH_SETTLE_S:-20}"; }
bench() { settle; OMP_PROC_BIND=close OMP_PLACES=cores "$bench" "$@"; }
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
# This machine's ceilings, measured now: our MFU is quoted against oneDNN's large-GEMM rate.
ceilings=$(OMP_PROC_BIND=close OMP_PLACES=cores "$peak")
echo "$ceilings"
ceiling() { sed "s/.*\"onednn_$1_gflops\": \([0-9.]*\).*/\1/" <<<"$ceilings"; }
for model in "${models[@]}"; do
  case "$model" in
    stories15m) shape=(--dim 288 --layers 6 --heads 6 --kv-heads 6 --hidden 768 --vocab 32000 --seq 256 --batch 32)
                batch=32 seq=256 ;;
    stories110m) shape=(--dim 768 --layers 12 --heads 12 --kv-heads 12 --hidden 2048 --vocab 32000 --seq 1024 --batch 8)
                 batch=8 seq=1024 ;;
    *) echo "run_train_bench.sh: unknown model $model" >&2; exit 1 ;;
  esac
  for prec in fp32 bf16; do
    bench --model "$model" --batch "$batch" --seq "$seq" --steps "$steps" --warmup "$warmup" --precision "$prec" \
      --peak-gflops "$(ceiling "$prec")"
    settle
    LD_PRELOAD="$tcmalloc" "$py" "$here/pytorch_train.py" "${shape[@]}" --tied --threads 2 --steps "$steps" \
      --warmup "$warmup" --dtype "$prec"
    if [[ " ${LT_BENCH_GLIBC-stories15m} " == *" $model "* ]]; then
      settle
      "$py" "$here/pytorch_train.py" "${shape[@]}" --tied --threads 2 --steps "$steps" --warmup "$warmup" --dtype "$prec"
    fi
  done
  bench --model "$model" --batch "$batch" --seq "$seq" --steps "$steps" --warmup "$warmup" --precision fp32 --recompute \
    --peak-gflops "$(ceiling fp32)"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
