// Causal GQA attention for the CUDA stage: cuDNN's fused flash attention (SDPA) where cuDNN
// takes the shape, our flash kernels (attention.h) where it does not. Same inputs and outputs
// either way: bf16 q, k, v [B·T, heads·hd] rows (row strides as AttnStrides), bf16 output,
// lse [B, H, T] in natural log (cuDNN's "Stats"), bf16 dq, dk, dv.
//
// cuDNN is driven through its backend graph API (cudnn_graph.h; no frontend library): the
// graphs of sdpa_graph.h become backend descriptors, cuDNN's heuristics rank the engines, and
// the first engine that finalizes an execution plan for the shape is kept — once per
// (shape, strides) — with its workspace. The backward asks for the deterministic graph and
// skips engines that carry cuDNN's "non-deterministic" numerical note. When cuDNN refuses
// (no engine, a finalize error, no GPU, LT_ATTENTION=flash), the shape runs our kernels, and
// the choice and its reason are logged once per shape.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/device.h"

namespace lt::cuda {

// cuDNN's fused attention alone. Constructing it creates a cuDNN handle (throws without a GPU).
class CudnnAttention {
 public:
  CudnnAttention();
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // Builds the forward and backward plans of the shape (once); false with the reason when
  // cuDNN refuses either. Never throws for a refusal.
  bool prepare(const AttnShape& s, const AttnStrides& ld, bool deterministic, std::string* why);
  // "engine 7 (forward, workspace 0 MiB); engine 8 (backward, workspace 512 MiB)" after prepare.
  std::string describe(const AttnShape& s, const AttnStrides& ld) const;

  // Both need a successful prepare() of the shape first.
  void forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, const AttnShape& s,
               const AttnStrides& ld, cudaStream_t stream);
  void backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out, const bf16* dout, const float* lse,
                bf16* dq, bf16* dk, bf16* dv, const AttnShape& s, const AttnStrides& ld, cudaStream_t stream);

  // Device workspace held for the largest plan so far.
  size_t workspace_bytes() const { return workspace_.bytes(); }

  struct Plan;   // a finalized cuDNN execution plan (sdpa.cpp)
  struct Entry;  // a shape's forward and backward plans, or why cuDNN refused it

 private:
  using Key = std::tuple<int, int, int, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         bool>;
  static Key key(const AttnShape& s, const AttnStrides& ld, bool deterministic);
  Entry& entry(const AttnShape& s, const AttnStrides& ld) const;

  void* handle_ = nullptr;  // cudnnHandle_t
  std::map<Key, std::unique_ptr<Entry>> plans_;
  DeviceBuffer workspace_;
  bool deterministic_ = true;
};

enum class AttnBackend { cudnn, flash };

struct AttnChoice {
  AttnBackend backend = AttnBackend::flash;
  std::string reason;  // why this backend (the engines chosen, or why cuDNN was not used)
};

// Which backend a shape takes, from what was found out about it (pure; tests cover it):
// cuDNN when allowed and it took the shape, else our kernels when they take it; an lt::Error
// naming both reasons when neither does.
AttnChoice choose_attention(bool cudnn_allowed, bool cudnn_took, const std::string& cudnn_reason, bool flash_takes,
                            const std::string& flash_reason);

// The attention a stage holds: one per stream.
class Attention {
 public:
  // use_cudnn false (or LT_ATTENTION=flash in the environment) runs our kernels only.
  explicit Attention(bool use_cudnn = true, bool deterministic = true);
  ~Attention();

  // The backend of a shape (decided once, logged once), with its plans built and its workspace
  // allocated: call it for every shape before the step loop, so no step allocates.
  const AttnChoice& choose(const AttnShape& s, const AttnStrides& ld = {});

  void forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, const AttnShape& s,
               cudaStream_t stream, const AttnStrides& ld = {});
  void backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out, const bf16* dout, const float* lse,
                bf16* dq, bf16* dk, bf16* dv, const AttnShape& s, cudaStream_t stream, const AttnStrides& ld = {});

 private:
  std::unique_ptr<CudnnAttention> cudnn_;
  std::string cudnn_unavailable_;  // why cuDNN is not used at all ("" when it may be)
  bool deterministic_;
  std::map<std::string, AttnChoice> choices_;  // by shape and strides
  DeviceBuffer flash_workspace_;
};

// What cuDNN supports on this machine: per shape, whether the forward and the deterministic
// backward build, with the engines and workspaces, or the refusal. For the device check.
std::vector<std::string> probe_cudnn_attention(const std::vector<AttnShape>& shapes);

}  // namespace lt::cuda
