# Random SIGKILLs of one rank of a 4-rank job (tp2 x dp2, ZeRO-1) under `llamatrain launch`,
# each during a step, a checkpoint save or the deletion of old checkpoints (at a random step,
# LT_KILL_SEED printed). Each launch gets one fault and no retry, so that after every kill the
# test checks that every directory with DONE verifies (independent reader) and `latest` is
# complete; the next launch resumes, and the finished run is bit-identical to an uninterrupted one.
# Usage: bash random_kill_ranks_test.sh <llamatrain> <source-dir>
source "$2/tests/fault/fault_common.sh" "$1" "$2"
seed=${LT_KILL_SEED:-$(( $(date +%s) % 100000 ))}
echo "  LT_KILL_SEED=$seed"
RANDOM=$seed
STEPS=24
ARGS="parallel.tp=2 checkpoint.every=2 checkpoint.keep=2"
L="--no-healthcheck --max-retries 0 --backoff 0"

launch $L $(job "$WORK/ref" $STEPS $ARGS) 2> "$WORK/ref.log"
check "uninterrupted 4-rank run exits 0" [ $? -eq 0 ]

run="$WORK/run"
ckpt="$run/checkpoints"
for kind in step save prune step save prune; do
  newest=$(cat "$ckpt/latest" 2>/dev/null | sed 's/step_0*//')
  at=$(( ${newest:-0} + 1 + RANDOM % 3 ))
  [ $kind = step ] || at=$(( (at + 1) / 2 * 2 ))  # saves happen at even steps
  [ $at -lt $STEPS ] || at=$((STEPS - 2))
  case $kind in
    step) env=(LT_FAULT_KILL_AT_STEP=$at) ;;
    save) env=(LT_FAULT_KILL_IN_SAVE=$at LT_FAULT_SAVE_DELAY_S=0.5) ;;
    prune) env=(LT_FAULT_KILL_IN_PRUNE=$at LT_FAULT_PRUNE_DELAY_S=0.5) ;;
  esac
  env "${env[@]}" LT_FAULT_SEED=$RANDOM "$LT" launch --procs-per-node 4 --mpirun-args "$MPI_ARGS" $L \
    $(job "$run" $STEPS $ARGS) >> "$run.log" 2>&1
  rc=$?
  fired=$(grep -c '"event":"fault_injected"' "$run/launch.log")
  echo "  $kind kill at step $at: launch exit $rc, $fired fault(s) so far"
  check "$kind kill at step $at: the launch failed (exit 2, got $rc)" [ $rc -eq 2 ]
  check "$kind kill at step $at: every DONE directory verifies" every_done_verifies "$ckpt"
  check "$kind kill at step $at: latest, if any, is complete" latest_complete "$ckpt"
  if [ $kind = prune ]; then  # evidence that it landed mid-deletion: a directory left without DONE
    check "prune kill at step $at: a half-deleted step directory (no DONE) is left" \
      bash -c "for d in '$ckpt'/step_*; do case \$d in *.tmp) continue ;; esac; [ -f \$d/DONE ] || exit 0; done; exit 1"
  fi
done
check "six faults were injected" [ "$(grep -c '"event":"fault_injected"' "$run/launch.log")" -eq 6 ]
check "the save kills landed mid-save" [ "$(grep -c '"event":"fault_mid_save".*"mid_save":true' "$run/launch.log")" -eq 2 ]
launch $L $(job "$run" $STEPS $ARGS) 2>> "$run.log"
check "the run then finishes" [ $? -eq 0 ]
check "final weights and optimizer state bit-identical to the uninterrupted run" \
  same_weights "$WORK/ref/checkpoints/step_$(printf %08d $STEPS)" "$ckpt/step_$(printf %08d $STEPS)"
check "no process left behind" no_leftovers
exit $fail
