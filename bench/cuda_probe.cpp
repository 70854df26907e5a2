// cuda_probe: what this GPU and its libraries do for llamatrain's CUDA kernels, as JSON on
// stdout (bench/gpu_check.sh saves it). The device, the cuDNN version and which attention
// shapes cuDNN's fused SDPA takes (and why not), then timings: our flash attention and cuDNN's
// forward and backward, and the cuBLASLt GEMMs of one layer, on the model shapes of the device
// check. Times are CUDA-event medians of 5 runs after a warm-up.
//   cuda_probe [--quick]   (--quick: the smallest shapes only)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/bf16.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/sdpa.h"

namespace {

using namespace lt;

double median_ms(cudaStream_t stream, const std::function<void()>& run) {
  run();
  LT_CUDA(cudaStreamSynchronize(stream));
  cudaEvent_t a, b;
  LT_CUDA(cudaEventCreate(&a));
  LT_CUDA(cudaEventCreate(&b));
  std::vector<float> t;
  for (int i = 0; i < 5; ++i) {
    LT_CUDA(cudaEventRecord(a, stream));
    run();
    LT_CUDA(cudaEventRecord(b, stream));
    LT_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    LT_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

cuda::DeviceBuffer random_bf16(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<bf16> v(n);
  for (auto& x : v) x = float_to_bf16(rng.normal());
  return cuda::upload(v);
}

struct Model {
  const char* name;
  int B, T, D, H, KV, F, V;
};

// Causal attention FLOPs: forward 2 GEMMs over half the T×T scores, 4·B·H·T²·hd/2; backward 2.5×.
nlohmann::json attention_timings(const Model& m, cuda::Attention& cudnn_attn, cudaStream_t stream) {
  const int hd = m.D / m.H;
  const cuda::AttnShape s{m.B, m.T, m.H, m.KV, hd};
  const size_t N = size_t(m.B) * m.T, qn = N * m.H * hd, kn = N * m.KV * hd;
  cuda::DeviceBuffer q = random_bf16(qn, 1), k = random_bf16(kn, 2), v = random_bf16(kn, 3), dout = random_bf16(qn, 4);
  cuda::DeviceBuffer out(qn * 2), lse(size_t(m.B) * m.H * m.T * 4), dq(qn * 2), dk(kn * 2), dv(kn * 2);
  cuda::DeviceBuffer ws(cuda::flash_attention_backward_workspace_bytes(s));
  const double fwd_flop = 2.0 * m.B * m.H * double(m.T) * m.T * hd, bwd_flop = 2.5 * fwd_flop;
  nlohmann::json j;
  j["shape"] = {{"B", m.B}, {"T", m.T}, {"H", m.H}, {"KV", m.KV}, {"hd", hd}};
  const double f = median_ms(stream, [&] {
    cuda::flash_attention_forward(q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), out.as<bf16>(), nullptr, lse.as<float>(),
                                  s, stream);
  });
  const double b = median_ms(stream, [&] {
    cuda::flash_attention_backward(q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), out.as<bf16>(), nullptr, dout.as<bf16>(),
                                   lse.as<float>(), nullptr, nullptr, nullptr, dq.as<bf16>(), dk.as<bf16>(),
                                   dv.as<bf16>(), ws.data(), s, stream);
  });
  j["flash"] = {{"forward_ms", f}, {"backward_ms", b}, {"forward_tflops", fwd_flop / f / 1e9},
                {"backward_tflops", bwd_flop / b / 1e9}};
  const cuda::AttnChoice& c = cudnn_attn.choose(s);
  j["cudnn_choice"] = c.reason;
  if (c.backend == cuda::AttnBackend::cudnn) {
    const double cf = median_ms(stream, [&] {
      cudnn_attn.forward(q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), out.as<bf16>(), lse.as<float>(), s, stream);
    });
    const double cb = median_ms(stream, [&] {
      cudnn_attn.backward(q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), out.as<bf16>(), dout.as<bf16>(), lse.as<float>(),
                          dq.as<bf16>(), dk.as<bf16>(), dv.as<bf16>(), s, stream);
    });
    j["cudnn"] = {{"forward_ms", cf}, {"backward_ms", cb}, {"forward_tflops", fwd_flop / cf / 1e9},
                  {"backward_tflops", bwd_flop / cb / 1e9}};
  }
  return j;
}

