# Random SIGKILLs of a single-process run, each landing during a training step, during a
# checkpoint save or while old checkpoints are deleted (the save and the deletion are held open
# a little by test hooks so the kill can land inside them; kinds in turn, moments random). After
# every kill: every directory
# with DONE verifies (sizes and xxhash64 checked by an independent reader), `latest` names a
# complete one; the run then resumes, and the finished run is bit-identical to an uninterrupted
# one. LT_KILL_SEED picks the kill moments (printed, to reproduce a failure).
# Usage: bash random_kill_test.sh <llamatrain> <source-dir>
source "$2/tests/fault/fault_common.sh" "$1" "$2"
seed=${LT_KILL_SEED:-$(( $(date +%s) % 100000 ))}
echo "  LT_KILL_SEED=$seed"
RANDOM=$seed
KILLS=${LT_KILLS:-9}
ARGS="checkpoint.every=2 checkpoint.keep=2"

train1 "$WORK/ref" 30 $ARGS
check "uninterrupted run exits 0" [ $? -eq 0 ]

run="$WORK/run"
ckpt="$run/checkpoints"
# in_window <kind>: true while a save (a .tmp directory) or a deletion (a step without DONE) runs.
in_window() {
  local d
  case $1 in
    save) for d in "$ckpt"/step_*.tmp; do [ -d "$d" ] && return 0; done ;;
    prune) for d in "$ckpt"/step_*; do [ -d "$d" ] && [ "${d%.tmp}" = "$d" ] && [ ! -f "$d/DONE" ] && return 0; done ;;
  esac
  return 1
}
landed_save=0 landed_prune=0 landed_step=0
kinds=(step save prune)
for k in $(seq $KILLS); do
  kind=${kinds[$((k % 3))]}
  # Saves and deletions are killed inside asynchronous saves (the default: files written by a
  # background thread); a kill "during a step" needs moments with no save open, which only
  # synchronous saves leave at this speed (an asynchronous one is open nearly all the time).
  async=true
  [ $kind = step ] && async=false
  LT_FAULT_SAVE_DELAY_S=0.2 LT_FAULT_PRUNE_DELAY_S=0.2 "$LT" train $(job "$run" 30 $ARGS checkpoint.async=$async) \
    >> "$run.log" 2>&1 &
  pid=$!
  if [ $kind = step ]; then  # a random moment outside the save and the deletion
    sleep "0.$((RANDOM % 5 + 1))"
    for _ in $(seq 800); do in_window save || in_window prune || break; sleep 0.002; done
  else
    for _ in $(seq 800); do in_window $kind && break; kill -0 $pid 2>/dev/null || break; sleep 0.005; done
  fi
  if in_window save; then where=save; elif in_window prune; then where=prune; else where=step; fi
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  case $where in save) landed_save=$((landed_save + 1)) ;; prune) landed_prune=$((landed_prune + 1)) ;; *) landed_step=$((landed_step + 1)) ;; esac
  echo "  kill $k ($kind wanted): landed during a $where"
  check "kill $k: every DONE directory verifies" every_done_verifies "$ckpt"
  check "kill $k: latest, if any, is complete" latest_complete "$ckpt"
done
check "kills landed during steps ($landed_step), saves ($landed_save) and deletions ($landed_prune)" \
  [ $landed_step -gt 0 -a $landed_save -gt 0 -a $landed_prune -gt 0 ]
train1 "$run" 30 $ARGS
check "the run then finishes" [ $? -eq 0 ]
check "final weights and optimizer state bit-identical to the uninterrupted run" \
  same_weights "$WORK/ref/checkpoints/step_00000030" "$ckpt/step_00000030"
check "every DONE directory verifies at the end" every_done_verifies "$ckpt"
exit $fail
