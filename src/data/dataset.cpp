#include "data/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "data/dataset_meta.h"
#include "data/shard.h"

namespace lt {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Samples are blocks of one or more shards, concatenated in order.
class ShardDataset : public TokenDataset {
 public:
  ShardDataset(std::string what, const std::vector<std::string>& shard_paths, std::string tokenizer = {})
      : what_(std::move(what)), tokenizer_(std::move(tokenizer)) {
    LT_CHECK(!shard_paths.empty(), "{}: no shards", what_);
    for (const auto& p : shard_paths) {
      shards_.push_back(std::make_unique<data::ShardReader>(p));
      const auto& h = shards_.back()->header();
      if (shards_.size() == 1) block_ = h.block_size;
      LT_CHECK(h.block_size == block_, "{}: block size {} differs from the first shard's {}", p, h.block_size,
               block_);
      first_.push_back(total_);
      total_ += int64_t(h.num_blocks);
      max_id_ = std::max<int64_t>(max_id_, h.max_token_id);
    }
    LT_CHECK(total_ > 0, "{}: dataset holds no blocks", what_);
    LT_CHECK(block_ <= uint64_t(INT32_MAX), "{}: block size {} too large", what_, block_);
  }
  int64_t num_samples() const override { return total_; }
  int sample_tokens() const override { return int(block_); }
  int64_t max_token_id() const override { return max_id_; }
  void read(int64_t index, int32_t* out) const override {
    LT_CHECK(index >= 0 && index < total_, "{}: sample {} out of range [0, {})", what_, index, total_);
    size_t s = size_t(std::upper_bound(first_.begin(), first_.end(), index) - first_.begin()) - 1;
    shards_[s]->read_block(uint64_t(index - first_[s]), out);
  }
  std::string describe() const override {
    return fmt::format("{}: {} samples of {} tokens in {} shard(s), max id {}", what_, total_, block_,
                       shards_.size(), max_id_);
  }
  std::string tokenizer() const override { return tokenizer_; }
  bool has_documents() const override {
    return std::all_of(shards_.begin(), shards_.end(), [](const auto& s) { return s->header().document_index; });
  }
  void document_starts(int64_t index, std::vector<int32_t>& out) const override {
    if (!has_documents()) return TokenDataset::document_starts(index, out);
    LT_CHECK(index >= 0 && index < total_, "{}: sample {} out of range [0, {})", what_, index, total_);
    size_t s = size_t(std::upper_bound(first_.begin(), first_.end(), index) - first_.begin()) - 1;
    shards_[s]->document_starts(uint64_t(index - first_[s]), out);
  }

 private:
  std::string what_, tokenizer_;
  std::vector<std::unique_ptr<data::ShardReader>> shards_;
  std::vector<int64_t> first_;  // first global sample index of each shard
  uint64_t block_ = 0;
  int64_t total_ = 0;
  int64_t max_id_ = 0;
};

// One headerless stream of uint16 or uint32 ids cut into samples.
class RawDataset : public TokenDataset {
 public:
  RawDataset(const std::string& path, int sample_tokens, int token_bytes)
      : file_(path), sample_(sample_tokens), bytes_(token_bytes) {
    LT_CHECK(sample_ > 0, "{}: a raw token file needs a positive sample length (sequence length), got {}", path,
             sample_);
    LT_CHECK(file_.size() > 0, "{}: token file is empty", path);
    LT_CHECK(file_.size() % size_t(bytes_) == 0, "{}: size {} bytes is not a multiple of {} (uint{} ids)", path,
             file_.size(), bytes_, bytes_ * 8);
    int64_t tokens = int64_t(file_.size() / size_t(bytes_));
    total_ = tokens / sample_;
    LT_CHECK(total_ > 0, "{}: {} tokens is shorter than one sample of {} tokens", path, tokens, sample_);
    for (int64_t i = 0; i < tokens; ++i) max_id_ = std::max<int64_t>(max_id_, id_at(i));
  }
  int64_t num_samples() const override { return total_; }
  int sample_tokens() const override { return sample_; }
  int64_t max_token_id() const override { return max_id_; }
  void read(int64_t index, int32_t* out) const override {
    LT_CHECK(index >= 0 && index < total_, "{}: sample {} out of range [0, {})", file_.path(), index, total_);
    int64_t base = index * sample_;
    for (int i = 0; i < sample_; ++i) out[i] = int32_t(id_at(base + i));
  }
  std::string describe() const override {
    return fmt::format("{}: raw uint{} tokens, {} samples of {} tokens, max id {}", file_.path(), bytes_ * 8,
                       total_, sample_, max_id_);
  }

 private:
  uint32_t id_at(int64_t i) const {
    const uint8_t* p = file_.data() + size_t(i) * size_t(bytes_);
    if (bytes_ == 2) {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  MappedFile file_;
  int sample_;
  int bytes_;
  int64_t total_ = 0;
  int64_t max_id_ = 0;
};

std::unique_ptr<TokenDataset> open_dir(const std::string& dir, const std::string& split) {
  std::string meta_path = (fs::path(dir) / "meta.json").string();
  if (!fs::exists(meta_path))
    fail("{} is a directory but has no meta.json (not a prepared dataset, or an interrupted prepare)", dir);
  nlohmann::json meta = data::read_dataset_meta(dir);
  std::vector<std::string> shards;
  for (const auto& s : data::dataset_split_shards(meta, split, meta_path)) shards.push_back((fs::path(dir) / s).string());
  std::string tokenizer;
  if (meta.contains("tokenizer") && meta["tokenizer"].is_object())
    tokenizer = meta["tokenizer"].value("kind", "?") + " " + meta["tokenizer"].value("hash", "?");
  return std::make_unique<ShardDataset>(fmt::format("{} [{}]", dir, split), shards, tokenizer);
}

}  // namespace

void TokenDataset::document_starts(int64_t, std::vector<int32_t>&) const {
  fail("{}: no document boundaries recorded (prepared before dataset format version 3, or a raw token file); "
       "re-run `llamatrain prepare` to use train.document_mask",
       describe());
}

std::unique_ptr<TokenDataset> TokenDataset::open(const std::string& path, int raw_sample_tokens,
                                                 const std::string& split) {
  try {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      // "<dir>/validation" (or "<dir>/train") names a split of the prepared dataset <dir>.
      fs::path p = fs::path(path).lexically_normal();
      if (p.filename().empty()) p = p.parent_path();
      fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
      if (fs::exists(parent / "meta.json", ec)) return open_dir(parent.string(), p.filename().string());
      fail("dataset {} does not exist", path);
    }
    if (fs::is_directory(path, ec)) return open_dir(path, split);
    {
      MappedFile probe(path);
      if (data::is_shard(probe.data(), probe.size()))
        return std::make_unique<ShardDataset>(path, std::vector<std::string>{path});
    }
    if (ends_with(path, ".u32") || ends_with(path, ".u32.bin"))
      return std::make_unique<RawDataset>(path, raw_sample_tokens, 4);
    if (ends_with(path, ".bin")) return std::make_unique<RawDataset>(path, raw_sample_tokens, 2);
    fail("{}: not a dataset directory, a token shard, a *.bin (uint16) or a *.u32 / *.u32.bin (uint32) token file",
         path);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    rethrow_with_context(e, "opening dataset " + path);
  }
}

}  // namespace lt
