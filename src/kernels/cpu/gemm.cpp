#include "kernels/cpu/gemm.h"

#include "core/buffer.h"
#include "core/env.h"
#include "core/error.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace lt::cpu {

namespace {

std::atomic<int64_t> g_gemm_ns{0};

// LT_GEMM_PROFILE=1: time per GEMM shape, printed to stderr at exit (docs/PERFORMANCE.md).
struct ShapeTime {
  int64_t calls = 0, ns = 0;
  double flops = 0;
};
struct Profile {
  bool on = env_flag("LT_GEMM_PROFILE", false);
  std::mutex mu;
  std::map<std::string, ShapeTime> shapes;  // "MxNxK flags" -> time
  ~Profile() {
    if (!on) return;
    std::vector<std::pair<std::string, ShapeTime>> v(shapes.begin(), shapes.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.ns > b.second.ns; });
    std::fprintf(stderr, "GEMM profile (M x N x K, A/B transposed, accumulate, dtype, packed):\n");
    for (auto& [k, t] : v)
      std::fprintf(stderr, "  %-40s %7lld calls %9.3f s %7.1f GFLOP/s\n", k.c_str(), (long long)t.calls,
                   t.ns * 1e-9, t.ns > 0 ? t.flops / double(t.ns) : 0.0);
  }
};
Profile& profile() {
  static Profile p;
  return p;
}

// Adds the wall time of one GEMM call to gemm_seconds() (two clock reads per call).
struct GemmTimer {
  int64_t M, N, K;
  bool ta, tb, acc, bf16, packed;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  ~GemmTimer() {
    const int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    g_gemm_ns += ns;
    Profile& p = profile();
    if (!p.on) return;
    char key[96];
    std::snprintf(key, sizeof key, "%lldx%lldx%lld %c%c%s %s%s", (long long)M, (long long)N, (long long)K,
                  ta ? 'T' : 'N', tb ? 'T' : 'N', acc ? " +=" : "", bf16 ? "bf16" : "f32", packed ? " packed" : "");
    std::lock_guard<std::mutex> lock(p.mu);
    ShapeTime& t = p.shapes[key];
    ++t.calls;
    t.ns += ns;
    t.flops += 2.0 * double(M) * double(N) * double(K);
  }
};

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
  GemmTimer timer{k.M, k.N, k.K, k.ta, k.tb, k.acc, k.dt != 0, false};
  Entry& e = primitive(k);
  e.args[DNNL_ARG_SRC].set_data_handle(const_cast<void*>(A));
  e.args[DNNL_ARG_WEIGHTS].set_data_handle(const_cast<void*>(B));
  e.args[DNNL_ARG_DST].set_data_handle(C);
  e.prim.execute(stream(), e.args);
  stream().wait();
}

}  // namespace

double gemm_seconds() { return double(g_gemm_ns.load()) * 1e-9; }

struct PackedGemm::Impl {
  struct Rows {  // the primitives of one row count
    int64_t M = 0;
    dnnl::matmul prim[2];  // [accumulate]
    std::unordered_map<int, dnnl::memory> args;  // built once: run() allocates nothing
    dnnl::memory a, c;
  };
  Rows rows[2];  // M, M_tail
  size_t bytes = 0;
  int64_t N = 0, K = 0;
  bool trans_b = false, bf16 = false;
  dnnl::memory::desc packed_desc;
  dnnl::memory packed, plain_w;  // the packed weight; the fp32 weight as it lies in memory
  dnnl::reorder to_packed;
};

PackedGemm::PackedGemm(int64_t M, int64_t N, int64_t K, bool trans_b, bool bf16, int64_t M_tail) : impl_(new Impl) {
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  LT_CHECK(M > 0 && N > 0 && K > 0 && M_tail >= 0, "packed GEMM: bad shape {}x{}x{} (tail {})", M, N, K, M_tail);
  Impl& p = *impl_;
  p.N = N, p.K = K, p.trans_b = trans_b, p.bf16 = bf16;
  const dt in = bf16 ? dt::bf16 : dt::f32;
  dnnl::primitive_attr acc;
  dnnl::post_ops po;
  po.append_sum(1.0f);
  acc.set_post_ops(po);
  for (int i = 0; i < 2; ++i) {
    const int64_t m = i == 0 ? M : M_tail;
    if (m == 0) continue;
    dnnl::memory::desc a({m, K}, in, dims{K, 1});
    dnnl::memory::desc c({m, N}, dt::f32, dims{N, 1});
    if (i == 0) {  // oneDNN picks the weight layout for the main shape; the rest must read it
      dnnl::memory::desc any({K, N}, in, dnnl::memory::format_tag::any);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, any, c), engine());
      p.packed_desc = pd.weights_desc();
    }
    Impl::Rows& r = p.rows[i];
    r.M = m;
    r.prim[0] = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, p.packed_desc, c), engine()));
    r.prim[1] = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, p.packed_desc, c), acc, engine()));
    r.a = dnnl::memory(a, engine(), nullptr);
    r.c = dnnl::memory(c, engine(), nullptr);
  }
  p.bytes = p.packed_desc.get_size();
  p.plain_w = dnnl::memory(dnnl::memory::desc({K, N}, dt::f32, trans_b ? dims{1, K} : dims{N, 1}), engine(), nullptr);
}

PackedGemm::~PackedGemm() { delete impl_; }

size_t PackedGemm::packed_bytes() const { return impl_->bytes; }

void PackedGemm::bind(void* storage) {
  Impl& p = *impl_;
  p.packed = dnnl::memory(p.packed_desc, engine(), storage);
  p.to_packed = dnnl::reorder(p.plain_w, p.packed);
  for (auto& r : p.rows)
    if (r.M > 0) r.args = {{DNNL_ARG_SRC, r.a}, {DNNL_ARG_WEIGHTS, p.packed}, {DNNL_ARG_DST, r.c}};
}

void PackedGemm::pack(const float* w) {
  Impl& p = *impl_;
  LT_CHECK(p.packed, "packed GEMM: pack() before bind()");
  p.plain_w.set_data_handle(const_cast<float*>(w));
  p.to_packed.execute(stream(), p.plain_w, p.packed);
  stream().wait();
}

void PackedGemm::run(const void* A, float* C, int64_t M, bool accumulate) {
  Impl& p = *impl_;
  Impl::Rows& r = M == p.rows[0].M ? p.rows[0] : p.rows[1];
  LT_CHECK(r.M == M && p.packed, "packed GEMM: {} rows, planned for {} and {}", M, p.rows[0].M, p.rows[1].M);
  r.a.set_data_handle(const_cast<void*>(A));
  r.c.set_data_handle(C);
  GemmTimer timer{M, p.N, p.K, false, p.trans_b, accumulate, p.bf16, true};
  r.prim[accumulate ? 1 : 0].execute(stream(), r.args);
  stream().wait();
}

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
