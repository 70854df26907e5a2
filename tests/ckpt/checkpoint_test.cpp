// Training checkpoints: round trip, resharding across tp/pp/ZeRO-1 partitions through the
// file format alone, and recovery from corrupted or unfinished saves.
#include "ckpt/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "ckpt/reshard.h"
#include "ckpt/tensor_source.h"
#include "core/bf16.h"
#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"
#include "test_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;

// Global tensors held in memory, with random values: the ground truth every layout is cut from.
class MemorySource : public TensorSource {
 public:
  MemorySource(const LlamaConfig& c, uint64_t seed) : config_(c) {
    ParamLayout whole(c, ShardSpec{});
    Rng rng(seed);
    for (const auto& p : whole.params()) {
      auto& v = data_[p.name];
      v.resize(p.numel);
      for (auto& x : v) x = rng.normal();
      shapes_[p.name] = p.global_shape;
    }
  }
  const LlamaConfig& config() const override { return config_; }
  bool has(const std::string& n) const override { return data_.count(n) > 0; }
  Tensor get(const std::string& n) const override {
    const auto& v = data_.at(n);
    return {DType::F32, shapes_.at(n), {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}, nullptr};
  }
  std::string describe() const override { return "memory"; }
  DType stored_dtype() const override { return DType::F32; }

 private:
  LlamaConfig config_;
  std::map<std::string, std::vector<float>> data_;
  std::map<std::string, std::vector<int64_t>> shapes_;
};

LlamaConfig small_config(bool tied) {
  LlamaConfig c;
  c.name = "small";
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 3;  // uneven cut at pp=2
  c.n_heads = 4;
  c.n_kv_heads = 2;  // tp=4 > kv heads: replicated KV
  c.vocab_size = 37;  // not divisible by tp
  c.max_seq_len = 64;
  c.tie_embeddings = tied;
  return c;
}

// The four flat buffers of one shard, each cut from its own ground truth.
struct ShardBuffers {
  ParamLayout layout;
  std::vector<float> w, master, m, v;
};

std::vector<ShardBuffers> make_shards(const LlamaConfig& c, int tp, int pp, const MemorySource* truth[4]) {
  std::vector<ShardBuffers> out;
  for (int p = 0; p < pp; ++p)
    for (int t = 0; t < tp; ++t) {
      ShardBuffers s{ParamLayout(c, ShardSpec{tp, t, pp, p, {}}), {}, {}, {}, {}};
      std::vector<float>* bufs[] = {&s.w, &s.master, &s.m, &s.v};
      for (int k = 0; k < 4; ++k) {
        bufs[k]->resize(s.layout.total());
        load_weights(*truth[k], s.layout, bufs[k]->data());
      }
      out.push_back(std::move(s));
    }
  return out;
}

CheckpointMeta base_meta(const LlamaConfig& c, int64_t step) {
  CheckpointMeta m;
  m.step = step;
  m.tokens_seen = step * 1000;
  m.config = c;
  m.data_position = step * 8;
  m.data_seed = 1234;
  m.rng["dropout"] = {7, 99};
  m.scheduler = {{"kind", "cosine"}, {"last_lr", 1.5e-4}};
  return m;
}

// Saves with ZeRO-1 style partitions: each shard's optimizer state cut into `parts` ranges.
std::string save_partitioned(const std::string& root, const LlamaConfig& c, int tp, int pp, int parts, int64_t step,
                             const MemorySource* truth[4]) {
  auto shards = make_shards(c, tp, pp, truth);
  std::string tmp = begin_checkpoint(root, step);
  for (auto& s : shards) {
    write_model_shard(tmp, s.layout, s.w.data(), DType::F32);
    size_t n = s.layout.total();
    // Cuts through tensors, at different places on each tp rank, so replicated tensors are
    // stored in differently cut pieces.
    auto cut = [&](int d) { return d == 0 || d == parts ? n * d / parts : n * d / parts + 7 * s.layout.shard().tp_rank; };
    for (int d = 0; d < parts; ++d) {
      size_t a = cut(d), b = cut(d + 1);
      write_optim_shard(tmp, s.layout, d, parts, a, b, s.master.data() + a, s.m.data() + a, s.v.data() + a);
    }
  }
  CheckpointMeta meta = base_meta(c, step);
  meta.tp = tp;
  meta.pp = pp;
  meta.optim_parts = parts;
  return finalize_checkpoint(root, meta, 0);
}

