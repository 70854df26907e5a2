#include "kernels/cuda/sdpa.h"

#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/log.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/sdpa_graph.h"

namespace lt::cuda {

namespace {

// One cuDNN backend descriptor, destroyed with its owner.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t type) { LT_CUDNN(cudnnBackendCreateDescriptor(type, &d_)); }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }
  template <typename T> void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t n,
                                 const T* values) {
    const cudnnStatus_t st = cudnnBackendSetAttribute(d_, name, type, n, values);
    if (st != CUDNN_STATUS_SUCCESS)
      fail("cuDNN: setting backend attribute {} failed: {}", int(name), cudnnGetErrorString(st));
  }
  void finalize(const std::string& what) {
    const cudnnStatus_t st = cudnnBackendFinalize(d_);
    if (st != CUDNN_STATUS_SUCCESS) {
      char detail[512] = {};
      cudnnGetLastErrorString(detail, sizeof detail);
      fail("{} did not finalize: {}{}{}", what, cudnnGetErrorString(st), detail[0] ? ": " : "", detail);
    }
  }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};
using DescPtr = std::unique_ptr<Desc>;

cudnnDataType_t data_type(sdpa::DType t) {
  switch (t) {
    case sdpa::DType::f32: return CUDNN_DATA_FLOAT;
    case sdpa::DType::bf16: return CUDNN_DATA_BFLOAT16;
    case sdpa::DType::i32: return CUDNN_DATA_INT32;
    case sdpa::DType::boolean: return CUDNN_DATA_BOOLEAN;
  }
  return CUDNN_DATA_FLOAT;
}

cudnnPointwiseMode_t pointwise_mode(sdpa::Pw m) {
  switch (m) {
    case sdpa::Pw::mul: return CUDNN_POINTWISE_MUL;
    case sdpa::Pw::sub: return CUDNN_POINTWISE_SUB;
    case sdpa::Pw::add: return CUDNN_POINTWISE_ADD;
    case sdpa::Pw::div: return CUDNN_POINTWISE_DIV;
    case sdpa::Pw::exp: return CUDNN_POINTWISE_EXP;
    case sdpa::Pw::log: return CUDNN_POINTWISE_LOG;
    case sdpa::Pw::gen_index: return CUDNN_POINTWISE_GEN_INDEX;
    case sdpa::Pw::cmp_ge: return CUDNN_POINTWISE_CMP_GE;
    case sdpa::Pw::binary_select: return CUDNN_POINTWISE_BINARY_SELECT;
    case sdpa::Pw::identity: return CUDNN_POINTWISE_IDENTITY;
  }
  return CUDNN_POINTWISE_IDENTITY;
}

std::string shape_text(const AttnShape& s) {
  return fmt::format("B={} T={} H={} KV={} hd={}", s.B, s.T, s.H, s.KV, s.hd);
}

}  // namespace

// A finalized execution plan and everything it was built from (kept alive with it).
struct CudnnAttention::Plan {
  sdpa::Graph graph;
  std::vector<DescPtr> keep;  // tensors, op descriptors, ops, graph, engine config
  DescPtr plan;
  int64_t plan_workspace = 0;  // cuDNN's own workspace
  int64_t engine = -1;
  float scale = 0, lowest = std::numeric_limits<float>::lowest(), one = 1.0f;  // by-value scalars

  int64_t total_workspace() const { return (plan_workspace + 255) / 256 * 256 + graph.workspace_bytes(); }
};

struct CudnnAttention::Entry {
  bool ok = false;
  std::string why;
  std::unique_ptr<Plan> forward, backward;
};

