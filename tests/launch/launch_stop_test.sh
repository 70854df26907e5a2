# Stopping on purpose: at the --max-run wall-clock limit the ranks save a checkpoint at the
# step they reached and the launcher exits 86; the same command then continues from it. A
# SIGTERM to the launcher does the same with exit 85.
# Usage: bash launch_stop_test.sh <llamatrain> <source-dir>
source "$2/tests/launch/launch_common.sh" "$1" "$2"

launch --no-healthcheck --max-run 12s --json $(job "$WORK/run" 1000000 checkpoint.every=500) \
  > "$WORK/summary.json" 2> "$WORK/run.log"
rc=$?
check "wall-clock limit: exit 86 (got $rc)" [ $rc -eq 86 ]
hb=$(sed 's/.*"step": \([0-9]*\).*/\1/' "$WORK/run/heartbeat.json")
ck=$(json_field "$WORK/summary.json" final_step)
check "a checkpoint at the last step reached (heartbeat $hb, checkpoint $ck)" [ -n "$hb" -a "$hb" = "$ck" ]
check "latest names it" [ "$(cat "$WORK/run/checkpoints/latest")" = "$(printf 'step_%08d' "$ck")" ]
check "the ranks exited 85 (stopped after saving)" grep -q '"outcome":"stopped".*' "$WORK/run/launch.log"
check "status time_limit" [ "$(json_field "$WORK/summary.json" status)" = time_limit ]

# Same command, no limit, fewer total steps: continues from the checkpoint and finishes.
target=$((ck + 3))
launch --no-healthcheck $(job "$WORK/run" $target checkpoint.every=500) 2> "$WORK/run2.log"
rc=$?
check "the next launch finishes (exit $rc)" [ $rc -eq 0 ]
check "it resumed from step $ck" grep -q "\"event\":\"attempt_start\".*\"resume_step\":$ck" "$WORK/run/launch.log"
check "and reached step $target" [ -d "$WORK/run/checkpoints/$(printf 'step_%08d' $target)" ]

# SIGTERM to the launcher itself (a scheduler's time limit, Ctrl-C): exit 85 with a checkpoint.
# (the binary itself in the background, not the shell function: $! must be the launcher)
"$LT" launch --procs-per-node 4 --mpirun-args "$MPI_ARGS" --no-healthcheck $(job "$WORK/sig" 1000000 checkpoint.every=500) \
  2> "$WORK/sig.log" &
pid=$!
for _ in $(seq 1 120); do [ -f "$WORK/sig/heartbeat.json" ] && break; sleep 0.5; done
sleep 1
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM to the launcher: exit 85 (got $rc)" [ $rc -eq 85 ]
check "with a checkpoint" [ -f "$WORK/sig/checkpoints/latest" ]

# The launcher SIGKILLed: mpirun gets SIGTERM (parent-death signal) and the job ends too.
"$LT" launch --procs-per-node 4 --mpirun-args "$MPI_ARGS" --no-healthcheck $(job "$WORK/orphan" 1000000 checkpoint.every=500) \
  2> "$WORK/orphan.log" &
pid=$!
for _ in $(seq 1 120); do [ -f "$WORK/orphan/heartbeat.json" ] && break; sleep 0.5; done
kill -KILL $pid
wait $pid 2>/dev/null
for _ in $(seq 1 60); do pgrep -f "run.dir=$WORK/orphan" >/dev/null || break; sleep 0.5; done
check "launcher SIGKILLed: its job ends as well" no_leftovers
check "no process left behind" no_leftovers
[ $fail -eq 0 ] || tail -n 30 "$WORK/run.log" "$WORK/sig.log"
exit $fail
