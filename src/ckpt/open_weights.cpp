// open_weights(): one entry point for "a model on disk", whatever its format.
#include <filesystem>

#include "ckpt/checkpoint.h"
#include "ckpt/hf_source.h"
#include "ckpt/llama2c.h"
#include "ckpt/reshard.h"
#include "ckpt/tensor_source.h"
#include "core/error.h"

namespace lt {

namespace fs = std::filesystem;

std::unique_ptr<TensorSource> open_weights(const std::string& path) {
  std::error_code ec;
  LT_CHECK(fs::exists(path, ec), "model '{}' does not exist", path);
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "config.json")) return std::make_unique<HfSource>(path);
    if (is_checkpoint_path(path)) return std::make_unique<CheckpointSource>(open_checkpoint(path));
    fail("model directory '{}' is neither a Hugging Face model (config.json) nor a llamatrain checkpoint "
         "(meta.json, or step_* directories)",
         path);
  }
  // A file inside a Hugging Face directory (config.json, model.safetensors, the index).
  fs::path parent = fs::path(path).parent_path();
  if ((path.ends_with(".safetensors") || path.ends_with("config.json") || path.ends_with(".index.json")) &&
      fs::exists((parent.empty() ? fs::path(".") : parent) / "config.json"))
    return std::make_unique<HfSource>(parent.empty() ? "." : parent.string());
  if (looks_like_llama2c(path)) return std::make_unique<Llama2cSource>(path);
  // Not plausible as llama2.c: let the reader say precisely why.
  try {
    Llama2cSource probe(path);
  } catch (const Error& e) {
    fail("model '{}' is not a Hugging Face directory, a llamatrain checkpoint or a llama2.c file ({})", path,
         e.what());
  }
  fail("model '{}': not a recognised format", path);
}

}  // namespace lt
