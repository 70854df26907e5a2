# Leaving out hosts that fail the health check, end to end: three "hosts" 127.0.0.2-4 on this
# machine (an ssh stand-in starts their orteds locally), 2 ranks each, tp2 -> dp = hosts.
# 1. A bad host at the start: the spare takes its place; when the spare is bad too, the job
#    shrinks to one host (dp 1, same global batch of 4 through 4 micro-batches).
# 2. A host turns bad during the job: a rank is killed at step 3, the health check then fails
#    on that host, and the job continues on the other host from the newest dp-2 checkpoint.
# Usage: bash launch_exclude_test.sh <llamatrain> <source-dir>
source "$2/tests/launch/launch_common.sh" "$1" "$2"
# No shared-memory transport and no shared hwloc topology segment: the "hosts" share one
# machine but not one orted (vader and orted's hwloc shmem writer crashed in this setup).
MPI_ARGS="--oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,tcp --mca rtc ^hwloc"
MPI_ARGS="$MPI_ARGS --mca plm_rsh_agent $SRC/tests/launch/fake_ssh.sh"
export LT_FAKE_SSH_TMP="$WORK/tmp"
printf '127.0.0.2 slots=2\n127.0.0.3 slots=2\n127.0.0.4 slots=2\n' > "$WORK/hosts"
tp2() {  # job settings with tp2 pp1
  job "$@" | sed 's/parallel.pp=2/parallel.pp=1/'
}

LT_HEALTHCHECK_FAULT=compute:2 "$LT" launch --procs-per-node 2 --nodes 2 --hostfile "$WORK/hosts" \
  --mpirun-args "$MPI_ARGS" --healthcheck-args "$HC_ARGS" --max-retries 0 --json \
  $(tp2 "$WORK/start" 4) > "$WORK/start.json" 2> "$WORK/start.log"
rc=$?
check "bad host at the start: exit 0 (got $rc)" [ $rc -eq 0 ]
check "the spare 127.0.0.4 replaced 127.0.0.3" \
  grep -q '"excluded":\["127.0.0.3"\],.*"spares_used":\["127.0.0.4"\],.*"world":4' "$WORK/start/launch.log"
check "then the job shrank to 127.0.0.2 alone (2 ranks)" \
  grep -q '"excluded":\["127.0.0.4"\],"hosts":\["127.0.0.2"\],.*"world":2' "$WORK/start/launch.log"
check "trained at 2 ranks to step 4" grep -q '"attempt":1,.*"outcome":"completed".*"world":2' "$WORK/start/launch.log"

# Synchronous saves: the step-2 checkpoint is complete before the kill at step 3 (an asynchronous
# one may still lack the killed rank's shard), so attempt 2 surely reshards a dp-2 checkpoint.
LT_FAULT_KILL_AT_STEP=3 LT_FAULT_HEALTHCHECK_LATER=compute:2 "$LT" launch --procs-per-node 2 --hostfile "$WORK/hosts" \
  --nodes 2 --mpirun-args "$MPI_ARGS" --healthcheck-args "$HC_ARGS" --backoff 0 --json \
  $(tp2 "$WORK/during" 8 checkpoint.every=2 checkpoint.async=false) > "$WORK/during.json" 2> "$WORK/during.log"
rc=$?
check "host turning bad during the job: exit 0 (got $rc)" [ $rc -eq 0 ]
check "attempt 1 ran 4 ranks (dp 2) and failed" grep -q '"attempt":1,.*"outcome":"failed".*"world":4' "$WORK/during/launch.log"
check "the health check after it left out 127.0.0.3 (the spare was bad too)" \
  grep -q '"excluded":\["127.0.0.4"\],"hosts":\["127.0.0.2"\]' "$WORK/during/launch.log"
check "attempt 2 resumed the dp-2 checkpoint on 2 ranks" resumed_from_previous "$WORK/during/launch.log" 2
check "and finished" grep -q '"attempt":2,.*"outcome":"completed",.*"world":2' "$WORK/during/launch.log"
check "final step 8" [ "$(json_field "$WORK/during.json" final_step)" = 8 ]
check "no process left behind" no_leftovers
[ $fail -eq 0 ] || tail -n 40 "$WORK/start.log" "$WORK/during.log"
exit $fail
