// Helpers of the CUDA backend's tests: skipping without a GPU, random inputs rounded to bf16
// (so the CPU reference and the GPU kernel read the same values), and error measures.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/bf16.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/cuda/device.h"

// Every test that touches the device starts with this: without a usable GPU it skips and says why.
#define LT_REQUIRE_GPU()                                                                 \
  do {                                                                                   \
    if (::lt::cuda::device_count() == 0) GTEST_SKIP() << ::lt::cuda::no_device_reason(); \
  } while (0)

namespace lt::test {

// Normal(0, sd) values already rounded to bf16 (as floats), and their bf16 bits.
inline std::vector<float> bf16_normal(size_t n, uint64_t seed, float sd = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = bf16_to_float(float_to_bf16(rng.normal() * sd));
  return v;
}
inline std::vector<float> normal(size_t n, uint64_t seed, float sd = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal() * sd;
  return v;
}
inline std::vector<bf16> to_bits(const std::vector<float>& v) {
  std::vector<bf16> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = float_to_bf16(v[i]);
  return b;
}
inline std::vector<float> from_bits(const std::vector<bf16>& b) {
  std::vector<float> v(b.size());
  for (size_t i = 0; i < b.size(); ++i) v[i] = bf16_to_float(b[i]);
  return v;
}

// max |a − b| / max |b|: the error relative to the reference's scale.
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return err / std::max(scale, 1e-30);
}

inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) {
           return std::memcmp(&x, &y, sizeof x) == 0;
         });
}

}  // namespace lt::test
