// The head-size fixtures' weight formula and their compact records of gradients and weights
// (tools/make_headdim_fixtures.py, tests/fixtures/README.md), for the CPU and CUDA stage tests.
#pragma once
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <string>

#include "model/fixture.h"

namespace lt::test {

inline uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
inline uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Bits i of the stream (name, salt): splitmix64((fnv1a64(name) ^ salt) + i).
struct HashStream {
  HashStream(const std::string& name, uint64_t salt) : base(fnv1a64(name) ^ salt) {}
  uint64_t operator()(uint64_t i) const { return splitmix64(base + i); }
  uint64_t base;
};

// The fixture's initial weights (hash_uniform), into a single-shard flat buffer.
inline void init_from_hash(const ParamLayout& layout, float* w) {
  for (const auto& p : layout.params()) {
    const HashStream bits(p.tied_copy ? "model.embed_tokens.weight" : p.name, 0);
    for (size_t i = 0; i < p.numel; ++i) {
      const double u = double(bits(i) >> 40) / double(1 << 23) - 1.0;
      w[p.offset + i] = float(p.kind == ParamKind::norm ? 1.0 + 0.1 * u : 0.03 * u);
    }
  }
}

// How far x is from the fixture's record of tensor `name` ("g": gradient, "f": final weight):
// the relative error of Σx², the largest projection error over the tensor's norm, and the
// largest sampled-element error over the tensor's RMS.
struct Errors {
  double sq = 0, proj = 0, samp = 0;
  void max_with(const Errors& e) {
    sq = std::max(sq, e.sq), proj = std::max(proj, e.proj), samp = std::max(samp, e.samp);
  }
};
inline Errors compare(const test::Fixture& fx, const std::string& kind, const std::string& name, const float* x, size_t n) {
  const double ref_sq = fx.f32(kind + "sq." + name)[0];
  const auto proj = fx.f32(kind + "proj." + name), samp = fx.f32(kind + "samp." + name);
  const double norm = std::sqrt(ref_sq), rms = std::sqrt(ref_sq / double(n));
  Errors e;
  double sq = 0;
  for (size_t i = 0; i < n; ++i) sq += double(x[i]) * x[i];
  e.sq = std::fabs(sq - ref_sq) / ref_sq;
  for (size_t k = 0; k < proj.size(); ++k) {
    const HashStream sign(name, 0x5BD1E995ull * (k + 1));
    double p = 0;
    for (size_t i = 0; i < n; ++i) p += (sign(i) >> 63) ? double(x[i]) : -double(x[i]);
    e.proj = std::max(e.proj, std::fabs(p - proj[k]) / norm);
  }
  const HashStream index(name, 0xABCDEF);
  for (size_t j = 0; j < samp.size(); ++j) e.samp = std::max(e.samp, std::fabs(double(x[index(j) % n]) - samp[j]) / rms);
  return e;
}

}  // namespace lt::test
