// Comm: a communicator over a fixed group of ranks (the world, or a tp/pp/dp group carved
// from it). Implementations: MpiComm (OpenMPI, host memory; mpi_comm.h), SelfComm (one
// process, no MPI; self_comm.h) and NcclComm (NCCL, device memory; nccl_comm.h, CUDA builds).
// The interface speaks pointers and counts only; which memory a pointer may reach is the
// implementation's (host for MpiComm, device for NcclComm).
//
// Contract, shared by every implementation:
// - Collectives are called by every rank of the group, in the same order, with the same counts.
// - Max and integer sums are exact, so any order gives the same bits.
// - Errors throw lt::Error naming the operation; a peer that dies ends the whole job (the
//   launcher's business), a peer that hangs is caught by the runtime's watchdog (runtime.h).
// - Determinism of floating-point sums is stated by each implementation in its header (what
//   is bitwise reproducible, and under which conditions): the trainer's "same seed, data and
//   layout give the same bits" rests on it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lt {

// What one rank asked its communicators to move, for benchmarks and `plan` checks.
// payload_bytes: the size of the caller's buffers (all-reduce: n; reduce-scatter: the input;
// all-gather: the output; send/recv: the message). sent_bytes: what this rank put on the wire
// with a bandwidth-optimal algorithm, (p-1)/p of the payload per phase.
struct CommStats {
  int64_t calls = 0;
  int64_t payload_bytes = 0;
  int64_t sent_bytes = 0;
  double seconds = 0;  // wall time spent inside Comm calls (includes waiting for peers)
};

// A pending isend/irecv. wait() blocks until the buffer may be reused (send) or read (recv);
// destroying an unfinished request waits for it, so buffers are never left in flight.
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  virtual void wait() = 0;
  // True once complete (then wait() returns at once); lets the operation move on meanwhile (MPI
  // progresses only inside its calls). An implementation that cannot tell returns false.
  virtual bool test() { return false; }
};
using Request = std::unique_ptr<CommRequest>;

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi", "self" (and later "nccl"), for logs.
  virtual std::string kind() const = 0;

  // In place, over `n` elements.
  virtual void all_reduce_sum(float* data, size_t n) = 0;
  virtual void all_reduce_sum(double* data, size_t n) = 0;
  virtual void all_reduce_sum(int64_t* data, size_t n) = 0;
  virtual void all_reduce_max(float* data, size_t n) = 0;
  virtual void all_reduce_max(double* data, size_t n) = 0;
  // in: size()*n_per_rank elements; out: this rank's n_per_rank sums (chunk rank()).
  virtual void reduce_scatter_sum(const float* in, float* out, size_t n_per_rank) = 0;
  // in: bytes_per_rank; out: size()*bytes_per_rank, rank r's block at r*bytes_per_rank.
  // `in` may point at this rank's own block of `out`.
  virtual void all_gather_bytes(const void* in, void* out, size_t bytes_per_rank) = 0;
  void all_gather(const float* in, float* out, size_t n_per_rank) {
    all_gather_bytes(in, out, n_per_rank * sizeof(float));
  }
  virtual void broadcast(void* data, size_t bytes, int root) = 0;

  // Non-blocking sum of `n` floats over the group, delivered to `root`: there `out` gets the
  // sum of every rank's `in`, each element folded in the order all_reduce_sum folds it, so with
  // the same bits (overlapped gradient reduction relies on it); `out` may be `in`; other ranks
  // pass nullptr. `in` must stay unchanged, and `out` unread, until the request completes.
  // Only where nonblocking_reduce() is true; callers fall back to the blocking collectives.
  virtual bool nonblocking_reduce() const { return false; }
  virtual Request ireduce_sum(const float* in, float* out, size_t n, int root);

  // Point to point; `peer` is a rank of this group. Messages between two ranks with the same
  // tag arrive in the order they were sent.
  virtual void send(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual void recv(void* data, size_t bytes, int peer, int tag) = 0;
  virtual Request isend(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual Request irecv(void* data, size_t bytes, int peer, int tag) = 0;

  virtual void barrier() = 0;
  // Collective: ranks passing the same color form a new group, ordered by key (ties by rank).
  // A negative color returns nullptr (the rank joins no group).
  virtual std::unique_ptr<Comm> split(int color, int key) = 0;

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 protected:
  CommStats stats_;
};

}  // namespace lt
