#include "ckpt/convert.h"

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "ckpt/hf_source.h"
#include "ckpt/safetensors.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "data/tokenizer.h"

namespace lt {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool is_empty_dir(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec);
}

// A checkpoint root may receive a converted step 0 when it is new, empty, or holds only an
// earlier conversion (step 0): never into a run's checkpoints or an unrelated directory.
void check_checkpoint_output(const std::string& out_root) {
  std::error_code ec;
  if (!fs::exists(out_root, ec) || is_empty_dir(out_root)) return;
  LT_CHECK(fs::is_directory(out_root, ec), "convert: --output '{}' exists and is not a directory", out_root);
  std::vector<StepDir> steps = list_step_dirs(out_root);
  for (const StepDir& s : steps)
    LT_CHECK(s.step == 0, "convert: --output '{}' holds training checkpoints ({}); convert into a new or empty "
             "directory", out_root, fs::path(s.dir).filename().string());
  LT_CHECK(!steps.empty() || fs::exists(fs::path(out_root) / "latest"),
           "convert: --output '{}' exists and is not a checkpoint directory; convert into a new or empty directory",
           out_root);
}

// An HF export may replace an earlier export (config.json or model*.safetensors inside), as a
// whole; any other non-empty directory is refused.
void check_hf_output(const std::string& out_dir) {
  std::error_code ec;
  if (!fs::exists(out_dir, ec) || is_empty_dir(out_dir)) return;
  LT_CHECK(fs::is_directory(out_dir, ec), "convert: --output '{}' exists and is not a directory", out_dir);
  bool export_dir = fs::exists(fs::path(out_dir) / "config.json");
  for (const auto& e : fs::directory_iterator(out_dir, ec)) {
    std::string n = e.path().filename().string();
    export_dir = export_dir || (n.starts_with("model") && n.ends_with(".safetensors"));
  }
  LT_CHECK(export_dir, "convert: --output '{}' exists and is not a Hugging Face model directory; refusing to replace "
           "it (give a new or empty directory)", out_dir);
}

std::string write_checkpoint_shards(const TensorSource& src, const std::string& out_root, const std::string& tmp,
                                    const ToCheckpointOptions& opt, DType dtype);
HfExportResult write_hf_files(const TensorSource& src, const std::string& out_dir, const ToHfOptions& opt,
                              DType dtype);

}  // namespace

std::string convert_to_checkpoint(const TensorSource& src, const std::string& out_root,
                                  const ToCheckpointOptions& opt) {
  const LlamaConfig& c = src.config();
  const DType dtype = opt.dtype.value_or(src.stored_dtype());
  LT_CHECK(is_float_dtype(dtype), "convert: --dtype must be fp32, bf16 or fp16");
  ShardSpec spec{opt.tp, 0, opt.pp, 0, opt.stage_starts};
  validate_shard(c, spec);
  check_checkpoint_output(out_root);
  const bool created_root = !fs::exists(out_root);
  std::string tmp = begin_checkpoint(out_root, 0);
  try {
    return write_checkpoint_shards(src, out_root, tmp, opt, dtype);
  } catch (...) {
    // Nothing half-written stays behind: the step's .tmp, and the root if this made it.
    std::error_code ec;
    fs::remove_all(tmp, ec);
    if (created_root && is_empty_dir(out_root)) fs::remove(out_root, ec);
    throw;
  }
}