namespace {

// Builds the backend descriptors of `g` and the first execution plan any ranked engine
// finalizes (skipping non-deterministic engines when asked). Throws lt::Error with the reason.
void build(cudnnHandle_t handle, const sdpa::Graph& g, bool deterministic, std::vector<DescPtr>& keep, DescPtr& plan,
           int64_t& workspace, int64_t& engine_index) {
  std::map<int64_t, cudnnBackendDescriptor_t> tensors;
  for (const sdpa::Tensor& t : g.tensors) {
    auto d = std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const cudnnDataType_t dt = data_type(t.dtype);
    const int64_t align = 16;
    const bool v = t.is_virtual, bv = t.by_value;
    d->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    d->set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, t.dims.data());
    d->set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, t.strides.data());
    d->set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &t.uid);
    d->set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    d->set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v);
    if (bv) d->set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &bv);
    d->finalize("tensor " + t.name);
    tensors[t.uid] = d->get();
    keep.push_back(std::move(d));
  }
  auto tensor = [&](int64_t uid) { return tensors.at(uid); };

  std::vector<cudnnBackendDescriptor_t> ops;
  for (const sdpa::Op& o : g.ops) {
    DescPtr op;
    switch (o.kind) {
      case sdpa::OpKind::matmul: {
        auto mm = std::make_unique<Desc>(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
        const cudnnDataType_t ct = CUDNN_DATA_FLOAT;
        mm->set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct);
        mm->finalize("matmul " + o.name);
        op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
        const cudnnBackendDescriptor_t a = tensor(o.in[0]), b = tensor(o.in[1]), c = tensor(o.out), m = mm->get();
        op->set(CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
        op->set(CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
        op->set(CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
        op->set(CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m);
        keep.push_back(std::move(mm));
        break;
      }
      case sdpa::OpKind::pointwise: {
        auto pw = std::make_unique<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
        const cudnnPointwiseMode_t mode = pointwise_mode(o.pw);
        const cudnnDataType_t prec = data_type(o.compute);
        pw->set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
        pw->set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
        if (o.axis >= 0) pw->set(CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &o.axis);
        pw->finalize("pointwise " + o.name);
        op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
        const cudnnBackendDescriptor_t p = pw->get(), x = tensor(o.in[0]), y = tensor(o.out);
        op->set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p);
        op->set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
        if (o.in.size() > 1) {
          const cudnnBackendDescriptor_t b = tensor(o.in[1]);
          op->set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
        }
        if (o.in.size() > 2) {
          const cudnnBackendDescriptor_t t = tensor(o.in[2]);
          op->set(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
        }
        op->set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
        keep.push_back(std::move(pw));
        break;
      }
      case sdpa::OpKind::reduction: {
        auto rd = std::make_unique<Desc>(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
        const cudnnReduceTensorOp_t mode = o.red == sdpa::Red::max ? CUDNN_REDUCE_TENSOR_MAX : CUDNN_REDUCE_TENSOR_ADD;
        const cudnnDataType_t ct = CUDNN_DATA_FLOAT;
        rd->set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
        rd->set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct);
        if (o.deterministic) {
          const bool det = true;
          rd->set(CUDNN_ATTR_REDUCTION_IS_DETERMINISTIC, CUDNN_TYPE_BOOLEAN, 1, &det);
        }
        rd->finalize("reduction " + o.name);
        op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
        const cudnnBackendDescriptor_t r = rd->get(), x = tensor(o.in[0]), y = tensor(o.out);
        op->set(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
        op->set(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
        op->set(CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &r);
        keep.push_back(std::move(rd));
        break;
      }
      case sdpa::OpKind::reshape: {
        op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
        const cudnnBackendDescriptor_t x = tensor(o.in[0]), y = tensor(o.out);
        op->set(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
        op->set(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
        break;
      }
    }
    op->finalize("operation " + o.name);
    ops.push_back(op->get());
    keep.push_back(std::move(op));
  }

  auto graph = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  graph->set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(ops.size()), ops.data());
  graph->set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  graph->finalize("the attention graph");
  const cudnnBackendDescriptor_t graph_d = graph->get();
  keep.push_back(std::move(graph));

  std::string tried;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph_d);
    heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    try {
      heur.finalize("the engine heuristics");
    } catch (const Error& e) {
      tried += std::string(tried.empty() ? "" : "; ") + e.what();
      continue;
    }
    int64_t count = 0;
    LT_CUDNN(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                      &count, nullptr));
    std::vector<DescPtr> cfgs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
      cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
      raw.push_back(cfgs.back()->get());
    }
    int64_t got = 0;
    if (count > 0)
      LT_CUDNN(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                        count, &got, raw.data()));
    for (int64_t i = 0; i < got; ++i) {
      Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
      cudnnBackendDescriptor_t engine_d = engine.get();
      int64_t n = 0, index = -1;
      LT_CUDNN(cudnnBackendGetAttribute(raw[size_t(i)], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                        &n, &engine_d));
      cudnnBackendGetAttribute(engine_d, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &index);
      if (deterministic) {
        cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
        int64_t nn = 0;
        cudnnBackendGetAttribute(engine_d, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &nn, notes);
        bool nondet = false;
        for (int64_t k = 0; k < nn; ++k) nondet |= notes[k] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC;
        if (nondet) {
          tried += fmt::format("{}engine {}: non-deterministic", tried.empty() ? "" : "; ", index);
          continue;
        }
      }
      auto p = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      const cudnnBackendDescriptor_t cfg = raw[size_t(i)];
      p->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
      p->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
      try {
        p->finalize(fmt::format("engine {}", index));
      } catch (const Error& e) {
        tried += std::string(tried.empty() ? "" : "; ") + e.what();
        continue;
      }
      LT_CUDNN(cudnnBackendGetAttribute(p->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                        &workspace));
      engine_index = index;
      plan = std::move(p);
      for (auto& c : cfgs) keep.push_back(std::move(c));
      return;
    }
    if (got == 0) tried += fmt::format("{}heuristics mode {} found no engine", tried.empty() ? "" : "; ", int(mode));
  }
  fail("no engine config found ({})", tried.empty() ? "no engines" : tried);
}

