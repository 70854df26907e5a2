// Communicators that reach a backend's memory. The CPU backend's memory is host memory, which
// the MPI communicators reach already; a GPU backend's needs NCCL (NcclComm), made here from the
// MPI world on the backend's device and stream. The trainer carves its tp/pp/dp groups from
// this world for everything that moves stage memory (tensor-parallel hooks, pipeline messages,
// gradient reductions, the ZeRO-1 all-gather) and keeps the MPI groups for host scalars.
#pragma once
#include <memory>

#include "model/backend.h"
#include "parallel/comm.h"

namespace lt {

// nullptr when `backend`'s memory is host memory or the world has one rank (use
// `host_world`'s groups).
std::unique_ptr<Comm> make_device_world(Backend& backend, Comm& host_world);

}  // namespace lt