namespace {

std::string write_checkpoint_shards(const TensorSource& src, const std::string& out_root, const std::string& tmp,
                                    const ToCheckpointOptions& opt, DType dtype) {
  const LlamaConfig& c = src.config();
  std::vector<uint8_t> buf;
  for (int p = 0; p < opt.pp; ++p) {
    // All tp shards of a stage at once, so each source tensor is read once.
    std::vector<ParamLayout> layouts;
    std::vector<std::unique_ptr<SafetensorsWriter>> writers;
    for (int t = 0; t < opt.tp; ++t) {
      layouts.emplace_back(c, ShardSpec{opt.tp, t, opt.pp, p, opt.stage_starts});
      std::vector<TensorDecl> decls;
      for (const auto& pi : layouts.back().params())
        if (!pi.tied_copy) decls.push_back({pi.name, dtype, pi.shape});
      writers.push_back(std::make_unique<SafetensorsWriter>((fs::path(tmp) / model_shard_file(t, p)).string(), decls,
                                                            model_shard_metadata(layouts.back())));
    }
    const auto& params0 = layouts[0].params();
    for (size_t i = 0; i < params0.size(); ++i) {
      if (params0[i].tied_copy) continue;
      const std::string& name = params0[i].name;
      if (!src.has(name)) fail("{}: missing tensor '{}'", src.describe(), name);
      Tensor g = src.get(name);
      check_global_shape(src, name, g, params0[i].global_shape);
      for (int t = 0; t < opt.tp; ++t) {
        const ParamInfo& pi = layouts[size_t(t)].params()[i];
        buf.resize(pi.numel * dtype_size(dtype));
        copy_slice(g, pi, dtype, buf.data());
        writers[size_t(t)]->write(buf.data(), buf.size());
      }
      src.release(name);
    }
    for (int t = 0; t < opt.tp; ++t)
      record_file_digest((fs::path(tmp) / model_shard_file(t, p)).string(), writers[size_t(t)]->finish());
    log::info("convert: stage {} of {} written ({} tensor-parallel shards)", p + 1, opt.pp, opt.tp);
  }
  CheckpointMeta meta;
  meta.step = 0;
  meta.config = c;
  meta.tp = opt.tp;
  meta.pp = opt.pp;
  meta.stage_starts = opt.stage_starts;
  meta.optim_parts = 0;
  meta.model_dtype = dtype;
  meta.extra = {{"converted_from", src.describe()}};
  return finalize_checkpoint(out_root, meta, 0);
}

}  // namespace

uint64_t parse_byte_size(const std::string& text) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(text, &pos);
  } catch (const std::exception&) {
    fail("size '{}' is not a number with an optional unit (e.g. 5GB, 500MB, 2GiB)", text);
  }
  std::string unit = text.substr(pos);
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
      {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
  for (auto [u, f] : kUnits)
    if (unit == u) {
      LT_CHECK(v > 0 && v * f < 1.8e19, "size '{}' must be positive", text);
      return uint64_t(v * f);
    }
  fail("size '{}': unknown unit '{}' (use B, KB, MB, GB, KiB, MiB, GiB)", text, unit);
}

