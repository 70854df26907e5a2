#include "parallel/self_comm.h"

#include <cstring>

#include "core/error.h"

namespace lt {

namespace {
void check_peer(int peer, const char* op) {
  LT_CHECK(peer == 0, "comm (self): {} to rank {}, but this single-process group only has rank 0", op, peer);
}

// Completes an irecv when waited on, so a self-send posted after the irecv still matches.
class SelfRecv : public CommRequest {
 public:
  SelfRecv(SelfComm* comm, void* data, size_t bytes, int tag) : comm_(comm), data_(data), bytes_(bytes), tag_(tag) {}
  ~SelfRecv() override {
    if (!done_) {
      try {
        wait();
      } catch (...) {
      }
    }
  }
  void wait() override {
    if (done_) return;
    done_ = true;
    comm_->recv(data_, bytes_, 0, tag_);
  }

 private:
  SelfComm* comm_;
  void* data_;
  size_t bytes_;
  int tag_;
  bool done_ = false;
};

class DoneRequest : public CommRequest {
 public:
  void wait() override {}
};
}  // namespace

void SelfComm::reduce_scatter_sum(const float* in, float* out, size_t n_per_rank) {
  if (in != out) std::memmove(out, in, n_per_rank * sizeof(float));
}

void SelfComm::all_gather_bytes(const void* in, void* out, size_t bytes_per_rank) {
  if (in != out) std::memmove(out, in, bytes_per_rank);
}

void SelfComm::broadcast(void*, size_t, int root) { check_peer(root, "broadcast"); }

void SelfComm::send(const void* data, size_t bytes, int peer, int tag) {
  check_peer(peer, "send");
  auto p = static_cast<const char*>(data);
  mailbox_[tag].emplace_back(p, p + bytes);
}

void SelfComm::recv(void* data, size_t bytes, int peer, int tag) {
  check_peer(peer, "recv");
  auto it = mailbox_.find(tag);
  LT_CHECK(it != mailbox_.end() && !it->second.empty(),
           "comm (self): recv with tag {} but nothing was sent to itself with that tag (would hang forever)", tag);
  std::vector<char>& m = it->second.front();
  LT_CHECK(m.size() == bytes, "comm (self): recv of {} bytes with tag {} matched a send of {} bytes", bytes, tag,
           m.size());
  std::memcpy(data, m.data(), bytes);
  it->second.pop_front();
}

Request SelfComm::isend(const void* data, size_t bytes, int peer, int tag) {
  send(data, bytes, peer, tag);
  return std::make_unique<DoneRequest>();
}

Request SelfComm::irecv(void* data, size_t bytes, int peer, int tag) {
  check_peer(peer, "irecv");
  return std::make_unique<SelfRecv>(this, data, bytes, tag);
}

std::unique_ptr<Comm> SelfComm::split(int color, int) {
  if (color < 0) return nullptr;
  return std::make_unique<SelfComm>();
}

}  // namespace lt
