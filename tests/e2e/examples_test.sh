# The shipped examples stay valid as the trainer's keys evolve: every examples/*.yaml passes
# `llamatrain launch --dry-run` (which checks the whole run config and the job layout) with the
# layout it was written for, `llamatrain plan` accepts the seed's numbers, and the shell scripts parse.
# Usage: bash examples_test.sh <llamatrain> <source-dir>
set -u
LT="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
SRC="$2"
cd "$SRC"
fail=0
check() {  # check <description> <command...>
  local what="$1"
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}
quiet() { "$@" >/dev/null; }
dry() {  # dry <config> <procs> <expected layout line>
  local out
  out=$("$LT" launch --dry-run --config "$1" --procs-per-node "$2" 2>&1)
  echo "$out" | grep -qF "$3" || { echo "$out" | tail -3; return 1; }
}
for m in 7b 13b 70b; do
  check "examples/llama2_$m.yaml: 1024 ranks, tp8 pp8 dp16" \
    dry "examples/llama2_$m.yaml" 1024 "1024 ranks: tp8 pp8 dp16, 32 micro-batches per replica"
  check "plan llama2-$m with the seed's layout" quiet "$LT" plan --model "llama2-$m" --nodes 32 --procs-per-node 32 \
    --tp 8 --pp 8 --gbs 512 --seq 4096 --zero1 --recompute full --precision fp32 --device trn1 --json
done
check "plan llama2-70b with sequence parallelism (examples/llama2_70b.yaml)" quiet "$LT" plan --model llama2-70b \
  --nodes 32 --procs-per-node 32 --tp 8 --pp 8 --gbs 512 --seq 4096 --zero1 --recompute full --sequence-parallel \
  --device trn1 --json
grep -q '^  sequence_parallel: true' examples/llama2_70b.yaml || { echo "FAIL: llama2_70b.yaml without sequence_parallel"; fail=1; }
check "examples/stories260k_cpu.yaml: one process" dry examples/stories260k_cpu.yaml 1 "1 ranks: tp1 pp1 dp1"
check "examples/stories260k_demo.yaml: tp2 x pp2" dry examples/stories260k_demo.yaml 4 "4 ranks: tp2 pp2 dp1"
check "examples/slurm/llama2_70b.sbatch parses" bash -n examples/slurm/llama2_70b.sbatch
check "examples/slurm/train.sbatch parses" bash -n examples/slurm/train.sbatch
# The seed's batch script in an allocation of 34 nodes x 32 tasks (Slurm's environment, the
# launcher in --dry-run through LLAMATRAIN): srun on the first 32 nodes, the last 2 spare.
sbatch_dry() {
  local wrap out
  wrap=$(mktemp)
  printf '#!/bin/sh
cmd=$1; shift
exec "%s" "$cmd" --dry-run --srun /bin/true "$@"
' "$LT" > "$wrap"
  chmod +x "$wrap"
  out=$(SLURM_JOB_ID=1 SLURM_JOB_NODELIST='trn1-node[01-34]' SLURM_NTASKS_PER_NODE=32 LLAMATRAIN="$wrap" \
        bash examples/slurm/llama2_70b.sbatch 2>&1)
  rm -f "$wrap"
  grep -qF "1024 ranks: tp8 pp8 dp16" <<< "$out" && grep -qF -- "--ntasks-per-node=32" <<< "$out" &&
    grep -qF -- "--nodelist=trn1-node01,trn1-node02," <<< "$out" &&
    ! grep -F -- "--nodelist=" <<< "$out" | grep -qF "trn1-node33" ||
    { echo "$out" | tail -3; return 1; }
}
check "examples/slurm/llama2_70b.sbatch in a 34-node allocation: srun on 32 nodes, 1024 ranks" sbatch_dry
check "scripts/demo.sh parses" bash -n scripts/demo.sh
check "hostfile lists 34 hosts with 32 slots" [ "$(grep -c '^trn1-node[0-9]* slots=32' examples/hostfile.txt)" -eq 34 ]
exit $fail
