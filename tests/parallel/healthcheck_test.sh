# `llamatrain healthcheck`: healthy runs exit 0; injected compute / memory / comm faults make
# it exit non-zero naming exactly the bad ranks and their host.
# Usage: bash healthcheck_test.sh <llamatrain> <source-dir>
set -u
source "$2/tests/parallel/mpi_common.sh"
BIN=$1
SMALL=(--memory-mb 16 --gemm-size 96 --comm-mb 1)
fail=0
check() {  # check <description> <pattern> <text>
  if grep -qE -- "$2" <<<"$3"; then echo "ok: $1"; else echo "FAIL: $1: /$2/ not in:"; echo "$3"; fail=1; fi
}
out=$(LT_NO_MPI=1 "$BIN" healthcheck "${SMALL[@]}" 2>&1) || { echo "FAIL: single process exit $?"; echo "$out"; fail=1; }
check "single process" "all 1 ranks healthy" "$out"
out=$("${MPIRUN[@]}" -np 4 "$BIN" healthcheck --tp 2 "${SMALL[@]}" 2>&1) || { echo "FAIL: 4 healthy ranks exit $?"; echo "$out"; fail=1; }
check "4 ranks healthy" "all 4 ranks healthy" "$out"
host=$(hostname)
out=$("${MPIRUN[@]}" -x LT_HEALTHCHECK_FAULT=compute:2,memory:5,comm:6 -np 8 "$BIN" healthcheck --tp 2 --pp 2 "${SMALL[@]}" 2>&1)
rc=$?
[ $rc -eq 1 ] && echo "ok: faults exit 1" || { echo "FAIL: faults exit $rc (want 1)"; fail=1; }
check "bad ranks named" "bad ranks 2, 5, 6 on hosts $host" "$out"
check "compute fault" "rank 2 on $host: compute: GEMM differs" "$out"
check "memory fault" "rank 5 on $host: memory: 1 of" "$out"
check "comm fault" "rank 6 on $host: comm: .* arrived corrupt" "$out"
json=$("${MPIRUN[@]}" -x LT_HEALTHCHECK_FAULT=compute:3 -np 4 "$BIN" healthcheck --json "${SMALL[@]}" 2>/dev/null)
check "json bad_ranks" '"bad_ranks": \[\s*3\s*\]' "$(tr -d '\n' <<<"$json")"
check "json ok false" '"ok": false' "$json"
exit $fail
