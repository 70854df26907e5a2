// rope_scaling (llama3, linear) against the PyTorch fixtures of tools/make_rope_fixture.py, the
// Llama 3.x presets against Meta's published config.json, and config.json parsing / writing.
// (Training forward/backward on the same fixtures: tests/model/llama_test.cpp and
// tests/train/adamw_fixture_test.cpp.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/fixture.h"
#include "model/infer.h"

namespace lt {
namespace {

class RopeFixtureTest : public ::testing::TestWithParam<std::string> {};

// The inverse frequencies: transformers' formula in float64 in PyTorch, stored as fp32.
TEST_P(RopeFixtureTest, InverseFrequenciesMatchPyTorch) {
  test::Fixture fx(GetParam());
  auto want = fx.f32("rope_inv_freq");
  std::vector<double> got = rope_inv_freq(fx.config);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-7 * want[i]) << "pair " << i;
}

// Generation's KV-cached forward uses the same frequencies: its logits over T positions (beyond
// the original context) equal the fixture's.
TEST_P(RopeFixtureTest, InferenceLogitsMatchPyTorch) {
  test::Fixture fx(GetParam());
  ParamLayout layout(fx.config, ShardSpec{});
  std::vector<float> w(layout.total());
  fx.load_params(layout, w.data());
  InferenceModel m(fx.config, std::move(w));
  auto inputs = fx.i32("inputs");
  auto want = fx.f32("logits");
  const size_t V = size_t(fx.config.vocab_size), T = size_t(fx.T);
  for (int b = 0; b < fx.B; ++b) {
    std::vector<int32_t> seq(inputs.begin() + long(b * T), inputs.begin() + long((b + 1) * T));
    std::vector<float> got = m.prefill(seq);
    EXPECT_LT(test::norm_rel_err(got.data(), want.data() + b * T * V, T * V), 1e-5) << "sequence " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RopeFixtureTest, ::testing::Values("rope_llama3", "rope_linear"));

// Meta's config.json of Llama 3.2 1B, as published (meta-llama/Llama-3.2-1B).
constexpr const char* kLlama32_1B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

void expect_same_config(const LlamaConfig& a, const LlamaConfig& b) {
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.hidden_dim, b.hidden_dim);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(nlohmann::json::parse(a.rope_scaling.json), nlohmann::json::parse(b.rope_scaling.json));
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(rope_inv_freq(a), rope_inv_freq(b));
}

TEST(RopeScaling, PresetsMatchMetasConfigs) {
  expect_same_config(preset_config("llama3.2-1b"), parse_hf_config(kLlama32_1B, "Llama-3.2-1B/config.json"));
  // The others differ from it in these published fields only.
  struct Diff {
    const char* name;
    int hidden, inter, layers, heads;
    bool tied;
    double factor;
  };
  for (Diff d : {Diff{"llama3.2-3b", 3072, 8192, 28, 24, true, 32.0}, Diff{"llama3.1-8b", 4096, 14336, 32, 32, false, 8.0},
                 Diff{"llama3.1-70b", 8192, 28672, 80, 64, false, 8.0},
                 Diff{"llama3.1-405b", 16384, 53248, 126, 128, false, 8.0}}) {
    SCOPED_TRACE(d.name);
    auto j = nlohmann::json::parse(kLlama32_1B);
    j["hidden_size"] = d.hidden;
    j["intermediate_size"] = d.inter;
    j["num_hidden_layers"] = d.layers;
    j["num_attention_heads"] = d.heads;
    j["head_dim"] = d.hidden / d.heads;
    j["tie_word_embeddings"] = d.tied;
    j["rope_scaling"]["factor"] = d.factor;
    expect_same_config(preset_config(d.name), parse_hf_config(j.dump(), d.name));
  }
  EXPECT_EQ(preset_config("llama3.1-8b").num_params(), 8030261248);  // Meta's 8.03B
}

TEST(RopeScaling, WrittenBackVerbatim) {
  LlamaConfig c = parse_hf_config(kLlama32_1B, "config.json");
  auto out = nlohmann::json::parse(hf_config_json(c, "bfloat16"));
  auto in = nlohmann::json::parse(kLlama32_1B);
  for (const char* k : {"rope_scaling", "rope_theta", "rms_norm_eps", "bos_token_id", "eos_token_id"})
    EXPECT_EQ(out[k], in[k]) << k;
  EXPECT_EQ(out["rope_scaling"].dump(), in["rope_scaling"].dump());
  // No scaling stays null, and a config without it reads as none.
  EXPECT_TRUE(nlohmann::json::parse(hf_config_json(preset_config("llama2-7b"), "float32"))["rope_scaling"].is_null());
}

TEST(RopeScaling, BadConfigsAreClearErrors) {
  auto error_of = [](nlohmann::json rs) {
    auto j = nlohmann::json::parse(kLlama32_1B);
    j["rope_scaling"] = rs;
    try {
      parse_hf_config(j.dump(), "m/config.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of({{"rope_type", "yarn"}, {"factor", 4.0}}).find("rope_type \"yarn\" is not supported"),
            std::string::npos);
  EXPECT_NE(error_of({{"rope_type", "dynamic"}, {"factor", 2.0}}).find("\"dynamic\""), std::string::npos);
  std::string missing = error_of({{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                  {"high_freq_factor", 4.0}});
  EXPECT_NE(missing.find("original_max_position_embeddings"), std::string::npos) << missing;
  EXPECT_NE(missing.find("m/config.json"), std::string::npos) << missing;
  EXPECT_NE(error_of({{"factor", 8.0}}).find("no \"rope_type\""), std::string::npos);
  EXPECT_NE(error_of({{"rope_type", "linear"}, {"factor", 0.5}}).find("factor must be >= 1"), std::string::npos);
  EXPECT_EQ(error_of({{"rope_type", "linear"}, {"factor", 2.0}}), "no error");
  EXPECT_EQ(error_of({{"type", "linear"}, {"factor", 2.0}}), "no error");  // the older key
  EXPECT_EQ(error_of(nullptr), "no error");
}

}  // namespace
}  // namespace lt
