#include "ckpt/tensor_source.h"

#include <cstring>

#include "core/bf16.h"
#include "core/error.h"

namespace lt {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

void to_f32(DType from, const void* src, float* dst, size_t n) {
  switch (from) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_float(h);
      }
      return;
    }
    case DType::F16: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = f16_to_float(h);
      }
      return;
    }
    default: fail("cannot convert {} to F32", dtype_name(from));
  }
}

void from_f32(const float* src, DType to, void* dst, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  switch (to) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = float_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = float_to_f16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    default: fail("cannot convert F32 to {}", dtype_name(to));
  }
}

}  // namespace

void convert_elements(DType from, const void* src, DType to, void* dst, size_t n) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  if (to == DType::F32) return to_f32(from, src, static_cast<float*>(dst), n);
  if (from == DType::F32) return from_f32(static_cast<const float*>(src), to, dst, n);
  // F16 <-> BF16 through F32, in chunks.
  float tmp[1024];
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  for (size_t i = 0; i < n; i += 1024) {
    size_t k = std::min<size_t>(1024, n - i);
    to_f32(from, s + 2 * i, tmp, k);
    from_f32(tmp, to, d + 2 * i, k);
  }
}

void copy_slice(const Tensor& global, const ParamInfo& p, DType dst_dtype, void* dst) {
  const size_t es = dtype_size(global.dtype), ds = dtype_size(dst_dtype);
  const uint8_t* src = global.bytes.data();
  auto* out = static_cast<uint8_t*>(dst);
  if (p.split_dim <= 0) {
    // Replicated, or a row block: one contiguous run.
    size_t row = p.shape.size() > 1 ? size_t(p.shape[1]) : 1;
    size_t first = p.split_dim == 0 ? size_t(p.split_begin) * row : 0;
    LT_CHECK((first + p.numel) * es <= global.bytes.size(), "tensor '{}': slice outside the tensor", p.name);
    convert_elements(global.dtype, src + first * es, dst_dtype, out, p.numel);
    return;
  }
  // Column block of a [rows, cols] tensor: one run per row.
  size_t rows = size_t(p.shape[0]), cols = size_t(p.shape[1]), gcols = size_t(global.shape[1]);
  LT_CHECK(size_t(p.split_begin) + cols <= gcols && rows * gcols * es <= global.bytes.size(),
           "tensor '{}': slice outside the tensor", p.name);
  for (size_t r = 0; r < rows; ++r)
    convert_elements(global.dtype, src + (r * gcols + size_t(p.split_begin)) * es, dst_dtype, out + r * cols * ds,
                     cols);
}

std::string source_name(const TensorSource& src, const ParamInfo& p) {
  if (p.tied_copy && !src.has(p.name)) return "model.embed_tokens.weight";
  return p.name;
}

void check_global_shape(const TensorSource& src, const std::string& name, const Tensor& t,
                        const std::vector<int64_t>& global_shape) {
  if (t.shape != global_shape)
    fail("{}: tensor '{}' has shape {}, but the model config expects {}", src.describe(), name, shape_str(t.shape),
         shape_str(global_shape));
  if (!is_float_dtype(t.dtype))
    fail("{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", src.describe(), name, dtype_name(t.dtype));
  LT_CHECK(t.bytes.size() == size_t(t.numel()) * dtype_size(t.dtype), "{}: tensor '{}' has {} bytes, expected {}",
           src.describe(), name, t.bytes.size(), size_t(t.numel()) * dtype_size(t.dtype));
}

void load_weights(const TensorSource& src, const ParamLayout& layout, FlatAccess& dst) {
  for (const auto& p : layout.params()) {
    std::string name = source_name(src, p);
    if (!src.has(name)) fail("{}: missing tensor '{}'", src.describe(), name);
    Tensor t = src.get(name);
    check_global_shape(src, name, t, p.global_shape);
    copy_slice(t, p, DType::F32, dst.write(p.offset, p.numel));
    src.release(name);
  }
  dst.flush();
}

void load_weights(const TensorSource& src, const ParamLayout& layout, float* dst) {
  std::memset(dst, 0, layout.total() * sizeof(float));
  HostFlat d(dst, layout.total());
  load_weights(src, layout, d);
}

}  // namespace lt
