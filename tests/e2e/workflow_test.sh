# The seed's workflow end to end at CI size (what scripts/demo.sh does at demo size), against the
# real binary: prepare a small slice of the trilingual corpus with stories260K's tokenizer ->
# import the pretrained stories260K (llama2.c) -> a replay set of its own generated stories ->
# held-out loss -> `llamatrain launch` tp2 x pp2 (4 ranks) for a few steps on the manual blended
# with the replay set (data.sources), a wsd schedule and both held-out sets evaluated
# (data.valid), with checkpoints synced to a real S3-compatible server and ONE injected rank
# kill -> Hugging Face export -> generate -> held-out loss again.
# Every step's outcome is asserted: exit codes, files, loss finite and improved, one retry, the
# remote checkpoint complete and byte-identical to the local one.
# Usage: bash workflow_test.sh <llamatrain> <source-dir>      (from a build directory)
set -u
LT="$1"
SRC="$2"
source "$SRC/tests/mpi_env.sh"
TOK="$SRC/assets/stories260k/tok512.model"

WORK="$(pwd)/test_scratch/e2e_workflow"
rm -rf "$WORK"
mkdir -p "$WORK/corpus"
jnum() { grep -o "\"$2\": *-\{0,1\}[0-9][0-9.eE+-]*" "$1" | head -1 | sed 's/.*: *//'; }
finite() { awk -v x="$1" 'BEGIN { exit !(x != "" && x + 0 == x && x < 1e30 && x > -1e30) }'; }
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
start=$(date +%s)

# --- S3-compatible server (real signature checks), owned by this test -------------------------
# A free port now can be taken before the server binds it (tests run in parallel): try a few.
port=$((20000 + $$ % 20000))
s3ok=0
for attempt in 1 2 3 4 5; do
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break; port=$((port + 1)); done
  S3RVER_OWNER_PID=$$ S3RVER_NPM_DIR="$(pwd)/s3rver-npm" bash "$SRC/scripts/s3rver.sh" start "$WORK/s3" "$port" && { s3ok=1; break; }
  port=$((port + 97))
done
check "S3 server started" [ $s3ok -eq 1 ]
trap 'bash "$SRC/scripts/s3rver.sh" stop "$WORK/s3" >/dev/null 2>&1' EXIT
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret AWS_REGION=us-east-1

# --- prepare: ~200 paragraphs per language, one document each, 5% held out -------------------
for l in ca es en; do
  awk -v RS= 'NR <= 200 { print; print "" }' "$SRC/assets/corpus/gimp_help/gimp_help_$l.txt" > "$WORK/corpus/$l.txt"
done
"$LT" prepare "$WORK/corpus" -o "$WORK/data" --tokenizer "$TOK" --text-mode paragraph --block-size 64 \
  --validation-fraction 0.05 --split-seed 1 --no-progress --json > "$WORK/prepare.json" 2> "$WORK/prepare.log"
check "prepare exits 0" [ $? -eq 0 ]
check "prepare wrote meta.json and both splits" \
  [ -f "$WORK/data/meta.json" -a -n "$(ls "$WORK/data"/train-*.bin 2>/dev/null)" -a -n "$(ls "$WORK/data"/validation-*.bin 2>/dev/null)" ]

# --- convert: the pretrained stories260K from llama2.c --------------------------------------
"$LT" convert --from llama2c --input "$SRC/assets/stories260k/stories260K.bin" --output "$WORK/base" \
  > /dev/null 2> "$WORK/convert.log"
check "convert --from llama2c exits 0" [ $? -eq 0 ]
check "imported checkpoint is complete" [ -f "$WORK/base/step_00000000/DONE" ]

# --- replay: 24 stories written by stories260K itself, 25% held out ---------------------------
"$LT" generate --model "$WORK/base" --tokenizer "$TOK" --samples 24 --max-new-tokens 200 --seed 3 \
  > "$WORK/stories.txt" 2> "$WORK/generate_replay.log"
