// LlamaConfig: the architecture hyper-parameters, with the Hugging Face LlamaConfig
// meaning of every field. Presets cover the Llama 2 and 3.x families and the TinyStories models.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lt {

// config.json's rope_scaling: how the rotary frequencies are stretched for a longer context.
// "linear" divides every frequency by `factor`; "llama3" (Llama 3.1/3.2) divides the low
// frequencies (wavelength above original_max_position_embeddings / low_freq_factor) by `factor`,
// keeps the high ones (wavelength below original / high_freq_factor) and blends in between.
struct RopeScaling {
  std::string type;  // "" (none), "linear" or "llama3" (config.json's rope_type, or type)
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int original_max_position_embeddings = 0;               // llama3
  std::string json;  // the object as read, so export writes it back verbatim; "" when none
};

struct LlamaConfig {
  std::string name = "custom";
  int dim = 0;            // hidden_size
  int hidden_dim = 0;     // intermediate_size (SwiGLU width)
  int n_layers = 0;       // num_hidden_layers
  int n_heads = 0;        // num_attention_heads
  int n_kv_heads = 0;     // num_key_value_heads (== n_heads: MHA, 1: MQA, else GQA)
  int vocab_size = 0;
  int max_seq_len = 0;    // max_position_embeddings
  float norm_eps = 1e-5f; // rms_norm_eps
  float rope_theta = 10000.0f;
  bool tie_embeddings = false;  // tie_word_embeddings: LM head shares the embedding matrix
  RopeScaling rope_scaling;
  // bos_token_id / eos_token_id as JSON text (an id, a list of ids, or null): carried through
  // checkpoints into the exported config.json and generation_config.json.
  std::string bos_token_id = "1", eos_token_id = "2";

  int head_dim() const { return dim / n_heads; }
  int kv_dim() const { return n_kv_heads * head_dim(); }
  // Throws lt::Error naming the first field that is missing or inconsistent.
  void validate() const;
  int64_t num_params() const;
  // Training FLOPs per token: 6 * (non-embedding params + LM head) + causal attention.
  double flops_per_token(int seq_len) const;
};

// True when a and b have the same parameter shapes (width, MLP width, layers, heads, KV heads,
// vocabulary, tying): the one architecture comparison (checkpoints, initial weights).
bool same_architecture(const LlamaConfig& a, const LlamaConfig& b);
// "hidden_size=64 intermediate_size=172 layers=5 heads=8 kv_heads=4 vocab=512 tied=true", for errors.
std::string architecture_summary(const LlamaConfig& c);
// The inverse frequency of each rotary pair i < head_dim/2: theta^(-2i/head_dim), scaled as
// rope_scaling says (transformers' _compute_llama3_parameters / linear scaling), in double.
// The one place that turns rope_theta and rope_scaling into frequencies: training, evaluation
// and generation all build their cos/sin tables from it.
std::vector<double> rope_inv_freq(const LlamaConfig& c);
// Parses a config.json rope_scaling object (JSON text); `where` names the file for errors.
RopeScaling parse_rope_scaling(const std::string& json_text, const std::string& where);

// Known preset names, for help texts and errors.
std::vector<std::string> preset_names();
// A preset by name (llama2-7b, ..., llama3.1-8b, ..., stories260k); throws listing the known names.
LlamaConfig preset_config(const std::string& name);
// Parses a Hugging Face config.json (LlamaForCausalLM); throws naming the file and field.
LlamaConfig parse_hf_config(const std::string& json_text, const std::string& path);
// `spec` is a preset name, a config.json file, or a directory holding config.json.
LlamaConfig resolve_model_config(const std::string& spec);
// The Hugging Face config.json for `c` (LlamaForCausalLM), as a JSON string.
std::string hf_config_json(const LlamaConfig& c, const std::string& torch_dtype);

}  // namespace lt
