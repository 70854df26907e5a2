// libFuzzer target: a prepared dataset's meta.json must parse or throw lt::Error (never a JSON
// library exception), and the split listing of an accepted file must work for every split.
#include <string>

#include "core/error.h"
#include "data/dataset_meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    nlohmann::json meta = lt::data::parse_dataset_meta(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& [name, split] : meta["splits"].items()) {
      try {
        lt::data::dataset_split_shards(meta, name, "fuzz");
      } catch (const lt::Error&) {
      }
    }
    lt::data::dataset_split_shards(meta, "train", "fuzz");
  } catch (const lt::Error&) {
  }
  return 0;
}
