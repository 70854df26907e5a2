// Runtime: how this process talks to its peers. Under mpirun/srun it initialises MPI
// (MPI_THREAD_FUNNELED: only the main thread calls MPI; OpenMP threads compute) and hands out
// the world communicator; started alone it runs as one rank with SelfComm and never loads
// an MPI launcher. One Runtime per process, created by the command that needs ranks.
//
// Failure policy: a rank that throws leaves its Runtime without MPI_Finalize, exits 1, and
// mpirun then kills every other rank at once (a process that ends without finalising is
// an abnormal termination for OpenMPI); a rank that is killed has the same effect. A rank
// that stops answering is caught by the comm watchdog (watchdog.h), when a timeout is set.
#pragma once
#include <memory>
#include <string>

#include "parallel/comm.h"

namespace lt {

// What the launcher's environment says about this process.
struct LaunchInfo {
  bool under_launcher = false;  // started by mpirun / srun (or another PMI launcher)
  std::string launcher;         // "mpirun", "srun", "pmi" or "none"
  int world_size = 1, world_rank = 0;
  int local_rank = 0, local_size = 1;  // on this host
};
// Reads OMPI_COMM_WORLD_*, PMIX_RANK / PMI_SIZE, SLURM_PROCID / SLURM_NTASKS.
// LT_NO_MPI=1 forces a single process.
LaunchInfo detect_launch();

struct RuntimeOptions {
  // Seconds a single Comm call may block before this rank gives up (0: wait forever).
  // The environment variable LT_COMM_TIMEOUT (seconds) overrides it.
  double comm_timeout_s = 0;
};

class Runtime {
 public:
  explicit Runtime(const RuntimeOptions& opts = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Comm& world() { return *world_; }
  bool distributed() const { return mpi_; }
  const LaunchInfo& launch() const { return launch_; }
  const std::string& host() const { return host_; }
  // OpenMP threads of this rank: `configured` when positive (train.threads), else
  // OMP_NUM_THREADS when set, else the host's cores shared evenly by its ranks.
  void set_compute_threads(int configured) const;
  // Collective: waits for every rank, frees the communicators and ends MPI. Called by the
  // destructor on a normal exit; call it early to exit with a status after finalising.
  // Communicators split from world() must be destroyed before this.
  void finalize();

 private:
  LaunchInfo launch_;
  std::string host_;
  bool mpi_ = false, finalized_ = false;
  std::unique_ptr<Comm> world_;
};

}  // namespace lt