check "generate --samples exits 0" [ $? -eq 0 ]
check "24 stories, one per blank-line-separated paragraph" [ "$(grep -c '^$' "$WORK/stories.txt")" -eq 24 ]
"$LT" prepare "$WORK/stories.txt" -o "$WORK/replay" --tokenizer "$TOK" --text-mode paragraph --block-size 64 \
  --validation-fraction 0.25 --split-seed 1 --no-progress > /dev/null 2>> "$WORK/prepare.log"
check "prepare of the replay set exits 0" [ $? -eq 0 ]
SOURCES="data.sources=[manual=$WORK/data@0.75,stories=$WORK/replay@0.25]"

"$LT" eval --model "$WORK/base" --data "$WORK/data" --json > "$WORK/eval_before.json" 2> "$WORK/eval.log"
check "eval before exits 0" [ $? -eq 0 ]
before=$(jnum "$WORK/eval_before.json" loss)
check "held-out loss before is finite ($before)" finite "$before"

# --- launch: tp2 x pp2, S3 sync, one rank SIGKILLed at step 5 --------------------------------
LT_FAULT_KILL_AT_STEP=5 "$LT" launch --procs-per-node 4 --mpirun-args "$MPI_ARGS" \
  --healthcheck-args "--memory-mb 16 --gemm-size 128 --comm-mb 1" --backoff 1s --max-retries 2 --json \
  model=stories260k init="$WORK/base" "$SOURCES" \
  "data.valid=[manual=$WORK/data/validation,stories=$WORK/replay/validation]" \
  run.dir="$WORK/run" train.steps=16 train.global_batch_size=8 train.micro_batch_size=2 train.seq_len=64 \
  optim.lr=3e-3 optim.min_lr=3e-4 optim.warmup_steps=2 optim.schedule=wsd parallel.tp=2 parallel.pp=2 \
  train.log_every=4 checkpoint.every=4 checkpoint.keep=2 checkpoint.remote=s3://ckpt/e2e eval.every=6 eval.batches=2 \
  > "$WORK/launch.json" 2> "$WORK/launch.log"
rc=$?
check "launch exits 0 after the injected failure" [ $rc -eq 0 ]
check "one fault injected" [ "$(grep -c '"event":"fault_injected"' "$WORK/run/launch.log")" -eq 1 ]
check "retries == 1" [ "$(jnum "$WORK/launch.json" retries)" = 1 ]
check "final step 16" [ "$(jnum "$WORK/launch.json" final_step)" = 16 ]
# The kill lands at step 5 or a little later (the launcher polls the heartbeat every 0.1 s):
# the second attempt resumes from a checkpoint (4, or 8 on a fast machine), not from scratch.
resumes=$(grep -o '"resume_step": [0-9-]*' "$WORK/launch.json" | sed 's/.*: //' | tr '\n' ' ')
check "attempt 1 from scratch, attempt 2 from a checkpoint (resume steps: $resumes)" \
  awk -v r="$resumes" 'BEGIN { n = split(r, a, " "); exit !(n == 2 && a[1] == -1 && a[2] >= 4 && a[2] % 4 == 0) }'
check "health check passed before both attempts" [ "$(grep -c '"event":"healthcheck_ok"' "$WORK/run/launch.log")" -eq 2 ]
check "TensorBoard: one event file per attempt" [ "$(ls "$WORK/run/tensorboard" | grep -c tfevents)" -eq 2 ]
last_loss=$(grep '"step":16,' "$WORK/run/metrics.jsonl" | grep -o '"loss":[-0-9.eE+]*' | tail -1 | cut -d: -f2)
check "training loss at step 16 is finite ($last_loss)" finite "$last_loss"
check "both held-out sets evaluated at step 12" grep -q '"step":12,"valid":{"manual":{"loss":[0-9].*"stories":{"loss":[0-9]' \
  "$WORK/run/metrics.jsonl"
