# Sourced by tests/launch/*_test.sh: a tiny stories260k job (tp2 x pp2 = 4 ranks) under
# `llamatrain launch` on a 2-core machine. Usage in a test: source it with "$1" "$2".
set -u
LT="$1"
SRC="$2"
command -v perl >/dev/null || { echo "perl not found"; exit 1; }
source "$SRC/tests/mpi_env.sh"
HC_ARGS="--memory-mb 16 --gemm-size 128 --comm-mb 1"

WORK="$(pwd)/test_scratch/$(basename "$0" .sh)"
rm -rf "$WORK"
mkdir -p "$WORK"
# 100k random token ids < 512 (stories260k's vocabulary) as raw little-endian uint16, seeded.
perl -e 'binmode STDOUT; srand(7); print pack("v*", map { int(rand(512)) } 1..100000)' > "$WORK/tokens.bin"

# job <run-dir> <steps> [more key=value]: the trainer settings of the test job.
job() {
  local dir="$1" steps="$2"
  shift 2
  echo model=stories260k data.path="$WORK/tokens.bin" run.dir="$dir" train.steps="$steps" \
       train.global_batch_size=4 train.seq_len=32 parallel.tp=2 parallel.pp=2 train.log_every=100 "$@"
}
# launch <args...>: llamatrain launch with the test's mpirun settings.
launch() {
  "$LT" launch --procs-per-node 4 --mpirun-args "$MPI_ARGS" --healthcheck-args "$HC_ARGS" "$@"
}

json_field() {  # json_field <file> <key>: a top-level number or string of the --json summary
  sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -1
}
# attempt_field <launch.log> <attempt> <key>: a number from that attempt's attempt_end record.
attempt_field() {
  grep "\"attempt\":$2,.*\"event\":\"attempt_end\"" "$1" | sed -n "s/.*\"$3\":\([0-9-]*\).*/\1/p" | head -1
}
# resumed_from_previous <launch.log> <attempt>: that attempt resumed from the newest complete
# checkpoint the attempt before it left (and that one existed).
resumed_from_previous() {
  local prev
  prev=$(attempt_field "$1" $(($2 - 1)) checkpoint_step)
  [ -n "$prev" ] && [ "$prev" -gt 0 ] && [ "$(attempt_field "$1" "$2" resume_step)" = "$prev" ]
}
# resumed_from_newest <launch.log> <attempt>: the same, where the attempt before may have left no
# complete checkpoint (-1: then it started afresh). Checkpoints are written in the background,
# so a rank killed one step after a save can take that save with it.
resumed_from_newest() {
  local prev
  prev=$(attempt_field "$1" $(($2 - 1)) checkpoint_step)
  [ -n "$prev" ] && [ "$(attempt_field "$1" "$2" resume_step)" = "$prev" ]
}
