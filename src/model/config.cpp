#include "model/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numbers>

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
  LT_CHECK(rope_scaling.type.empty() || rope_scaling.factor > 0,
           "model config '{}': rope_scaling factor must be > 0, got {}", name, rope_scaling.factor);
}

RopeScaling parse_rope_scaling(const std::string& text, const std::string& where) {
  RopeScaling r;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: rope_scaling is not valid JSON: {}", where, e.what());
  }
  if (j.is_null()) return r;
  LT_CHECK(j.is_object(), "{}: rope_scaling must be an object or null, got {}", where, j.dump());
  r.json = j.dump();
  // transformers reads "rope_type" and, from older configs, "type".
  const char* type_key = j.contains("rope_type") ? "rope_type" : "type";
  LT_CHECK(j.contains(type_key) && j[type_key].is_string(), "{}: rope_scaling {} has no \"rope_type\"", where,
           r.json);
  std::string type = j[type_key].get<std::string>();
  auto number = [&](const char* key) {
    LT_CHECK(j.contains(key) && j[key].is_number(), "{}: rope_scaling (rope_type \"{}\") needs a number '{}', got {}",
             where, type, key, j.contains(key) ? j[key].dump() : "nothing");
    return j[key].get<double>();
  };
  if (type == "default") return r;  // transformers' name for no scaling
  if (type != "linear" && type != "llama3")
    fail("{}: rope_scaling rope_type \"{}\" is not supported (supported: \"linear\", \"llama3\")", where, type);
  r.type = type;
  r.factor = number("factor");
  LT_CHECK(r.factor >= 1, "{}: rope_scaling factor must be >= 1, got {}", where, r.factor);
  if (type == "llama3") {
    r.low_freq_factor = number("low_freq_factor");
    r.high_freq_factor = number("high_freq_factor");
    double orig = number("original_max_position_embeddings");
    LT_CHECK(orig >= 1 && orig == std::floor(orig) && orig < 2147483648.0,
             "{}: rope_scaling original_max_position_embeddings must be a positive integer, got {}", where, orig);
    r.original_max_position_embeddings = int(orig);
    LT_CHECK(r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor,
             "{}: rope_scaling needs 0 < low_freq_factor < high_freq_factor, got {} and {}", where, r.low_freq_factor,
             r.high_freq_factor);
  }
  return r;
}

std::vector<double> rope_inv_freq(const LlamaConfig& c) {
  const int hd = c.head_dim();
  const RopeScaling& s = c.rope_scaling;
  std::vector<double> f(size_t(hd / 2));
  for (int i = 0; i < hd / 2; ++i) {
    double inv = 1.0 / std::pow(double(c.rope_theta), double(2 * i) / double(hd));
    if (s.type == "linear") {
      inv /= s.factor;
    } else if (s.type == "llama3") {
      // Wavelengths (in positions) longer than the original context / low_freq_factor are
      // stretched by `factor`, shorter than original / high_freq_factor are kept, and those in
      // between are interpolated linearly in original / wavelength.
      const double orig = s.original_max_position_embeddings;
      const double wavelen = 2.0 * std::numbers::pi / inv;
      if (wavelen > orig / s.low_freq_factor) {
        inv /= s.factor;
      } else if (!(wavelen < orig / s.high_freq_factor)) {
        double smooth = (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        inv = (1 - smooth) * inv / s.factor + smooth * inv;
      }
    }
    f[size_t(i)] = inv;
  }
  return f;
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
  const char* rope_scaling = "null";  // config.json's text
  const char* bos = "1";
  const char* eos = "2";
};
constexpr const char* kLlama31Scaling =
    R"({"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"})";
constexpr const char* kLlama32Scaling =
    R"({"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"})";
// Llama 2 and 3.x from Meta's released config.json (the base models); TinyLlama from its HF
// config; the TinyStories models (llama2.c) share the classifier with the embedding.
constexpr Preset kPresets[] = {
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 1e-5f, 10000.f, false},
    {"llama2-13b", 5120, 13824, 40, 40, 40, 32000, 4096, 1e-5f, 10000.f, false},
    {"llama2-70b", 8192, 28672, 80, 64, 8, 32000, 4096, 1e-5f, 10000.f, false},
    {"llama3.1-8b", 4096, 14336, 32, 32, 8, 128256, 131072, 1e-5f, 500000.f, false, kLlama31Scaling, "128000", "128001"},
    {"llama3.1-70b", 8192, 28672, 80, 64, 8, 128256, 131072, 1e-5f, 500000.f, false, kLlama31Scaling, "128000", "128001"},
    {"llama3.1-405b", 16384, 53248, 126, 128, 8, 128256, 131072, 1e-5f, 500000.f, false, kLlama31Scaling, "128000",
     "128001"},
    {"llama3.2-1b", 2048, 8192, 16, 32, 8, 128256, 131072, 1e-5f, 500000.f, true, kLlama32Scaling, "128000", "128001"},
    {"llama3.2-3b", 3072, 8192, 28, 24, 8, 128256, 131072, 1e-5f, 500000.f, true, kLlama32Scaling, "128000", "128001"},
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
      c.rope_scaling = parse_rope_scaling(p.rope_scaling, std::string("preset ") + p.name);
      c.bos_token_id = p.bos;
      c.eos_token_id = p.eos;
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
  if (j.contains("rope_scaling")) c.rope_scaling = parse_rope_scaling(j["rope_scaling"].dump(), path);
  for (auto [key, field] : {std::pair{"bos_token_id", &c.bos_token_id}, std::pair{"eos_token_id", &c.eos_token_id}})
    if (j.contains(key)) {
      const json& v = j[key];
      bool ids = v.is_null() || v.is_number_integer() ||
                 (v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number_integer(); }));
      LT_CHECK(ids, "{}: field '{}' must be a token id, a list of ids or null, got {}", path, key, v.dump());
      *field = v.dump();
    }
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

namespace {
// The shortest decimal that reads back as `f`, as a double: 1e-5f is written 1e-05 (as in the
// config.json it came from), not 9.999999747378752e-06.
double float_json(float f) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}
}  // namespace

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
  j["rms_norm_eps"] = float_json(c.norm_eps);
  j["rope_theta"] = float_json(c.rope_theta);
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["rope_scaling"] = c.rope_scaling.json.empty() ? json(nullptr) : json::parse(c.rope_scaling.json);
  j["initializer_range"] = 0.02;
  j["pretraining_tp"] = 1;
  j["use_cache"] = true;
  j["bos_token_id"] = json::parse(c.bos_token_id);
  j["eos_token_id"] = json::parse(c.eos_token_id);
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
