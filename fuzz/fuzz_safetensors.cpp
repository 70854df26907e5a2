// libFuzzer target: the safetensors header parser must throw lt::Error or succeed, and every
// tensor it accepts must lie inside the input.
#include <cstdlib>

#include "ckpt/safetensors.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto h = lt::parse_safetensors(data, size, "fuzz");
    for (const auto& t : h.tensors) {
      if (h.data_start + t.end > size) std::abort();
      volatile uint8_t sink = 0;
      if (t.nbytes()) sink = data[h.data_start + t.end - 1];  // ASan checks the claim
      (void)sink;
    }
  } catch (const lt::Error&) {
  }
  return 0;
}