std::unique_ptr<CudnnAttention::Plan> make_plan(cudnnHandle_t handle, sdpa::Graph g, const AttnShape& s,
                                                bool deterministic) {
  auto p = std::make_unique<CudnnAttention::Plan>();
  p->graph = std::move(g);
  p->scale = float(1.0 / std::sqrt(double(s.hd)));
  build(handle, p->graph, deterministic, p->keep, p->plan, p->plan_workspace, p->engine);
  return p;
}

}  // namespace

CudnnAttention::CudnnAttention() {
  cudnnHandle_t h = nullptr;
  LT_CUDNN(cudnnCreate(&h));
  handle_ = h;
}

CudnnAttention::~CudnnAttention() {
  plans_.clear();
  if (handle_) cudnnDestroy(static_cast<cudnnHandle_t>(handle_));
}

CudnnAttention::Key CudnnAttention::key(const AttnShape& s, const AttnStrides& ld, bool deterministic) {
  return {s.B, s.T, s.H, s.KV, s.hd, ld.q, ld.k, ld.v, ld.o, ld.dout, ld.dq, ld.dk, ld.dv, deterministic};
}

CudnnAttention::Entry& CudnnAttention::entry(const AttnShape& s, const AttnStrides& ld) const {
  auto it = plans_.find(key(s, ld, deterministic_));
  LT_CHECK(it != plans_.end() && it->second->ok, "cuDNN attention: shape {} was not prepared", shape_text(s));
  return *it->second;
}

bool CudnnAttention::prepare(const AttnShape& s, const AttnStrides& ld, bool deterministic, std::string* why) {
  deterministic_ = deterministic;
  auto& e = plans_[key(s, ld, deterministic)];
  if (!e) {
    e = std::make_unique<Entry>();
    const auto h = static_cast<cudnnHandle_t>(handle_);
    try {
      e->forward = make_plan(h, sdpa::forward_graph(s, ld), s, false);
    } catch (const Error& err) {
      e->why = std::string("forward: ") + err.what();
    }
    if (e->forward) {
      try {
        e->backward = make_plan(h, sdpa::backward_graph(s, ld, deterministic), s, deterministic);
        e->ok = true;
      } catch (const Error& err) {
        e->why = std::string(deterministic ? "deterministic backward: " : "backward: ") + err.what();
      }
    }
    if (e->ok)
      workspace_.reserve(size_t(std::max(e->forward->total_workspace(), e->backward->total_workspace())));
  }
  if (why) *why = e->why;
  return e->ok;
}

