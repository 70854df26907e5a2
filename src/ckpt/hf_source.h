// A Hugging Face model directory as a TensorSource: config.json plus model.safetensors, or
// shards listed in model.safetensors.index.json ({"weight_map": {tensor: file}}).
// Shard files are mapped when first used; tensors are zero-copy views.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "ckpt/safetensors.h"
#include "ckpt/tensor_source.h"

namespace lt {

class HfSource : public TensorSource {
 public:
  explicit HfSource(const std::string& dir);
  const LlamaConfig& config() const override { return config_; }
  bool has(const std::string& name) const override { return where_.count(name) > 0; }
  Tensor get(const std::string& name) const override;
  std::string describe() const override { return "Hugging Face directory '" + dir_ + "'"; }
  DType stored_dtype() const override { return dtype_; }
  void release(const std::string& name) const override;
  // Tensor names in the directory, sorted.
  std::vector<std::string> names() const;

 private:
  const SafetensorsFile& file(const std::string& name) const;
  std::string dir_;
  LlamaConfig config_;
  DType dtype_ = DType::F32;
  std::map<std::string, std::string> where_;  // tensor -> shard file name
  mutable std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

// The torch_dtype spelling of a dtype ("float32", "bfloat16", "float16").
std::string torch_dtype_name(DType t);

}  // namespace lt
