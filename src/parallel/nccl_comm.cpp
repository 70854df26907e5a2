#include "parallel/nccl_comm.h"

#include <nccl.h>

#include "core/error.h"
#include "core/timer.h"
#include "kernels/cuda/check.h"

namespace lt {

// A deferred isend/irecv: waiting issues the group it belongs to (if not yet issued).
class NcclComm::P2PRequest : public CommRequest {
 public:
  P2PRequest(NcclComm* comm, std::shared_ptr<bool> issued) : comm_(comm), issued_(std::move(issued)) {}
  ~P2PRequest() override { wait(); }
  void wait() override {
    if (comm_ && !*issued_) comm_->flush();
    comm_ = nullptr;
  }

 private:
  NcclComm* comm_;
  std::shared_ptr<bool> issued_;
};

std::unique_ptr<NcclComm> NcclComm::create(Comm& host, int device, cudaStream_t stream) {
  ncclUniqueId id{};
  if (host.rank() == 0) LT_NCCL(ncclGetUniqueId(&id));
  host.broadcast(&id, sizeof id, 0);
  LT_CUDA(cudaSetDevice(device));
  ncclComm_t comm = nullptr;
  LT_NCCL(ncclCommInitRank(&comm, host.size(), id, host.rank()));
  return std::unique_ptr<NcclComm>(new NcclComm(comm, device, stream));
}

NcclComm::NcclComm(ncclComm* comm, int device, cudaStream_t stream)
    : comm_(comm), device_(device), stream_(stream), batch_issued_(std::make_shared<bool>(false)) {
  LT_NCCL(ncclCommUserRank(comm_, &rank_));
  LT_NCCL(ncclCommCount(comm_, &size_));
  LT_CUDA(cudaMalloc(&barrier_word_, sizeof(int)));
}

NcclComm::~NcclComm() {
  try {
    flush();
  } catch (...) {  // a destructor must not throw; the communicator is going away
  }
  if (barrier_word_) cudaFree(barrier_word_);
  if (comm_) ncclCommDestroy(comm_);
}

void NcclComm::flush() {
  if (pending_.empty()) return;
  LT_NCCL(ncclGroupStart());
  for (const Pending& p : pending_) {
    if (p.send)
      LT_NCCL(ncclSend(p.data, p.bytes, ncclUint8, p.peer, comm_, stream_));
    else
      LT_NCCL(ncclRecv(p.data, p.bytes, ncclUint8, p.peer, comm_, stream_));
  }
  LT_NCCL(ncclGroupEnd());
  pending_.clear();
  *batch_issued_ = true;
  batch_issued_ = std::make_shared<bool>(false);
}

void NcclComm::all_reduce(void* data, size_t n, int type, int op, size_t elem) {
  flush();
  Timer t;
  count(n * elem, size_ > 1 ? 2 * n * elem * size_t(size_ - 1) / size_t(size_) : 0);
  if (n)
    LT_NCCL(ncclAllReduce(data, data, n, static_cast<ncclDataType_t>(type), static_cast<ncclRedOp_t>(op), comm_,
                          stream_));
  stats_.seconds += t.seconds();
}

void NcclComm::all_reduce_sum(float* data, size_t n) { all_reduce(data, n, ncclFloat32, ncclSum, 4); }
void NcclComm::all_reduce_sum(double* data, size_t n) { all_reduce(data, n, ncclFloat64, ncclSum, 8); }
void NcclComm::all_reduce_sum(int64_t* data, size_t n) { all_reduce(data, n, ncclInt64, ncclSum, 8); }
void NcclComm::all_reduce_max(float* data, size_t n) { all_reduce(data, n, ncclFloat32, ncclMax, 4); }
void NcclComm::all_reduce_max(double* data, size_t n) { all_reduce(data, n, ncclFloat64, ncclMax, 8); }

void NcclComm::reduce_scatter_sum(const float* in, float* out, size_t n_per_rank) {
  flush();
  Timer t;
  count(n_per_rank * size_t(size_) * 4, n_per_rank * size_t(size_ - 1) * 4);
  if (n_per_rank) LT_NCCL(ncclReduceScatter(in, out, n_per_rank, ncclFloat32, ncclSum, comm_, stream_));
  stats_.seconds += t.seconds();
}

void NcclComm::all_gather_bytes(const void* in, void* out, size_t bytes_per_rank) {
  flush();
  Timer t;
  count(bytes_per_rank * size_t(size_), bytes_per_rank * size_t(size_ - 1));
  // NCCL takes in == out + rank·bytes_per_rank as the in-place form, as the Comm contract allows.
  if (bytes_per_rank) LT_NCCL(ncclAllGather(in, out, bytes_per_rank, ncclUint8, comm_, stream_));
  stats_.seconds += t.seconds();
}

void NcclComm::broadcast(void* data, size_t bytes, int root) {
  LT_CHECK(root >= 0 && root < size_, "comm: broadcast from rank {}, but the group has ranks 0..{}", root, size_ - 1);
  flush();
  Timer t;
  count(bytes, rank_ == root ? bytes : 0);
  if (bytes) LT_NCCL(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_));
  stats_.seconds += t.seconds();
}

Request NcclComm::isend(const void* data, size_t bytes, int peer, int tag) {
  LT_CHECK(peer >= 0 && peer < size_, "comm: send to rank {}, but the group has ranks 0..{}", peer, size_ - 1);
  count(bytes, bytes);
  pending_.push_back({true, const_cast<void*>(data), bytes, peer});
  return std::make_unique<P2PRequest>(this, batch_issued_);
}

Request NcclComm::irecv(void* data, size_t bytes, int peer, int tag) {
  LT_CHECK(peer >= 0 && peer < size_, "comm: recv from rank {}, but the group has ranks 0..{}", peer, size_ - 1);
  count(bytes, 0);
  pending_.push_back({false, data, bytes, peer});
  return std::make_unique<P2PRequest>(this, batch_issued_);
}

void NcclComm::send(const void* data, size_t bytes, int peer, int tag) { isend(data, bytes, peer, tag)->wait(); }
void NcclComm::recv(void* data, size_t bytes, int peer, int tag) { irecv(data, bytes, peer, tag)->wait(); }

void NcclComm::barrier() {
  flush();
  Timer t;
  count(0, 0);
  LT_NCCL(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, stream_));
  LT_CUDA(cudaStreamSynchronize(stream_));
  stats_.seconds += t.seconds();
}

std::unique_ptr<Comm> NcclComm::split(int color, int key) {
  flush();
  ncclComm_t sub = nullptr;
  LT_NCCL(ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &sub, nullptr));
  if (!sub) return nullptr;
  return std::unique_ptr<NcclComm>(new NcclComm(sub, device_, stream_));
}

}  // namespace lt
