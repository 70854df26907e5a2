# Sourced by the shell tests that run llamatrain under mpirun (tests/launch, tests/e2e):
# root in containers; several ranks on 2 cores, so ranks that wait must give up the core;
# no fault-injection variable leaking in from the caller; and the `check` assertion helper.
command -v mpirun >/dev/null || { echo "mpirun not found (scripts/setup.sh installs openmpi-bin)"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
unset LT_FAULT_KILL_AT_STEP LT_FAULT_STOP_AT_STEP LT_FAULT_KILL_IN_SAVE LT_FAULT_RANK LT_HEALTHCHECK_FAULT LT_COMM_TIMEOUT
MPI_ARGS="--oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp"

fail=0
check() {  # check <description> <command...>
  local what="$1"
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}
