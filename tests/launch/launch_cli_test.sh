# Bad input and unrecoverable jobs end with a clear message and the documented status:
# 1 for bad input (nothing started), 2 for a job that cannot be recovered.
# Usage: bash launch_cli_test.sh <llamatrain> <source-dir>
source "$2/tests/launch/launch_common.sh" "$1" "$2"

# expect <status> <text> <command...>: exit status and a phrase of the message.
expect() {
  local want="$1" text="$2"
  shift 2
  local out rc
  out=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -eq "$want" ] && grep -qF -- "$text" <<< "$out"; then
    echo "ok: exit $rc: $(grep -F -- "$text" <<< "$out" | head -1 | cut -c1-150)"
  else
    echo "FAIL: expected exit $want and '$text', got exit $rc:"; echo "$out" | tail -5; fail=1
  fi
}

J=$(job "$WORK/r" 4)
launch_plain() { "$LT" launch --procs-per-node 4 "$@"; }
expect 1 "--max-run: cannot parse '2x' as a duration" launch --max-run 2x $J
expect 1 "--max-run: cannot parse '-1h'" launch --max-run -1h $J
expect 1 "--hang-timeout: cannot parse 'soon'" launch --hang-timeout soon $J
printf 'localhost slots=4\nno-such-host.invalid slots=4\n' > "$WORK/hosts_unknown"
expect 1 "line 2: unknown host 'no-such-host.invalid'" launch --hostfile "$WORK/hosts_unknown" $J
printf 'localhost slots=2\n' > "$WORK/hosts_few"
expect 1 "has slots=2, fewer than --procs-per-node 4" launch --hostfile "$WORK/hosts_few" $J
expect 1 "not a multiple of tp x pp" "$LT" launch --procs-per-node 3 $J
expect 1 "--nodes 3: the hostfile" "$LT" launch --nodes 3 --hostfile "$WORK/hosts_few" --procs-per-node 2 $J
expect 1 "train.steps" launch $(job "$WORK/r" 0)
expect 1 "--procs-per-node is required" "$LT" launch $J
expect 1 "--mpirun: 'no-such-mpirun' not found" launch --mpirun no-such-mpirun $J

# Dry run: the layout and the command, with spare hosts after --nodes.
printf 'localhost slots=4\n127.0.0.2 slots=4\n' > "$WORK/hosts_spare"
out=$(launch --dry-run --json --nodes 1 --hostfile "$WORK/hosts_spare" $J)
check "dry run: 4 ranks, 127.0.0.2 kept as a spare" \
  grep -q '"spares": \[ *"127.0.0.2" *\], *"tp": 2, *"world": 4' <<< "$(tr -d '\n' <<< "$out")"

# A laptop: 4 ranks on this machine's cores without any mpirun option of ours (a 2-core CI
# machine has fewer cores than ranks): the launcher oversubscribes by itself and the job runs.
cores=$(getconf _NPROCESSORS_ONLN)
if [ "$cores" -lt 4 ]; then
  out=$(launch_plain --dry-run $J 2>&1)
  check "dry run: oversubscribes 4 ranks on $cores cores" grep -q -- "-np 4 --oversubscribe --bind-to none" <<< "$out"
  "$LT" launch --procs-per-node 4 --no-healthcheck $(job "$WORK/laptop" 2) 2> "$WORK/laptop.log"
  check "laptop run without mpirun flags completes" [ $? -eq 0 ]
  check "it said why it oversubscribes" grep -q "oversubscribing" "$WORK/laptop.log"
fi

# A job that fails every time: --max-retries exhausted, exit 2, every attempt logged.
expect 2 "--max-retries 1 is exhausted" launch --no-healthcheck --backoff 0 --max-retries 1 \
  $(job "$WORK/bad" 4 data.path="$WORK/missing.bin")
check "two attempts logged" [ "$(grep -c '"event":"attempt_end"' "$WORK/bad/launch.log")" -eq 2 ]

# The health check fails on the only host (injected compute fault on rank 1): nothing to
# leave out, so the launcher says so and does not start training.
LT_HEALTHCHECK_FAULT=compute:1 expect 2 "health check failed" launch $(job "$WORK/hc" 4)
check "no training attempt after the failed health check" [ ! -f "$WORK/hc/heartbeat.json" ]
check "the bad rank is named in launch.log" grep -q '"bad_ranks":\[1\],"event":"healthcheck_failed"' "$WORK/hc/launch.log"
check "no process left behind" no_leftovers
exit $fail
