#include "data/dataset_meta.h"

#include <filesystem>

#include "core/error.h"
#include "core/file.h"

namespace lt::data {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Field checks that name the file and the field ("splits.train.blocks").
struct Fields {
  const std::string& path;
  const json& at(const json& obj, const std::string& key, const std::string& where) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail("{}: field '{}{}' is missing", path, where, key);
    return *it;
  }
  void unsigned_int(const json& obj, const std::string& key, const std::string& where) const {
    const json& v = at(obj, key, where);
    LT_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
             "{}: field '{}{}' must be an integer >= 0", path, where, key);
  }
  void string(const json& obj, const std::string& key, const std::string& where) const {
    LT_CHECK(at(obj, key, where).is_string(), "{}: field '{}{}' must be a string", path, where, key);
  }
  void object(const json& v, const std::string& name) const {
    LT_CHECK(v.is_object(), "{}: field '{}' must be an object", path, name);
  }
};

}  // namespace

json parse_dataset_meta(const std::string& text, const std::string& path) {
  json meta = json::parse(text, nullptr, false);
  if (meta.is_discarded()) fail("{}: not valid JSON", path);
  LT_CHECK(meta.is_object(), "{}: expected a JSON object", path);
  Fields f{path};
  const json& format = f.at(meta, "format", "");
  LT_CHECK(format.is_string() && format.get<std::string>() == "llamatrain-dataset",
           "{}: \"format\" is not \"llamatrain-dataset\"", path);
  const json& version = f.at(meta, "version", "");
  LT_CHECK(version.is_number_integer() && version.get<int64_t>() >= 1 && version.get<int64_t>() <= 3,
           "{}: dataset version {} is not supported (1: uint16 ids, 2: uint32 ids, 3: with document boundaries)",
           path, version.dump());
  const json& block = f.at(meta, "block_size", "");
  LT_CHECK(block.is_number_integer() && block.get<int64_t>() >= 1 && block.get<int64_t>() <= INT32_MAX,
           "{}: field 'block_size' must be an integer in [1, {}]", path, INT32_MAX);
  const json& dtype = f.at(meta, "dtype", "");
  LT_CHECK(dtype.is_string() && (dtype.get<std::string>() == "uint16" || dtype.get<std::string>() == "uint32"),
           "{}: field 'dtype' must be \"uint16\" or \"uint32\"", path);
  f.unsigned_int(meta, "documents", "");
  const json& splits = f.at(meta, "splits", "");
  f.object(splits, "splits");
  for (const auto& [name, s] : splits.items()) {
    std::string where = "splits." + name + ".";
    f.object(s, "splits." + name);
    for (const char* k : {"blocks", "tokens", "documents", "dropped_tokens"}) f.unsigned_int(s, k, where);
    const json& shards = f.at(s, "shards", where);
    LT_CHECK(shards.is_array(), "{}: field '{}shards' must be a list of file names", path, where);
    for (const json& sh : shards) {
      std::string n = sh.is_string() ? sh.get<std::string>() : "";
      LT_CHECK(!n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos,
               "{}: field '{}shards' must hold plain file names in the dataset directory, got {}", path, where,
               sh.dump());
    }
  }
  if (meta.contains("tokenizer")) {
    const json& t = meta["tokenizer"];
    f.object(t, "tokenizer");
    for (const char* k : {"kind", "file", "path", "hash"})
      if (t.contains(k)) f.string(t, k, "tokenizer.");
    for (const char* k : {"vocab_size", "bos_id", "eos_id"})
      if (t.contains(k))
        LT_CHECK(t[k].is_number_integer(), "{}: field 'tokenizer.{}' must be an integer", path, k);
  }
  return meta;
}

json read_dataset_meta(const std::string& dir) {
  std::string path = (fs::path(dir) / "meta.json").string();
  if (!fs::is_directory(dir)) fail("dataset {} is not a directory", dir);
  if (!fs::exists(path)) fail("{} has no meta.json: not a prepared dataset (or an interrupted prepare)", dir);
  return parse_dataset_meta(read_file(path), path);
}

std::vector<std::string> dataset_split_shards(const json& meta, const std::string& split, const std::string& path) {
  const json& splits = meta.at("splits");
  if (!splits.contains(split)) fail("{}: dataset has no \"{}\" split", path, split);
  std::vector<std::string> out;
  for (const json& s : splits[split]["shards"]) out.push_back(s.get<std::string>());
  if (out.empty()) fail("{}: split \"{}\" is empty", path, split);
  return out;
}

}  // namespace lt::data
