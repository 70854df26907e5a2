// Loading weights into (tp, pp) shards from HF directories and llama2.c files. The expected
// values are cut out of the raw files by hand here (offsets computed in the test).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "ckpt/hf_source.h"
#include "ckpt/llama2c.h"
#include "ckpt/safetensors.h"
#include "ckpt/tensor_source.h"
#include "core/bf16.h"
#include "core/error.h"
#include "core/rng.h"
#include "test_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;

std::vector<float> raw_f32(const SafetensorsFile& f, const std::string& name) {
  auto b = f.bytes(f.at(name));
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), b.size());
  return v;
}

TEST(Loader, HfTinyConfig) {
  HfSource src(test::source_path("tests/fixtures/hf_tiny"));
  const auto& c = src.config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.hidden_dim, 96);
  EXPECT_EQ(c.vocab_size, 80);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(src.stored_dtype(), DType::F32);
}

// Every (tp, pp) shard's slices, checked element by element against the file.
TEST(Loader, HfTinyShardsMatchTheFile) {
  std::string dir = test::source_path("tests/fixtures/hf_tiny");
  HfSource src(dir);
  SafetensorsFile file(dir + "/model.safetensors");
  const LlamaConfig& c = src.config();
  for (auto [tp, pp] : {std::pair{1, 1}, {2, 2}, {4, 1}}) {
    for (int t = 0; t < tp; ++t)
      for (int p = 0; p < pp; ++p) {
        ShardSpec s{tp, t, pp, p, {}};
        ParamLayout layout(c, s);
        std::vector<float> buf(layout.total(), -1.0f);
        load_weights(src, layout, buf.data());
        for (const auto& pi : layout.params()) {
          auto g = raw_f32(file, pi.name);
          int64_t rows = pi.shape[0], cols = pi.shape.size() > 1 ? pi.shape[1] : 1;
          int64_t gcols = pi.global_shape.size() > 1 ? pi.global_shape[1] : 1;
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t k = 0; k < cols; ++k) {
              int64_t gr = pi.split_dim == 0 ? pi.split_begin + r : r;
              int64_t gk = pi.split_dim == 1 ? pi.split_begin + k : k;
              ASSERT_EQ(buf[pi.offset + r * cols + k], g[gr * gcols + gk]) << pi.name << " tp" << t << " pp" << p;
            }
        }
      }
  }
}

// The bf16 fixture is the fp32 one rounded to nearest even (by torch), in two shards.
TEST(Loader, HfTinyBf16ShardedMatchesRoundedFp32) {
  HfSource f32(test::source_path("tests/fixtures/hf_tiny"));
  HfSource b16(test::source_path("tests/fixtures/hf_tiny_bf16"));
  EXPECT_EQ(b16.stored_dtype(), DType::BF16);
  ParamLayout layout(f32.config(), ShardSpec{});
  std::vector<float> a(layout.total()), b(layout.total());
  load_weights(f32, layout, a.data());
  load_weights(b16, layout, b.data());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(b[i], bf16_to_float(float_to_bf16(a[i]))) << i;
}

void write_hf_dir(const fs::path& dir, const std::string& config, const std::vector<TensorDecl>& decls) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config;
  SafetensorsWriter w((dir / "model.safetensors").string(), decls);
  for (const auto& d : decls) {
    size_t n = dtype_size(d.dtype);
    for (auto x : d.shape) n *= size_t(x);
    std::vector<uint8_t> zeros(n);
    w.write(zeros.data(), n);
  }
  w.finish();
}

const char* kTinyConfig = R"({"model_type":"llama","hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
  "num_attention_heads":2,"num_key_value_heads":1,"vocab_size":10,"tie_word_embeddings":true})";

