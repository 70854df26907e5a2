#!/usr/bin/env bash
# Sequence parallelism against plain tensor parallelism (parallel.sequence_parallel): the
# stories15M shape of bench/parallel_bench.sh at tp2, with and without it. Prints per layout the
# tokens/s, what each rank sent over tp and pp per step and its activation buffers (from
# <run.dir>/ranks/rank_<r>.json), and the peak RSS of rank 0.
#
#   bash bench/sp_bench.sh [build/llamatrain] [steps] [extra key=value ...]
set -euo pipefail
bin=${1:-build/llamatrain}
steps=${2:-6}
shift $(( $# >= 2 ? 2 : $# ))
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT_DIR:-$root/out/sp_bench}
rm -rf "$out"; mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
/usr/bin/python3 "$root/bench/random_tokens.py" "$out/tokens.bin"  # the data of parallel_bench.sh
common="model=stories15m data.path=$out/tokens.bin train.seq_len=256 train.global_batch_size=8 \
train.micro_batch_size=1 train.steps=$steps optim.warmup_steps=1 checkpoint.every=1000000"
for name in tp2 tp2_sp tp2pp2 tp2pp2_sp; do
  np=2; extra="parallel.tp=2"
  case $name in tp2pp2*) np=4; extra="$extra parallel.pp=2" ;; esac
  case $name in *_sp) extra="$extra parallel.sequence_parallel=true" ;; esac
  echo "== $name ($np ranks)" >&2
  mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp \
    -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY -np "$np" \
    "$bin" train $common run.dir="$out/$name" --json $extra "$@" > "$out/$name.json" 2> "$out/$name.log"
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print("| layout | tokens/s | tp MB sent/rank/step (payload) | pp MB sent/rank/step | activation MiB/rank | peak RSS MiB (rank 0) |")
print("|---|---|---|---|---|---|")
for name in ["tp2", "tp2_sp", "tp2pp2", "tp2pp2_sp"]:
    summ = [json.loads(l) for l in open(f"{out}/{name}.json") if l.startswith("{")][-1]
    r0 = json.load(open(f"{out}/{name}/ranks/rank_0.json"))
    ranks = [json.load(open(f"{out}/{name}/ranks/{f}")) for f in sorted(os.listdir(f"{out}/{name}/ranks"))]
    tp = r0["comm"]["tp"]
    print(f"| {name} | {summ['tokens_per_s']:.0f} | {tp['sent_bytes_per_step'] / 1e6:.2f} ({tp['payload_bytes_per_step'] / 1e6:.2f}) | "
          f"{r0['comm']['pp']['sent_bytes_per_step'] / 1e6:.2f} | {max(r['activation_bytes'] for r in ranks) / 2**20:.1f} | "
          f"{r0['peak_rss_bytes'] / 2**20:.0f} |")
PY
