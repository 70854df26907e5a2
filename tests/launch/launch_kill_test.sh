# SIGKILL a rank at two different steps of one launch: the job completes, and its final
# weights and optimizer state are byte-identical to an uninterrupted run's.
# Usage: bash launch_kill_test.sh <llamatrain> <source-dir>
source "$2/tests/launch/launch_common.sh" "$1" "$2"

launch --no-healthcheck $(job "$WORK/ref" 10 checkpoint.every=2) 2> "$WORK/ref.log"
check "uninterrupted run exits 0" [ $? -eq 0 ]

start=$(date +%s)
LT_FAULT_KILL_AT_STEP=3,7 launch --backoff 1s --max-retries 3 --json $(job "$WORK/faulty" 10 checkpoint.every=2) \
  > "$WORK/summary.json" 2> "$WORK/faulty.log"
rc=$?
echo "  launch with 2 kills: exit $rc after $(( $(date +%s) - start )) s"
check "launch with two killed ranks exits 0" [ $rc -eq 0 ]
check "two faults were injected" [ "$(grep -c '"event":"fault_injected"' "$WORK/faulty/launch.log")" -eq 2 ]
check "two retries" [ "$(json_field "$WORK/summary.json" retries)" = 2 ]
check "final step 10" [ "$(json_field "$WORK/summary.json" final_step)" = 10 ]
# Each restart resumes from the newest complete checkpoint before its kill (2 or none, then 4 or
# 6: a checkpoint written in the background may not be complete yet one step later).
check "restart 1 resumed from the newest complete checkpoint" resumed_from_newest "$WORK/faulty/launch.log" 2
check "restart 2 resumed from the newest checkpoint" resumed_from_previous "$WORK/faulty/launch.log" 3
grep -o '"resume_step": [0-9-]*' "$WORK/summary.json" | tr '\n' ' ' | sed 's/^/  /;s/$/\n/'
check "health check ran before each attempt" [ "$(grep -c '"event":"healthcheck_ok"' "$WORK/faulty/launch.log")" -eq 3 ]
check "final weights and optimizer state byte-identical to the uninterrupted run" \
  same_weights "$WORK/ref/checkpoints/step_00000010" "$WORK/faulty/checkpoints/step_00000010"
grep -o '"recovery_s": [0-9.]*' "$WORK/summary.json" | sed 's/^/  /'
check "no process left behind" no_leftovers
[ $fail -eq 0 ] || tail -40 "$WORK/faulty.log"
exit $fail
