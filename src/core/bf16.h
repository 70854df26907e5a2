// bfloat16 as a 16-bit integer: the top half of an IEEE float32.
// float -> bf16 rounds to nearest even (as PyTorch and oneDNN do); NaN stays NaN.
#pragma once
#include <cstdint>
#include <cstring>

namespace lt {

using bf16 = uint16_t;

inline float bf16_to_float(bf16 h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bf16 float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16(u >> 16);
}

// IEEE half precision (F16 in safetensors), for import/export only.
float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);

}  // namespace lt