HfExportResult convert_to_hf(const TensorSource& src, const std::string& out_dir, const ToHfOptions& opt) {
  const DType dtype = opt.dtype.value_or(src.stored_dtype());
  LT_CHECK(is_float_dtype(dtype), "convert: --dtype must be fp32, bf16 or fp16");
  // Every input is checked before anything is written.
  for (const auto& t : opt.tokenizer_files) {
    LT_CHECK(fs::is_regular_file(t), "convert: tokenizer file '{}' does not exist", t);
    std::string name = fs::path(t).filename().string();
    if (name != "tokenizer_config.json" && name != "special_tokens_map.json") open_tokenizer(t);
  }
  check_hf_output(out_dir);
  std::string tmp = staging_dir(out_dir, "Hugging Face export");
  try {
    HfExportResult r = write_hf_files(src, tmp, opt, dtype);
    publish_dir(tmp, out_dir);
    return r;
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

namespace {

HfExportResult write_hf_files(const TensorSource& src, const std::string& out_dir, const ToHfOptions& opt,
                              DType dtype) {
  const LlamaConfig& c = src.config();
  // Every HF tensor, in layer order: the single-shard layout lists them (no tied LM head).
  ParamLayout whole(c, ShardSpec{});
  struct Item {
    const ParamInfo* p;
    uint64_t bytes;
  };
  std::vector<std::vector<Item>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& p : whole.params()) {
    uint64_t b = p.numel * dtype_size(dtype);
    if (!shards.back().empty() && in_shard + b > opt.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back({&p, b});
    in_shard += b;
    total += b;
  }
  HfExportResult res;
  res.total_bytes = total;
  json weight_map = json::object();
  std::vector<uint8_t> buf;
  for (size_t s = 0; s < shards.size(); ++s) {
    std::string name = shards.size() == 1 ? "model.safetensors"
                                          : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    std::vector<TensorDecl> decls;
    for (const auto& it : shards[s]) decls.push_back({it.p->name, dtype, it.p->global_shape});
    SafetensorsWriter w((fs::path(out_dir) / name).string(), decls, {{"format", "pt"}});
    for (const auto& it : shards[s]) {
      const std::string& n = it.p->name;
      if (!src.has(n)) fail("{}: missing tensor '{}'", src.describe(), n);
      Tensor g = src.get(n);
      check_global_shape(src, n, g, it.p->global_shape);
      if (g.dtype == dtype) {
        w.write(g.bytes.data(), g.bytes.size());
      } else {
        buf.resize(it.bytes);
        convert_elements(g.dtype, g.bytes.data(), dtype, buf.data(), it.p->numel);
        w.write(buf.data(), buf.size());
      }
      src.release(n);
      weight_map[n] = name;
    }
    w.finish();
    res.files.push_back(name);
  }
  if (shards.size() > 1) {
    json j = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic((fs::path(out_dir) / "model.safetensors.index.json").string(), j.dump(2) + "\n");
  }
  write_file_atomic((fs::path(out_dir) / "config.json").string(), hf_config_json(c, torch_dtype_name(dtype)));
  json gen = {{"_from_model_config", true},
              {"bos_token_id", json::parse(c.bos_token_id)},
              {"eos_token_id", json::parse(c.eos_token_id)}};
  write_file_atomic((fs::path(out_dir) / "generation_config.json").string(), gen.dump(2) + "\n");
  // Tokenizer files go in under the names transformers looks for: a SentencePiece model as
  // tokenizer.model, a tokenizers JSON as tokenizer.json; other files (tokenizer_config.json,
  // special_tokens_map.json) keep their names. Without a tokenizer_config.json one is written.
  bool have_config = false;
  std::unique_ptr<Tokenizer> tok;
  for (const auto& t : opt.tokenizer_files) {
    std::string name = fs::path(t).filename().string();
    if (name == "tokenizer_config.json") have_config = true;
    if (name != "tokenizer_config.json" && name != "special_tokens_map.json") {
      tok = open_tokenizer(t);  // also checks that it is a tokenizer
      name = tok->kind() == "sentencepiece" ? "tokenizer.model" : "tokenizer.json";
    }
    std::error_code ec;
    fs::copy_file(t, fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    LT_CHECK(!ec, "convert: cannot copy '{}' to {}: {}", t, out_dir, ec.message());
  }
  if (tok && !have_config) {
    auto piece = [&](int id, const char* def) { return id >= 0 && id < tok->vocab_size() ? tok->piece(id) : std::string(def); };
    json cfg = {{"tokenizer_class", "LlamaTokenizer"},
                {"bos_token", piece(tok->bos_id(), "<s>")},
                {"eos_token", piece(tok->eos_id(), "</s>")},
                {"unk_token", piece(0, "<unk>")},
                {"add_bos_token", true},
                {"add_eos_token", false},
                {"legacy", true},
                {"clean_up_tokenization_spaces", false},
                {"model_max_length", c.max_seq_len}};
    write_file_atomic((fs::path(out_dir) / "tokenizer_config.json").string(), cfg.dump(2) + "\n");
    json special = {{"bos_token", cfg["bos_token"]}, {"eos_token", cfg["eos_token"]}, {"unk_token", cfg["unk_token"]}};
    write_file_atomic((fs::path(out_dir) / "special_tokens_map.json").string(), special.dump(2) + "\n");
  }
  return res;
}

}  // namespace

}  // namespace lt
