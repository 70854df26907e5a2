// NcclComm: Comm over NCCL for GPU ranks. Every buffer is DEVICE memory; host scalars (losses,
// norms already copied back) go over the MPI communicator the NcclComm was made from.
//
// Stream order instead of host blocking: a call enqueues its NCCL operation on the stream set
// with set_stream() and returns; the result is ready for any later work on that stream (read
// it on the host after synchronising the stream). Point-to-point operations are deferred and
// issued together, in one NCCL group on the communicator's own stream, when any of their
// requests is waited on (or another operation is called): a paired isend/irecv between two
// ranks therefore progresses as one exchange, as it does over MPI. Request::wait() makes the
// set stream wait for the exchange (it does not block the host). NCCL matches messages between
// two ranks in the order they were posted and ignores tags: both sides must post in the same
// order (the 1F1B schedule does).
//
// Determinism (this implementation's contract; compare MpiComm's in mpi_comm.h): sums are
// NCCL's ring or tree reductions, not the rank-ordered fold. For a fixed group size, topology,
// NCCL version, message size and NCCL_ALGO / NCCL_PROTO, NCCL takes the same algorithm and the
// same reduction order every run, so results are bitwise reproducible run to run for a fixed
// layout; all_reduce_sum gives bitwise equal results on every rank (each element is reduced
// once and then broadcast). They are NOT bitwise equal to MpiComm's sums or to a serial loop,
// and all_reduce_sum and reduce_scatter_sum may round one element differently. To pin the
// order across machines whose topology NCCL might read differently, set NCCL_ALGO=Ring and
// NCCL_PROTO=Simple. Max and integer sums are exact.
#pragma once
#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "parallel/comm.h"

struct ncclComm;

namespace lt {

class NcclComm : public Comm {
 public:
  // Collective over `host` (every rank calls it): rank 0 makes the ncclUniqueId and `host`
  // broadcasts it; `device` is this rank's GPU (made current); `stream` orders the collectives.
  static std::unique_ptr<NcclComm> create(Comm& host, int device, cudaStream_t stream);
  ~NcclComm() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string kind() const override { return "nccl"; }

  // The stream later calls are ordered on (e.g. a side stream for the data-parallel
  // reduce-scatter that overlaps the backward pass).
  void set_stream(cudaStream_t stream) { stream_ = stream; }
  cudaStream_t stream() const { return stream_; }

  void all_reduce_sum(float* data, size_t n) override;
  void all_reduce_sum(double* data, size_t n) override;
  void all_reduce_sum(int64_t* data, size_t n) override;
  void all_reduce_max(float* data, size_t n) override;
  void all_reduce_max(double* data, size_t n) override;
  void reduce_scatter_sum(const float* in, float* out, size_t n_per_rank) override;
  void all_gather_bytes(const void* in, void* out, size_t bytes_per_rank) override;
  void broadcast(void* data, size_t bytes, int root) override;

  void send(const void* data, size_t bytes, int peer, int tag) override;
  void recv(void* data, size_t bytes, int peer, int tag) override;
  Request isend(const void* data, size_t bytes, int peer, int tag) override;
  Request irecv(void* data, size_t bytes, int peer, int tag) override;

  // Waits (on the host) until every operation enqueued so far on every rank has finished.
  void barrier() override;
  std::unique_ptr<Comm> split(int color, int key) override;

  // Issues the deferred point-to-point operations now (one NCCL group). Called by wait().
  void flush();

 private:
  NcclComm(ncclComm* comm, int device, cudaStream_t stream);
  struct Pending {
    bool send;
    void* data;
    size_t bytes;
    int peer;
  };
  class P2PRequest;
  void all_reduce(void* data, size_t n, int type, int op, size_t elem);
  void count(size_t payload, size_t sent) {
    stats_.calls++;
    stats_.payload_bytes += int64_t(payload);
    stats_.sent_bytes += int64_t(sent);
  }

  ncclComm* comm_ = nullptr;
  int device_ = 0, rank_ = 0, size_ = 1;
  cudaStream_t stream_ = nullptr;
  std::vector<Pending> pending_;
  std::shared_ptr<bool> batch_issued_;  // shared with the requests of the pending operations
  int* barrier_word_ = nullptr;         // device scratch for barrier()
};

}  // namespace lt
