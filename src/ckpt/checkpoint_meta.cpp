#include "ckpt/checkpoint_meta.h"

#include <fmt/format.h>

#include "core/error.h"

namespace lt {

using json = nlohmann::json;

std::string model_shard_file(int t, int p) { return fmt::format("model/tp{}_pp{}.safetensors", t, p); }
std::string optim_shard_file(int t, int p, int d) { return fmt::format("optim/tp{}_pp{}_dp{}.safetensors", t, p, d); }

std::vector<std::string> expected_files(const CheckpointMeta& m) {
  std::vector<std::string> out;
  for (int p = 0; p < m.pp; ++p)
    for (int t = 0; t < m.tp; ++t) out.push_back(model_shard_file(t, p));
  for (int p = 0; p < m.pp; ++p)
    for (int t = 0; t < m.tp; ++t)
      for (int d = 0; d < m.optim_parts; ++d) out.push_back(optim_shard_file(t, p, d));
  return out;
}

std::string meta_to_json(const CheckpointMeta& m) {
  json j;
  j["format"] = "llamatrain-checkpoint";
  j["version"] = m.version;
  j["step"] = m.step;
  j["tokens_seen"] = m.tokens_seen;
  j["model"] = json::parse(hf_config_json(m.config, "float32"));
  j["model"]["name"] = m.config.name;
  j["layout"] = {{"tp", m.tp}, {"pp", m.pp}, {"dp", m.dp}, {"stage_starts", m.stage_starts},
                 {"optim_parts", m.optim_parts}};
  j["model_dtype"] = dtype_name(m.model_dtype);
  j["data"] = {{"position", m.data_position}, {"seed", m.data_seed}};
  json rng = json::object();
  for (const auto& [name, r] : m.rng) rng[name] = {{"seed", r.seed}, {"counter", r.counter}};
  j["rng"] = rng;
  j["scheduler"] = m.scheduler;
  j["extra"] = m.extra;
  json files = json::object();
  for (const auto& [name, d] : m.files) files[name] = {{"size", d.size}, {"xxh64", fmt::format("{:016x}", d.xxh64)}};
  j["files"] = files;
  return j.dump(2) + "\n";
}

namespace {

struct Reader {
  const std::string& path;
  const json& at(const json& obj, const char* key, const char* where) {
    auto it = obj.find(key);
    if (it == obj.end()) fail("{}: missing field '{}{}'", path, where, key);
    return *it;
  }
  int64_t integer(const json& obj, const char* key, const char* where, int64_t lo, int64_t hi) {
    const json& v = at(obj, key, where);
    LT_CHECK(v.is_number_integer(), "{}: field '{}{}' must be an integer, got {}", path, where, key, v.dump());
    // Unsigned values above INT64_MAX do not fit; check before converting.
    LT_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(INT64_MAX), "{}: field '{}{}' is out of range",
             path, where, key);
    int64_t x = v.get<int64_t>();
    LT_CHECK(x >= lo && x <= hi, "{}: field '{}{}' = {} is out of range [{}, {}]", path, where, key, x, lo, hi);
    return x;
  }
  uint64_t u64(const json& obj, const char* key, const char* where) {
    const json& v = at(obj, key, where);
    LT_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
             "{}: field '{}{}' must be a non-negative integer, got {}", path, where, key, v.dump());
    return v.get<uint64_t>();
  }
  const json& object(const json& obj, const char* key, const char* where) {
    const json& v = at(obj, key, where);
    LT_CHECK(v.is_object(), "{}: field '{}{}' must be an object, got {}", path, where, key, v.type_name());
    return v;
  }
};

}  // namespace

