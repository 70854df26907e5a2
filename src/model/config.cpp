#include "model/config.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"

namespace lt {

namespace fs = std::filesystem;
using json = nlohmann::json;

void LlamaConfig::validate() const {
  auto pos = [&](int v, const char* field) {
    LT_CHECK(v > 0, "model config '{}': {} must be a positive integer, got {}", name, field, v);
  };
  pos(dim, "hidden_size");
  pos(hidden_dim, "intermediate_size");
  pos(n_layers, "num_hidden_layers");
  pos(n_heads, "num_attention_heads");
  pos(n_kv_heads, "num_key_value_heads");
  pos(vocab_size, "vocab_size");
  pos(max_seq_len, "max_position_embeddings");
  LT_CHECK(dim % n_heads == 0, "model config '{}': num_attention_heads ({}) must divide hidden_size ({})", name,
           n_heads, dim);
  LT_CHECK(n_heads % n_kv_heads == 0,
           "model config '{}': num_key_value_heads ({}) must divide num_attention_heads ({})", name, n_kv_heads,
           n_heads);
  LT_CHECK(head_dim() % 2 == 0, "model config '{}': head dimension hidden_size/num_attention_heads = {} must be even (RoPE)",
           name, head_dim());
  LT_CHECK(head_dim() <= 256,
           "model config '{}': head dimension hidden_size/num_attention_heads = {} is above the 256 the attention "
           "kernels support",
           name, head_dim());
  LT_CHECK(norm_eps > 0, "model config '{}': rms_norm_eps must be > 0, got {}", name, norm_eps);
  LT_CHECK(rope_theta > 0, "model config '{}': rope_theta must be > 0, got {}", name, rope_theta);
}

int64_t LlamaConfig::num_params() const {
  int64_t D = dim, F = hidden_dim, V = vocab_size, KV = kv_dim();
  int64_t per_layer = 2 * D + D * D + 2 * D * KV + D * D + 3 * D * F;
  return V * D + (tie_embeddings ? 0 : V * D) + D + int64_t(n_layers) * per_layer;
}

double LlamaConfig::flops_per_token(int seq_len) const {
  int64_t D = dim, F = hidden_dim, V = vocab_size, KV = kv_dim();
  double matmul_params = double(n_layers) * double(D * D * 2 + 2 * D * KV + 3 * D * F) + double(V * D);
  // Causal attention: QK^T and PV, each 2*T*D flops per token forward, halved by the mask,
  // times 3 for forward + backward.
  double attn = double(n_layers) * 6.0 * double(seq_len) * double(D);
  return 6.0 * matmul_params + attn;
}

namespace {
struct Preset {
  const char* name;
  int dim, hidden, layers, heads, kv_heads, vocab, seq;
  float eps, theta;
  bool tie;
};
// Llama 2 from Meta's released configs; TinyLlama from its HF config; the TinyStories
// models (llama2.c) share the classifier with the embedding.
constexpr Preset kPresets[] = {
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 1e-5f, 10000.f, false},
    {"llama2-13b", 5120, 13824, 40, 40, 40, 32000, 4096, 1e-5f, 10000.f, false},
    {"llama2-70b", 8192, 28672, 80, 64, 8, 32000, 4096, 1e-5f, 10000.f, false},
    {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000, 2048, 1e-5f, 10000.f, false},
    {"stories15m", 288, 768, 6, 6, 6, 32000, 256, 1e-5f, 10000.f, true},
    {"stories110m", 768, 2048, 12, 12, 12, 32000, 1024, 1e-5f, 10000.f, true},
    {"stories260k", 64, 172, 5, 8, 4, 512, 512, 1e-5f, 10000.f, true},
};
}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> out;
  for (const auto& p : kPresets) out.emplace_back(p.name);
  return out;
}

LlamaConfig preset_config(const std::string& name) {
  for (const auto& p : kPresets) {
    if (name == p.name) {
      LlamaConfig c;
      c.name = p.name;
      c.dim = p.dim;
      c.hidden_dim = p.hidden;
      c.n_layers = p.layers;
      c.n_heads = p.heads;
      c.n_kv_heads = p.kv_heads;
      c.vocab_size = p.vocab;
      c.max_seq_len = p.seq;
      c.norm_eps = p.eps;
      c.rope_theta = p.theta;
      c.tie_embeddings = p.tie;
      return c;
    }
  }
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  fail("unknown model preset '{}' (known presets: {}; or give a config.json or a Hugging Face directory)", name, known);
}

