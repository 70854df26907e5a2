// Named tensors from anywhere (a Hugging Face directory, a llama2.c file, one of our
// checkpoints), always with Hugging Face names, shapes and RoPE order, and the loader that
// fills one (tp, pp) shard's flat fp32 weight buffer from them.
//
// A source hands out whole (global) tensors in their stored dtype. Most are zero-copy views
// of a mapped file; a source that must compute a tensor (llama2.c's RoPE permutation, a
// checkpoint reassembling tp slices) returns owned bytes. Only the tensors in use are
// resident, so converting or loading needs memory for a few tensors, not the model.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/flat_access.h"
#include "model/config.h"
#include "model/layout.h"

namespace lt {

struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
  std::shared_ptr<const void> owner;  // keeps computed bytes alive; null for mapped views

  int64_t numel() const;
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const LlamaConfig& config() const = 0;
  virtual bool has(const std::string& name) const = 0;
  // The whole tensor; throws naming the source when it is absent or unreadable.
  virtual Tensor get(const std::string& name) const = 0;
  // "Hugging Face directory 'x'", for errors.
  virtual std::string describe() const = 0;
  // The dtype the source stores floating-point weights in (a converted checkpoint keeps it).
  virtual DType stored_dtype() const = 0;
  // Hint: `name` will not be needed again soon; mapped sources drop its pages from RSS.
  virtual void release(const std::string& name) const {}
};

// Opens a model given as a Hugging Face directory (config.json), one of our checkpoints (a
// step directory with meta.json, or a checkpoint root whose newest valid step is used), or a
// llama2.c .bin file (a config.json or *.safetensors file stands for its directory). Throws
// saying what was expected when `path` is none of these.
std::unique_ptr<TensorSource> open_weights(const std::string& path);

// Fills `dst` (layout.total() floats) with this shard's slices of every parameter, converting
// F16/BF16 to F32. Checks every global shape against layout.config(). A tied LM-head copy
// (layout param with tied_copy) is read from "lm_head.weight" when the source has it, else
// from "model.embed_tokens.weight". Padding between tensors is zeroed.
void load_weights(const TensorSource& src, const ParamLayout& layout, float* dst);
// The same through FlatAccess, one tensor at a time (padding between tensors is not written).
void load_weights(const TensorSource& src, const ParamLayout& layout, FlatAccess& dst);

// The name a layout parameter is read from in `src` (handles tied copies).
std::string source_name(const TensorSource& src, const ParamInfo& p);
// Checks that `t` (named `name` in `src`) has the shape `global_shape` and a float dtype.
void check_global_shape(const TensorSource& src, const std::string& name, const Tensor& t,
                        const std::vector<int64_t>& global_shape);

// Copies the slice of `global` described by `p` (its split_dim/split_begin/shape) into `dst`,
// converting from global.dtype to `dst_dtype` (F32, F16, BF16; identical dtypes copy bytes).
void copy_slice(const Tensor& global, const ParamInfo& p, DType dst_dtype, void* dst);

// Element conversion between F32, F16 and BF16 (same dtype: memcpy).
void convert_elements(DType from, const void* src, DType to, void* dst, size_t n);
bool is_float_dtype(DType t);

}  // namespace lt
