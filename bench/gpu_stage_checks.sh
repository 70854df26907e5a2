#!/usr/bin/env bash
# The CUDA stage against the CPU stage, end to end, on the GPU machine (bench/gpu_check.sh runs
# it; it works anywhere llamatrain has a GPU). Prints a JSON line per check and a summary line.
#
#   bench/gpu_stage_checks.sh -- LLAMATRAIN_COMMAND...   (e.g. -- build-cuda/llamatrain)
#   LT_CHECK_DEVICE=cpu bench/gpu_stage_checks.sh -- build/llamatrain   (a dry run, CPU against CPU)
#
# On the trilingual manual (Llama 2 tokenizer, 257-token blocks), stories15M, bf16 on both:
#   cpu_vs_gpu    30 steps on CPU and GPU: every step's loss within 1% of the other's
#   deterministic two GPU runs of 20 steps: the step-20 checkpoints are the same bytes
#   resume        10 steps, then resumed to 20: the same bytes as the uninterrupted run
#   cross_device  a GPU checkpoint continued on CPU and a CPU checkpoint continued on GPU: both
#                 run, and their first losses continue the curve (within 2% of the source run's)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = -- ] && shift
[ $# -ge 1 ] || { echo "usage: gpu_stage_checks.sh -- LLAMATRAIN_COMMAND..." >&2; exit 2; }
LT=("$@")
GPU=${LT_CHECK_DEVICE:-cuda}  # LT_CHECK_DEVICE=cpu: the whole flow on the CPU, a dry run of this script
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
status=0
result() { echo "{\"check\": \"$1\", \"ok\": $2, \"detail\": \"$3\"}"; [ "$2" = true ] || status=1; }

"${LT[@]}" prepare assets/corpus/gimp_help -o "$W/data" --tokenizer assets/llama2/tokenizer.model \
  --block-size 257 --no-progress > "$W/prepare.log" 2>&1 || { cat "$W/prepare.log"; exit 1; }
# One LR schedule for every run, whatever its length (decay over 30 steps), so that a run of 10
# steps resumed to 20 follows the 20-step run's curve.
common=(model=stories15m data.path="$W/data" train.seq_len=256 train.global_batch_size=8 train.micro_batch_size=8
        train.precision=bf16 optim.lr=1e-3 optim.warmup_steps=5 optim.decay_steps=30 train.log_every=10
        checkpoint.keep=5)
run() {  # run NAME ARGS...: one training run into $W/NAME (its log beside it)
  local name=$1
  shift
  "${LT[@]}" train "${common[@]}" run.dir="$W/$name" "$@" > "$W/$name.log" 2>&1 ||
    { echo "run $name failed:"; tail -20 "$W/$name.log"; return 1; }
}
losses() { python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["loss"]) for l in open(sys.argv[1]) if "\"loss\"" in l and "eval" not in l))' "$1/metrics.jsonl"; }
same_checkpoint() {  # same_checkpoint DIR_A DIR_B STEP: every file of the step byte for byte (meta.json aside)
  local a=$1/checkpoints/step_$(printf %08d "$3") b=$2/checkpoints/step_$(printf %08d "$3") f
  [ -d "$a" ] && [ -d "$b" ] || return 1
  for f in $(cd "$a" && find . -name '*.safetensors' | sort); do cmp -s "$a/$f" "$b/$f" || return 1; done
}

run cpu30 train.device=cpu train.steps=30 checkpoint.every=10
run gpu30 train.device=$GPU train.steps=30 checkpoint.every=10
d=$(python3 - "$(losses "$W/cpu30")" "$(losses "$W/gpu30")" <<'PY'
import sys
c, g = [list(map(float, a.split())) for a in sys.argv[1:3]]
worst = max(abs(x - y) / abs(x) for x, y in zip(c, g)) if len(c) == len(g) == 30 else float("inf")
print(f"{worst:.3e} {c[0]:.4f} {c[-1]:.4f} {g[-1]:.4f}")
PY
)
read -r worst c0 c30 g30 <<< "$d"
ok=$(python3 -c "print('true' if float('$worst') <= 0.01 else 'false')")
result cpu_vs_gpu "$ok" "worst per-step relative loss difference $worst over 30 steps (cpu $c0 -> $c30, gpu -> $g30)"

run gpuA train.device=$GPU train.steps=20
run gpuB train.device=$GPU train.steps=20
if same_checkpoint "$W/gpuA" "$W/gpuB" 20; then result deterministic true "step-20 checkpoints of two runs are the same bytes"
else result deterministic false "step-20 checkpoints of two identical runs differ"; fi

run gpuR train.device=$GPU train.steps=10 checkpoint.every=10
run gpuR train.device=$GPU train.steps=20
if same_checkpoint "$W/gpuA" "$W/gpuR" 20; then result resume true "10 + 10 steps equal 20 uninterrupted, byte for byte"
else result resume false "the resumed run's step-20 checkpoint differs from the uninterrupted one"; fi

# GPU step 10 -> CPU, CPU step 10 -> GPU: copy the step-10 checkpoint into a fresh run.
for pair in "gpu30 cpu" "cpu30 $GPU"; do
  read -r src dev <<< "$pair"
  mkdir -p "$W/x_$dev/checkpoints"
  cp -r "$W/$src/checkpoints/step_00000010" "$W/x_$dev/checkpoints/"
  run "x_$dev" train.device=$dev train.steps=12
  first=$(losses "$W/x_$dev" | awk '{print $1}')
  want=$(losses "$W/$src" | awk '{print $11}')
  ok=$(python3 -c "print('true' if abs($first - $want) <= 0.02 * abs($want) else 'false')")
  result "cross_device_${src}_to_${dev}" "$ok" "step 11 loss $first continuing $src (its step 11: $want)"
done
echo "{\"stage_checks\": $([ $status -eq 0 ] && echo true || echo false)}"
exit $status
