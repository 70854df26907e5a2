#!/usr/bin/env bash
# Continual pretraining end to end on one machine, in about ten minutes on 2 cores:
#
#   install + build ─▶ prepare the trilingual (ca/es/en) GIMP manual text with stories260K's own
#   tokenizer into 256-token blocks, with a held-out validation split ─▶ import the real pretrained
#   stories260K (llama2.c) ─▶ a replay set: stories260K's own stories (`llamatrain generate`), also
#   with a held-out split ─▶ held-out loss on both sets before ─▶ continual pretraining on the
#   manual with 25% replay and a warm-up/stable/decay (wsd) schedule, tp2 x pp2 = 4 MPI ranks
#   under `llamatrain launch` (health check, checkpoints synced to a local S3-compatible server,
#   TensorBoard events with a forgetting curve per held-out set, ONE injected worker failure that
#   the launcher recovers from) ─▶ the same run without replay (one process) ─▶ Hugging Face
#   export ─▶ held-out loss on both sets after, with and without replay ─▶ a sample ─▶ a summary.
#
# Usage: scripts/demo.sh            everything goes to out/demo/ (wiped first: a rerun starts clean)
# Environment (all optional):
#   LLAMATRAIN=path   use this binary: skip scripts/setup.sh and the build (CI, development)
#   DEMO_STEPS=N      training steps (default 120: ~0.5M tokens); DEMO_KILL_STEP=K (default 45)
#   DEMO_STORIES=N    stories generated for the replay set (default 400)
#   DEMO_S3_PORT=P    port of the local S3 server (default: the first free one from 9000)
#   S3RVER_NPM_DIR    where the S3 test server's npm package is cached (default out/s3rver-npm)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=out/demo
STEPS=${DEMO_STEPS:-120}
KILL_STEP=${DEMO_KILL_STEP:-45}
STORIES=${DEMO_STORIES:-400}
TOK=assets/stories260k/tok512.model
T0=$(date +%s)
phase() { printf '\n\033[1m== [%4ds] %s\033[0m\n' "$(( $(date +%s) - T0 ))" "$*"; }
# jnum FILE KEY: the first number under "KEY" in a JSON file (compact or indented).
jnum() { grep -o "\"$2\": *-\{0,1\}[0-9][0-9.eE+-]*" "$1" | head -1 | sed 's/.*: *//'; }

# ---------------------------------------------------------------------------------------------
if [ -z "${LLAMATRAIN:-}" ]; then
  phase "1/12 install dependencies (scripts/setup.sh)"
  bash scripts/setup.sh
  phase "2/12 build llamatrain"
  # The demo needs only the binary (scripts/build.sh with no target builds tests and benchmarks too).
  bash scripts/build.sh llamatrain
  LLAMATRAIN=$ROOT/build/llamatrain
fi
LT=$LLAMATRAIN
[ -x "$LT" ] || { echo "demo: $LT is not an executable llamatrain binary" >&2; exit 1; }

# MPI on a small machine: 4 ranks share 2 cores, so a waiting rank must give its core away.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI_ARGS="--oversubscribe --bind-to none --mca mpi_yield_when_idle 1"

# A clean start: stop a server a previous (interrupted) demo left running, then wipe out/demo.
[ -f "$OUT/s3/pid" ] && bash scripts/s3rver.sh stop "$OUT/s3" 2>/dev/null || true
rm -rf "$OUT"
mkdir -p "$OUT"

# ---------------------------------------------------------------------------------------------
phase "3/12 prepare: trilingual GIMP manual -> 256-token blocks (tokenizer $TOK)"
# One document per paragraph, so that 2% of them (seeded) form a held-out validation split.
"$LT" prepare assets/corpus/gimp_help -o "$OUT/data" --tokenizer "$TOK" --text-mode paragraph \
  --block-size 256 --validation-fraction 0.02 --split-seed 1 --no-progress --json > "$OUT/prepare.json"
"$LT" data inspect "$OUT/data" > "$OUT/inspect.txt"
head -3 "$OUT/inspect.txt"

phase "4/12 convert: import the pretrained stories260K (llama2.c) as a checkpoint"
"$LT" convert --from llama2c --input assets/stories260k/stories260K.bin --output "$OUT/base" --json \
  > "$OUT/convert_base.json"
echo "imported into $OUT/base"

