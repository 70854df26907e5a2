#!/usr/bin/env bash
# Parallel training benchmark (issue: distributed training). For one fixed global batch, runs
# the stories15M shape at 1, 2 and 4 ranks in several tp/pp/dp layouts and reports tokens/s,
# the measured pipeline bubble against (p-1)/(m+p-1), and the bytes each rank sent per step
# against the analytical count. NOTE: the reference machine has 2 cores, so 4 ranks share 2
# cores (1 OpenMP thread each); speed-ups beyond 2 ranks are not expected there.
#
#   bash bench/parallel_bench.sh [build/llamatrain] [steps]
set -euo pipefail
bin=${1:-build/llamatrain}
steps=${2:-6}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT_DIR:-$root/out/parallel_bench}
rm -rf "$out"; mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
# Data: random ids of the Llama vocabulary (the shape, not the text, matters here).
/usr/bin/python3 "$root/bench/random_tokens.py" "$out/tokens.bin"
common="model=stories15m data.path=$out/tokens.bin train.seq_len=256 train.global_batch_size=8 \
train.micro_batch_size=1 train.steps=$steps optim.warmup_steps=1 checkpoint.every=1000000"
run() {  # name np threads extra
  local name=$1 np=$2 threads=$3; shift 3
  echo "== $name ($np ranks x $threads threads)" >&2
  if [ "$np" = 1 ]; then
    OMP_NUM_THREADS=$threads "$bin" train $common run.dir="$out/$name" "$@" > "$out/$name.json" 2> "$out/$name.log"
  else
    mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp \
      -x OMP_NUM_THREADS=$threads -x OMP_WAIT_POLICY -np "$np" \
      "$bin" train $common run.dir="$out/$name" --json "$@" > "$out/$name.json" 2> "$out/$name.log"
  fi
  "$bin" model info --model stories15m --tp "$(echo "$@" | grep -o 'parallel.tp=[0-9]*' | cut -d= -f2 || echo 1)" \
    --pp "$(echo "$@" | grep -o 'parallel.pp=[0-9]*' | cut -d= -f2 || echo 1)" --json > "$out/$name.model.json"
}
run single 1 2 --json
run dp2 2 1 parallel.zero1=false
run dp2_zero1 2 1 parallel.zero1=true
run tp2 2 1 parallel.tp=2
run pp2 2 1 parallel.pp=2
run tp2pp2 4 1 parallel.tp=2 parallel.pp=2
run pp4 4 1 parallel.pp=4
run dp4_zero1 4 1 parallel.zero1=true
/usr/bin/python3 "$root/bench/parallel_report.py" "$out"
