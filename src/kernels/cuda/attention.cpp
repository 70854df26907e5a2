#include "kernels/cuda/attention.h"

#include <cmath>

#include "core/error.h"
#include "kernels/cuda/attention_launch.h"

namespace lt::cuda {

namespace {
attn::Params make_params(const AttnShape& s, const AttnStrides& ld) {
  attn::Params p{};
  p.B = s.B, p.T = s.T, p.H = s.H, p.KV = s.KV, p.hd = s.hd, p.group = s.H / s.KV;
  const int64_t qw = int64_t(s.H) * s.hd, kw = int64_t(s.KV) * s.hd;
  p.ldq = ld.q ? ld.q : qw;
  p.ldk = ld.k ? ld.k : kw;
  p.ldv = ld.v ? ld.v : kw;
  p.ldo = ld.o ? ld.o : qw;
  p.lddo = ld.dout ? ld.dout : qw;
  p.lddq = ld.dq ? ld.dq : qw;
  p.lddk = ld.dk ? ld.dk : kw;
  p.lddv = ld.dv ? ld.dv : kw;
  p.scale = float(1.0 / std::sqrt(double(s.hd)));
  p.scale_log2 = float(1.4426950408889634 / std::sqrt(double(s.hd)));
  return p;
}

void check_shape(const AttnShape& s, const AttnStrides& ld) {
  std::string why;
  LT_CHECK(flash_attention_supported(s, ld, &why), "flash attention: {}", why);
}
}  // namespace

bool flash_attention_supported(const AttnShape& s, const AttnStrides& ld, std::string* why) {
  auto no = [&](std::string r) {
    if (why) *why = std::move(r);
    return false;
  };
  if (s.B <= 0 || s.T <= 0 || s.H <= 0) return no(fmt::format("empty shape (B={}, T={}, H={})", s.B, s.T, s.H));
  if (s.hd <= 0 || s.hd % 16 != 0 || s.hd > 128)
    return no(fmt::format("head size {} is not a multiple of 16 between 16 and 128", s.hd));
  if (s.KV <= 0 || s.H % s.KV != 0) return no(fmt::format("{} query heads are not a multiple of {} KV heads", s.H, s.KV));
  for (int64_t x : {ld.q, ld.k, ld.v, ld.o, ld.dout, ld.dq, ld.dk, ld.dv})
    if (x % 8 != 0) return no(fmt::format("row stride {} is not a multiple of 8 elements (16 bytes)", x));
  if (int64_t(s.B) * s.H > 65535) return no(fmt::format("{} (batch, head) pairs exceed 65535", int64_t(s.B) * s.H));
  return true;
}

void flash_attention_forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* out_f32, float* lse,
                             const AttnShape& s, cudaStream_t stream, const AttnStrides& ld) {
  check_shape(s, ld);
  LT_CHECK(out || out_f32, "flash attention forward: no output");
  attn::Params p = make_params(s, ld);
  p.q = q, p.k = k, p.v = v, p.out16 = out, p.out32 = out_f32, p.lse = lse;
  attn::launch_forward(p, stream);
}

size_t flash_attention_backward_workspace_bytes(const AttnShape& s) {
  return size_t(s.B) * size_t(s.H) * size_t(s.T) * sizeof(float);
}

void flash_attention_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out, const float* out_f32,
                              const bf16* dout, const float* lse, float* dq, float* dk, float* dv, bf16* dq_bf16,
                              bf16* dk_bf16, bf16* dv_bf16, void* workspace, const AttnShape& s, cudaStream_t stream,
                              const AttnStrides& ld) {
  check_shape(s, ld);
  LT_CHECK(out || out_f32, "flash attention backward: no forward output given");
  attn::Params p = make_params(s, ld);
  p.q = q, p.k = k, p.v = v, p.o16 = out, p.o32 = out_f32, p.dout = dout, p.lse = const_cast<float*>(lse);
  p.delta = static_cast<float*>(workspace);
  p.dq32 = dq, p.dk32 = dk, p.dv32 = dv, p.dq16 = dq_bf16, p.dk16 = dk_bf16, p.dv16 = dv_bf16;
  attn::launch_backward(p, stream);
}

}  // namespace lt::cuda
