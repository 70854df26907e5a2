#include "train/run_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/error.h"

namespace lt {

namespace {

// The declaration list as data: one entry per key, with a parser that fills the RunConfig field.
struct KeySpec {
  const char* key;
  const char* def;  // nullptr: required
  KeyRange range;
  const char* help;
  std::string (*type)();
  std::string (*allowed)(KeyRange);
  void (*parse)(RunConfig&, const char* key, const std::string& text, KeyRange);
};

template <class T>
constexpr bool kIsEnum = std::is_enum_v<T>;

template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, std::string>) return "string";
  else if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, double>) return "number";
  else if constexpr (std::is_same_v<T, std::vector<int>>) return "int list";
  else if constexpr (std::is_same_v<T, std::vector<DataSpec>>) return "list";
  else if constexpr (std::is_same_v<T, StageCut>) return "cut";
  else if constexpr (kIsEnum<T>) return "enum";
  else return "int";
}

std::string number_text(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return fmt::format("{:g}", x);
}

template <class T>
std::string allowed_text(KeyRange r) {
  if constexpr (kIsEnum<T>) return enum_choices<T>(", ");
  else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool> ||
                     std::is_same_v<T, std::vector<DataSpec>>)
    return "";
  else if constexpr (std::is_same_v<T, StageCut>) return "auto, even, [0,a,b,...]";
  else if (std::isinf(r.lo) && std::isinf(r.hi)) return "";
  else if (std::isinf(r.hi)) return ">= " + number_text(r.lo);
  else return "[" + number_text(r.lo) + ", " + number_text(r.hi) + (r.hi_open ? ")" : "]");
}

int64_t to_int(const char* key, const std::string& v) {
  try {
    size_t pos = 0;
    double d = std::stod(v, &pos);  // accepts 1e3 and 1000
    if (pos == v.size() && std::floor(d) == d && std::abs(d) < 9.2e18) return int64_t(d);
  } catch (...) {
  }
  fail("config key '{}': expected an integer, got '{}'", key, v);
}
double to_float(const char* key, const std::string& v) {
  try {
    size_t pos = 0;
    double d = std::stod(v, &pos);
    if (pos == v.size() && std::isfinite(d)) return d;
  } catch (...) {
  }
  fail("config key '{}': expected a number, got '{}'", key, v);
}
bool to_bool(const char* key, const std::string& v) {
  if (v == "true" || v == "True" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "False" || v == "0" || v == "no" || v == "off") return false;
  fail("config key '{}': expected true or false, got '{}'", key, v);
}
void check_range(const char* key, double x, KeyRange r, const std::string& text) {
  if (x >= r.lo && (r.hi_open ? x < r.hi : x <= r.hi)) return;
  if (std::isinf(r.hi)) fail("config key '{}' must be >= {}, got {}", key, number_text(r.lo), text);
  fail("config key '{}' must be in [{}, {}{}, got {}", key, number_text(r.lo), number_text(r.hi), r.hi_open ? ")" : "]",
       text);
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(' '));
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

// "a,b,c" -> {"a", "b", "c"} (empty text: none).
std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  size_t p = 0;
  while (!v.empty() && p <= v.size()) {
    size_t q = v.find(',', p);
    if (q == std::string::npos) q = v.size();
    out.push_back(trim(v.substr(p, q - p)));
    p = q + 1;
  }
  return out;
}

bool is_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// The default name of a data set: its path's last component, or its parent's for a split path
// (".../validation", ".../train").
std::string default_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto last = [](const std::string& x) { return x.substr(x.find_last_of('/') + 1); };
  std::string n = last(p);
  if ((n == "validation" || n == "train") && p.find('/') != std::string::npos) n = last(p.substr(0, p.find_last_of('/')));
  return n;
}

