#include "ckpt/hf_source.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"

namespace lt {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string torch_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    default: fail("dtype {} is not a model weight dtype", dtype_name(t));
  }
}

HfSource::HfSource(const std::string& dir) : dir_(dir) {
  std::string cfg = (fs::path(dir) / "config.json").string();
  LT_CHECK(fs::exists(cfg), "Hugging Face directory '{}' has no config.json", dir);
  config_ = parse_hf_config(read_file(cfg), cfg);
  config_.name = fs::path(dir).filename().string();
  std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  std::string single = (fs::path(dir) / "model.safetensors").string();
  if (fs::exists(index)) {
    json j;
    try {
      j = json::parse(read_file(index));
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", index, e.what());
    }
    LT_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
             "{}: expected an object with a 'weight_map' object", index);
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      LT_CHECK(it->is_string(), "{}: weight_map entry '{}' must be a file name", index, it.key());
      std::string f = it->get<std::string>();
      LT_CHECK(f.find('/') == std::string::npos && f != ".." && !f.empty(),
               "{}: weight_map entry '{}' names '{}', expected a file in the same directory", index, it.key(), f);
      where_[it.key()] = f;
    }
  } else if (fs::exists(single)) {
    const auto& f = *files_.emplace("model.safetensors", std::make_unique<SafetensorsFile>(single)).first->second;
    for (const auto& t : f.tensors()) where_[t.name] = "model.safetensors";
  } else if (fs::exists(fs::path(dir) / "pytorch_model.bin") || fs::exists(fs::path(dir) / "pytorch_model.bin.index.json")) {
    fail("Hugging Face directory '{}' holds PyTorch pickles (pytorch_model.bin); only safetensors are supported "
         "(convert with transformers: model.save_pretrained(dir, safe_serialization=True))", dir);
  } else {
    fail("Hugging Face directory '{}' has neither model.safetensors nor model.safetensors.index.json", dir);
  }
  // The weight dtype: the embedding's (every weight of a HF Llama shares it).
  if (has("model.embed_tokens.weight")) dtype_ = get("model.embed_tokens.weight").dtype;
}

const SafetensorsFile& HfSource::file(const std::string& name) const {
  auto it = files_.find(name);
  if (it == files_.end()) {
    std::string path = (fs::path(dir_) / name).string();
    LT_CHECK(fs::exists(path), "Hugging Face directory '{}': shard '{}' listed in the index does not exist", dir_, name);
    it = files_.emplace(name, std::make_unique<SafetensorsFile>(path)).first;
  }
  return *it->second;
}

Tensor HfSource::get(const std::string& name) const {
  auto w = where_.find(name);
  if (w == where_.end()) fail("{}: missing tensor '{}'", describe(), name);
  const SafetensorsFile& f = file(w->second);
  const TensorInfo* t = f.find(name);
  if (!t) fail("{}: the index puts tensor '{}' in {}, but that file does not hold it", describe(), name, f.path());
  Tensor out;
  out.dtype = t->dtype;
  out.shape = t->shape;
  out.bytes = f.bytes(*t);
  return out;
}

void HfSource::release(const std::string& name) const {
  auto w = where_.find(name);
  if (w == where_.end()) return;
  auto f = files_.find(w->second);
  if (f == files_.end()) return;
  if (const TensorInfo* t = f->second->find(name)) f->second->release(*t);
}

std::vector<std::string> HfSource::names() const {
  std::vector<std::string> out;
  for (const auto& [n, f] : where_) out.push_back(n);
  return out;
}

}  // namespace lt
