#!/usr/bin/env bash
# Scale-out benchmark (issue: balanced and interleaved pipelines, overlapped gradient reduction,
# asynchronous checkpoints), on the stories15M shape (seq 256, global batch 8, micro-batch 1,
# fp32; 1 OpenMP thread per rank, 2 for one process):
#   1. the pipeline schedules' bubble with sleeping stages (build/bench/pipeline_bench): pp 2 and
#      4, m = 8, v = 1 and 2, against (p−1)/(v·m+p−1)
#   2. pp 2: tokens/s and the measured bubble (pipeline wait share) with the even and the
#      cost-balanced cut, and interleaved (v 2)
#   3. dp 2 and dp 2 x tp 2: seconds per step the step waits on the data-parallel gradient
#      reduction, blocking vs overlapped
#   4. checkpoint stall per save, synchronous vs asynchronous, stories15M and stories110M
#      (one process)
#
# Sections 2-4 run every variant `reps` times, alternating, so that load from elsewhere on the
# machine falls on all of them alike.
#
#   bash bench/scale_bench.sh [build] [steps] [reps]     (machine: say which, and its load)
#   SECTIONS="4" MODELS="stories110m" bash bench/scale_bench.sh ...   (a part of it)
# Each run's checkpoints are deleted once measured (stories110M's are 1.3 GB each).
set -euo pipefail
build=${1:-build}
steps=${2:-6}
reps=${3:-2}
bin=$build/llamatrain
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT_DIR:-$root/out/scale_bench}
rm -rf "$out"; mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
/usr/bin/python3 "$root/bench/random_tokens.py" "$out/tokens.bin"
mpi() {  # mpi <np> <program...>
  local np=$1; shift
  mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp \
    -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY -np "$np" "$@"
}
common="model=stories15m data.path=$out/tokens.bin train.seq_len=256 train.global_batch_size=8 \
train.micro_batch_size=1 train.steps=$steps optim.warmup_steps=1 checkpoint.every=1000000 checkpoint.at_end=false"
sections=${SECTIONS:-1 2 3 4}
models=${MODELS:-stories15m stories110m}
on() { [[ " $sections " == *" $1 "* ]]; }
rank_stat() {  # rank_stat <run> <jq-like path: python expression on j>
  /usr/bin/python3 - "$out/$1" "$2" <<'EOF'
import glob, json, sys
ranks = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/ranks/rank_*.json"))]
expr = sys.argv[2]
vals = [eval(expr, {}, {"j": j}) for j in ranks]
print(f"{max(vals):.4f}" if vals else "n/a")
EOF
}

if on 1; then
echo "## 1. schedule bubble (sleeping stages, 40 ms forward / 80 ms backward per stage, 288 KiB messages, m = 8)"
echo "| pp | v | step s | measured bubble | (p-1)/(v*m+p-1) |"
echo "|---|---|---|---|---|"
for pp in 2 4; do
  for v in 1 2; do
    j=$(mpi $pp "$build/bench/pipeline_bench" --micro-batches 8 --virtual $v --steps 5 | tail -1)
    /usr/bin/python3 -c "import json,sys; j=json.loads(sys.argv[1]); print(f\"| {j['pp']} | {j['virtual']} | {j['step_s']:.3f} | {j['bubble']:.3f} | {j['theory']:.3f} |\")" "$j"
  done
done

fi
if on 2; then
echo
echo "## 2. pp 2, stories15M: cut and interleaving"
echo "| run | cut | tokens/s | s/step | bubble measured | (p-1)/(v*m+p-1) |"
echo "|---|---|---|---|---|---|"
for rep in $(seq 1 "$reps"); do
for run in "even:parallel.stage_starts=even:1" "auto:parallel.stage_starts=auto:1" "auto_v2:parallel.stage_starts=auto parallel.virtual_stages=2:2"; do
  name=${run%%:*}; rest=${run#*:}; extra=${rest%:*}; v=${rest##*:}
  r="pp2_${name}_$rep"
  mpi 2 "$bin" train $common run.dir="$out/$r" parallel.pp=2 $extra --json > "$out/$r.json" 2> "$out/$r.log"
  cut=$(grep -o 'layers cut at \[[0-9,]*\]' "$out/$r.log" | head -1 | sed 's/layers cut at //')
  step=$(rank_stat "$r" 'j["step_s"]')
  bubble=$(rank_stat "$r" 'j["pipeline_wait_s_per_step"] / j["step_s"]')
  /usr/bin/python3 -c "import sys; s=float(sys.argv[1]); v=int(sys.argv[2]); print(f'| {sys.argv[3]} | {sys.argv[4]} | {8*256/s:.0f} | {s:.3f} | {sys.argv[5]} | {1/(v*8+1):.3f} |')" \
    "$step" "$v" "$name" "$cut" "$bubble"
done
done

fi
if on 3; then
echo
echo "## 3. data-parallel gradient reduction: seconds per step waiting on it"
echo "| layout | overlap | wait s/step (max over ranks) | buckets started during backward | s/step |"
echo "|---|---|---|---|---|"
for rep in $(seq 1 "$reps"); do
for lay in "dp2:2:" "dp2xtp2:4:parallel.tp=2"; do
  name=${lay%%:*}; rest=${lay#*:}; np=${rest%%:*}; extra=${rest#*:}
  for ov in false true; do
    r="${name}_${ov}_$rep"
    mpi "$np" "$bin" train $common run.dir="$out/$r" $extra parallel.overlap_grad_reduce=$ov --json \
      > "$out/$r.json" 2> "$out/$r.log"
    echo "| $name | $ov | $(rank_stat "$r" 'j["grad_reduce"]["wait_s_per_step"]') |" \
         "$(rank_stat "$r" 'j["grad_reduce"]["started_in_backward_per_step"]') | $(rank_stat "$r" 'j["step_s"]') |"
  done
done
done

fi
if on 4; then
echo
echo "## 4. checkpoint stall per save (one process; saves at steps 2 and 4 of 5, and the last)"
echo "| model | threads | checkpoint.async | stall s per save | mean s/step | s/step after a save (steps 3, 5) |"
echo "|---|---|---|---|---|---|"
for model in $models; do
  for threads in 2 1; do
  for rep in $(seq 1 "$reps"); do
  for async in false true; do
    r="ckpt_${model}_t${threads}_${async}_$rep"
    OMP_NUM_THREADS=$threads "$bin" train model=$model data.path="$out/tokens.bin" train.seq_len=256 \
      train.global_batch_size=8 train.micro_batch_size=4 train.steps=5 optim.warmup_steps=1 checkpoint.every=2 \
      checkpoint.async=$async run.dir="$out/$r" --json > "$out/$r.json" 2> "$out/$r.log"
    /usr/bin/python3 - "$out/$r" "$model" "$async" "$threads" <<'EOF'
import json, sys
d, model, a, threads = sys.argv[1:]
summary = json.loads(open(d + ".json").read().strip().splitlines()[-1])
steps = [json.loads(l) for l in open(d + "/metrics.jsonl") if '"loss"' in l]
after = [s["step_s"] for s in steps if s["step"] in (3, 5)]
mean = sum(s["step_s"] for s in steps[1:]) / max(1, len(steps) - 1)
stall = summary["checkpoint_stall_s"] / max(1, summary["checkpoints_written"])
print(f"| {model} | {threads} | {a} | {stall:.3f} | {mean:.2f} | {', '.join(f'{x:.2f}' for x in after)} |")
EOF
    rm -rf "$out/$r/checkpoints"
  done
  done
  done
done
fi