// One "name=path@weight" / "name=path@<n>tokens" entry.
DataSpec parse_spec(const char* key, const std::string& text) {
  DataSpec d;
  std::string rest = text;
  if (size_t eq = rest.find('='); eq != std::string::npos && is_name(rest.substr(0, eq))) {
    d.name = rest.substr(0, eq);
    rest = rest.substr(eq + 1);
  }
  if (size_t at = rest.rfind('@'); at != std::string::npos) {
    std::string w = rest.substr(at + 1);
    rest = rest.substr(0, at);
    const bool budget = w.size() > 6 && w.compare(w.size() - 6, 6, "tokens") == 0;
    if (budget) w = w.substr(0, w.size() - 6);
    try {
      size_t pos = 0;
      double x = std::stod(w, &pos);
      if (pos != w.size() || !std::isfinite(x) || x < 0) throw std::invalid_argument(w);
      if (budget) {
        LT_CHECK(x >= 1 && std::floor(x) == x, "config key '{}': entry '{}': a token budget must be a whole number >= 1",
                 key, text);
        d.tokens = int64_t(x);
      } else {
        d.weight = x;
      }
    } catch (const std::logic_error&) {
      fail("config key '{}': entry '{}': expected name=path@weight (a number >= 0) or name=path@<n>tokens", key, text);
    }
  }
  d.path = trim(rest);
  LT_CHECK(!d.path.empty(), "config key '{}': entry '{}' has no path (expected name=path)", key, text);
  if (d.name.empty()) d.name = default_name(d.path);
  LT_CHECK(is_name(d.name), "config key '{}': entry '{}': name '{}' may hold only letters, digits, '_', '-' and '.'",
           key, text, d.name);
  return d;
}

template <class T>
void parse_value(T& out, const char* key, const std::string& v, KeyRange r) {
  if constexpr (std::is_same_v<T, std::string>) {
    out = v;
  } else if constexpr (std::is_same_v<T, bool>) {
    out = to_bool(key, v);
  } else if constexpr (std::is_same_v<T, double>) {
    out = to_float(key, v);
    check_range(key, out, r, v);
  } else if constexpr (kIsEnum<T>) {
    auto e = parse_enum<T>(v);
    if (!e) fail("config key '{}': expected {}, got '{}'", key, enum_choices<T>(), v);
    out = *e;
  } else if constexpr (std::is_same_v<T, StageCut>) {
    out = parse_stage_cut(v, fmt::format("config key '{}'", key));
  } else if constexpr (std::is_same_v<T, std::vector<int>>) {
    out.clear();
    for (const std::string& item : split_list(v)) {
      int64_t x = to_int(key, item);
      check_range(key, double(x), r, item);
      out.push_back(int(x));
    }
  } else if constexpr (std::is_same_v<T, std::vector<DataSpec>>) {
    out.clear();
    for (const std::string& item : split_list(v)) {
      out.push_back(parse_spec(key, item));
      for (size_t i = 0; i + 1 < out.size(); ++i)
        LT_CHECK(out[i].name != out.back().name,
                 "config key '{}': two entries are named '{}' (name them: name=path)", key, out.back().name);
    }
  } else {
    int64_t x = to_int(key, v);
    check_range(key, double(x), r, v);
    LT_CHECK(x >= int64_t(std::numeric_limits<T>::min()) && uint64_t(x) <= uint64_t(std::numeric_limits<T>::max()),
             "config key '{}': {} does not fit", key, v);
    out = T(x);
  }
}

#define LT_KEY_SPEC(key, field, type, def, range, help)                                                      \
  KeySpec{key, def, range, help, &type_name<type>, &allowed_text<type>,                                      \
          [](RunConfig& c, const char* k, const std::string& v, KeyRange r) { parse_value(c.field, k, v, r); }},
const KeySpec kRunKeys[] = {LT_RUN_CONFIG_KEYS(LT_KEY_SPEC)};
#undef LT_KEY_SPEC

