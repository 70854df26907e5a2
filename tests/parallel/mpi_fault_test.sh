# A rank that dies, exits early or stops must end the whole job non-zero within seconds.
# Killed / exited: OpenMPI's mpirun tears the job down. Stopped (SIGSTOP): the others' comm
# watchdog (LT_COMM_TIMEOUT) fires and they exit, which again ends the job.
# Usage: bash mpi_fault_test.sh <llamatrain> <source-dir>
set -u
source "$2/tests/parallel/mpi_common.sh"
TESTS="$(dirname "$1")/tests/lt_tests"
[ -x "$TESTS" ] || { echo "missing $TESTS"; exit 1; }
fail=0
for fault in kill exit stop; do
  start=$(date +%s%N)
  out=$(LT_TEST_FAULT=$fault LT_TEST_FAULT_RANK=2 LT_COMM_TIMEOUT=3 timeout 60 \
        "${MPIRUN[@]}" -np 4 "$TESTS" --gtest_filter='MpiFault.*' --gtest_color=no 2>&1)
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  # The job must fail (not the gtest FAIL after 30 s, not timeout's 124) and within 15 s.
  if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $ms -gt 15000 ]; then
    echo "FAIL: rank 2 $fault: exit $rc after $ms ms"; echo "$out" | tail -30; fail=1
  else
    echo "ok: rank 2 $fault -> job exit $rc after $ms ms"
  fi
done
sleep 1
if pgrep -f "$TESTS --gtest_filter=MpiFault" >/dev/null; then
  echo "FAIL: ranks left running after the job ended"; fail=1
fi
exit $fail
