// MpiComm: Comm over OpenMPI for CPU ranks. Headers outside src/parallel never see <mpi.h>:
// they get a Comm from the runtime (runtime.h) and carve groups with Comm::split.
//
// Determinism contract: float and double sums are folded in rank order, ((x0 + x1) + x2) + ...,
// so the result is bitwise identical on every rank, from run to run, and equal to that serial
// loop, whatever the message size, group size or network; all_reduce_sum and
// reduce_scatter_sum give bitwise equal values for an element. This is our own fixed-order
// reduction, not MPI_Allreduce (whose algorithm, and so its rounding, changes with message
// size and group size): each rank owns a 1/p chunk, receives that chunk from every rank,
// folds the p contributions in rank order, and all-gathers the result. This moves the same
// bytes as a ring all-reduce.
#pragma once
#include <memory>

#include "parallel/comm.h"

namespace lt {

// The communicator of all ranks (MPI_COMM_WORLD); MPI must be initialised (runtime.h).
std::unique_ptr<Comm> mpi_world_comm();

// MPI error code -> "MPI_ERR_...: text".
std::string mpi_error_string(int code);

}  // namespace lt
