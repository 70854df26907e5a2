#include "core/dtype.h"

#include "core/error.h"

namespace lt {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::U16: return 2;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::U32: return "U32";
    case DType::U16: return "U16";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  return "?";
}

DType parse_dtype(std::string_view name, const std::string& what) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::U32, DType::U16, DType::I64, DType::U8})
    if (dtype_name(t) == name) return t;
  fail("{}: unknown dtype '{}' (expected one of F32, F16, BF16, I32, U32, U16, I64, U8)", what, name);
}

}  // namespace lt
