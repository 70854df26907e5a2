# SIGSTOP a rank: the job makes no progress, the heartbeat watchdog (--hang-timeout) stops
# the whole job (SIGTERM, then SIGKILL) and restarts it from the newest checkpoint.
# LT_COMM_TIMEOUT is unset, so the launcher's watchdog (not the ranks' comm watchdog) acts.
# (OpenMPI's mpirun sends SIGCONT before SIGTERM when it takes a job down, so the stopped rank
# may wake and the ranks may save one more checkpoint before they exit: either way the next
# attempt resumes from the newest complete checkpoint. With asynchronous checkpoints (the
# default) the stopped rank may not have written its shard of the step-2 save yet: then no
# checkpoint is complete and attempt 2 starts over, which is as correct.)
# Usage: bash launch_hang_test.sh <llamatrain> <source-dir>
source "$2/tests/launch/launch_common.sh" "$1" "$2"

start=$(date +%s)
LT_FAULT_STOP_AT_STEP=3 launch --no-healthcheck --backoff 0 --hang-timeout 8s --kill-grace 3s --json \
  $(job "$WORK/run" 12 checkpoint.every=2) > "$WORK/summary.json" 2> "$WORK/run.log"
rc=$?
echo "  launch with a stopped rank: exit $rc after $(( $(date +%s) - start )) s"
check "launch with a stopped rank exits 0" [ $rc -eq 0 ]
check "a rank was stopped" grep -q '"event":"fault_injected".*"signal":19' "$WORK/run/launch.log"
check "the watchdog declared a hang" grep -q '"event":"hang"' "$WORK/run/launch.log"
check "attempt 1 ended as hung" grep -q '"attempt":1,.*"outcome":"hung"' "$WORK/run/launch.log"
check "one retry, final step 12" [ "$(json_field "$WORK/summary.json" retries)/$(json_field "$WORK/summary.json" final_step)" = 1/12 ]
check "attempt 2 resumed before step 12 (or started over) and trained to the end" \
  grep -q '"attempt":2,.*"checkpoint_step":12,.*"first_step":[0-9]*,.*"outcome":"completed".*"resume_step":\(-1\|[0-9]\|1[01]\),' "$WORK/run/launch.log"
check "no process left behind (the stopped rank too)" no_leftovers
[ $fail -eq 0 ] || tail -40 "$WORK/run.log"
exit $fail
