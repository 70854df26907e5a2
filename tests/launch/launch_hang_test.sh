# SIGSTOP a rank: the job makes no progress, the heartbeat watchdog (--hang-timeout) stops
# the whole job (SIGTERM, then SIGKILL) and restarts it from the newest checkpoint.
# LT_COMM_TIMEOUT is unset, so the launcher's watchdog (not the ranks' comm watchdog) acts.
# Usage: bash launch_hang_test.sh <llamatrain> <source-dir>
source "$2/tests/launch/launch_common.sh" "$1" "$2"

start=$(date +%s)
LT_FAULT_STOP_AT_STEP=3 launch --no-healthcheck --backoff 0 --hang-timeout 8s --kill-grace 3s --json \
  $(job "$WORK/run" 6 checkpoint.every=2) > "$WORK/summary.json" 2> "$WORK/run.log"
rc=$?
echo "  launch with a stopped rank: exit $rc after $(( $(date +%s) - start )) s"
check "launch with a stopped rank exits 0" [ $rc -eq 0 ]
check "a rank was stopped" grep -q '"event":"fault_injected".*"signal":19' "$WORK/run/launch.log"
check "the watchdog declared a hang" grep -q '"event":"hang"' "$WORK/run/launch.log"
check "attempt 1 ended as hung" grep -q '"attempt":1,.*"outcome":"hung"' "$WORK/run/launch.log"
check "one retry, final step 6" [ "$(json_field "$WORK/summary.json" retries)/$(json_field "$WORK/summary.json" final_step)" = 1/6 ]
check "no process left behind (the stopped rank too)" no_leftovers
[ $fail -eq 0 ] || tail -40 "$WORK/run.log"
exit $fail
