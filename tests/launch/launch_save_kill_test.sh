# SIGKILL a rank while a checkpoint is being written: the half-written step_N.tmp/ is never
# taken for a checkpoint ("latest" stays on the previous complete step), the restart resumes
# from that step, and the result is byte-identical to an uninterrupted run.
# Usage: bash launch_save_kill_test.sh <llamatrain> <source-dir>
source "$2/tests/launch/launch_common.sh" "$1" "$2"

launch --no-healthcheck $(job "$WORK/ref" 6 checkpoint.every=2) 2> "$WORK/ref.log"
check "uninterrupted run exits 0" [ $? -eq 0 ]

LT_FAULT_SAVE_DELAY_S=1 LT_FAULT_KILL_IN_SAVE=4 launch --no-healthcheck --backoff 0 --json $(job "$WORK/faulty" 6 checkpoint.every=2) \
  > "$WORK/summary.json" 2> "$WORK/faulty.log"
check "launch with a rank killed mid-save exits 0" [ $? -eq 0 ]
check "the kill landed while step 4 was being written (step_00000004.tmp present, step_00000004 absent)" \
  grep -q '"event":"fault_mid_save".*"mid_save":true' "$WORK/faulty/launch.log"
check "after the kill the newest complete checkpoint was step 2" \
  grep -q '"attempt":1,.*"checkpoint_step":2,.*"outcome":"failed"' "$WORK/faulty/launch.log"
check "the restart resumed from step 2" grep -q '"attempt":2,.*"event":"attempt_start".*"resume_step":2' "$WORK/faulty/launch.log"
check "the trainer removed the stale step_00000004.tmp" grep -q "removing stale .*step_00000004.tmp" "$WORK/faulty.log"
check "no .tmp directory left" [ -z "$(ls -d "$WORK"/faulty/checkpoints/*.tmp 2>/dev/null)" ]
check "latest names step 6" [ "$(cat "$WORK/faulty/checkpoints/latest")" = step_00000006 ]
check "final weights byte-identical to the uninterrupted run" \
  same_weights "$WORK/ref/checkpoints/step_00000006" "$WORK/faulty/checkpoints/step_00000006"
check "no process left behind" no_leftovers
[ $fail -eq 0 ] || tail -40 "$WORK/faulty.log"
exit $fail