void check_reshard(bool tied) {
  LlamaConfig c = small_config(tied);
  MemorySource w(c, 1), ms(c, 2), m(c, 3), v(c, 4);
  const MemorySource* truth[4] = {&w, &ms, &m, &v};
  auto root = test::scratch_dir(tied ? "reshard_tied" : "reshard");
  struct L {
    int tp, pp, parts;
  };
  int64_t step = 1;
  for (L src : {L{1, 1, 1}, L{2, 2, 3}, L{4, 1, 2}}) {
    std::string dir = save_partitioned(root.string(), c, src.tp, src.pp, src.parts, step++, truth);
    CheckpointRef ref = open_checkpoint(dir);
    for (L dst : {L{1, 1, 1}, L{2, 2, 2}, L{4, 1, 3}}) {
      auto want = make_shards(c, dst.tp, dst.pp, truth);
      for (auto& s : want) {
        SCOPED_TRACE(testing::Message() << "tp" << src.tp << "pp" << src.pp << "x" << src.parts << " -> tp"
                                        << s.layout.shard().tp_rank << "/" << dst.tp << " pp"
                                        << s.layout.shard().pp_rank << "/" << dst.pp);
        std::vector<float> got(s.layout.total());
        load_model(ref, s.layout, got.data());
        ASSERT_EQ(got, s.w);
        size_t n = s.layout.total();
        for (int d = 0; d < dst.parts; ++d) {
          size_t a = n * d / dst.parts, b = n * (d + 1) / dst.parts;
          std::vector<float> gm(b - a), ge(b - a), gv(b - a);
          load_optimizer(ref, s.layout, a, b, gm.data(), ge.data(), gv.data());
          ASSERT_EQ(0, std::memcmp(gm.data(), s.master.data() + a, (b - a) * 4));
          ASSERT_EQ(0, std::memcmp(ge.data(), s.m.data() + a, (b - a) * 4));
          ASSERT_EQ(0, std::memcmp(gv.data(), s.v.data() + a, (b - a) * 4));
        }
      }
    }
  }
}

TEST(Checkpoint, ReshardModelAndOptimizer) { check_reshard(false); }
TEST(Checkpoint, ReshardTiedEmbeddings) { check_reshard(true); }

TEST(Checkpoint, MetaRoundTrip) {
  auto root = test::scratch_dir("ckpt_meta");
  LlamaConfig c = small_config(false);
  MemorySource w(c, 1);
  const MemorySource* truth[4] = {&w, &w, &w, &w};
  save_partitioned(root.string(), c, 2, 1, 2, 42, truth);
  auto ref = find_latest_checkpoint(root.string());
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->dir, (root / "step_00000042").string());
  EXPECT_EQ(ref->meta.step, 42);
  EXPECT_EQ(ref->meta.tokens_seen, 42000);
  EXPECT_EQ(ref->meta.data_position, 42 * 8);
  EXPECT_EQ(ref->meta.data_seed, 1234u);
  EXPECT_EQ(ref->meta.rng.at("dropout").counter, 99u);
  EXPECT_EQ(ref->meta.scheduler["kind"], "cosine");
  EXPECT_EQ(ref->meta.tp, 2);
  EXPECT_EQ(ref->meta.optim_parts, 2);
  EXPECT_EQ(ref->meta.config.n_kv_heads, 2);
  EXPECT_EQ(ref->meta.files.size(), 2u + 4u);
  EXPECT_EQ(read_file((root / "latest").string()), "step_00000042\n");
  EXPECT_FALSE(fs::exists(root / "step_00000042" / "model" / "tp0_pp0.safetensors.digest"));
}