// One layer's GEMMs (fused q|k|v and gate|up), forward, input gradient and weight gradient.
nlohmann::json gemm_timings(const Model& m, cudaStream_t stream) {
  const int64_t N = int64_t(m.B) * m.T, D = m.D, hd = m.D / m.H, QKV = (m.H + 2 * m.KV) * hd, F = m.F;
  struct G {
    const char* name;
    cuda::GemmShape s;
  };
  const std::vector<G> gemms = {
      {"qkv fwd", {N, QKV, D, false, true}},
      {"qkv dx", {N, D, QKV}},
      {"qkv dW", {QKV, D, N, true, false, 0, 0, 0, cuda::GemmOut::f32, true}},
      {"o fwd", {N, D, D, false, true}},
      {"gate|up fwd", {N, 2 * F, D, false, true}},
      {"gate|up dW", {2 * F, D, N, true, false, 0, 0, 0, cuda::GemmOut::f32, true}},
      {"down fwd", {N, D, F, false, true}},
      {"lm head fwd (1k rows)", {std::min<int64_t>(N, 1024), m.V, D, false, true}},
  };
  cuda::Gemm gemm;
  nlohmann::json out = nlohmann::json::array();
  for (const G& g : gemms) {
    const cuda::GemmShape r = cuda::resolved(g.s);
    const size_t a = size_t(g.s.trans_a ? g.s.K : g.s.M) * r.lda, b = size_t(g.s.trans_b ? g.s.N : g.s.K) * r.ldb;
    cuda::DeviceBuffer A = random_bf16(a, 5), B = random_bf16(b, 6), C(size_t(g.s.M) * r.ldc * 4);
    LT_CUDA(cudaMemsetAsync(C.data(), 0, C.bytes(), stream));
    const double ms =
        median_ms(stream, [&] { gemm.run(A.as<bf16>(), B.as<bf16>(), C.as<float>(), g.s, stream); });
    out.push_back({{"gemm", g.name}, {"M", g.s.M}, {"N", g.s.N}, {"K", g.s.K}, {"ms", ms},
                   {"tflops", 2.0 * g.s.M * g.s.N * g.s.K / ms / 1e9}});
  }
  for (const std::string& line : gemm.describe()) out.push_back({{"plan", line}});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  nlohmann::json j;
  try {
    if (cuda::device_count() == 0) {
      j["error"] = cuda::no_device_reason();
      std::printf("%s\n", j.dump(2).c_str());
      return 2;
    }
    const cuda::DeviceInfo d = cuda::device_info(0);
    j["device"] = {{"name", d.name}, {"cc", std::to_string(d.major) + "." + std::to_string(d.minor)},
                   {"sms", d.sm_count}, {"memory_mib", d.total_bytes >> 20}, {"l2_bytes", d.l2_bytes}};
    // Shapes of the device check's models and of the Llamas the project exists for.
    std::vector<Model> models = {{"124M", 16, 1024, 768, 12, 12, 3072, 32000},
                                 {"TinyLlama-1.1B", 8, 2048, 2048, 32, 4, 5632, 32000}};
    if (!quick) {
      models.push_back({"Llama-2-7B (B=1)", 1, 4096, 4096, 32, 32, 11008, 32000});
      models.push_back({"Llama-3-8B (B=1)", 1, 8192, 4096, 32, 8, 14336, 128256});
    }
    std::vector<cuda::AttnShape> shapes;
    for (const Model& m : models) shapes.push_back({m.B, m.T, m.H, m.KV, m.D / m.H});
    shapes.push_back({2, 1000, 8, 8, 64});   // T not a multiple of the tile
    shapes.push_back({1, 1000, 32, 4, 128});  // GQA group 8, head size 128
    j["cudnn_probe"] = cuda::probe_cudnn_attention(shapes);
    cuda::Stream stream;
    cuda::Attention attn(true, true);
    for (const Model& m : models) {
      j["attention"][m.name] = attention_timings(m, attn, stream.get());
      j["gemm"][m.name] = gemm_timings(m, stream.get());
    }
  } catch (const std::exception& e) {
    j["error"] = e.what();
    std::printf("%s\n", j.dump(2).c_str());
    return 1;
  }
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}
