#include "kernels/cpu/gemm.h"

#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>

namespace lt::cpu {

namespace {

struct Key {
  int64_t M, N, K;
  bool ta, tb, acc;
  int dt;
  bool operator<(const Key& o) const {
    return std::tie(M, N, K, ta, tb, acc, dt) < std::tie(o.M, o.N, o.K, o.ta, o.tb, o.acc, o.dt);
  }
};

// A cached primitive with its argument map; each call only swaps the data pointers, so the
// step loop neither creates primitives nor allocates.
struct Entry {
  dnnl::matmul prim;
  std::unordered_map<int, dnnl::memory> args;
};

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

Entry& primitive(const Key& k) {
  static std::map<Key, Entry> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  using dt = dnnl::memory::data_type;
  dt in = k.dt == 0 ? dt::f32 : dt::bf16;
  // Strides express the transposes: a [K,M] buffer read as [M,K] has strides {1, M}.
  dnnl::memory::desc a({k.M, k.K}, in, k.ta ? dnnl::memory::dims{1, k.M} : dnnl::memory::dims{k.K, 1});
  dnnl::memory::desc b({k.K, k.N}, in, k.tb ? dnnl::memory::dims{1, k.K} : dnnl::memory::dims{k.N, 1});
  dnnl::memory::desc c({k.M, k.N}, dt::f32, dnnl::memory::dims{k.N, 1});
  dnnl::primitive_attr attr;
  if (k.acc) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine());
  Entry e{dnnl::matmul(pd), {{DNNL_ARG_SRC, dnnl::memory(a, engine(), nullptr)},
                              {DNNL_ARG_WEIGHTS, dnnl::memory(b, engine(), nullptr)},
                              {DNNL_ARG_DST, dnnl::memory(c, engine(), nullptr)}}};
  return cache.emplace(k, std::move(e)).first->second;
}

void run(const Key& k, const void* A, const void* B, float* C) {
  if (k.M == 0 || k.N == 0) return;
  if (k.K == 0) {
    if (!k.acc)
      for (int64_t i = 0; i < k.M * k.N; ++i) C[i] = 0.0f;
    return;
  }
  Entry& e = primitive(k);
  e.args[DNNL_ARG_SRC].set_data_handle(const_cast<void*>(A));
  e.args[DNNL_ARG_WEIGHTS].set_data_handle(const_cast<void*>(B));
  e.args[DNNL_ARG_DST].set_data_handle(C);
  e.prim.execute(stream(), e.args);
  stream().wait();
}

}  // namespace

void matmul(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate) {
  run({M, N, K, trans_a, trans_b, accumulate, 0}, A, B, C);
}

void matmul_bf16(const bf16* A, const bf16* B, float* C, int64_t M, int64_t N, int64_t K, bool trans_a,
                 bool trans_b, bool accumulate) {
  run({M, N, K, trans_a, trans_b, accumulate, 1}, A, B, C);
}

void matmul_ref(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool trans_a,
                bool trans_b, bool accumulate) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        double a = trans_a ? A[k * M + i] : A[i * K + k];
        double b = trans_b ? B[j * K + k] : B[k * N + j];
        s += a * b;
      }
      C[i * N + j] = float(accumulate ? C[i * N + j] + s : s);
    }
}

}  // namespace lt::cpu
