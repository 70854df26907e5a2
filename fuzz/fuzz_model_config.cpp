// libFuzzer target: a Hugging Face config.json must parse into a consistent LlamaConfig or throw
// lt::Error; an accepted config must survive being written back and re-read unchanged.
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lt::LlamaConfig c = lt::parse_hf_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    (void)c.num_params();
    (void)c.flops_per_token(c.max_seq_len);
    lt::LlamaConfig again = lt::parse_hf_config(lt::hf_config_json(c, "float32"), "fuzz-roundtrip");
    if (again.dim != c.dim || again.n_layers != c.n_layers || again.vocab_size != c.vocab_size ||
        again.n_heads != c.n_heads || again.n_kv_heads != c.n_kv_heads || again.hidden_dim != c.hidden_dim)
      std::abort();
  } catch (const lt::Error&) {
  }
  return 0;
}
