// SelfComm: the communicator of a process that runs alone (no mpirun). Every collective over
// one rank is a copy or nothing, so single-process training runs the same code paths as a
// distributed one. Sends to itself are queued and matched by tag, in order.
// Determinism contract: a sum over one rank is its own input, bit for bit (the one-rank case of
// MpiComm's rank-ordered fold).
#pragma once
#include <deque>
#include <map>
#include <vector>

#include "parallel/comm.h"

namespace lt {

class SelfComm : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string kind() const override { return "self"; }

  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_sum(double*, size_t) override {}
  void all_reduce_sum(int64_t*, size_t) override {}
  void all_reduce_max(float*, size_t) override {}
  void all_reduce_max(double*, size_t) override {}
  void reduce_scatter_sum(const float* in, float* out, size_t n_per_rank) override;
  void all_gather_bytes(const void* in, void* out, size_t bytes_per_rank) override;
  void broadcast(void* data, size_t bytes, int root) override;

  void send(const void* data, size_t bytes, int peer, int tag) override;
  void recv(void* data, size_t bytes, int peer, int tag) override;
  Request isend(const void* data, size_t bytes, int peer, int tag) override;
  Request irecv(void* data, size_t bytes, int peer, int tag) override;

  void barrier() override {}
  std::unique_ptr<Comm> split(int color, int key) override;

 private:
  std::map<int, std::deque<std::vector<char>>> mailbox_;  // tag -> queued messages
};

}  // namespace lt
