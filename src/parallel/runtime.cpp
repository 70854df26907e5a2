#include "parallel/runtime.h"

// The C API only: the project links MPI::MPI_C, not OpenMPI's deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>

#include "core/env.h"
#include "core/error.h"
#include "core/log.h"
#include "parallel/mpi_comm.h"
#include "parallel/self_comm.h"
#include "parallel/watchdog.h"

namespace lt {

namespace {
// Declared and range-checked in core/env.cpp; SLURM_NTASKS_PER_NODE may read "4(x2)": its count.
const char* env(const char* name) { return env_text(name); }
int launcher_int(const char* name, int fallback) {
  if (std::string(name) == "SLURM_NTASKS_PER_NODE") return env(name) ? std::atoi(env(name)) : fallback;
  return int(env_int(name, fallback));
}

bool g_runtime_alive = false;
}  // namespace

LaunchInfo detect_launch() {
  LaunchInfo l;
  l.launcher = "none";
  if (env_flag("LT_NO_MPI", false)) return l;
  if (env("OMPI_COMM_WORLD_SIZE")) {
    l.launcher = "mpirun";
    l.world_size = launcher_int("OMPI_COMM_WORLD_SIZE", 1);
    l.world_rank = launcher_int("OMPI_COMM_WORLD_RANK", 0);
    l.local_rank = launcher_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    l.local_size = launcher_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
  } else if (env("SLURM_PROCID") && launcher_int("SLURM_NTASKS", 1) > 1) {
    // A batch script also has SLURM_PROCID=0; only a multi-task step means srun started ranks.
    l.launcher = "srun";
    l.world_size = launcher_int("SLURM_NTASKS", 1);
    l.world_rank = launcher_int("SLURM_PROCID", 0);
    l.local_rank = launcher_int("SLURM_LOCALID", 0);
    l.local_size = launcher_int("SLURM_NTASKS_PER_NODE", 1);
  } else if (env("PMIX_RANK") || env("PMI_SIZE")) {
    l.launcher = "pmi";
    l.world_size = launcher_int("PMI_SIZE", 1);
    l.world_rank = env("PMIX_RANK") ? launcher_int("PMIX_RANK", 0) : launcher_int("PMI_RANK", 0);
  } else {
    return l;
  }
  l.under_launcher = true;
  return l;
}

Runtime::Runtime(const RuntimeOptions& opts) {
  LT_CHECK(!g_runtime_alive, "parallel: only one lt::Runtime may exist in a process");
  launch_ = detect_launch();
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  host_ = name;
  if (launch_.under_launcher) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    LT_CHECK(!initialized, "parallel: MPI was initialised twice in one process");
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    LT_CHECK(rc == MPI_SUCCESS, "parallel: MPI_Init_thread failed: {}", mpi_error_string(rc));
    LT_CHECK(provided >= MPI_THREAD_FUNNELED, "parallel: this MPI does not support MPI_THREAD_FUNNELED");
    // Errors come back as codes and become lt::Error with MPI's text, instead of MPI aborting.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    mpi_ = true;
    world_ = mpi_world_comm();
    if (world_->size() > 1) log::set_rank(world_->rank());
  } else {
    world_ = std::make_unique<SelfComm>();
  }
  g_runtime_alive = true;
  double timeout = env_number("LT_COMM_TIMEOUT", opts.comm_timeout_s);
  if (timeout > 0 && world_->size() > 1) start_comm_watchdog(timeout);
}

void Runtime::finalize() {
  if (finalized_) return;
  finalized_ = true;
  if (mpi_) {
    // The watchdog keeps running through the last barrier, so a peer that never arrives
    // cannot hang the exit either.
    world_->barrier();
    stop_comm_watchdog();
    world_.reset();
    int rc = MPI_Finalize();
    LT_CHECK(rc == MPI_SUCCESS, "parallel: MPI_Finalize failed: {}", mpi_error_string(rc));
  }
  stop_comm_watchdog();
}

Runtime::~Runtime() {
  g_runtime_alive = false;
  if (finalized_) return;
  if (std::uncaught_exceptions() > 0 && mpi_ && world_->size() > 1) {
    // Do not finalise (that would wait for peers that may be stuck waiting for us); exiting
    // unfinalised makes mpirun end the whole job. The exception itself is printed by main().
    stop_comm_watchdog();
    world_.release();  // leaked on purpose: freeing a communicator is collective
    return;
  }
  try {
    finalize();
  } catch (const std::exception& e) {
    log::error("{}", e.what());
  }
}

void Runtime::set_compute_threads(int configured) const {
  int threads = configured;
  if (threads <= 0 && std::getenv("OMP_NUM_THREADS")) threads = omp_get_max_threads();
  if (threads <= 0) threads = std::max(1, int(sysconf(_SC_NPROCESSORS_ONLN)) / std::max(1, launch_.local_size));
  omp_set_num_threads(threads);
}

}  // namespace lt