CheckpointMeta parse_checkpoint_meta(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  LT_CHECK(j.is_object(), "{}: expected a JSON object", path);
  Reader r{path};
  const json& fmt_v = r.at(j, "format", "");
  LT_CHECK(fmt_v == "llamatrain-checkpoint", "{}: format is {}, expected \"llamatrain-checkpoint\"", path,
           fmt_v.dump());
  CheckpointMeta m;
  m.version = int(r.integer(j, "version", "", 1, 1 << 20));
  LT_CHECK(m.version == kCheckpointFormatVersion,
           "{}: checkpoint format version {} is not supported (this build reads version {})", path, m.version,
           kCheckpointFormatVersion);
  m.step = r.integer(j, "step", "", 0, INT64_MAX);
  m.tokens_seen = r.integer(j, "tokens_seen", "", 0, INT64_MAX);
  const json& model = r.object(j, "model", "");
  try {
    m.config = parse_hf_config(model.dump(), path + ": field 'model'");
  } catch (const json::exception& e) {  // parse_hf_config reports its own errors as lt::Error
    fail("{}: field 'model': {}", path, e.what());
  }
  if (model.contains("name") && model["name"].is_string()) m.config.name = model["name"].get<std::string>();
  const json& layout = r.object(j, "layout", "");
  m.tp = int(r.integer(layout, "tp", "layout.", 1, 1 << 16));
  m.pp = int(r.integer(layout, "pp", "layout.", 1, 1 << 16));
  m.dp = int(r.integer(layout, "dp", "layout.", 1, 1 << 24));
  m.optim_parts = int(r.integer(layout, "optim_parts", "layout.", 0, 1 << 24));
  LT_CHECK(int64_t(m.tp) * m.pp * std::max(1, m.optim_parts) <= (1 << 20), "{}: layout has too many files", path);
  const json& ss = r.at(layout, "stage_starts", "layout.");
  LT_CHECK(ss.is_array(), "{}: field 'layout.stage_starts' must be an array", path);
  for (const auto& x : ss) {
    LT_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() < (1 << 24),
             "{}: field 'layout.stage_starts' must hold layer indices", path);
    m.stage_starts.push_back(x.get<int>());
  }
  const json& dt = r.at(j, "model_dtype", "");
  LT_CHECK(dt.is_string(), "{}: field 'model_dtype' must be a string", path);
  m.model_dtype = parse_dtype(dt.get<std::string>(), path + ": field 'model_dtype'");
  const json& data = r.object(j, "data", "");
  m.data_position = r.integer(data, "position", "data.", 0, INT64_MAX);
  m.data_seed = r.u64(data, "seed", "data.");
  const json& rng = r.object(j, "rng", "");
  for (auto it = rng.begin(); it != rng.end(); ++it) {
    LT_CHECK(it->is_object(), "{}: field 'rng.{}' must be an object", path, it.key());
    m.rng[it.key()] = {r.u64(*it, "seed", "rng.*."), r.u64(*it, "counter", "rng.*.")};
  }
  m.scheduler = r.object(j, "scheduler", "");
  m.extra = r.object(j, "extra", "");
  const json& files = r.object(j, "files", "");
  for (auto it = files.begin(); it != files.end(); ++it) {
    LT_CHECK(it->is_object(), "{}: field 'files.{}' must be an object", path, it.key());
    const std::string& name = it.key();
    LT_CHECK(!name.empty() && name[0] != '/' && name.find("..") == std::string::npos,
             "{}: file name '{}' must be a relative path inside the checkpoint", path, name);
    FileDigest d;
    d.size = r.u64(*it, "size", "files.*.");
    const json& h = r.at(*it, "xxh64", "files.*.");
    LT_CHECK(h.is_string() && h.get<std::string>().size() == 16 &&
                 h.get<std::string>().find_first_not_of("0123456789abcdef") == std::string::npos,
             "{}: field 'files.{}.xxh64' must be 16 lowercase hex digits", path, name);
    d.xxh64 = std::stoull(h.get<std::string>(), nullptr, 16);
    m.files[name] = d;
  }
  for (const auto& f : expected_files(m))
    LT_CHECK(m.files.count(f), "{}: 'files' does not list {}, which the layout (tp={}, pp={}, optim_parts={}) needs",
             path, f, m.tp, m.pp, m.optim_parts);
  return m;
}

}  // namespace lt
