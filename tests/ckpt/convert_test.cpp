// Conversion round trips: every tensor's bytes must survive HF -> checkpoint (any tp/pp) -> HF.
#include "ckpt/convert.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "ckpt/hf_source.h"
#include "ckpt/llama2c.h"
#include "ckpt/reshard.h"
#include "core/bf16.h"
#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"
#include "model/config.h"
#include "test_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;

// Same tensor names, dtypes, shapes and bytes, read with the plain safetensors reader.
void expect_same_tensors(const std::string& a_dir, const std::string& b_dir) {
  HfSource a(a_dir), b(b_dir);
  auto names = a.names();
  EXPECT_EQ(names, b.names());
  for (const auto& n : names) {
    Tensor ta = a.get(n), tb = b.get(n);
    EXPECT_EQ(ta.dtype, tb.dtype) << n;
    EXPECT_EQ(ta.shape, tb.shape) << n;
    ASSERT_EQ(ta.bytes.size(), tb.bytes.size()) << n;
    EXPECT_EQ(0, std::memcmp(ta.bytes.data(), tb.bytes.data(), ta.bytes.size())) << n;
  }
}

TEST(Convert, HfBf16ShardedRoundTripThroughTp2Pp2) {
  std::string in = test::source_path("tests/fixtures/hf_tiny_bf16");
  auto dir = test::scratch_dir("convert_bf16");
  std::string ckpt = convert_to_checkpoint(HfSource(in), (dir / "ckpt").string(), {2, 2, {}, std::nullopt});
  CheckpointRef ref = open_checkpoint((dir / "ckpt").string());
  EXPECT_EQ(ref.dir, ckpt);
  EXPECT_EQ(ref.meta.model_dtype, DType::BF16);  // the source dtype is kept
  EXPECT_EQ(ref.meta.optim_parts, 0);
  EXPECT_EQ(ref.meta.files.size(), 4u);
  ToHfOptions opt;
  opt.max_shard_bytes = 60000;  // forces several shards + an index
  opt.tokenizer_files = {test::source_path("assets/stories260k/tok512.model")};
  HfExportResult r = convert_to_hf(CheckpointSource(ref), (dir / "hf").string(), opt);
  EXPECT_GT(r.files.size(), 1u);
  EXPECT_EQ(r.total_bytes, 144000u);  // the fixture index's total_size
  EXPECT_TRUE(fs::exists(dir / "hf" / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(dir / "hf" / "generation_config.json"));
  // Under the names transformers looks for, with a tokenizer_config.json written for it.
  EXPECT_TRUE(fs::exists(dir / "hf" / "tokenizer.model"));
  EXPECT_TRUE(fs::exists(dir / "hf" / "tokenizer_config.json"));
  auto cfg = nlohmann::json::parse(read_file((dir / "hf" / "config.json").string()));
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["num_key_value_heads"], 2);
  expect_same_tensors(in, (dir / "hf").string());
}

