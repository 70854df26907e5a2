// Element types that cross file boundaries (safetensors, token shards, checkpoints).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lt {

enum class DType : uint8_t { F32, F16, BF16, I32, U32, U16, I64, U8 };

size_t dtype_size(DType t);
// The safetensors spelling: "F32", "BF16", ...
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; throws lt::Error naming `what` for an unknown one.
DType parse_dtype(std::string_view name, const std::string& what);

}  // namespace lt
