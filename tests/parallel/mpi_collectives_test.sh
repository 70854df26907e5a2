# Every Comm collective and the tp x pp x dp group carving, under mpirun with 2, 3, 4 and 8
# ranks (the gtest suite MpiComm in lt_tests, which skips itself outside mpirun).
# Usage: bash mpi_collectives_test.sh <llamatrain> <source-dir>
set -u
source "$2/tests/parallel/mpi_common.sh"
TESTS="$(dirname "$1")/tests/lt_tests"
[ -x "$TESTS" ] || { echo "missing $TESTS"; exit 1; }
fail=0
run() {  # run <ranks> [env...]
  local n=$1; shift
  local out; out=$(env "$@" "${MPIRUN[@]}" -np "$n" "$TESTS" --gtest_filter='MpiComm.*' --gtest_color=no 2>&1)
  local rc=$?
  local passed; passed=$(grep -c '^\[  PASSED  \]' <<<"$out")
  if [ $rc -ne 0 ] || [ "$passed" -ne "$n" ]; then
    echo "FAIL: $n ranks $* (exit $rc, $passed of $n ranks passed)"; echo "$out" | grep -v '^\[ \+\(RUN\|OK\) ' | tail -40
    fail=1
  else
    echo "ok: $n ranks $*"
  fi
}
run 2
run 3
# Tiny reduction segments: every cut point of the segmented path is crossed.
run 3 LT_COMM_SEGMENT_BYTES=4096
run 4
run 8
exit $fail
