#include "train/async_checkpoint.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fmt/ranges.h>
#include <vector>

#include "ckpt/checkpoint.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"

namespace lt {

namespace fs = std::filesystem;

namespace {

// Bounded host reads of backend memory (a device backend stages one range at a time).
constexpr size_t kCopyChunk = size_t(16) << 20;

void copy_out(FlatAccess& src, size_t offset, size_t n, float* dst) {
  for (size_t o = 0; o < n; o += kCopyChunk) {
    const size_t len = std::min(kCopyChunk, n - o);
    const float* s = src.read(offset + o, len);
    // Between steps every core is free: the copy is the whole stall of an asynchronous save.
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < int64_t((len + 65535) / 65536); ++b) {
      const size_t a = size_t(b) * 65536, e = std::min(len, a + 65536);
      std::memcpy(dst + o + a, s + a, (e - a) * sizeof(float));
    }
  }
}

float* ensure(Buffer& b, size_t n) {
  if (b.size() < n * sizeof(float)) b = Buffer(std::max<size_t>(n, 16) * sizeof(float));
  return b.as<float>();
}

// One shard's files; `master` holds elements [begin, end).
void write_shard(const std::string& tmp_dir, const ShardWrite& w, FlatAccess* weights, FlatAccess* master,
                 FlatAccess* m, FlatAccess* v) {
  if (w.model) write_model_shard(tmp_dir, *w.layout, *weights, DType::F32);
  if (w.optim) write_optim_shard(tmp_dir, *w.layout, w.part, w.parts, w.begin, w.end, *master, *m, *v);
}

// A view of elements [offset, offset + size) of another FlatAccess.
class SubFlat final : public FlatAccess {
 public:
  SubFlat(FlatAccess& base, size_t offset, size_t n) : base_(base), offset_(offset), n_(n) {}
  size_t size() const override { return n_; }
  const float* read(size_t offset, size_t n) override { return base_.read(offset_ + offset, n); }
  float* write(size_t offset, size_t n) override { return base_.write(offset_ + offset, n); }
  void flush() override { base_.flush(); }

 private:
  FlatAccess& base_;
  size_t offset_, n_;
};

// The writer yields the cores to training (Linux: nice 19 for this thread alone): writing and
// hashing cost CPU, and a compute thread that loses its core stalls its OpenMP team.
void background_priority() { setpriority(PRIO_PROCESS, pid_t(syscall(SYS_gettid)), 19); }

}  // namespace

void wait_for_shards(const std::string& tmp_dir, const CheckpointMeta& meta, double timeout_s,
                     const std::atomic<bool>* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<std::string> missing;
    for (const auto& f : expected_files(meta))
      if (!fs::exists(fs::path(tmp_dir) / (f + ".digest"))) missing.push_back(f);
    if (missing.empty()) return;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    LT_CHECK(waited < timeout_s,
             "checkpoint: after {:.0f} s {} still lacks {} (is checkpoint.dir shared by every rank, and did every rank "
             "write its shard?)",
             waited, tmp_dir, fmt::join(missing, ", "));
    LT_CHECK(!cancel || !cancel->load(), "checkpoint: {} abandoned unfinished (the process is exiting on an error)",
             tmp_dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

AsyncCheckpointWriter::~AsyncCheckpointWriter() {
  cancel_ = true;
  try {
    wait();
  } catch (const std::exception& e) {
    log::error("checkpoint: {}", e.what());
  }
}

void AsyncCheckpointWriter::write(const CheckpointJob& job, const std::vector<ShardAccess>& state) {
  for (size_t i = 0; i < job.shards.size(); ++i) {
    const ShardWrite& w = job.shards[i];
    SubFlat master(*state[i].weights, w.begin, w.end - w.begin);
    write_shard(job.tmp_dir, w, state[i].weights, &master, state[i].exp_avg, state[i].exp_avg_sq);
  }
}

void AsyncCheckpointWriter::snapshot(const CheckpointJob& job, const std::vector<ShardAccess>& state) {
  LT_CHECK(!busy(), "checkpoint: a snapshot was taken while the previous save was still being written");
  snaps_.resize(job.shards.size());
  for (size_t i = 0; i < job.shards.size(); ++i) {
    const ShardWrite& w = job.shards[i];
    Snapshot& s = snaps_[i];
    if (!w.model && !w.optim) continue;  // a data-parallel replica without ZeRO-1 writes nothing
    const size_t n = w.end - w.begin;
    s.weights_offset = w.model ? 0 : w.begin;
    const size_t nw = w.model ? w.layout->total() : n;
    copy_out(*state[i].weights, s.weights_offset, nw, ensure(s.weights, nw));
    if (w.optim) {
      copy_out(*state[i].exp_avg, 0, n, ensure(s.m, n));
      copy_out(*state[i].exp_avg_sq, 0, n, ensure(s.v, n));
    }
  }
}

void AsyncCheckpointWriter::run(const CheckpointJob& job) {
  for (size_t i = 0; i < job.shards.size(); ++i) {
    const ShardWrite& sw = job.shards[i];
    if (!sw.model && !sw.optim) continue;
    Snapshot& s = snaps_[i];
    const size_t n = sw.end - sw.begin, total = sw.layout->total();
    HostFlat w(s.weights.as<float>(), sw.model ? total : n);
    HostFlat master(s.weights.as<float>() + (sw.begin - s.weights_offset), n);
    HostFlat m(s.m.as<float>(), sw.optim ? n : 0), v(s.v.as<float>(), sw.optim ? n : 0);
    write_shard(job.tmp_dir, sw, &w, &master, &m, &v);
  }
  finish_job(job);
}

void AsyncCheckpointWriter::finish_job(const CheckpointJob& job) {
  if (job.delay_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(job.delay_s));
  if (!job.meta) return;
  wait_for_shards(job.tmp_dir, *job.meta, job.peer_timeout_s, &cancel_);
  const std::string dir = finalize_checkpoint(job.root, *job.meta, job.keep_last);
  if (job.on_final) job.on_final(dir);
}

void AsyncCheckpointWriter::start(CheckpointJob job) {
  LT_CHECK(!busy(), "checkpoint: a save was started while the previous one was still being written");
  error_ = nullptr;
  thread_ = std::thread([this, job = std::move(job)] {
    background_priority();
    try {
      run(job);
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

void AsyncCheckpointWriter::start_live(CheckpointJob job, std::vector<ShardAccess> state,
                                       std::vector<std::unique_ptr<FlatAccess>> access) {
  LT_CHECK(!busy(), "checkpoint: a save was started while the previous one was still being written");
  error_ = nullptr;
  reading_ = true;
  thread_ = std::thread([this, job = std::move(job), state = std::move(state), access = std::move(access)]() mutable {
    background_priority();
    try {
      write(job, state);
    } catch (...) {
      error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
    }
    cv_.notify_all();
    access.clear();
    if (error_) return;
    try {
      finish_job(job);
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

double AsyncCheckpointWriter::release_state() {
  Timer t;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !reading_; });
  return t.seconds();
}

void AsyncCheckpointWriter::wait() {
  if (thread_.joinable()) thread_.join();
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace lt