LlamaConfig parse_hf_config(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  LT_CHECK(j.is_object(), "{}: expected a JSON object", path);
  if (j.contains("model_type")) {
    LT_CHECK(j["model_type"].is_string() && j["model_type"] == "llama",
             "{}: model_type is {}, expected \"llama\" (only Llama-architecture models are supported)", path,
             j["model_type"].dump());
  } else if (j.contains("architectures")) {
    LT_CHECK(j["architectures"].dump().find("Llama") != std::string::npos,
             "{}: architectures {} is not a Llama model", path, j["architectures"].dump());
  }
  auto get_int = [&](const char* key, int def, bool required) -> int {
    if (!j.contains(key) || j[key].is_null()) {
      LT_CHECK(!required, "{}: missing field '{}'", path, key);
      return def;
    }
    LT_CHECK(j[key].is_number_integer(), "{}: field '{}' must be an integer, got {}", path, key, j[key].dump());
    int64_t v = j[key].get<int64_t>();
    LT_CHECK(v > 0 && v < (int64_t(1) << 31), "{}: field '{}' = {} is out of range", path, key, v);
    return int(v);
  };
  auto get_float = [&](const char* key, float def) -> float {
    if (!j.contains(key) || j[key].is_null()) return def;
    LT_CHECK(j[key].is_number(), "{}: field '{}' must be a number, got {}", path, key, j[key].dump());
    return j[key].get<float>();
  };
  LlamaConfig c;
  c.name = fs::path(path).parent_path().filename().string();
  if (c.name.empty()) c.name = "hf";
  c.dim = get_int("hidden_size", 0, true);
  c.hidden_dim = get_int("intermediate_size", 0, true);
  c.n_layers = get_int("num_hidden_layers", 0, true);
  c.n_heads = get_int("num_attention_heads", 0, true);
  c.n_kv_heads = get_int("num_key_value_heads", c.n_heads, false);
  c.vocab_size = get_int("vocab_size", 0, true);
  c.max_seq_len = get_int("max_position_embeddings", 2048, false);
  c.norm_eps = get_float("rms_norm_eps", 1e-6f);
  c.rope_theta = get_float("rope_theta", 10000.0f);
  if (j.contains("tie_word_embeddings")) {
    LT_CHECK(j["tie_word_embeddings"].is_boolean(), "{}: field 'tie_word_embeddings' must be true or false", path);
    c.tie_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    fail("{}: rope_scaling {} is not supported (Llama 2 uses none)", path, j["rope_scaling"].dump());
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    fail("{}: hidden_act {} is not supported (Llama uses \"silu\")", path, j["hidden_act"].dump());
  if (j.contains("head_dim") && j["head_dim"].is_number_integer() && j["head_dim"].get<int>() * c.n_heads != c.dim)
    fail("{}: head_dim {} differs from hidden_size/num_attention_heads = {}", path, j["head_dim"].get<int>(),
         c.n_heads ? c.dim / c.n_heads : 0);
  c.validate();
  return c;
}

LlamaConfig resolve_model_config(const std::string& spec) {
  LT_CHECK(!spec.empty(), "model: no model given (a preset name, a config.json, or a Hugging Face directory)");
  std::error_code ec;
  if (fs::is_directory(spec, ec)) {
    std::string p = (fs::path(spec) / "config.json").string();
    LT_CHECK(fs::exists(p), "model: directory '{}' has no config.json", spec);
    auto c = parse_hf_config(read_file(p), p);
    c.name = fs::path(spec).filename().string();
    return c;
  }
  if (fs::exists(spec, ec)) return parse_hf_config(read_file(spec), spec);
  if (spec.find('/') != std::string::npos || spec.ends_with(".json"))
    fail("model: '{}' does not exist (expected a preset name, a config.json, or a Hugging Face directory)", spec);
  return preset_config(spec);
}

std::string hf_config_json(const LlamaConfig& c, const std::string& torch_dtype) {
  json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["rope_scaling"] = nullptr;
  j["initializer_range"] = 0.02;
  j["pretraining_tp"] = 1;
  j["use_cache"] = true;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["torch_dtype"] = torch_dtype;
  return j.dump(2) + "\n";
}

bool same_architecture(const LlamaConfig& a, const LlamaConfig& b) {
  return a.dim == b.dim && a.hidden_dim == b.hidden_dim && a.n_layers == b.n_layers && a.n_heads == b.n_heads &&
         a.n_kv_heads == b.n_kv_heads && a.vocab_size == b.vocab_size && a.tie_embeddings == b.tie_embeddings;
}

std::string architecture_summary(const LlamaConfig& c) {
  return fmt::format("hidden_size={} intermediate_size={} layers={} heads={} kv_heads={} vocab={} tied={}", c.dim,
                     c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.tie_embeddings);
}

}  // namespace lt
