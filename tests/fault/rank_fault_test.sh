# One rank of a 4-rank job misbehaves on its own, under `llamatrain launch`:
#  - it exits with a non-zero status after step 5 (LT_FAULT_EXIT_AT_STEP: without finalising
#    MPI, as a rank that hits an error does): mpirun ends the job, the launcher restarts it;
#  - it is stopped (SIGSTOP) at step 5 while the ranks' own comm watchdog is on
#    (LT_COMM_TIMEOUT=4): its peers give up with status 75, the job ends, the launcher restarts.
# Either way the run completes, resumes from the newest checkpoint, ends bit-identical to an
# uninterrupted run, every DONE directory verifies, and no process is left behind.
# (A stopped rank caught by the launcher's heartbeat watchdog: tests/launch/launch_hang_test.sh.)
# Usage: bash rank_fault_test.sh <llamatrain> <source-dir>
source "$2/tests/fault/fault_common.sh" "$1" "$2"
ARGS="parallel.tp=2 checkpoint.every=2"
L="--no-healthcheck --backoff 0 --max-retries 2 --json"

launch --no-healthcheck $(job "$WORK/ref" 10 $ARGS) 2> "$WORK/ref.log"
check "uninterrupted run exits 0" [ $? -eq 0 ]

LT_FAULT_EXIT_AT_STEP=5 LT_FAULT_RANK=2 launch $L $(job "$WORK/exit" 10 $ARGS) > "$WORK/exit.json" 2> "$WORK/exit.log"
rc=$?
check "rank exits 3: launch exits 0 (got $rc)" [ $rc -eq 0 ]
check "rank exits 3: the rank said so" grep -q "rank 2 exits with status 3 after step 5" "$WORK/exit.log"
check "rank exits 3: attempt 1 failed with a non-zero status" \
  grep -q '"attempt":1,.*"event":"attempt_end".*"exit_status":[1-9][0-9]*,.*"outcome":"failed"' "$WORK/exit/launch.log"
check "rank exits 3: attempt 2 resumed from step 4" grep -q '"attempt":2,.*"event":"attempt_start".*"resume_step":4' "$WORK/exit/launch.log"
check "rank exits 3: bit-identical to the uninterrupted run" \
  same_weights "$WORK/ref/checkpoints/step_00000010" "$WORK/exit/checkpoints/step_00000010"
check "rank exits 3: every DONE directory verifies" every_done_verifies "$WORK/exit/checkpoints"

LT_COMM_TIMEOUT=4 LT_FAULT_STOP_AT_STEP=5 launch $L $(job "$WORK/stop" 10 $ARGS) \
  > "$WORK/stop.json" 2> "$WORK/stop.log"
rc=$?
check "stopped rank: launch exits 0 (got $rc)" [ $rc -eq 0 ]
check "stopped rank: a rank was stopped" grep -q '"event":"fault_injected".*"signal":19' "$WORK/stop/launch.log"
check "stopped rank: a peer's comm watchdog fired" grep -q "error: comm watchdog: stuck in" "$WORK/stop.log"
check "stopped rank: attempt 1 ended with status 75" \
  grep -q '"attempt":1,.*"event":"attempt_end".*"exit_status":75' "$WORK/stop/launch.log"
check "stopped rank: one retry" [ "$(sed -n 's/^  "retries": \([0-9]*\),$/\1/p' "$WORK/stop.json")" = 1 ]
check "stopped rank: bit-identical to the uninterrupted run" \
  same_weights "$WORK/ref/checkpoints/step_00000010" "$WORK/stop/checkpoints/step_00000010"
check "stopped rank: every DONE directory verifies" every_done_verifies "$WORK/stop/checkpoints"
check "no process left behind (the stopped rank too)" no_leftovers
exit $fail
