# Sourced by tests/parallel/*_test.sh: mpirun with many ranks on a 2-core machine.
# --oversubscribe: more ranks than cores; yield_when_idle: waiting ranks give up the core
# instead of spinning, which would starve the ranks doing work. Root needs the two
# OMPI_ALLOW_RUN_AS_ROOT variables (containers run tests as root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp
        -x OMP_NUM_THREADS -x LT_COMM_TIMEOUT -x LT_COMM_SEGMENT_BYTES -x LT_TEST_FAULT -x LT_TEST_FAULT_RANK)
command -v mpirun >/dev/null || { echo "mpirun not found (apt-get install openmpi-bin)"; exit 1; }
# A watchdog for the collective tests themselves: a mismatched collective must fail, not hang.
export LT_COMM_TIMEOUT=${LT_COMM_TIMEOUT:-30}
export LT_COMM_SEGMENT_BYTES=${LT_COMM_SEGMENT_BYTES:-}
export LT_TEST_FAULT=${LT_TEST_FAULT:-} LT_TEST_FAULT_RANK=${LT_TEST_FAULT_RANK:-}
