#!/usr/bin/env bash
# Two builds' train_bench alternating, A B A B ..., on the same shapes: whether a change moved the
# training step's speed (the machine's ±5-10% noise decides a single pair; several alternations
# and the median ratio do not). One JSON line per run, then per shape the median tokens/s of each
# build and B/A. Run on a quiet machine (check `uptime`).
#
#   bench/ab_train_bench.sh OLD_BUILD NEW_BUILD [repeats] [steps]
#   e.g. bench/ab_train_bench.sh build-old build 3 3
# Shapes: stories15M fp32 and bf16 (batch 32 x 256), stories110M bf16 (batch 8 x 1024); SHAPES
# overrides them ("model precision batch seq;..."). Besides the medians, the best run of each
# side: on a shared VM interference only ever slows a run down.
set -euo pipefail
a="${1:?usage: ab_train_bench.sh OLD_BUILD NEW_BUILD [repeats] [steps]}/bench/train_bench"
b="${2:?usage: ab_train_bench.sh OLD_BUILD NEW_BUILD [repeats] [steps]}/bench/train_bench"
repeats="${3:-3}"
steps="${4:-3}"
[[ -x "$a" && -x "$b" ]] || { echo "ab_train_bench.sh: build train_bench in both builds first" >&2; exit 1; }
export OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores
echo "# $(date -u +%FT%TZ) $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp)
IFS=';' read -r -a shapes <<< "${SHAPES:-stories15m fp32 32 256;stories15m bf16 32 256;stories110m bf16 8 1024}"
for shape in "${shapes[@]}"; do
  read -r model prec batch seq <<< "$shape"
  for ((i = 0; i < repeats; i++)); do
    for side in A B; do
      bin=$a
      [ $side = B ] && bin=$b
      sleep "${LT_BENCH_SETTLE_S:-5}"
      line=$("$bin" --model "$model" --precision "$prec" --batch "$batch" --seq "$seq" --steps "$steps" --warmup 1)
      echo "$side $line" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    side, rec = line.split(" ", 1)
    r = json.loads(rec)
    runs.setdefault((r["model"], r["precision"]), {}).setdefault(side, []).append(r["tokens_per_s"])
for (model, prec), s in runs.items():
    ma, mb = statistics.median(s["A"]), statistics.median(s["B"])
    print(json.dumps({"model": model, "precision": prec, "A_median_tokens_per_s": round(ma, 1),
                      "B_median_tokens_per_s": round(mb, 1), "B_over_A": round(mb / ma, 4),
                      "B_over_A_best": round(max(s["B"]) / max(s["A"]), 4),
                      "A_runs": s["A"], "B_runs": s["B"]}))
PY
rm -f "$out"
