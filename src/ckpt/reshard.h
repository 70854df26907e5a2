// Loading a checkpoint into any (tp, pp, dp) layout. Every stored tensor records its global
// shape and which slice it holds, so the loader copies the target's slice straight out of
// whichever stored pieces overlap it (reading only the rows both hold): a rank resuming at
// the saved layout reads just its own files' bytes, and resharding reads about its share.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/safetensors.h"
#include "ckpt/tensor_source.h"

namespace lt {

// Where one stored piece of a global tensor sits: its local shape, split, and (optimizer
// state) the element range [begin, end) of the flattened local tensor the file holds.
struct StoredSlice {
  const SafetensorsFile* file = nullptr;
  std::string tensor;  // name inside the file
  std::vector<int64_t> shape, global_shape;
  int split_dim = -1;
  int64_t split_begin = 0;
  size_t begin = 0, end = 0;
};

// The model part of a checkpoint as a TensorSource with global Hugging Face tensors in the
// stored dtype (a checkpoint converted from bf16 hands out bf16).
class CheckpointSource : public TensorSource {
 public:
  explicit CheckpointSource(const CheckpointRef& ref);
  const LlamaConfig& config() const override { return meta_.config; }
  bool has(const std::string& name) const override { return pieces_.count(name) > 0; }
  Tensor get(const std::string& name) const override;
  std::string describe() const override { return "checkpoint '" + dir_ + "'"; }
  DType stored_dtype() const override { return meta_.model_dtype; }
  void release(const std::string& name) const override;
  const CheckpointMeta& meta() const { return meta_; }
  // The stored pieces of a tensor (throws when absent).
  const std::vector<StoredSlice>& pieces(const std::string& name) const;

 private:
  std::string dir_;
  CheckpointMeta meta_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::vector<StoredSlice>> pieces_;
};

// Model weights of a checkpoint into `dst` (target.total() floats), at any layout.
void load_model(const CheckpointRef& ckpt, const ParamLayout& target, float* dst);
// The same through FlatAccess, one tensor at a time (padding between tensors is not written).
void load_model(const CheckpointRef& ckpt, const ParamLayout& target, FlatAccess& dst);

// AdamW state of flat elements [begin, end) of the target shard (a ZeRO-1 partition, or the
// whole shard) from a checkpoint saved at any tp/pp/optim_parts layout. master/exp_avg/
// exp_avg_sq receive end - begin floats each (padding between tensors is zeroed).
void load_optimizer(const CheckpointRef& ckpt, const ParamLayout& target, size_t begin, size_t end, float* master,
                    float* exp_avg, float* exp_avg_sq);
// The same through FlatAccess (element 0 of each is flat element `begin`; padding between
// tensors is not written).
void load_optimizer(const CheckpointRef& ckpt, const ParamLayout& target, size_t begin, size_t end,
                    FlatAccess& master, FlatAccess& exp_avg, FlatAccess& exp_avg_sq);

}  // namespace lt
