// Helpers for the ops tests: small checkpoint directories and a store wrapper that records
// or sabotages calls.
#pragma once
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/remote_store.h"
#include "core/error.h"

namespace lt::test {

inline std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = char(rng());
  return s;
}

inline void write_bytes(const std::filesystem::path& p, const std::string& data) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A checkpoint directory as the checkpoint writer leaves it: files, a subfolder, DONE last.
inline std::filesystem::path make_local_checkpoint(const std::filesystem::path& root, int64_t step,
                                                   size_t big_bytes = 1000) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  auto dir = root / name;
  write_bytes(dir / "meta.json", "{\"step\": " + std::to_string(step) + "}");
  write_bytes(dir / "shards" / "tp0_pp0.safetensors", random_bytes(big_bytes, uint32_t(step)));
  write_bytes(dir / "shards" / "tp1_pp0.safetensors", random_bytes(777, uint32_t(step) + 1));
  write_bytes(dir / "DONE", "");
  return dir;
}

// A real (verifiable) training checkpoint of a tiny model at `step` under `root`, weights
// filled with `step`; no retention. Returns its step directory. The model shard holds about
// 64 x `vocab` bytes.
inline std::filesystem::path save_tiny_checkpoint(const std::filesystem::path& root, int64_t step, int vocab = 11) {
  LlamaConfig c;
  c.name = "tiny";
  c.dim = 8;
  c.hidden_dim = 16;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.vocab_size = vocab;
  c.max_seq_len = 16;
  ParamLayout layout(c, ShardSpec{});
  std::vector<float> w(layout.total(), float(step));
  CheckpointMeta m;
  m.step = step;
  return save_checkpoint(root.string(), m, {ShardState{&layout, w.data()}}, DType::F32, 0);
}

// Forwards to another store; can record put order and fail selected calls.
class HookedStore : public RemoteStore {
 public:
  explicit HookedStore(std::shared_ptr<RemoteStore> inner) : inner_(std::move(inner)) {}
  std::function<void(const std::string& key)> before_put;  // may throw
  std::vector<std::string> put_keys;

  void put_file(const std::string& l, const std::string& k) override {
    if (before_put) before_put(k);
    inner_->put_file(l, k);
    put_keys.push_back(k);
  }
  void get_file(const std::string& k, const std::string& l) override { inner_->get_file(k, l); }
  std::vector<RemoteObject> list(const std::string& p) override { return inner_->list(p); }
  bool exists(const std::string& k) override { return inner_->exists(k); }
  void remove(const std::string& k) override { inner_->remove(k); }
  std::string describe(const std::string& k) const override { return inner_->describe(k); }

 private:
  std::shared_ptr<RemoteStore> inner_;
};

}  // namespace lt::test
