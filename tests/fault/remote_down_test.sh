# Object storage that fails during a run (a real S3-compatible server, scripts/s3rver.sh):
#  - stopped mid-run under `llamatrain launch --stop-grace 10s`: the run finishes training, waits
#    at most half the grace for the missing uploads, exits 87 (not 0), and exit.json and the
#    launch summary name the checkpoints without a remote copy; those are kept locally (not
#    pruned); with the server back, running the same command again uploads them and exits 0, and
#    a new machine restores the newest one byte for byte;
#  - wrong credentials: a clear error at start (exit 1), the secret never printed, nothing saved;
#  - the bucket disappears mid-run: exit 87 naming the missing bucket, local checkpoints kept.
# Usage: bash remote_down_test.sh <llamatrain> <source-dir>
source "$2/tests/fault/fault_common.sh" "$1" "$2"

S3="$WORK/s3"
port=$((20000 + ($$ * 7) % 20000))
s3start() {  # a free port now can be taken before the server binds it: try a few
  local attempt
  for attempt in 1 2 3 4 5; do
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break; port=$((port + 1)); done
    S3RVER_OWNER_PID=$$ S3RVER_NPM_DIR="$(pwd)/s3rver-npm" bash "$SRC/scripts/s3rver.sh" start "$S3" "$port" && return 0
    port=$((port + 97))
  done
  return 1
}
s3stop() { bash "$SRC/scripts/s3rver.sh" stop "$S3" >/dev/null 2>&1; }
trap s3stop EXIT
s3start
check "S3 server started" [ $? -eq 0 ]
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret AWS_REGION=us-east-1
# wait_for <file> <pattern> <seconds>: until a line matches.
wait_for() {
  local i
  for i in $(seq $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
json_has() { tr -d ' \n' < "$1" | grep -q "$2"; }

# --- the server stops after the first upload ------------------------------------------------
run="$WORK/down"
ARGS=$(job "$run" 8 checkpoint.every=2 checkpoint.keep=2 checkpoint.remote=s3://ckpt/down)
start=$(date +%s)
LT_FAULT_SAVE_DELAY_S=1 "$LT" launch --procs-per-node 1 --mpirun-args "$MPI_ARGS" --no-healthcheck --stop-grace 10s \
  --max-retries 0 --json $ARGS > "$WORK/down.json" 2> "$run.log" &
pid=$!
wait_for "$run.log" "uploaded checkpoint step_00000002" 60
check "step 2 was uploaded before the server stopped" [ $? -eq 0 ]
s3stop
wait $pid
rc=$?
took=$(( $(date +%s) - start ))
check "launch exits 87 when remote copies are missing (got $rc)" [ $rc -eq 87 ]
check "the exit wait stayed inside --stop-grace 10s (half of it: 5 s)" grep -q "stopped waiting after 5 s" "$run.log"
check "the whole run took less than 40 s (took $took s)" [ $took -lt 40 ]
check "exit.json: status 87, remote incomplete" json_has "$run/exit.json" '"status":87'
check "exit.json names step 6 and step 8 as missing" json_has "$run/exit.json" '"missing":\["step_00000006","step_00000008"\]'
check "the launch summary names them too" json_has "$WORK/down.json" '"remote":{.*"missing":\["step_00000006","step_00000008"\]'
check "the launch summary's status says so" json_has "$WORK/down.json" '"status":"completed_remote_incomplete"'
check "checkpoints without a remote copy were kept locally (4, 6, 8)" \
  [ -f "$run/checkpoints/step_00000004/DONE" -a -f "$run/checkpoints/step_00000006/DONE" -a -f "$run/checkpoints/step_00000008/DONE" ]
check "the uploaded step 2 was pruned locally" [ ! -e "$run/checkpoints/step_00000002" ]
check "every DONE directory verifies" every_done_verifies "$run/checkpoints"

# The server comes back (same data); the same command uploads what is missing.
s3start
check "S3 server restarted" [ $? -eq 0 ]
"$LT" launch --procs-per-node 1 --mpirun-args "$MPI_ARGS" --no-healthcheck --stop-grace 10s --max-retries 0 --json \
  $ARGS > "$WORK/again.json" 2> "$run.again.log"
rc=$?
check "the rerun exits 0 (got $rc)" [ $rc -eq 0 ]
check "the rerun uploaded step 6" grep -q "uploaded checkpoint step_00000006" "$run.again.log"
check "the rerun uploaded step 8" grep -q "uploaded checkpoint step_00000008" "$run.again.log"
check "exit.json: remote complete" json_has "$run/exit.json" '"complete":true'
check "a rerun that saves nothing deletes nothing locally" [ -f "$run/checkpoints/step_00000004/DONE" ]
# A new machine: empty local directory, the newest remote checkpoint is restored.
"$LT" train $(job "$WORK/restore" 8 checkpoint.remote=s3://ckpt/down) > "$WORK/restore.log" 2>&1
check "a fresh run restores from the remote and exits 0" [ $? -eq 0 ]
check "it restored step 8" grep -q "restored .*step_00000008" "$WORK/restore.log"
check "the restored step 8 is byte-identical to the local one" \
  same_weights "$run/checkpoints/step_00000008" "$WORK/restore/checkpoints/step_00000008"

# --- wrong credentials ----------------------------------------------------------------------
AWS_SECRET_ACCESS_KEY=not-the-secret-42 "$LT" train $(job "$WORK/creds" 4 checkpoint.remote=s3://ckpt/creds) \
  > "$WORK/creds.log" 2>&1
rc=$?
check "wrong credentials: exit 1 (got $rc)" [ $rc -eq 1 ]
check "wrong credentials: the error says access denied and where the keys came from" \
  grep -q "^error: .*access denied.*AWS_ACCESS_KEY_ID" "$WORK/creds.log"
check "wrong credentials: the secret is never printed" bash -c "! grep -q not-the-secret-42 '$WORK/creds.log'"
check "wrong credentials: no checkpoint written" [ -z "$(ls "$WORK/creds/checkpoints" 2>/dev/null)" ]

# --- the bucket disappears after the first upload --------------------------------------------
run="$WORK/vanish"
LT_FAULT_SAVE_DELAY_S=1 "$LT" train $(job "$run" 6 checkpoint.every=2 checkpoint.keep=1 \
  checkpoint.remote=s3://ckpt/vanish checkpoint.remote_wait_s=3) > "$run.log" 2>&1 &
pid=$!
wait_for "$run.log" "uploaded checkpoint step_00000002" 60
check "vanish: step 2 uploaded first" [ $? -eq 0 ]
rm -rf "$S3/data/ckpt"
wait $pid
rc=$?
check "vanish: exit 87 (got $rc)" [ $rc -eq 87 ]
check "vanish: the log says the bucket does not exist" grep -q "bucket 'ckpt' does not exist" "$run.log"
check "vanish: exit.json names step 6 as missing" json_has "$run/exit.json" '"missing":\["step_00000006"\]'
check "vanish: steps 4 and 6 kept locally (keep 1, but not uploaded)" \
  [ -f "$run/checkpoints/step_00000004/DONE" -a -f "$run/checkpoints/step_00000006/DONE" ]
exit $fail
