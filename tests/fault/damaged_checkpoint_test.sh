# Damaged checkpoints at resume (checkpoint.resume: auto), one process:
#  - the newest damaged (a flipped byte), a shard missing, meta.json cut: the run resumes from
#    the newest checkpoint that verifies, names what it skipped, and ends bit-identical to an
#    uninterrupted run;
#  - every checkpoint damaged: the run stops (exit 1) with an error listing each one and what is
#    wrong with it, and changes nothing in the checkpoint directory (it used to start from random
#    weights, exit 0 and overwrite them).
# Usage: bash damaged_checkpoint_test.sh <llamatrain> <source-dir>
source "$2/tests/fault/fault_common.sh" "$1" "$2"

train1 "$WORK/ref" 8 checkpoint.every=2 checkpoint.keep=4
check "uninterrupted run exits 0" [ $? -eq 0 ]
# The run every case starts from: checkpoints at steps 2, 4, 6 (and nothing later).
train1 "$WORK/base" 6 checkpoint.every=2 checkpoint.keep=4
check "base run exits 0" [ $? -eq 0 ]

# case <name> <damage command...>: copy the base run, damage its step 6, resume to step 8.
resume_case() {
  local name="$1"
  shift
  local dir="$WORK/$name"
  cp -a "$WORK/base" "$dir"
  "$@" "$dir/checkpoints/step_00000006"
  train1 "$dir" 8 checkpoint.every=2 checkpoint.keep=4
  check "$name: resumes and exits 0" [ $? -eq 0 ]
  check "$name: the damaged step 6 was skipped with a warning naming it" grep -q "skipping checkpoint.*step_00000006" "$dir.log"
  check "$name: resumed from step 4" grep -q "loaded .*step_00000004" "$dir.log"
  check "$name: final weights bit-identical to the uninterrupted run" \
    same_weights "$WORK/ref/checkpoints/step_00000008" "$dir/checkpoints/step_00000008"
  check "$name: every DONE directory verifies" every_done_verifies "$dir/checkpoints"
}
flip_newest() { flip_byte "$1/model/tp0_pp0.safetensors" 300; }
shard_missing() { rm "$1/optim/tp0_pp0_dp0.safetensors"; }
meta_cut() { truncate -s 100 "$1/meta.json"; }
resume_case newest_flipped flip_newest
resume_case shard_missing shard_missing
resume_case meta_cut meta_cut

# Every checkpoint damaged, each in another way.
dir="$WORK/all_damaged"
cp -a "$WORK/base" "$dir"
flip_newest "$dir/checkpoints/step_00000006"
shard_missing "$dir/checkpoints/step_00000004"
meta_cut "$dir/checkpoints/step_00000002"
before=$(tree_digest "$dir")
train1 "$dir" 8 checkpoint.every=2 checkpoint.keep=4
rc=$?
check "all damaged: exit 1 (got $rc)" [ $rc -eq 1 ]
check "all damaged: one error line" grep -q "^error: checkpoint directory '.*checkpoints' holds 3 checkpoint(s) and none is usable" "$dir.log"
check "all damaged: the error names step 6 and its corrupted file" grep -q "step_00000006: file model/tp0_pp0.safetensors .*corrupted" "$dir.log"
check "all damaged: the error names step 4 and its missing file" grep -q "step_00000004: file optim/tp0_pp0_dp0.safetensors is missing" "$dir.log"
check "all damaged: the error names step 2's meta.json" grep -q "step_00000002/meta.json" "$dir.log"
check "all damaged: nothing in the run directory changed" [ "$(tree_digest "$dir")" = "$before" ]

# The explicit way out: a new run in an empty checkpoint directory.
train1 "$dir" 2 checkpoint.dir="$WORK/fresh_ckpt"
check "a fresh checkpoint.dir starts from scratch" [ $? -eq 0 -a -f "$WORK/fresh_ckpt/step_00000002/DONE" ]
exit $fail
