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
#include "core/error.h"
#include "core/file.h"
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

TEST(Convert, ByteSizes) {
  EXPECT_EQ(parse_byte_size("5GB"), 5000000000ull);
  EXPECT_EQ(parse_byte_size("2GiB"), 2147483648ull);
  EXPECT_EQ(parse_byte_size("123"), 123ull);
  EXPECT_THROW(parse_byte_size("5XB"), Error);
  EXPECT_THROW(parse_byte_size("GB"), Error);
}

}  // namespace
}  // namespace lt
