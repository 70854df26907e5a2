// Inference through imported weights, against independent references: llama2.c's known greedy
// output of stories260K, and PyTorch logits of the random HF fixture.
#include "model/infer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "ckpt/convert.h"
#include "ckpt/hf_source.h"
#include "ckpt/llama2c.h"
#include "ckpt/safetensors.h"
#include "ckpt/tensor_source.h"
#include "core/file.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace lt {
namespace {

InferenceModel load(const TensorSource& src) {
  ParamLayout layout(src.config(), ShardSpec{});
  std::vector<float> w(layout.total());
  load_weights(src, layout, w.data());
  return InferenceModel(src.config(), std::move(w));
}

// llama2.c's run: from BOS, 256 positions at most, greedy, stop when BOS is sampled.
TEST(Infer, Stories260kGreedyMatchesLlama2c) {
  Llama2cSource src(test::source_path("assets/stories260k/stories260K.bin"));
  InferenceModel m = load(src);
  auto tok = open_tokenizer(test::source_path("assets/stories260k/tok512.model"));
  Rng rng(0);
  std::vector<int32_t> ids;
  int token = tok->bos_id();
  for (int pos = 0; pos < 256; ++pos) {
    int next = sample_token(m.step(token), src.config().vocab_size, 0.0f, 1.0f, rng);
    if (next == tok->bos_id()) break;
    ids.push_back(next);
    token = next;
  }
  std::string expected = read_file(test::source_path("assets/stories260k/expected_greedy_t0.txt"));
  ASSERT_EQ(expected.back(), '\n');  // added when the text was staged
  expected.pop_back();
  EXPECT_EQ(tok->decode(ids), expected);
}

// Max |ours - reference| / max |reference| over both sequences of the fixture.
double logits_error(const TensorSource& src, const std::string& ref_name) {
  InferenceModel m = load(src);
  SafetensorsFile ref(test::source_path("tests/fixtures/hf_tiny_ref.safetensors"));
  const TensorInfo& in = ref.at("inputs");
  const TensorInfo& lg = ref.at(ref_name);
  EXPECT_EQ(in.shape, (std::vector<int64_t>{2, 9}));
  const int B = 2, T = 9, V = 80;
  std::vector<int32_t> inputs(B * T);
  std::vector<float> want(size_t(B) * T * V);
  std::memcpy(inputs.data(), ref.bytes(in).data(), inputs.size() * 4);
  std::memcpy(want.data(), ref.bytes(lg).data(), want.size() * 4);
  double max_err = 0, max_ref = 0;
  for (int b = 0; b < B; ++b) {
    std::vector<int32_t> seq(inputs.begin() + b * T, inputs.begin() + (b + 1) * T);
    std::vector<float> got = m.prefill(seq);
    for (int i = 0; i < T * V; ++i) {
      double r = want[size_t(b) * T * V + i];
      max_err = std::max(max_err, std::abs(double(got[size_t(i)]) - r));
      max_ref = std::max(max_ref, std::abs(r));
    }
  }
  return max_err / max_ref;
}

TEST(Infer, HfTinyLogitsMatchPytorch) {
  EXPECT_LE(logits_error(HfSource(test::source_path("tests/fixtures/hf_tiny")), "logits"), 1e-5);
}

TEST(Infer, HfTinyBf16LogitsMatchPytorch) {
  EXPECT_LE(logits_error(HfSource(test::source_path("tests/fixtures/hf_tiny_bf16")), "logits_bf16"), 1e-5);
}

// The same logits after HF -> tp2/pp2 checkpoint, opened the way `generate` opens models.
TEST(Infer, HfTinyThroughAShardedCheckpoint) {
  auto dir = test::scratch_dir("infer_ckpt");
  convert_to_checkpoint(HfSource(test::source_path("tests/fixtures/hf_tiny")), dir.string(), {2, 2, {}, std::nullopt});
  EXPECT_LE(logits_error(*open_weights(dir.string()), "logits"), 1e-5);
}

TEST(Infer, SamplingGreedyAndTopP) {
  std::vector<float> logits = {0.0f, 3.0f, 1.0f, 3.0f};
  Rng rng(1);
  EXPECT_EQ(sample_token(logits.data(), 4, 0.0f, 1.0f, rng), 1);  // first maximum
  // top_p tiny: only the single most likely token (ties by id) can be drawn.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(logits.data(), 4, 1.0f, 1e-6f, rng), 1);
  // Full distribution: frequencies follow softmax.
  std::vector<int> count(4);
  for (int i = 0; i < 20000; ++i) ++count[size_t(sample_token(logits.data(), 4, 1.0f, 1.0f, rng))];
  double z = 1 + 2 * std::exp(3.0) + std::exp(1.0);
  EXPECT_NEAR(count[2] / 20000.0, std::exp(1.0) / z, 0.01);
  EXPECT_NEAR(count[0] / 20000.0, 1.0 / z, 0.01);
}

}  // namespace
}  // namespace lt
