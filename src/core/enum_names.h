// Names of enumerated settings (precision, device, schedule, ...), declared once next to each
// enum and used for parsing, printing and help texts:
//
//   enum class Precision { fp32, bf16 };
//   constexpr EnumName<Precision> kPrecisionNames[] = {{Precision::fp32, "fp32"}, {Precision::bf16, "bf16"}};
//   constexpr std::span<const EnumName<Precision>> enum_names(Precision) { return kPrecisionNames; }
//
// enum_names is found by argument-dependent lookup, so parse_enum / enum_name / enum_choices
// work for any enum that declares it.
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lt {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

template <class E>
const char* enum_name(E e) {
  for (const auto& n : enum_names(E{}))
    if (n.value == e) return n.name;
  return "?";
}

template <class E>
std::optional<E> parse_enum(std::string_view text) {
  for (const auto& n : enum_names(E{}))
    if (text == n.name) return n.value;
  return std::nullopt;
}

// "a, b or c" (for messages) or with `sep` "|" "a|b|c" (for help columns).
template <class E>
std::string enum_choices(const char* sep = nullptr) {
  std::string out;
  auto names = enum_names(E{});
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += sep ? sep : (i + 1 == names.size() ? " or " : ", ");
    out += names[i].name;
  }
  return out;
}

}  // namespace lt
