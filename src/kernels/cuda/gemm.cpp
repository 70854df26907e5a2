#include "kernels/cuda/gemm.h"

#include <cublasLt.h>

#include <map>
#include <tuple>

#include "core/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device.h"

namespace lt::cuda {

GemmShape resolved(const GemmShape& s) {
  LT_CHECK(s.M >= 0 && s.N >= 0 && s.K >= 0, "GEMM: negative size ({}, {}, {})", s.M, s.N, s.K);
  GemmShape r = s;
  const int64_t a_width = s.trans_a ? s.M : s.K, b_width = s.trans_b ? s.K : s.N;
  if (r.lda == 0) r.lda = a_width;
  if (r.ldb == 0) r.ldb = b_width;
  if (r.ldc == 0) r.ldc = s.N;
  LT_CHECK(r.lda >= a_width && r.lda > 0, "GEMM: lda {} is less than A's row width {}", r.lda, a_width);
  LT_CHECK(r.ldb >= b_width && r.ldb > 0, "GEMM: ldb {} is less than B's row width {}", r.ldb, b_width);
  LT_CHECK(r.ldc >= s.N && r.ldc > 0, "GEMM: ldc {} is less than C's row width {}", r.ldc, s.N);
  return r;
}

ColumnMajorCall column_major(const GemmShape& shape) {
  const GemmShape s = resolved(shape);
  ColumnMajorCall c{};
  c.m = s.N, c.n = s.M, c.k = s.K;
  // First operand: our B. Row-major [K,N] is column-major N×K (no transpose needed);
  // row-major [N,K] (trans_b) is column-major K×N, transposed by cuBLAS.
  c.trans_first = s.trans_b;
  c.first_rows = s.trans_b ? s.K : s.N;
  c.first_cols = s.trans_b ? s.N : s.K;
  c.first_ld = s.ldb;
  // Second operand: our A. Row-major [M,K] is column-major K×M; row-major [K,M] (trans_a) is M×K.
  c.trans_second = s.trans_a;
  c.second_rows = s.trans_a ? s.M : s.K;
  c.second_cols = s.trans_a ? s.K : s.M;
  c.second_ld = s.lda;
  c.c_rows = s.N, c.c_cols = s.M, c.ldc = s.ldc;
  return c;
}

namespace {

// The largest power of two (≤ 16) dividing the address: what the algorithm may assume.
uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 16;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t, int, bool, uint32_t, uint32_t,
                       uint32_t>;

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  std::string what;
};

void destroy(Plan& p) {
  if (p.op) cublasLtMatmulDescDestroy(p.op);
  if (p.a) cublasLtMatrixLayoutDestroy(p.a);
  if (p.b) cublasLtMatrixLayoutDestroy(p.b);
  if (p.c) cublasLtMatrixLayoutDestroy(p.c);
  p = Plan{};
}

template <typename T> T algo_config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  T v{};
  size_t written = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &v, sizeof v, &written);
  return v;
}
}  // namespace

struct Gemm::Impl {
  cublasLtHandle_t handle = nullptr;
  DeviceBuffer workspace;
  std::map<Key, Plan> plans;

  ~Impl() {
    for (auto& [k, p] : plans) destroy(p);
    if (handle) cublasLtDestroy(handle);
  }

