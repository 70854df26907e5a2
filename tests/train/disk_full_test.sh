#!/usr/bin/env bash
# A checkpoint save that runs out of space (simulated with a file-size limit: writes past it
# fail with EFBIG, as ENOSPC would) must fail with a clear error naming the file, leave the
# previous checkpoint as the newest complete one, and a rerun must resume from it.
# Usage: disk_full_test.sh <llamatrain> <source-dir>
set -uo pipefail
LT=$1
WORK=$(pwd)/test_scratch/disk_full
rm -rf "$WORK"; mkdir -p "$WORK"
fail() { echo "FAIL: $*"; exit 1; }
# 40k random ids below 67 and a tiny model.
perl -e 'srand(7); print pack("S*", map { int(rand(67)) } 1..40000)' > "$WORK/tokens.bin"
cat > "$WORK/config.json" <<'JSON'
{"model_type": "llama", "hidden_size": 48, "intermediate_size": 100, "num_hidden_layers": 3,
 "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 67, "max_position_embeddings": 64}
JSON
args=(model="$WORK/config.json" data.path="$WORK/tokens.bin" run.dir="$WORK/run" train.seq_len=16
      train.global_batch_size=8 train.micro_batch_size=4 optim.warmup_steps=1 optim.decay_steps=8
      checkpoint.every=2)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
"$LT" train "${args[@]}" train.steps=4 > "$WORK/a.log" 2>&1 || fail "first run: $(tail -3 "$WORK/a.log")"
[ "$(cat "$WORK/run/checkpoints/latest")" = step_00000004 ] || fail "latest is not step 4"
# The model shard is ~150 KB: a 64 KB file-size limit makes the next save fail part-way.
( trap '' XFSZ; ulimit -f 64; exec "$LT" train "${args[@]}" train.steps=8 ) > "$WORK/b.log" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "a save on a full disk should exit 1, got $rc: $(tail -3 "$WORK/b.log")"
grep -q "^error: .*File too large" "$WORK/b.log" || fail "no clear error: $(tail -3 "$WORK/b.log")"
grep -q "step_00000006" "$WORK/b.log" || fail "the error does not name the checkpoint being written"
[ "$(cat "$WORK/run/checkpoints/latest")" = step_00000004 ] || fail "latest moved off step 4"
[ ! -e "$WORK/run/checkpoints/step_00000006" ] || fail "a half-written step 6 looks complete"
"$LT" eval --model "$WORK/run/checkpoints" --data "$WORK/tokens.bin" --seq-len 16 --max-samples 8 --json \
  > "$WORK/eval.json" 2>&1 || fail "the previous checkpoint does not load: $(cat "$WORK/eval.json")"
# With space again, the run resumes from step 4 and finishes.
"$LT" train "${args[@]}" train.steps=8 > "$WORK/c.log" 2>&1 || fail "resume: $(tail -3 "$WORK/c.log")"
grep -q "loaded .*step_00000004" "$WORK/c.log" || fail "did not resume from step 4"
[ "$(cat "$WORK/run/checkpoints/latest")" = step_00000008 ] || fail "latest is not step 8 after the resume"
echo "ok: full disk during a save -> clear error, step 4 intact, resumed to step 8"