const KeySpec* find_key(const std::string& k) {
  for (const auto& s : kRunKeys)
    if (k == s.key) return &s;
  return nullptr;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

[[noreturn]] void unknown_key(const std::string& key, const std::string& where) {
  std::string best;
  size_t best_d = 1000;
  for (const auto& s : kRunKeys) {
    size_t d = edit_distance(key, s.key);
    if (d < best_d) best_d = d, best = s.key;
  }
  if (best_d <= 3) fail("{}: unknown config key '{}' (did you mean '{}'?)", where, key, best);
  fail("{}: unknown config key '{}' (see `llamatrain train --help-config`)", where, key);
}

// A data set given as a YAML mapping {name, path, weight | tokens}, in its text form.
std::string spec_text(const YAML::Node& e, const std::string& key, const std::string& where) {
  std::string name, path, weight;
  for (const auto& kv : e) {
    const std::string k = kv.first.as<std::string>(), v = kv.second.as<std::string>();
    if (k == "name") name = v;
    else if (k == "path") path = v;
    else if (k == "weight") weight = "@" + v;
    else if (k == "tokens") weight = "@" + v + "tokens";
    else fail("{}: config key '{}': unknown field '{}' in an entry (expected name, path, weight or tokens)", where, key, k);
  }
  LT_CHECK(!path.empty(), "{}: config key '{}': an entry has no path", where, key);
  LT_CHECK(path.find(',') == std::string::npos, "{}: config key '{}': path '{}' holds a comma", where, key, path);
  return (name.empty() ? "" : name + "=") + path + weight;
}

void flatten(const YAML::Node& node, const std::string& prefix, std::map<std::string, std::string>& out,
             const std::string& where) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string k = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? k : prefix + "." + k, out, where);
    }
    return;
  }
  if (!find_key(prefix)) unknown_key(prefix, where);
  if (node.IsSequence()) {
    std::string v;
    for (const auto& e : node) v += (v.empty() ? "" : ",") + (e.IsMap() ? spec_text(e, prefix, where) : e.as<std::string>());
    out[prefix] = v;
  } else if (node.IsNull()) {
    out[prefix] = "";
  } else {
    out[prefix] = node.as<std::string>();
  }
}

// Rules that relate several keys (each key's own type and range are checked by the table).
void check_relations(RunConfig& c) {
  if (c.checkpoint_dir.empty()) c.checkpoint_dir = c.run_dir + "/checkpoints";
  LT_CHECK(!c.sequence_parallel || c.tp == 1 || (int64_t(c.micro_batch_size) * c.seq_len) % c.tp == 0,
           "config key 'parallel.sequence_parallel': train.micro_batch_size x train.seq_len = {} x {} = {} tokens "
           "per micro-batch must be divisible by parallel.tp = {}",
           c.micro_batch_size, c.seq_len, int64_t(c.micro_batch_size) * c.seq_len, c.tp);
  LT_CHECK(c.min_lr <= c.lr, "config key 'optim.min_lr' = {} must be in [0, optim.lr = {}]", c.min_lr, c.lr);
  // The seed's sample warmed up for longer than it trained: the LR never reached its peak.
  LT_CHECK(c.warmup_steps < c.steps,
           "config key 'optim.warmup_steps' = {} must be smaller than train.steps = {} (the learning rate would "
           "never reach optim.lr)",
           c.warmup_steps, c.steps);
  if (c.decay_steps == 0) c.decay_steps = c.steps;
  LT_CHECK(c.decay_steps > c.warmup_steps, "config key 'optim.decay_steps' = {} must exceed optim.warmup_steps = {}",
           c.decay_steps, c.warmup_steps);
  LT_CHECK(!c.data_path.empty() || !c.sources.empty(),
           "config key 'data.path' is required (or data.sources, several weighted datasets)");
  LT_CHECK(c.data_path.empty() || c.sources.empty(),
           "config keys 'data.path' and 'data.sources' are both set: give one of them");
  for (const DataSpec& s : c.sources) {
    LT_CHECK(s.weight >= 0 || s.tokens > 0 || c.sources.size() == 1,
             "config key 'data.sources': entry '{}' has neither a weight (@0.25) nor a token budget (@1000000tokens)",
             s.name);
  }
  for (const DataSpec& s : c.valid)
    LT_CHECK(s.weight < 0 && s.tokens == 0, "config key 'data.valid': entry '{}' has a weight; held-out sets have none",
             s.name);
  LT_CHECK(c.valid.empty() || c.valid_path.empty(),
           "config keys 'data.valid' and 'data.valid_path' are both set: give one of them");
  LT_CHECK(c.eval_every == 0 || !c.valid_path.empty() || !c.valid.empty(),
           "config key 'eval.every' is set but data.valid_path and data.valid are empty");
  LT_CHECK(c.init_mode == InitMode::weights || !c.init.empty(), "config key 'init_mode' is full but init is empty");
  LT_CHECK(c.schedule != ScheduleKind::wsd || c.cooldown_steps < c.decay_steps - c.warmup_steps || c.cooldown_steps == 0,
           "config key 'optim.cooldown_steps' = {} must be smaller than optim.decay_steps - optim.warmup_steps = {}",
           c.cooldown_steps, c.decay_steps - c.warmup_steps);
  LT_CHECK(!c.restart_positions || c.document_mask,
           "config key 'train.restart_positions' needs train.document_mask = true");
  LT_CHECK(!c.document_mask || c.device == Device::cpu,
           "config key 'train.document_mask': the {} backend does not support document masking yet (use "
           "train.device=cpu)",
           enum_name(c.device));
}

}  // namespace

RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> v;
  if (!yaml_path.empty()) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(yaml_path);
    } catch (const YAML::BadFile&) {
      fail("config file '{}' cannot be read", yaml_path);
    } catch (const YAML::Exception& e) {
      fail("config file '{}': {}", yaml_path, e.what());
    }
    if (!root.IsNull()) {
      LT_CHECK(root.IsMap(), "config file '{}': expected a mapping of keys at the top level", yaml_path);
      flatten(root, "", v, yaml_path);
    }
  }
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    LT_CHECK(eq != std::string::npos && eq > 0, "override '{}': expected key=value (e.g. train.steps=100)", o);
    std::string key = o.substr(0, eq), val = o.substr(eq + 1);
    if (!find_key(key)) unknown_key(key, "command line");
    if (!val.empty() && val.front() == '[' && val.back() == ']') val = val.substr(1, val.size() - 2);
    v[key] = val;
  }
  RunConfig c;
  for (const auto& s : kRunKeys) {
    if (!v.count(s.key)) {
      LT_CHECK(s.def != nullptr, "config key '{}' is required ({})", s.key, s.help);
      v[s.key] = s.def;
    }
    s.parse(c, s.key, v[s.key], s.range);
  }
  c.resolved = v;
  check_relations(c);
  return c;
}

std::vector<RunKeyInfo> run_config_keys() {
  std::vector<RunKeyInfo> out;
  for (const auto& s : kRunKeys)
    out.push_back({s.key, s.type(), s.def ? (*s.def ? s.def : "\"\"") : "(required)", s.allowed(s.range), s.help});
  return out;
}

std::string run_config_help(bool markdown) {
  auto cell = [](std::string s) {  // a '|' would end a markdown table cell
    for (size_t p = 0; (p = s.find('|', p)) != std::string::npos; p += 2) s.insert(p, "\\");
    return s;
  };
  std::string out;
  if (markdown) out += "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
  for (const auto& k : run_config_keys()) {
    if (markdown)
      out += fmt::format("| `{}` | {} | {} | {} | {} |\n", k.key, k.type, k.def == "\"\"" ? k.def : "`" + k.def + "`",
                         cell(k.allowed), cell(k.help));
    else
      out += fmt::format("  {:<28} {:<8} {:<14} {:<22} {}\n", k.key, k.type, k.def, k.allowed, k.help);
  }
  return out;
}

JobShape job_shape(const RunConfig& c, int nodes, int procs_per_node) {
  JobShape s;
  s.nodes = nodes;
  s.procs_per_node = procs_per_node;
  s.tp = c.tp;
  s.pp = c.pp;
  s.global_batch = c.global_batch_size;
  s.micro_batch = c.micro_batch_size;
  s.seq_len = c.seq_len;
  return s;
}

}  // namespace lt