TEST(Checkpoint, Bf16ModelShards) {
  auto root = test::scratch_dir("ckpt_bf16");
  LlamaConfig c = small_config(false);
  MemorySource w(c, 5);
  ParamLayout layout(c, ShardSpec{});
  std::vector<float> buf(layout.total());
  load_weights(w, layout, buf.data());
  std::string dir = save_checkpoint(root.string(), base_meta(c, 3), {{&layout, buf.data()}}, DType::BF16, 0);
  CheckpointRef ref = open_checkpoint(dir);
  EXPECT_EQ(ref.meta.model_dtype, DType::BF16);
  EXPECT_EQ(ref.meta.optim_parts, 0);
  std::vector<float> got(layout.total());
  load_model(ref, layout, got.data());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], bf16_to_float(float_to_bf16(buf[i])));
  std::vector<float> x(1);
  EXPECT_THROW(load_optimizer(ref, layout, 0, 1, x.data(), x.data(), x.data()), Error);
}

// Three good checkpoints, then damage the newest in different ways.
struct Damaged : ::testing::Test {
  fs::path root;
  LlamaConfig c = small_config(false);
  void SetUp() override {
    root = test::scratch_dir(std::string("ckpt_damaged_") + testing::UnitTest::GetInstance()->current_test_info()->name());
    MemorySource w(c, 9);
    const MemorySource* truth[4] = {&w, &w, &w, &w};
    for (int s : {10, 20, 30}) save_partitioned(root.string(), c, 1, 2, 1, s, truth);
  }
  int64_t latest_step() {
    auto r = find_latest_checkpoint(root.string());
    return r ? r->meta.step : -1;
  }
  std::string open_error(const std::string& dir) {
    try {
      verify_checkpoint(dir);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(Damaged, FlippedByte) {
  fs::path f = root / "step_00000030" / "optim" / "tp0_pp1_dp0.safetensors";
  {
    std::fstream s(f, std::ios::in | std::ios::out | std::ios::binary);
    s.seekp(200);
    char ch;
    s.read(&ch, 1);
    ch ^= 0x10;
    s.seekp(200);
    s.write(&ch, 1);
  }
  std::string msg = open_error((root / "step_00000030").string());
  EXPECT_NE(msg.find("optim/tp0_pp1_dp0.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("corrupted"), std::string::npos) << msg;
  EXPECT_EQ(latest_step(), 20);
}

TEST_F(Damaged, TruncatedFile) {
  fs::path f = root / "step_00000030" / "model" / "tp0_pp0.safetensors";
  fs::resize_file(f, fs::file_size(f) - 1);
  EXPECT_NE(open_error((root / "step_00000030").string()).find("truncated"), std::string::npos);
  EXPECT_EQ(latest_step(), 20);
}

TEST_F(Damaged, MissingDone) {
  fs::remove(root / "step_00000030" / "DONE");
  EXPECT_NE(open_error((root / "step_00000030").string()).find("no DONE"), std::string::npos);
  EXPECT_EQ(latest_step(), 20);
}

TEST_F(Damaged, MissingFile) {
  fs::remove(root / "step_00000030" / "model" / "tp0_pp1.safetensors");
  EXPECT_NE(open_error((root / "step_00000030").string()).find("missing"), std::string::npos);
  EXPECT_EQ(latest_step(), 20);
}

TEST_F(Damaged, CrashMidSaveIsNeverLatest) {
  // A save of step 40 that died after writing one shard.
  std::string tmp = begin_checkpoint(root.string(), 40);
  ParamLayout layout(c, ShardSpec{1, 0, 2, 0, {}});
  std::vector<float> w(layout.total());
  write_model_shard(tmp, layout, w.data(), DType::F32);
  EXPECT_EQ(latest_step(), 30);
  EXPECT_EQ(open_checkpoint(root.string()).meta.step, 30);
  // Finalizing without every rank's file fails loudly, and still nothing new is visible.
  CheckpointMeta meta = base_meta(c, 40);
  meta.pp = 2;
  EXPECT_THROW(finalize_checkpoint(root.string(), meta, 0), Error);
  EXPECT_EQ(latest_step(), 30);
}

TEST_F(Damaged, NothingValid) {
  for (int s : {10, 20, 30}) fs::remove(root / fmt::format("step_{:08d}", s) / "DONE");
  EXPECT_FALSE(find_latest_checkpoint(root.string()).has_value());
  EXPECT_THROW(open_checkpoint(root.string()), Error);
}

TEST_F(Damaged, RetentionKeepsTheNewest) {
  MemorySource w(c, 9);
  const MemorySource* truth[4] = {&w, &w, &w, &w};
  auto shards = make_shards(c, 1, 2, truth);
  std::vector<ShardState> st;
  for (auto& s : shards) st.push_back({&s.layout, s.w.data(), s.master.data(), s.m.data(), s.v.data()});
  save_checkpoint(root.string(), base_meta(c, 40), st, DType::F32, 2);
  EXPECT_FALSE(fs::exists(root / "step_00000010"));
  EXPECT_FALSE(fs::exists(root / "step_00000020"));
  EXPECT_TRUE(fs::exists(root / "step_00000030"));
  EXPECT_EQ(latest_step(), 40);
  EXPECT_EQ(open_checkpoint(root.string(), 30).meta.step, 30);
}

TEST(Checkpoint, MetaParserRejectsBadFields) {
  auto expect = [](const std::string& text, const std::string& substr) {
    try {
      parse_checkpoint_meta(text, "m.json");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(substr), std::string::npos) << e.what();
    }
  };
  expect("[]", "JSON object");
  expect("{", "not valid JSON");
  expect(R"({"format":"x"})", "format");
  expect(R"({"format":"llamatrain-checkpoint","version":2})", "version 2");
  expect(R"({"format":"llamatrain-checkpoint","version":1,"step":-1})", "step");
  CheckpointMeta meta = base_meta(small_config(false), 5);
  for (const auto& f : expected_files(meta)) meta.files[f] = {10, 0x1234};
  std::string good = meta_to_json(meta);
  EXPECT_NO_THROW(parse_checkpoint_meta(good, "m.json"));
  auto j = nlohmann::json::parse(good);
  j["files"]["../x"] = {{"size", 1}, {"xxh64", "0000000000000000"}};
  expect(j.dump(), "relative path");
}

}  // namespace
}  // namespace lt

namespace lt {
namespace {

// A crafted shard whose slice record points outside the tensor must be refused, not read.
TEST(Checkpoint, CraftedSliceRecordIsRefused) {
  auto dir = test::scratch_dir("ckpt_crafted");
  fs::create_directories(dir / "model");
  LlamaConfig c = small_config(false);
  std::vector<float> x(32, 1.0f);
  for (const char* rec : {R"({"global_shape":[32],"split_dim":0,"split_begin":16})",
                          R"({"global_shape":[4294967296,4294967296],"split_dim":0,"split_begin":0})",
                          R"({"global_shape":[32],"split_dim":5,"split_begin":0})", R"(not json)"}) {
    {
      SafetensorsWriter w((dir / "model" / "tp0_pp0.safetensors").string(), {{"model.norm.weight", DType::F32, {32}}},
                          {{"model.norm.weight", rec}});
      w.write(x.data(), 128);
      w.finish();
    }
    CheckpointRef ref{dir.string(), base_meta(c, 1)};
    try {
      CheckpointSource src(ref);
      ADD_FAILURE() << "accepted " << rec;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad slice metadata"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace lt
