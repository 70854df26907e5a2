// llama2.c's legacy "version 0" checkpoint (run.c / export.py legacy_export) as a TensorSource,
// and its writer (so a model trained here runs in llama2.c).
//
// Layout: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means an untied classifier follows), then fp32 arrays
// token_embedding[V,D], rms_att[L,D], wq[L,D,D], wk[L,KV,D], wv[L,KV,D], wo[L,D,D],
// rms_ffn[L,D], w1[L,F,D], w2[L,D,F], w3[L,F,D], rms_final[D], freq_cis_real[seq,hd/2],
// freq_cis_imag[seq,hd/2] (unused), [wcls[V,D]]. w1 = gate, w3 = up, w2 = down.
//
// llama2.c rotates adjacent pairs (2i, 2i+1) of each head (Meta's layout); Hugging Face
// rotates (j, j + hd/2). The source permutes q/k rows per head so every tensor it hands out
// is in HF order: HF row j <- Meta row 2j, HF row hd/2 + j <- Meta row 2j + 1.
#pragma once
#include <string>

#include "ckpt/tensor_source.h"
#include "core/file.h"

namespace lt {

class Llama2cSource : public TensorSource {
 public:
  explicit Llama2cSource(const std::string& path);
  const LlamaConfig& config() const override { return config_; }
  bool has(const std::string& name) const override;
  Tensor get(const std::string& name) const override;
  std::string describe() const override { return "llama2.c checkpoint '" + map_.path() + "'"; }
  DType stored_dtype() const override { return DType::F32; }

 private:
  // Byte offset and shape of a tensor in the file, before any permutation.
  bool locate(const std::string& name, size_t* offset, std::vector<int64_t>* shape, bool* rope) const;
  MappedFile map_;
  LlamaConfig config_;
};

// Writes `src` as a llama2.c version-0 file (q/k permuted back to Meta order, the legacy
// freq_cis tables filled in, wcls appended when untied), streaming tensor by tensor.
void write_llama2c(const TensorSource& src, const std::string& path);

// True when `path` starts with a plausible llama2.c header (positive sizes, file size matches).
bool looks_like_llama2c(const std::string& path);

// Per-head row permutations of a [n_heads * hd, cols] fp32 matrix between Meta's interleaved
// RoPE order and HF's rotate-half order.
void permute_meta_to_hf(const float* src, float* dst, int n_heads, int hd, int64_t cols);
void permute_hf_to_meta(const float* src, float* dst, int n_heads, int hd, int64_t cols);

}  // namespace lt
