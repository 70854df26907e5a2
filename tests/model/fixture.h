// Reads the PyTorch reference fixtures (tests/fixtures/*.safetensors, tools/make_fixtures.py).
#pragma once
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ckpt/safetensors.h"
#include "core/error.h"
#include "model/config.h"
#include "model/layout.h"
#include "test_util.h"

namespace lt::test {

struct Fixture {
  explicit Fixture(const std::string& name) : file(source_path("tests/fixtures/" + name + ".safetensors")) {
    config = parse_hf_config(file.metadata().at("config"), name);
    optim = nlohmann::json::parse(file.metadata().at("optim"));
    auto in = file.at("inputs");
    B = int(in.shape[0]);
    T = int(in.shape[1]);
  }
  std::vector<float> f32(const std::string& name) const {
    const TensorInfo& t = file.at(name);
    LT_CHECK(t.dtype == DType::F32, "fixture tensor {} is not F32", name);
    std::vector<float> v(size_t(t.numel()));
    std::memcpy(v.data(), file.bytes(t).data(), t.nbytes());
    return v;
  }
  std::vector<int32_t> i32(const std::string& name) const {
    const TensorInfo& t = file.at(name);
    std::vector<int32_t> v(size_t(t.numel()));
    std::memcpy(v.data(), file.bytes(t).data(), t.nbytes());
    return v;
  }
  // Copies `prefix + name` of every parameter of a single-shard layout into `dst`.
  void load_params(const ParamLayout& layout, float* dst, const std::string& prefix = "") const {
    for (const auto& p : layout.params()) {
      std::string name = p.tied_copy ? "model.embed_tokens.weight" : p.name;
      auto v = f32(prefix + name);
      // Slice rows/columns when the layout is a tensor-parallel shard.
      const int64_t rows = p.shape[0], cols = p.shape.size() > 1 ? p.shape[1] : 1;
      const int64_t gcols = p.global_shape.size() > 1 ? p.global_shape[1] : 1;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          int64_t gi = p.split_dim == 0 ? p.split_begin + i : i;
          int64_t gj = p.split_dim == 1 ? p.split_begin + j : j;
          dst[p.offset + size_t(i * cols + j)] = v[size_t(gi * gcols + gj)];
        }
    }
  }
  SafetensorsFile file;
  LlamaConfig config;
  nlohmann::json optim;
  int B = 0, T = 0;
};

// Largest |a-b| / (|b| + atol_scale·max|b|): a relative error robust to entries near zero.
inline double max_rel_err(const float* a, const float* b, size_t n) {
  double scale = 0;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, double(std::abs(b[i])));
  double worst = 0;
  for (size_t i = 0; i < n; ++i)
    worst = std::max(worst, std::abs(double(a[i]) - double(b[i])) / (std::abs(double(b[i])) + 1e-3 * scale + 1e-30));
  return worst;
}

// ||a − b|| / ||b||: the norm-wise relative error (llm.c-style per-tensor check).
inline double norm_rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num / (den + 1e-300));
}

}  // namespace lt::test