std::vector<TensorDecl> tiny_decls() {
  return {{"model.embed_tokens.weight", DType::F32, {10, 8}},
          {"model.layers.0.input_layernorm.weight", DType::F32, {8}},
          {"model.layers.0.self_attn.q_proj.weight", DType::F32, {8, 8}},
          {"model.layers.0.self_attn.k_proj.weight", DType::F32, {4, 8}},
          {"model.layers.0.self_attn.v_proj.weight", DType::F32, {4, 8}},
          {"model.layers.0.self_attn.o_proj.weight", DType::F32, {8, 8}},
          {"model.layers.0.post_attention_layernorm.weight", DType::F32, {8}},
          {"model.layers.0.mlp.gate_proj.weight", DType::F32, {16, 8}},
          {"model.layers.0.mlp.up_proj.weight", DType::F32, {16, 8}},
          {"model.layers.0.mlp.down_proj.weight", DType::F32, {8, 16}},
          {"model.norm.weight", DType::F32, {8}}};
}

std::string load_error(const fs::path& dir) {
  try {
    HfSource src(dir.string());
    ParamLayout layout(src.config(), ShardSpec{});
    std::vector<float> buf(layout.total());
    load_weights(src, layout, buf.data());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Loader, TiedHfDirectoryLoadsAndFillsTheTiedCopy) {
  auto dir = test::scratch_dir("loader_tied");
  write_hf_dir(dir, kTinyConfig, tiny_decls());
  EXPECT_EQ(load_error(dir), "");
  HfSource src(dir.string());
  ParamLayout last(src.config(), ShardSpec{1, 0, 1, 0, {}});
  EXPECT_EQ(last.find("lm_head.weight"), nullptr);  // tied, one stage: no copy
}

TEST(Loader, WrongShapeIsNamed) {
  auto dir = test::scratch_dir("loader_wrong_shape");
  auto decls = tiny_decls();
  decls[3].shape = {8, 8};  // k_proj as if MHA
  write_hf_dir(dir, kTinyConfig, decls);
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[8, 8]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4, 8]"), std::string::npos) << msg;
}

TEST(Loader, MissingTensorIsNamed) {
  auto dir = test::scratch_dir("loader_missing");
  auto decls = tiny_decls();
  decls.erase(decls.begin() + 7);
  write_hf_dir(dir, kTinyConfig, decls);
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("missing tensor 'model.layers.0.mlp.gate_proj.weight'"), std::string::npos) << msg;
}

TEST(Loader, NotALlamaConfig) {
  auto dir = test::scratch_dir("loader_not_llama");
  write_hf_dir(dir, R"({"model_type":"gpt2","n_embd":8})", tiny_decls());
  EXPECT_NE(load_error(dir).find("gpt2"), std::string::npos);
}

TEST(Loader, RopePermutationRoundTrip) {
  const int heads = 3, hd = 6, cols = 5;
  std::vector<float> meta(heads * hd * cols), hf(meta.size()), back(meta.size());
  for (size_t i = 0; i < meta.size(); ++i) meta[i] = float(i);
  permute_meta_to_hf(meta.data(), hf.data(), heads, hd, cols);
  // Head 1, HF row 1 (first half) is Meta row 2; HF row hd/2 + 1 is Meta row 3.
  EXPECT_EQ(hf[(1 * hd + 1) * cols], meta[(1 * hd + 2) * cols]);
  EXPECT_EQ(hf[(1 * hd + hd / 2 + 1) * cols], meta[(1 * hd + 3) * cols]);
  permute_hf_to_meta(hf.data(), back.data(), heads, hd, cols);
  EXPECT_EQ(back, meta);
}

std::string stories_path() { return test::source_path("assets/stories260k/stories260K.bin"); }

