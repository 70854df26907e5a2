#include "parallel/mpi_comm.h"

// The C API only: the project links MPI::MPI_C, not OpenMPI's deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/env.h"
#include "core/error.h"
#include "core/timer.h"
#include "parallel/watchdog.h"

namespace lt {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return fmt::format("MPI error code {}", code);
  return std::string(text, size_t(len));
}

namespace {

void check(int rc, const char* op) {
  if (rc != MPI_SUCCESS) fail("MPI: {} failed: {}", op, mpi_error_string(rc));
}

// Messages and reduction segments are cut so every MPI count fits an int.
// LT_COMM_SEGMENT_BYTES shrinks the reduction segment (tests use it to cover the cut points).
constexpr size_t kMaxMessageBytes = size_t(1) << 30;
size_t segment_bytes() {
  static const size_t bytes = [] {
    return size_t(env_int("LT_COMM_SEGMENT_BYTES", int64_t(64) << 20));
  }();
  return bytes;
}

template <typename T> MPI_Datatype mpi_type();
template <> MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

class MpiRequest : public CommRequest {
 public:
  std::vector<MPI_Request> reqs;
  ~MpiRequest() override {
    if (!reqs.empty()) MPI_Waitall(int(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
  }
  void wait() override {
    if (reqs.empty()) return;
    CommBusyScope busy("wait");
    int rc = MPI_Waitall(int(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
    reqs.clear();
    check(rc, "MPI_Waitall");
  }
};

class MpiComm;

// ireduce_sum: root receives every other rank's `in` into scratch (one slot per rank) and folds
// them in rank order when the request completes; the others' sends complete on their own.
class MpiReduceRequest : public CommRequest {
 public:
  MpiReduceRequest(MpiComm* comm, const float* in, float* out, size_t n, int root);
  ~MpiReduceRequest() override;
  void wait() override;
  bool test() override;

 private:
  void complete();
  MpiComm* comm_;
  const float* in_;
  float* out_;
  size_t n_;
  bool root_, done_ = false;
  std::vector<MPI_Request> reqs_;
  std::vector<float> scratch_;       // root: the values not received into `out`
  std::vector<const float*> src_;    // root: where rank q's values are
  friend class MpiComm;
};

class MpiComm : public Comm {
 public:
  // Takes ownership of `comm`. Internal collective traffic runs on a duplicate, so its
  // point-to-point messages never match a user's send/recv tags.
  explicit MpiComm(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    check(MPI_Comm_dup(comm_, &inner_), "MPI_Comm_dup");
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Comm_free(&inner_);
    if (owned_) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string kind() const override { return "mpi"; }

  void all_reduce_sum(float* data, size_t n) override { ordered_sum(data, n); }
  void all_reduce_sum(double* data, size_t n) override { ordered_sum(data, n); }
  void all_reduce_sum(int64_t* data, size_t n) override { exact_reduce(data, n, MPI_INT64_T, MPI_SUM, 8); }
  void all_reduce_max(float* data, size_t n) override { exact_reduce(data, n, MPI_FLOAT, MPI_MAX, 4); }
  void all_reduce_max(double* data, size_t n) override { exact_reduce(data, n, MPI_DOUBLE, MPI_MAX, 8); }

  void reduce_scatter_sum(const float* in, float* out, size_t n_per_rank) override {
    Op op(this, "reduce_scatter_sum", n_per_rank * size_ * 4, n_per_rank * (size_ - 1) * 4);
    const size_t p = size_, step = std::max<size_t>(1, segment_bytes() / sizeof(float) / p);
    for (size_t o = 0; o < n_per_rank; o += step) {
      size_t len = std::min(step, n_per_rank - o);
      counts_.assign(p, len);
      src_.resize(p);
      for (size_t q = 0; q < p; ++q) src_[q] = in + q * n_per_rank + o;
      exchange<float>(src_.data(), counts_.data(), len);
      fold(out + o, len);
    }
  }

  void all_gather_bytes(const void* in, void* out, size_t bytes_per_rank) override {
    Op op(this, "all_gather", bytes_per_rank * size_, bytes_per_rank * (size_ - 1));
    char* o = static_cast<char*>(out);
    const bool in_place = in == o + size_t(rank_) * bytes_per_rank;
    if (bytes_per_rank * size_ <= kMaxMessageBytes) {
      check(MPI_Allgather(in_place ? MPI_IN_PLACE : in, int(bytes_per_rank), MPI_BYTE, out, int(bytes_per_rank),
                          MPI_BYTE, inner_),
            "MPI_Allgather");
      return;
    }
    // Huge gathers go in segments through a scratch buffer, since MPI counts are ints.
    const size_t step = std::max<size_t>(1, segment_bytes() / size_);
    std::vector<char> own;
    if (in_place) own.assign(o + rank_ * bytes_per_rank, o + (rank_ + 1) * bytes_per_rank);
    const char* src = in_place ? own.data() : static_cast<const char*>(in);
    for (size_t s = 0; s < bytes_per_rank; s += step) {
      size_t len = std::min(step, bytes_per_rank - s);
      scratch_.resize(len * size_);
      check(MPI_Allgather(src + s, int(len), MPI_BYTE, scratch_.data(), int(len), MPI_BYTE, inner_), "MPI_Allgather");
      for (int q = 0; q < size_; ++q) std::memcpy(o + q * bytes_per_rank + s, scratch_.data() + q * len, len);
    }
  }

  void broadcast(void* data, size_t bytes, int root) override {
    check_peer(root, "broadcast");
    Op op(this, "broadcast", bytes, rank_ == root ? bytes : 0);
    char* p = static_cast<char*>(data);
    for (size_t s = 0; s < bytes; s += kMaxMessageBytes)
      check(MPI_Bcast(p + s, int(std::min(kMaxMessageBytes, bytes - s)), MPI_BYTE, root, inner_), "MPI_Bcast");
  }

  bool nonblocking_reduce() const override { return true; }
  Request ireduce_sum(const float* in, float* out, size_t n, int root) override {
    check_peer(root, "ireduce_sum");
    LT_CHECK(n * sizeof(float) <= kMaxMessageBytes, "comm: ireduce_sum of {} floats exceeds one message", n);
    Op op(this, "ireduce_sum", n * sizeof(float), rank_ == root ? 0 : n * sizeof(float));
    return std::make_unique<MpiReduceRequest>(this, in, out, n, root);
  }

  void send(const void* data, size_t bytes, int peer, int tag) override { isend(data, bytes, peer, tag)->wait(); }
  void recv(void* data, size_t bytes, int peer, int tag) override { irecv(data, bytes, peer, tag)->wait(); }

  Request isend(const void* data, size_t bytes, int peer, int tag) override {
    check_peer(peer, "send");
    Op op(this, "isend", bytes, bytes);
    auto r = std::make_unique<MpiRequest>();
    const char* p = static_cast<const char*>(data);
    for (size_t s = 0; s == 0 || s < bytes; s += kMaxMessageBytes) {
      r->reqs.emplace_back();
      check(MPI_Isend(p + s, int(std::min(kMaxMessageBytes, bytes - s)), MPI_BYTE, peer, tag, comm_, &r->reqs.back()),
            "MPI_Isend");
    }
    return r;
  }

  Request irecv(void* data, size_t bytes, int peer, int tag) override {
    check_peer(peer, "recv");
    Op op(this, "irecv", bytes, 0);
    auto r = std::make_unique<MpiRequest>();
    char* p = static_cast<char*>(data);
    for (size_t s = 0; s == 0 || s < bytes; s += kMaxMessageBytes) {
      r->reqs.emplace_back();
      check(MPI_Irecv(p + s, int(std::min(kMaxMessageBytes, bytes - s)), MPI_BYTE, peer, tag, comm_, &r->reqs.back()),
            "MPI_Irecv");
    }
    return r;
  }

  void barrier() override {
    Op op(this, "barrier", 0, 0);
    check(MPI_Barrier(inner_), "MPI_Barrier");
  }

  std::unique_ptr<Comm> split(int color, int key) override {
    Op op(this, "split", 0, 0);
    MPI_Comm sub = MPI_COMM_NULL;
    check(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub), "MPI_Comm_split");
    if (sub == MPI_COMM_NULL) return nullptr;
    return std::make_unique<MpiComm>(sub, true);
  }

 private:
  // Times one call, counts its bytes, and marks it busy for the watchdog.
  struct Op {
    Op(MpiComm* c, const char* name, size_t payload, size_t sent) : comm(c), busy(name) {
      c->stats_.calls++;
      c->stats_.payload_bytes += int64_t(payload);
      c->stats_.sent_bytes += int64_t(sent);
    }
    ~Op() { comm->stats_.seconds += timer.seconds(); }
    MpiComm* comm;
    CommBusyScope busy;
    Timer timer;
  };

  void check_peer(int peer, const char* op) const {
    LT_CHECK(peer >= 0 && peer < size_, "comm: {} with rank {}, but the group has ranks 0..{}", op, peer, size_ - 1);
  }

  template <typename T> void exact_reduce(T* data, size_t n, MPI_Datatype type, MPI_Op mop, size_t elem) {
    Op op(this, "all_reduce", n * elem, 2 * n * elem * (size_ - 1) / size_);
    for (size_t s = 0; s < n; s += kMaxMessageBytes / elem)
      check(MPI_Allreduce(MPI_IN_PLACE, data + s, int(std::min(kMaxMessageBytes / elem, n - s)), type, mop, inner_),
            "MPI_Allreduce");
  }

  // Sends src[q] (counts[q] elements) to rank q, and receives `len` elements from every rank
  // into scratch, rank q's at q*len.
  template <typename T> void exchange(const void* const* src, const size_t* counts, size_t len) {
    scratch_.resize(len * size_ * sizeof(T));
    T* dst = reinterpret_cast<T*>(scratch_.data());
    std::vector<MPI_Request>& reqs = reqs_;
    reqs.clear();
    for (int q = 0; q < size_; ++q) {
      if (q == rank_ || len == 0) continue;
      reqs.emplace_back();
      check(MPI_Irecv(dst + q * len, int(len), mpi_type<T>(), q, 0, inner_, &reqs.back()), "MPI_Irecv");
    }
    for (int d = 1; d < size_; ++d) {  // staggered, so no rank is everyone's first target
      int q = (rank_ + d) % size_;
      if (counts[q] == 0) continue;
      reqs.emplace_back();
      check(MPI_Isend(src[q], int(counts[q]), mpi_type<T>(), q, 0, inner_, &reqs.back()), "MPI_Isend");
    }
    std::memcpy(dst + rank_ * len, src[rank_], len * sizeof(T));
    check(MPI_Waitall(int(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  }

  // out = scratch[0] + scratch[1] + ... in rank order: the serial fold every rank agrees on.
  // (`out` never aliases scratch: this rank's own contribution was copied in by exchange.)
  template <typename T> void fold(T* out, size_t len) {
    const T* in = reinterpret_cast<const T*>(scratch_.data());
    std::memcpy(out, in, len * sizeof(T));
    for (int q = 1; q < size_; ++q) {
      const T* x = in + q * len;
      for (size_t i = 0; i < len; ++i) out[i] += x[i];
    }
  }

  template <typename T> void ordered_sum(T* data, size_t n) {
    Op op(this, "all_reduce_sum", n * sizeof(T), 2 * n * sizeof(T) * (size_ - 1) / size_);
    if (size_ == 1) return;
    const size_t p = size_, seg = std::max(p, segment_bytes() / sizeof(T));
    // Per-call bookkeeping lives in members, so the step loop does not allocate.
    std::vector<size_t>& counts = counts_;
    std::vector<int>& icounts = icounts_;
    std::vector<int>& displs = displs_;
    counts.resize(p);
    icounts.resize(p);
    displs.resize(p);
    src_.resize(p);
    std::vector<const void*>& src = src_;
    for (size_t s0 = 0; s0 < n; s0 += seg) {
      size_t len = std::min(seg, n - s0), chunk = (len + p - 1) / p;
      T* base = data + s0;
      for (size_t q = 0; q < p; ++q) {
        size_t b = std::min(len, q * chunk), e = std::min(len, b + chunk);
        counts[q] = e - b;
        src[q] = base + b;
        icounts[q] = int(counts[q]);
        displs[q] = int(b);
      }
      // Rank r owns elements [r*chunk, r*chunk + counts[r]); it receives counts[r] from everyone.
      exchange<T>(src.data(), counts.data(), counts[rank_]);
      fold(base + displs[rank_], counts[rank_]);
      check(MPI_Allgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), base, icounts.data(), displs.data(), mpi_type<T>(), inner_),
            "MPI_Allgatherv");
    }
  }

  friend class MpiReduceRequest;
  // ireduce_sum's messages: on the internal communicator, a tag of their own.
  static constexpr int kReduceTag = 7;
  // Receive buffers of ireduce_sum, kept from step to step (a fresh one would page-fault).
  std::vector<float> take_scratch(size_t n) {
    std::vector<float> v;
    if (n == 0) return v;
    if (!scratch_pool_.empty()) {
      v = std::move(scratch_pool_.back());
      scratch_pool_.pop_back();
    }
    if (v.size() < n) v.resize(n);
    return v;
  }
  void give_scratch(std::vector<float>&& v) {
    if (!v.empty()) scratch_pool_.push_back(std::move(v));
  }
  std::vector<std::vector<float>> scratch_pool_;

  MPI_Comm comm_, inner_ = MPI_COMM_NULL;
  bool owned_;
  int rank_ = 0, size_ = 1;
  std::vector<char> scratch_;
  std::vector<size_t> counts_;
  std::vector<int> icounts_, displs_;
  std::vector<const void*> src_;
  std::vector<MPI_Request> reqs_;
};

// The root receives rank 0's values straight into `out` (or rank 1's, when it is rank 0 and
// not in place), the others into scratch: (p − 2) buckets of scratch, (p − 1) in place.
MpiReduceRequest::MpiReduceRequest(MpiComm* comm, const float* in, float* out, size_t n, int root)
    : comm_(comm), in_(in), out_(out), n_(n), root_(comm->rank_ == root) {
  const int p = comm->size_, me = comm->rank_;
  if (n == 0) return;
  if (!root_) {
    reqs_.emplace_back();
    check(MPI_Isend(in, int(n), MPI_FLOAT, root, MpiComm::kReduceTag, comm->inner_, &reqs_.back()), "MPI_Isend");
    return;
  }
  const bool in_place = out == in;
  scratch_ = comm->take_scratch(n * size_t(in_place ? p - 1 : p - 2));
  size_t next = 0;
  auto slot = [&] { return scratch_.data() + (next++) * n; };
  src_.assign(size_t(p), nullptr);
  src_[size_t(me)] = in;
  if (in_place && me > 0) {  // the fold writes `out` before it adds this rank's values: keep them
    float* own = slot();
    std::memcpy(own, in, n * sizeof(float));
    src_[size_t(me)] = own;
  }
  for (int q = 0; q < p; ++q) {
    if (q == me) continue;
    float* dst = q == 0 || (me == 0 && q == 1 && !in_place) ? out : slot();
    src_[size_t(q)] = dst;
    reqs_.emplace_back();
    check(MPI_Irecv(dst, int(n), MPI_FLOAT, q, MpiComm::kReduceTag, comm->inner_, &reqs_.back()), "MPI_Irecv");
  }
}

MpiReduceRequest::~MpiReduceRequest() {
  if (!reqs_.empty()) MPI_Waitall(int(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE);
  comm_->give_scratch(std::move(scratch_));
}

// out = ((x0 + x1) + x2) + ... in rank order, element by element the loop MpiComm::fold runs
// (x0 + x1 computed as x0's own + received x1 when x1 was received into `out`: the same sum).
void MpiReduceRequest::complete() {
  reqs_.clear();
  done_ = true;
  if (!root_ || n_ == 0) return;
  const int p = comm_->size_, me = comm_->rank_;
  int q = 1;  // x0 is in `out` (received, or this rank's own in place)
  if (me == 0 && out_ != in_) {
    for (size_t i = 0; i < n_; ++i) out_[i] = in_[i] + out_[i];
    q = 2;
  }
  for (; q < p; ++q) {
    const float* x = src_[size_t(q)];
    for (size_t i = 0; i < n_; ++i) out_[i] += x[i];
  }
  comm_->give_scratch(std::move(scratch_));
}

bool MpiReduceRequest::test() {
  if (done_) return true;
  int flag = 0;
  MpiComm::Op op(comm_, "ireduce_test", 0, 0);
  comm_->stats_.calls--;  // progress polls are not calls of their own
  check(MPI_Testall(int(reqs_.size()), reqs_.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Testall");
  if (flag) complete();
  return done_;
}

void MpiReduceRequest::wait() {
  if (done_) return;
  MpiComm::Op op(comm_, "ireduce_wait", 0, 0);
  comm_->stats_.calls--;
  check(MPI_Waitall(int(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  complete();
}

}  // namespace

std::unique_ptr<Comm> mpi_world_comm() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  LT_CHECK(initialized, "comm: MPI is not initialised (create an lt::Runtime first)");
  return std::make_unique<MpiComm>(MPI_COMM_WORLD, false);
}

}  // namespace lt