phase "5/12 replay set: $STORIES stories written by stories260K itself (its own distribution), 10% held out"
# Two generators in parallel (one per core), each its own seed; a blank line ends every story.
half=$(( STORIES / 2 ))
for seed in 1 2; do
  "$LT" generate --model "$OUT/base" --tokenizer "$TOK" --samples $half --max-new-tokens 400 --temperature 1.0 \
    --seed $seed > "$OUT/stories_$seed.txt" &
done
wait
"$LT" prepare "$OUT"/stories_1.txt "$OUT"/stories_2.txt -o "$OUT/replay" --tokenizer "$TOK" --text-mode paragraph \
  --block-size 256 --validation-fraction 0.1 --split-seed 1 --no-progress --json > "$OUT/prepare_replay.json"
head -c 300 "$OUT/stories_1.txt"; echo " ..."

phase "6/12 eval: held-out loss of the pretrained model on both sets (it has only seen English children's stories)"
# evaluate MODEL NAME: held-out loss of MODEL on the manual and on the stories -> $OUT/eval_NAME_{manual,stories}.json
evaluate() {
  "$LT" eval --model "$1" --data "$OUT/data" --split validation --json > "$OUT/eval_$2_manual.json"
  "$LT" eval --model "$1" --data "$OUT/replay" --split validation --json > "$OUT/eval_$2_stories.json"
  printf '  %s: manual %.3f, stories %.3f\n' "$2" "$(jnum "$OUT/eval_$2_manual.json" loss)" \
    "$(jnum "$OUT/eval_$2_stories.json" loss)"
}
evaluate "$OUT/base" before