  Plan make_plan(const GemmShape& s, uint32_t al_a, uint32_t al_b, uint32_t al_c) {
    const ColumnMajorCall cm = column_major(s);
    const cudaDataType_t out_type = s.out == GemmOut::f32 ? CUDA_R_32F : CUDA_R_16BF;
    Plan p;
    try {
      LT_CUBLAS(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
      const cublasOperation_t ta = cm.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N;
      const cublasOperation_t tb = cm.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N;
      LT_CUBLAS(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
      LT_CUBLAS(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
      LT_CUBLAS(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(cm.first_rows), uint64_t(cm.first_cols),
                                           cm.first_ld));
      LT_CUBLAS(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(cm.second_rows), uint64_t(cm.second_cols),
                                           cm.second_ld));
      LT_CUBLAS(cublasLtMatrixLayoutCreate(&p.c, out_type, uint64_t(cm.c_rows), uint64_t(cm.c_cols), cm.ldc));

      cublasLtMatmulPreference_t pref = nullptr;
      LT_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
      const uint64_t ws = workspace.bytes();
      const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
      // cuBLAS's A is our B and its B our A; C and D are the same buffer.
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof schemes);
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_b, sizeof al_b);
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_a, sizeof al_a);
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c);
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c);
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      const cublasStatus_t st =
          cublasLtMatmulAlgoGetHeuristic(handle, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
      cublasLtMatmulPreferenceDestroy(pref);
      LT_CUBLAS(st);
      LT_CHECK(found > 0 && result.state == CUBLAS_STATUS_SUCCESS,
               "cuBLASLt has no algorithm for GEMM M={} N={} K={} trans_a={} trans_b={} lda={} ldb={} ldc={} ({})",
               s.M, s.N, s.K, s.trans_a, s.trans_b, s.lda, s.ldb, s.ldc, s.out == GemmOut::f32 ? "fp32" : "bf16");
      p.algo = result.algo;
      p.workspace = result.workspaceSize;
      p.what = fmt::format("M={} N={} K={} ta={} tb={} lda={} ldb={} ldc={} out={} acc={}: algo {} tile {} split-k {} "
                           "reduction {} workspace {}",
                           s.M, s.N, s.K, int(s.trans_a), int(s.trans_b), s.lda, s.ldb, s.ldc,
                           s.out == GemmOut::f32 ? "fp32" : "bf16", int(s.accumulate),
                           algo_config<int32_t>(p.algo, CUBLASLT_ALGO_CONFIG_ID),
                           algo_config<uint32_t>(p.algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
                           algo_config<uint32_t>(p.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                           algo_config<uint32_t>(p.algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME), p.workspace);
    } catch (...) {
      destroy(p);
      throw;
    }
    return p;
  }
};

Gemm::Gemm(size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  LT_CUBLAS(cublasLtCreate(&impl_->handle));
  impl_->workspace = DeviceBuffer(workspace_bytes);
}

Gemm::~Gemm() = default;

void Gemm::run(const bf16* A, const bf16* B, void* C, const GemmShape& shape, cudaStream_t stream) {
  const GemmShape s = resolved(shape);
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0) {  // an empty sum: C = 0, or C unchanged when accumulating
    const size_t elem = s.out == GemmOut::f32 ? 4 : 2;
    if (!s.accumulate)
      LT_CUDA(cudaMemset2DAsync(C, size_t(s.ldc) * elem, 0, size_t(s.N) * elem, size_t(s.M), stream));
    return;
  }
  const uint32_t al_a = alignment(A), al_b = alignment(B), al_c = alignment(C);
  const Key key{s.M, s.N, s.K, s.trans_a, s.trans_b, s.lda, s.ldb, s.ldc, int(s.out), s.accumulate, al_a, al_b, al_c};
  auto it = impl_->plans.find(key);
  if (it == impl_->plans.end()) it = impl_->plans.emplace(key, impl_->make_plan(s, al_a, al_b, al_c)).first;
  const Plan& p = it->second;
  const float alpha = 1.0f, beta = s.accumulate ? 1.0f : 0.0f;
  LT_CUBLAS(cublasLtMatmul(impl_->handle, p.op, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo,
                           impl_->workspace.data(), impl_->workspace.bytes(), stream));
}

void Gemm::run(const bf16* A, const bf16* B, float* C, const GemmShape& s, cudaStream_t stream) {
  LT_CHECK(s.out == GemmOut::f32, "GEMM: fp32 output buffer for a bf16-output shape");
  run(A, B, static_cast<void*>(C), s, stream);
}

void Gemm::run(const bf16* A, const bf16* B, bf16* C, const GemmShape& s, cudaStream_t stream) {
  LT_CHECK(s.out == GemmOut::bf16, "GEMM: bf16 output buffer for an fp32-output shape");
  run(A, B, static_cast<void*>(C), s, stream);
}

size_t Gemm::cached_plans() const { return impl_->plans.size(); }

std::vector<std::string> Gemm::describe() const {
  std::vector<std::string> v;
  for (const auto& [k, p] : impl_->plans) v.push_back(p.what);
  return v;
}

}  // namespace lt::cuda