TEST(Loader, Llama2cStories260k) {
  Llama2cSource src(stories_path());
  const LlamaConfig& c = src.config();
  LlamaConfig want = preset_config("stories260k");
  EXPECT_EQ(c.dim, want.dim);
  EXPECT_EQ(c.hidden_dim, want.hidden_dim);
  EXPECT_EQ(c.n_layers, want.n_layers);
  EXPECT_EQ(c.n_heads, want.n_heads);
  EXPECT_EQ(c.n_kv_heads, want.n_kv_heads);
  EXPECT_EQ(c.vocab_size, want.vocab_size);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(src.has("lm_head.weight"));

  // Raw floats of the file, offsets from PROVENANCE.md's layout.
  MappedFile m(stories_path());
  auto at = [&](size_t idx) {
    float f;
    std::memcpy(&f, m.data() + 28 + 4 * idx, 4);
    return f;
  };
  const size_t D = 64, L = 5, V = 512, KV = 32, F = 172, hd = 8;
  const size_t wq = V * D + L * D, wk = wq + L * D * D, w1 = wk + 2 * L * KV * D + L * D * D + L * D;
  // Layer 2, head 3 of q: HF row j <- Meta row 2j, HF row 4 + j <- Meta row 2j + 1.
  Tensor q = src.get("model.layers.2.self_attn.q_proj.weight");
  std::vector<float> qf(q.numel());
  std::memcpy(qf.data(), q.bytes.data(), q.bytes.size());
  for (size_t j = 0; j < hd / 2; ++j)
    for (size_t col = 0; col < D; ++col) {
      EXPECT_EQ(qf[(3 * hd + j) * D + col], at(wq + 2 * D * D + (3 * hd + 2 * j) * D + col));
      EXPECT_EQ(qf[(3 * hd + hd / 2 + j) * D + col], at(wq + 2 * D * D + (3 * hd + 2 * j + 1) * D + col));
    }
  Tensor k = src.get("model.layers.4.self_attn.k_proj.weight");
  std::vector<float> kf(k.numel());
  std::memcpy(kf.data(), k.bytes.data(), k.bytes.size());
  EXPECT_EQ(kf[(1 * hd + hd / 2) * D + 7], at(wk + 4 * KV * D + (1 * hd + 1) * D + 7));
  Tensor gate = src.get("model.layers.1.mlp.gate_proj.weight");  // w1, unpermuted
  float g;
  std::memcpy(&g, gate.bytes.data() + 4 * 5, 4);
  EXPECT_EQ(g, at(w1 + 1 * F * D + 5));
}

TEST(Loader, Llama2cTiedCopyOnLastStage) {
  Llama2cSource src(stories_path());
  ParamLayout first(src.config(), ShardSpec{1, 0, 2, 0, {}});
  ParamLayout last(src.config(), ShardSpec{1, 0, 2, 1, {}});
  std::vector<float> a(first.total()), b(last.total());
  load_weights(src, first, a.data());
  load_weights(src, last, b.data());
  const ParamInfo* e = first.find("model.embed_tokens.weight");
  const ParamInfo* h = last.find("lm_head.weight");
  ASSERT_TRUE(h && h->tied_copy);
  EXPECT_EQ(std::memcmp(a.data() + e->offset, b.data() + h->offset, e->numel * 4), 0);
}

TEST(Loader, Llama2cTruncated) {
  auto dir = test::scratch_dir("loader_l2c_trunc");
  fs::copy_file(stories_path(), dir / "s.bin");
  fs::resize_file(dir / "s.bin", 100000);
  try {
    Llama2cSource src((dir / "s.bin").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lt

namespace lt {
namespace {

// llama2.c -> (HF order in memory) -> llama2.c gives the original file back: weights byte for
// byte (q/k permuted there and back), the legacy RoPE tables to float rounding.
TEST(Loader, Llama2cExportReproducesTheFile) {
  auto dir = test::scratch_dir("loader_l2c_export");
  std::string out = (dir / "out.bin").string();
  Llama2cSource src(stories_path());
  write_llama2c(src, out);
  MappedFile a(stories_path()), b(out);
  ASSERT_EQ(a.size(), b.size());
  const LlamaConfig& c = src.config();
  const size_t table = size_t(c.max_seq_len) * c.head_dim() / 2 * 2 * 4;
  const size_t weights_end = a.size() - table;  // tied: the tables are last
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), weights_end));
  for (size_t off = weights_end; off < a.size(); off += 4) {
    float x, y;
    std::memcpy(&x, a.data() + off, 4);
    std::memcpy(&y, b.data() + off, 4);
    ASSERT_NEAR(x, y, 2e-6) << off;
  }
}

}  // namespace
}  // namespace lt