std::string CudnnAttention::describe(const AttnShape& s, const AttnStrides& ld) const {
  auto it = plans_.find(key(s, ld, deterministic_));
  if (it == plans_.end()) return "not prepared";
  const Entry& e = *it->second;
  if (!e.ok) return "refused: " + e.why;
  return fmt::format("engine {} (forward, workspace {:.1f} MiB); engine {} ({}backward, workspace {:.1f} MiB)",
                     e.forward->engine, double(e.forward->total_workspace()) / 1048576.0, e.backward->engine,
                     deterministic_ ? "deterministic " : "", double(e.backward->total_workspace()) / 1048576.0);
}

namespace {
// Runs a plan with the given (uid, pointer) bindings plus its by-value scalars and workspace.
void execute(cudnnHandle_t handle, CudnnAttention::Plan& p, std::vector<std::pair<int64_t, void*>> bind,
             void* workspace, cudaStream_t stream) {
  char* ws = static_cast<char*>(workspace);
  const int64_t graph_ws = (p.plan_workspace + 255) / 256 * 256;
  bind.push_back({sdpa::kScale, &p.scale});
  bind.push_back({sdpa::kLowest, &p.lowest});
  if (p.graph.has(sdpa::kOne)) bind.push_back({sdpa::kOne, &p.one});
  for (int64_t uid : {int64_t(sdpa::kSoftmaxSum), int64_t(sdpa::kDQAccum)})
    if (p.graph.has(uid)) bind.push_back({uid, ws + graph_ws + p.graph.workspace_offset(uid)});
  std::vector<int64_t> uids;
  std::vector<void*> ptrs;
  for (auto& [u, ptr] : bind) uids.push_back(u), ptrs.push_back(ptr);
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data());
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(ptrs.size()), ptrs.data());
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  pack.finalize("the variant pack");
  LT_CUDNN(cudnnSetStream(handle, stream));
  LT_CUDNN(cudnnBackendExecute(handle, p.plan->get(), pack.get()));
}
void* mut(const void* p) { return const_cast<void*>(p); }
}  // namespace

void CudnnAttention::forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, const AttnShape& s,
                             const AttnStrides& ld, cudaStream_t stream) {
  Entry& e = entry(s, ld);
  execute(static_cast<cudnnHandle_t>(handle_), *e.forward,
          {{sdpa::kQ, mut(q)}, {sdpa::kK, mut(k)}, {sdpa::kV, mut(v)}, {sdpa::kO, out}, {sdpa::kStats, lse}},
          workspace_.data(), stream);
}

void CudnnAttention::backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out, const bf16* dout,
                              const float* lse, bf16* dq, bf16* dk, bf16* dv, const AttnShape& s,
                              const AttnStrides& ld, cudaStream_t stream) {
  Entry& e = entry(s, ld);
  execute(static_cast<cudnnHandle_t>(handle_), *e.backward,
          {{sdpa::kQ, mut(q)},
           {sdpa::kK, mut(k)},
           {sdpa::kV, mut(v)},
           {sdpa::kO, mut(out)},
           {sdpa::kDO, mut(dout)},
           {sdpa::kStats, mut(lse)},
           {sdpa::kDQ, dq},
           {sdpa::kDK, dk},
           {sdpa::kDV, dv}},
          workspace_.data(), stream);
}

AttnChoice choose_attention(bool cudnn_allowed, bool cudnn_took, const std::string& cudnn_reason, bool flash_takes,
                            const std::string& flash_reason) {
  if (cudnn_allowed && cudnn_took) return {AttnBackend::cudnn, "cuDNN fused attention: " + cudnn_reason};
  if (!flash_takes)
    fail("attention: no kernel takes this shape: cuDNN {}; our flash kernels: {}",
         cudnn_allowed ? "refused it (" + cudnn_reason + ")" : "is off (" + cudnn_reason + ")", flash_reason);
  return {AttnBackend::flash, std::string("our flash kernels (cuDNN ") +
                                  (cudnn_allowed ? "refused the shape: " : "not used: ") + cudnn_reason + ")"};
}

