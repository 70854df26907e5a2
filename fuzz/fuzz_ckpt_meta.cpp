// libFuzzer target: the checkpoint meta.json parser must throw lt::Error or succeed.
#include <string>

#include "ckpt/checkpoint_meta.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lt::parse_checkpoint_meta(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const lt::Error&) {
  }
  return 0;
}