# ---------------------------------------------------------------------------------------------
phase "7/12 launch: continual pretraining with 25% replay, wsd schedule, tp2 x pp2 = 4 ranks, S3 checkpoints, one injected failure"
port=${DEMO_S3_PORT:-}
if [ -z "$port" ]; then
  for p in $(seq 9000 9100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { port=$p; break; }; done
fi
export S3RVER_NPM_DIR=${S3RVER_NPM_DIR:-$ROOT/out/s3rver-npm} S3RVER_OWNER_PID=$$
bash scripts/s3rver.sh start "$OUT/s3" "$port"
trap 'bash scripts/s3rver.sh stop "$ROOT/$OUT/s3" 2>/dev/null || true' EXIT
echo "S3-compatible server on http://127.0.0.1:$port (bucket ckpt)"
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret \
       AWS_REGION=us-east-1
# The launcher's fault hook SIGKILLs one rank once the job reaches step KILL_STEP; the launcher
# sees the job fail, backs off, health-checks again and resumes from the newest checkpoint.
# (The console goes through a pipe, not `2> >(tee ...)`: a process substitution would become a
# child of the launcher, which kills all its children when a job attempt ends.)
set +e
LT_FAULT_KILL_AT_STEP=$KILL_STEP "$LT" launch --config examples/stories260k_demo.yaml \
  --procs-per-node 4 --mpirun-args "$MPI_ARGS" \
  --healthcheck-args "--memory-mb 64 --gemm-size 256 --comm-mb 4" \
  --max-retries 2 --backoff 2s --json \
  init="$OUT/base" "data.sources=[manual=$OUT/data@0.75,stories=$OUT/replay@0.25]" \
  "data.valid=[manual=$OUT/data/validation,stories=$OUT/replay/validation]" run.dir="$OUT/run" \
  train.steps="$STEPS" checkpoint.remote=s3://ckpt/demo \
  2>&1 > "$OUT/launch.json" | tee "$OUT/launch_console.log"
rc=${PIPESTATUS[0]}
set -e
[ $rc -eq 0 ] || { echo "demo: llamatrain launch failed (exit $rc); see $OUT/run/launch.log" >&2; exit $rc; }
bash scripts/s3rver.sh stop "$OUT/s3"
trap - EXIT

# ---------------------------------------------------------------------------------------------
phase "8/12 train: the same continual pretraining without replay (one process, 2 threads), for comparison"
OMP_NUM_THREADS=2 "$LT" train --config examples/stories260k_demo.yaml init="$OUT/base" \
  "data.sources=[manual=$OUT/data@1]" "data.valid=[manual=$OUT/data/validation,stories=$OUT/replay/validation]" \
  run.dir="$OUT/run_noreplay" train.steps="$STEPS" parallel.tp=1 parallel.pp=1 train.threads=2 \
  2>&1 | grep -E "lr plan|valid|step $STEPS/" | tee "$OUT/noreplay_console.log"

phase "9/12 convert: newest checkpoint -> Hugging Face directory (safetensors + config.json + tokenizer)"
# The SentencePiece model goes in as tokenizer.model, with a tokenizer_config.json for transformers.
"$LT" convert --to hf --input "$OUT/run/checkpoints" --output "$OUT/hf" --tokenizer "$TOK" --json \
  > "$OUT/convert_hf.json"
ls "$OUT/hf"

phase "10/12 eval: held-out loss on both sets after, with replay (from the HF export) and without"
evaluate "$OUT/hf" replay
evaluate "$OUT/run_noreplay/checkpoints" noreplay

phase "11/12 generate: a sample from the HF export"
"$LT" generate --model "$OUT/hf" --tokenizer "$TOK" --prompt "GIMP" --max-new-tokens 120 \
  --temperature 0.7 --top-p 0.9 --seed 1 | tee "$OUT/sample.txt"

# ---------------------------------------------------------------------------------------------
before=$(jnum "$OUT/eval_before_manual.json" loss)
after=$(jnum "$OUT/eval_replay_manual.json" loss)
loss_row() {  # loss_row NAME LABEL: the row of the summary's table
  printf '  %-32s %8.3f %10.3f\n' "$2" "$(jnum "$OUT/eval_$1_manual.json" loss)" "$(jnum "$OUT/eval_$1_stories.json" loss)"
}
# Throughput: training tokens over training time, from the per-step records of metrics.jsonl
# (both attempts; steps redone after the failure count too).
tps=$(awk -F'"step_s":' '/"step_s":/ { split($2, a, ","); s += a[1]; n++ }
       END { if (s > 0) printf "%.0f", n * 16 * 256 / s; else print "?" }' "$OUT/run/metrics.jsonl")  # 16 x 256: the config
saved=$(grep -c 'checkpoint saved:' "$OUT/launch_console.log" || true)
uploaded=$(grep -c 'uploaded checkpoint' "$OUT/launch_console.log" || true)
retries=$(jnum "$OUT/launch.json" retries)
faults=$(grep -c '"event":"fault_injected"' "$OUT/run/launch.log" || true)
events=$(ls "$OUT/run/tensorboard" | wc -l)
# What the S3 server holds now: the newest checkpoint.keep, each complete (its DONE object).
remote=$(cd "$OUT/s3/data/ckpt/demo" 2>/dev/null && ls -d step_*/DONE._S3rver_object 2>/dev/null | sed 's|/.*||' | tr '\n' ' ' | sed 's/ $//' || true)
loader=$(grep -o '"loader_s_per_step":[0-9.eE+-]*' "$OUT/run/metrics.jsonl" | tail -1 | cut -d: -f2 |
         awk '{ printf "%.3f", $1 * 1000 }')
phase "12/12 summary"
echo "  held-out loss (nats/token; manual: $(jnum "$OUT/eval_replay_manual.json" tokens) tokens, stories: $(jnum "$OUT/eval_replay_stories.json" tokens))"
printf '  %-32s %8s %10s\n' "" manual stories
loss_row before "stories260K (before)"
loss_row noreplay "after, no replay"
loss_row replay "after, 25% replay (tp2 x pp2)"
cat <<EOF
  training: $STEPS steps x 16 x 256 tokens, wsd schedule, tp2 x pp2, $tps tokens/s (4 ranks on $(getconf _NPROCESSORS_ONLN) cores); data loader ${loader:-?} ms/step
  checkpoints written: $saved, uploaded: $uploaded; complete in s3://ckpt/demo now: ${remote:-none}
  injected worker failures: $faults; retries: $retries (launch summary: $OUT/launch.json)
  TensorBoard: $events event files; forgetting curves of both runs (valid/manual/loss, valid/stories/loss):
               tensorboard --logdir $OUT
  Hugging Face model: $OUT/hf     sample: $OUT/sample.txt     launch log: $OUT/run/launch.log
  total time: $(( $(date +%s) - T0 )) s
EOF
awk -v b="$before" -v a="$after" 'BEGIN { exit !(a < b) }' ||
  { echo "demo: the held-out loss on the manual did not improve" >&2; exit 1; }
awk -v r="$(jnum "$OUT/eval_replay_stories.json" loss)" -v n="$(jnum "$OUT/eval_noreplay_stories.json" loss)" \
  'BEGIN { exit !(r < n) }' || { echo "demo: replay did not reduce forgetting of the stories" >&2; exit 1; }