check "the blend's per-source samples at step 16 (96 + 32)" \
  grep -q '"sources":{"manual":{"epochs":[0-9.e+-]*,"samples":96,.*"stories":{"epochs":[0-9.e+-]*,"samples":32,' \
  "$WORK/run/metrics.jsonl"

# The remote copy of the final checkpoint: DONE marker, every local file byte-identical.
remote_same() {
  local l="$WORK/run/checkpoints/step_00000016" r="$WORK/s3/data/ckpt/e2e/step_00000016" n=0 f
  [ -f "$r/DONE._S3rver_object" ] || { echo "  no remote DONE"; return 1; }
  for f in $(cd "$l" && find . -type f | sed 's|^\./||'); do
    cmp -s "$l/$f" "$r/$f._S3rver_object" || { echo "  remote differs or is missing: $f"; return 1; }
    n=$((n + 1))
  done
  [ $n -ge 9 ]  # meta.json + 4 model + 4 optimizer shards (+ DONE)
}
check "remote checkpoint step 16 complete and identical to the local one" remote_same

# The local checkpoint directory is lost: `train` restores the newest complete remote
# checkpoint (as SageMaker does) and resumes it, here on one process (tp2 x pp2 -> tp1 x pp1).
rm -rf "$WORK/run/checkpoints"
OMP_NUM_THREADS=2 "$LT" train model=stories260k "$SOURCES" run.dir="$WORK/run" train.steps=20 \
  train.global_batch_size=8 train.micro_batch_size=2 train.seq_len=64 optim.lr=3e-3 optim.min_lr=3e-4 \
  optim.warmup_steps=2 optim.decay_steps=16 optim.schedule=wsd checkpoint.every=4 checkpoint.keep=2 \
  checkpoint.remote=s3://ckpt/e2e \
  > /dev/null 2> "$WORK/restore.log"
check "train after losing the local checkpoints exits 0" [ $? -eq 0 ]
check "restored step 16 from S3" grep -q "restored .*step_00000016 from s3://ckpt/e2e" "$WORK/restore.log"
check "resumed at step 16 under another layout" grep -q "loaded .*step 16, saved at tp2 pp2" "$WORK/restore.log"
check "finished at step 20" [ "$(cat "$WORK/run/checkpoints/latest")" = step_00000020 ]

# --- convert back to Hugging Face, generate, eval -------------------------------------------
"$LT" convert --to hf --input "$WORK/run/checkpoints" --output "$WORK/hf" --tokenizer "$TOK" \
  > /dev/null 2> "$WORK/convert_hf.log"
check "convert --to hf exits 0" [ $? -eq 0 ]
check "HF directory has config.json, safetensors and tokenizer.model" \
  [ -f "$WORK/hf/config.json" -a -f "$WORK/hf/model.safetensors" -a -f "$WORK/hf/tokenizer.model" ]
check "config.json is a LlamaForCausalLM" grep -q LlamaForCausalLM "$WORK/hf/config.json"

"$LT" generate --model "$WORK/hf" --tokenizer "$TOK" --prompt "GIMP" --max-new-tokens 20 --temperature 0.7 \
  --seed 1 --json > "$WORK/generate.json" 2> "$WORK/generate.log"
check "generate exits 0" [ $? -eq 0 ]
check "generate produced text" grep -q '"text"' "$WORK/generate.json"

"$LT" eval --model "$WORK/hf" --data "$WORK/data" --json > "$WORK/eval_after.json" 2>> "$WORK/eval.log"
check "eval after exits 0" [ $? -eq 0 ]
after=$(jnum "$WORK/eval_after.json" loss)
check "held-out loss after is finite ($after)" finite "$after"
check "held-out loss improved: $before -> $after" less "$after" "$before"

echo "  e2e workflow: $(( $(date +%s) - start )) s"
no_leftovers() { sleep 1; ! pgrep -f "run.dir=$WORK/" >/dev/null; }
check "no rank left behind" no_leftovers
[ $fail -eq 0 ] || { echo "--- launch log"; tail -40 "$WORK/launch.log"; }
exit $fail