Attention::Attention(bool use_cudnn, bool deterministic) : deterministic_(deterministic) {
  const char* env = std::getenv("LT_ATTENTION");
  if (env && std::strcmp(env, "flash") == 0) use_cudnn = false;
  if (!use_cudnn) {
    cudnn_unavailable_ = env && std::strcmp(env, "flash") == 0 ? "LT_ATTENTION=flash" : "switched off";
    return;
  }
  try {
    cudnn_ = std::make_unique<CudnnAttention>();
  } catch (const Error& e) {
    cudnn_unavailable_ = e.what();
  }
}

Attention::~Attention() = default;

const AttnChoice& Attention::choose(const AttnShape& s, const AttnStrides& ld) {
  const std::string k = fmt::format("{} strides {} {} {} {} {} {} {} {}", shape_text(s), ld.q, ld.k, ld.v, ld.o,
                                    ld.dout, ld.dq, ld.dk, ld.dv);
  auto it = choices_.find(k);
  if (it != choices_.end()) return it->second;
  std::string cudnn_reason = cudnn_unavailable_, flash_reason;
  bool took = false;
  if (cudnn_) {
    took = cudnn_->prepare(s, ld, deterministic_, &cudnn_reason);
    if (took) cudnn_reason = cudnn_->describe(s, ld);
  }
  const bool flash_ok = flash_attention_supported(s, ld, &flash_reason);
  AttnChoice c = choose_attention(cudnn_ != nullptr, took, cudnn_reason, flash_ok, flash_reason);
  if (c.backend == AttnBackend::flash) flash_workspace_.reserve(flash_attention_backward_workspace_bytes(s));
  if (c.backend == AttnBackend::flash && cudnn_ != nullptr)
    log::warn("attention {}: {}", shape_text(s), c.reason);
  else
    log::info("attention {}: {}", shape_text(s), c.reason);
  return choices_.emplace(k, std::move(c)).first->second;
}

void Attention::forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, const AttnShape& s,
                        cudaStream_t stream, const AttnStrides& ld) {
  if (choose(s, ld).backend == AttnBackend::cudnn) return cudnn_->forward(q, k, v, out, lse, s, ld, stream);
  flash_attention_forward(q, k, v, out, nullptr, lse, s, stream, ld);
}

void Attention::backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out, const bf16* dout,
                         const float* lse, bf16* dq, bf16* dk, bf16* dv, const AttnShape& s, cudaStream_t stream,
                         const AttnStrides& ld) {
  if (choose(s, ld).backend == AttnBackend::cudnn)
    return cudnn_->backward(q, k, v, out, dout, lse, dq, dk, dv, s, ld, stream);
  flash_attention_backward(q, k, v, out, nullptr, dout, lse, nullptr, nullptr, nullptr, dq, dk, dv,
                           flash_workspace_.data(), s, stream, ld);
}

std::vector<std::string> probe_cudnn_attention(const std::vector<AttnShape>& shapes) {
  std::vector<std::string> lines;
  lines.push_back(fmt::format("cuDNN {} (headers {}.{}.{})", cudnnGetVersion(), CUDNN_MAJOR, CUDNN_MINOR,
                              CUDNN_PATCHLEVEL));
  std::unique_ptr<CudnnAttention> c;
  try {
    c = std::make_unique<CudnnAttention>();
  } catch (const Error& e) {
    lines.push_back(std::string("no cuDNN handle: ") + e.what());
    return lines;
  }
  for (const AttnShape& s : shapes) {
    std::string why;
    const bool ok = c->prepare(s, {}, true, &why);
    lines.push_back(fmt::format("{}: {}", shape_text(s), ok ? c->describe(s, {}) : "refused: " + why));
  }
  return lines;
}

}  // namespace lt::cuda
