#include "data/prepare.h"

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "data/packer.h"
#include "data/permutation.h"
#include "data/progress.h"
#include "data/tokenizer.h"

namespace lt::data {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBatchBytes = 4 << 20;  // text per batch
constexpr size_t kBatchDocs = 8192;
constexpr size_t kQueueBatches = 2;

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted = true; }

// Installs a SIGINT/SIGTERM handler for the scope so an interrupted prepare cleans up.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = false;
    struct sigaction sa{};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_{}, old_term_{};
};

struct Batch {
  std::vector<std::string> docs;
  uint64_t bytes_read = 0;  // raw input consumed when the batch was complete
  bool last = false;
};

// Reader thread -> bounded queue -> main thread. Errors in the reader are passed along.
class BatchQueue {
 public:
  void push(Batch b) {
    std::unique_lock<std::mutex> l(m_);
    cv_.wait(l, [&] { return q_.size() < kQueueBatches || stop_; });
    q_.push_back(std::move(b));
    cv_.notify_all();
  }
  Batch pop() {
    std::unique_lock<std::mutex> l(m_);
    cv_.wait(l, [&] { return !q_.empty() || error_; });
    if (q_.empty() && error_) std::rethrow_exception(error_);
    Batch b = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return b;
  }
  void set_error(std::exception_ptr e) {
    std::lock_guard<std::mutex> l(m_);
    error_ = e;
    cv_.notify_all();
  }
  void stop() {
    std::lock_guard<std::mutex> l(m_);
    stop_ = true;
    cv_.notify_all();
  }
  bool stopped() {
    std::lock_guard<std::mutex> l(m_);
    return stop_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Batch> q_;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace

bool is_validation_document(uint64_t split_seed, uint64_t doc_index, double fraction) {
  if (fraction <= 0) return false;
  double u = double(mix_key(split_seed, doc_index) >> 11) * (1.0 / 9007199254740992.0);
  return u < fraction;
}

nlohmann::json prepare_dataset(const PrepareOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  LT_CHECK(o.block_size >= 2, "--block-size must be >= 2, got {}", o.block_size);
  LT_CHECK(o.validation_fraction >= 0 && o.validation_fraction < 1,
           "--validation-fraction must be in [0, 1), got {}", o.validation_fraction);
  LT_CHECK(!o.output.empty(), "no output directory given");
  std::string out = fs::path(o.output).lexically_normal().string();
  if (!out.empty() && out.back() == '/') out.pop_back();
  if (fs::exists(out)) {
    bool is_dataset = fs::exists(fs::path(out) / "meta.json");
    bool empty_dir = fs::is_directory(out) && fs::is_empty(out);
    if (!o.force && !empty_dir) fail("output {} already exists (use --force to replace a dataset)", out);
    if (o.force && !is_dataset && !empty_dir)
      fail("output {} exists and is not a dataset directory; refusing to replace it", out);
  }

  auto tok = open_tokenizer(o.tokenizer);
  LT_CHECK(tok->bos_id() >= 0, "tokenizer {} has no BOS token", o.tokenizer);
  LT_CHECK(!o.add_eos || tok->eos_id() >= 0, "tokenizer {} has no EOS token (--eos)", o.tokenizer);
  const uint32_t token_bytes = tok->vocab_size() <= 65536 ? 2 : 4;  // uint16 while every id fits
  std::vector<std::string> files = expand_inputs(o.inputs);
  CorpusReader reader(files, o.corpus);
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const uint64_t blocks_per_shard = std::max<uint64_t>(1, o.shard_bytes / (uint64_t(o.block_size) * token_bytes));

  std::string tmp = staging_dir(out, "dataset");
  InterruptGuard guard;
  BatchQueue queue;
  std::thread reader_thread;
  try {
    BlockPacker train(tmp, "train", token_bytes, uint64_t(o.block_size), blocks_per_shard);
    BlockPacker valid(tmp, "validation", token_bytes, uint64_t(o.block_size), blocks_per_shard);
    reader_thread = std::thread([&] {
      try {
        for (;;) {
          Batch b;
          size_t bytes = 0;
          std::string doc;
          while (bytes < kBatchBytes && b.docs.size() < kBatchDocs) {
            if (queue.stopped()) return;
            if (g_interrupted) fail("prepare interrupted");
            if (!reader.next(doc)) {
              b.last = true;
              break;
            }
            bytes += doc.size();
            b.docs.push_back(std::move(doc));
          }
          b.bytes_read = reader.bytes_read();
          bool last = b.last;
          queue.push(std::move(b));
          if (last) return;
        }
      } catch (...) {
        queue.set_error(std::current_exception());
      }
    });

    Progress progress("prepare", reader.total_bytes(), o.progress);
    uint64_t doc_index = 0, total_tokens = 0, text_bytes = 0;
    std::vector<std::vector<int32_t>> ids;
    for (;;) {
      if (g_interrupted) fail("prepare interrupted; {} removed, nothing written to {}", tmp, out);
      Batch b = queue.pop();
      ids.assign(b.docs.size(), {});
      std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (long i = 0; i < long(b.docs.size()); ++i) {
        try {
          auto& v = ids[size_t(i)];
          v.reserve(b.docs[size_t(i)].size() / 3 + 2);
          v.push_back(tok->bos_id());
          tok->encode_append(b.docs[size_t(i)], v);
          if (o.add_eos) v.push_back(tok->eos_id());
        } catch (...) {
#pragma omp critical
          err = std::current_exception();
        }
      }
      if (err) std::rethrow_exception(err);
      for (size_t i = 0; i < ids.size(); ++i, ++doc_index) {
        BlockPacker& dst = is_validation_document(o.split_seed, doc_index, o.validation_fraction) ? valid : train;
        dst.add_document(ids[i].data(), ids[i].size());
        total_tokens += ids[i].size();
        text_bytes += b.docs[i].size();
      }
      progress.update(b.bytes_read, total_tokens);
      if (b.last) break;
    }
    reader_thread.join();
    train.finish();
    valid.finish();
    progress.finish(reader.total_bytes(), total_tokens);

    const CorpusStats& cs = reader.stats();
    if (cs.documents == 0)
      fail("the corpus is empty: no documents in {} input file(s) ({} empty documents skipped)", files.size(),
           cs.empty_skipped);
    if (train.stats().blocks == 0)
      fail("the training split has {} tokens, fewer than one block of {} (use a smaller --block-size or more text)",
           train.stats().tokens_in, o.block_size);
    if (o.validation_fraction > 0 && valid.stats().blocks == 0)
      log::warn("the validation split has {} tokens, fewer than one block of {}: it is empty",
                valid.stats().tokens_in, o.block_size);

    nlohmann::json sources = nlohmann::json::array();
    for (const auto& s : reader.sources())
      sources.push_back({{"path", s.path}, {"format", s.format}, {"compression", s.compression},
                         {"bytes", s.bytes}, {"hash", s.hash}, {"documents", s.documents}});
    auto split = [&](const BlockPacker& p) {
      const SplitStats& s = p.stats();
      return nlohmann::json{{"shards", s.shards},
                            {"blocks", s.blocks},
                            {"tokens", s.blocks * uint64_t(o.block_size)},
                            {"documents", s.documents},
                            {"document_tokens", s.tokens_in},
                            {"dropped_tokens", s.dropped_tokens},
                            {"max_token_id", s.max_token_id}};
    };
    nlohmann::json meta = {
        {"format", "llamatrain-dataset"},
        {"version", 3},  // document boundaries (version 3 shards); uint16 or uint32 ids as "dtype" says
        {"document_index", true},
        {"created_by", "llamatrain prepare"},
        {"block_size", o.block_size},
        {"dtype", token_bytes == 2 ? "uint16" : "uint32"},
        {"tokenizer",
         {{"kind", tok->kind()},
          {"file", fs::path(o.tokenizer).filename().string()},
          {"path", fs::absolute(o.tokenizer).lexically_normal().string()},
          {"hash", tok->file_hash()},
          {"vocab_size", tok->vocab_size()},
          {"bos_id", tok->bos_id()},
          {"eos_id", tok->eos_id()}}},
        {"bos_per_document", true},
        {"eos_per_document", o.add_eos},
        {"remainder_policy", "drop"},
        {"validation_fraction", o.validation_fraction},
        {"split_seed", o.split_seed},
        {"splits", {{"train", split(train)}, {"validation", split(valid)}}},
        {"documents", cs.documents},
        {"text_bytes", text_bytes},
        {"input",
         {{"format", to_string(o.corpus.format)},
          {"text_mode", o.corpus.text_mode == TextMode::file ? "file" : "paragraph"},
          {"jsonl_field", o.corpus.jsonl_field},
          {"invalid_utf8", o.corpus.fail_on_invalid_utf8 ? "fail" : "replace"},
          {"invalid_utf8_bytes_replaced", cs.invalid_utf8_replaced},
          {"empty_documents_skipped", cs.empty_skipped},
          {"unterminated_documents_dropped", cs.unterminated_dropped}}},
        {"sources", sources}};
    if (g_interrupted) fail("prepare interrupted; {} removed, nothing written to {}", tmp, out);
    write_file_atomic((fs::path(tmp) / "meta.json").string(), meta.dump(2) + "\n");
    // Checked above: `out` is absent, an empty directory, or a dataset replaced with --force.
    publish_dir(tmp, out);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log::info("prepare: {} documents, {} tokens -> {} train + {} validation blocks of {} in {} ({:.1f} s, {:.2f} MB/s)",
              cs.documents, total_tokens, train.stats().blocks, valid.stats().blocks, o.block_size, out, secs,
              secs > 0 ? double(reader.total_bytes()) / 1e6 / secs : 0.0);
    return meta;
  } catch (...) {
    queue.stop();
    if (reader_thread.joinable()) reader_thread.join();
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace lt::data
