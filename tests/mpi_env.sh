# Sourced by the shell tests that run llamatrain under mpirun (tests/launch, tests/e2e):
# root in containers; several ranks on 2 cores, so ranks that wait must give up the core;
# no fault-injection variable leaking in from the caller; and the `check`, `same_weights` and
# `no_leftovers` helpers.
command -v mpirun >/dev/null || { echo "mpirun not found (scripts/setup.sh installs openmpi-bin)"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
unset LT_FAULT_KILL_AT_STEP LT_FAULT_STOP_AT_STEP LT_FAULT_KILL_IN_SAVE LT_FAULT_KILL_IN_PRUNE LT_FAULT_EXIT_AT_STEP LT_FAULT_RANK LT_HEALTHCHECK_FAULT LT_COMM_TIMEOUT
MPI_ARGS="--oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp"

fail=0
check() {  # check <description> <command...>
  local what="$1"
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}
# same_weights <step-dir-a> <step-dir-b>: every model and optimizer shard byte-identical.
same_weights() {
  local a="$1" b="$2" n=0 f
  for f in "$a"/model/*.safetensors "$a"/optim/*.safetensors; do
    [ -f "$f" ] || return 1
    cmp -s "$f" "$b/${f#$a/}" || { echo "  differs: ${f#$a/}"; return 1; }
    n=$((n + 1))
  done
  [ $n -gt 0 ]
}
# no_leftovers: no rank or mpirun of this test ($WORK) outlives it.
no_leftovers() {
  sleep 1
  ! pgrep -f "run.dir=$WORK/" >/dev/null
}