// fp32, tp2/pp2 -> tp4/pp1 (tp > kv heads) -> one HF file.
TEST(Convert, HfFp32ReshardedTwiceRoundTrip) {
  std::string in = test::source_path("tests/fixtures/hf_tiny");
  auto dir = test::scratch_dir("convert_fp32");
  convert_to_checkpoint(HfSource(in), (dir / "a").string(), {2, 2, {}, std::nullopt});
  CheckpointSource a(open_checkpoint((dir / "a").string()));
  convert_to_checkpoint(a, (dir / "b").string(), {4, 1, {}, std::nullopt});
  CheckpointSource b(open_checkpoint((dir / "b").string()));
  EXPECT_EQ(b.meta().tp, 4);
  HfExportResult r = convert_to_hf(b, (dir / "hf").string(), {});
  EXPECT_EQ(r.files, std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(fs::exists(dir / "hf" / "model.safetensors.index.json"));
  expect_same_tensors(in, (dir / "hf").string());
}

// llama2.c -> checkpoint with an uneven, explicit layer cut -> HF: q/k leave in HF order.
TEST(Convert, Llama2cUnevenStagesToHf) {
  Llama2cSource src(test::source_path("assets/stories260k/stories260K.bin"));
  auto dir = test::scratch_dir("convert_l2c");
  convert_to_checkpoint(src, (dir / "ckpt").string(), {2, 2, {0, 4}, std::nullopt});
  CheckpointRef ref = open_checkpoint((dir / "ckpt").string());
  EXPECT_EQ(ref.meta.stage_starts, (std::vector<int>{0, 4}));
  convert_to_hf(CheckpointSource(ref), (dir / "hf").string(), {});
  HfSource hf((dir / "hf").string());
  EXPECT_TRUE(hf.config().tie_embeddings);
  EXPECT_FALSE(hf.has("lm_head.weight"));
  for (const char* n : {"model.layers.3.self_attn.q_proj.weight", "model.layers.4.self_attn.k_proj.weight",
                        "model.embed_tokens.weight", "model.norm.weight"}) {
    Tensor x = src.get(n), y = hf.get(n);
    ASSERT_EQ(x.bytes.size(), y.bytes.size());
    EXPECT_EQ(0, std::memcmp(x.bytes.data(), y.bytes.data(), x.bytes.size())) << n;
  }
}

TEST(Convert, DtypeConversionOnExport) {
  std::string in = test::source_path("tests/fixtures/hf_tiny");
  auto dir = test::scratch_dir("convert_dtype");
  ToHfOptions opt;
  opt.dtype = DType::BF16;
  convert_to_hf(HfSource(in), (dir / "hf").string(), opt);
  // Same as the fixture's torch-rounded bf16 copy.
  expect_same_tensors(test::source_path("tests/fixtures/hf_tiny_bf16"), (dir / "hf").string());
}

TEST(Convert, BadLayoutIsAClearError) {
  std::string in = test::source_path("tests/fixtures/hf_tiny");
  auto dir = test::scratch_dir("convert_bad");
  try {
    convert_to_checkpoint(HfSource(in), (dir / "c").string(), {3, 1, {}, std::nullopt});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tp = 3"), std::string::npos) << e.what();
  }
}

// A Hugging Face directory with a Llama 3.x config.json (Meta's fields: llama3 rope_scaling,
// rope_theta 500000, head_dim, the 128,256-entry vocabulary, a list of EOS ids) and random bf16
// weights, in `shards` files.
std::string write_llama3_hf(const fs::path& dir, bool tied) {
  nlohmann::json cfg = nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 8, "hidden_act": "silu",
    "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 40, "max_position_embeddings": 131072,
    "mlp_bias": false, "model_type": "llama", "num_attention_heads": 8, "num_hidden_layers": 3,
    "num_key_value_heads": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 128256})");
  cfg["tie_word_embeddings"] = tied;
  fs::create_directories(dir);
  write_file_atomic((dir / "config.json").string(), cfg.dump(2));
  LlamaConfig c = parse_hf_config(cfg.dump(), (dir / "config.json").string());
  ParamLayout whole(c, ShardSpec{});
  std::vector<TensorDecl> decls;
  for (const auto& p : whole.params()) decls.push_back({p.name, DType::BF16, p.global_shape});
  SafetensorsWriter w((dir / "model.safetensors").string(), decls, {{"format", "pt"}});
  Rng r(tied ? 11 : 12);
  for (const auto& p : whole.params()) {
    std::vector<bf16> v(p.numel);
    for (auto& x : v) x = float_to_bf16(float(r.normal()) * 0.02f);
    w.write(v.data(), v.size() * sizeof(bf16));
  }
  w.finish();
  return dir.string();
}

// Llama 3 configs, tied and untied, through tp x pp checkpoints (and a reshard) back to HF:
// every tensor byte, and config.json's rope_scaling, rope_theta and token ids as they were.
TEST(Convert, Llama3HfRoundTripThroughTpPp) {
  for (bool tied : {false, true}) {
    auto dir = test::scratch_dir(tied ? "convert_llama3_tied" : "convert_llama3");
    std::string in = write_llama3_hf(dir / "in", tied);
    convert_to_checkpoint(HfSource(in), (dir / "a").string(), {2, 3, {}, std::nullopt});
    CheckpointSource a(open_checkpoint((dir / "a").string()));
    EXPECT_EQ(a.config().rope_scaling.type, "llama3");
    convert_to_checkpoint(a, (dir / "b").string(), {4, 2, {}, std::nullopt});  // tp 4 > 2 kv heads
    convert_to_hf(CheckpointSource(open_checkpoint((dir / "b").string())), (dir / "hf").string(), {});
    expect_same_tensors(in, (dir / "hf").string());
    auto want = nlohmann::json::parse(read_file(in + "/config.json"));
    auto got = nlohmann::json::parse(read_file((dir / "hf" / "config.json").string()));
    for (const char* k : {"rope_scaling", "rope_theta", "bos_token_id", "eos_token_id", "tie_word_embeddings",
                          "vocab_size", "max_position_embeddings", "torch_dtype", "rms_norm_eps"})
      EXPECT_EQ(got[k], want[k]) << k << (tied ? " (tied)" : "");
    auto gen = nlohmann::json::parse(read_file((dir / "hf" / "generation_config.json").string()));
    EXPECT_EQ(gen["eos_token_id"], want["eos_token_id"]);
  }
}

TEST(Convert, ByteSizes) {
  EXPECT_EQ(parse_byte_size("5GB"), 5000000000ull);
  EXPECT_EQ(parse_byte_size("2GiB"), 2147483648ull);
  EXPECT_EQ(parse_byte_size("123"), 123ull);
  EXPECT_THROW(parse_byte_size("5XB"), Error);
  EXPECT_THROW(parse_byte_size("GB"), Error);
}

}  // namespace
}  // namespace lt
