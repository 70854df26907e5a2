#include "ckpt/checkpoint.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "ckpt/tensor_source.h"
#include "core/env.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"

namespace lt {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string step_dir_name(int64_t step) { return fmt::format("step_{:08d}", step); }

std::string checkpoint_tmp_dir(const std::string& root, int64_t step) {
  return (fs::path(root) / (step_dir_name(step) + ".tmp")).string();
}

std::string begin_checkpoint(const std::string& root, int64_t step) {
  LT_CHECK(step >= 0, "checkpoint: step must be >= 0, got {}", step);
  ensure_writable_dir(root, "checkpoint directory");
  std::string tmp = checkpoint_tmp_dir(root, step);
  std::error_code ec;
  if (fs::exists(tmp)) {
    log::warn("checkpoint: removing stale {} (an earlier save did not finish)", tmp);
    fs::remove_all(tmp, ec);
    LT_CHECK(!ec, "checkpoint: cannot remove stale {}: {}", tmp, ec.message());
  }
  fs::create_directories(fs::path(tmp) / "model", ec);
  if (!ec) fs::create_directories(fs::path(tmp) / "optim", ec);
  LT_CHECK(!ec, "checkpoint: cannot create {}: {}", tmp, ec.message());
  return tmp;
}

void record_file_digest(const std::string& path, const FileDigest& d) {
  write_file_atomic(path + ".digest", fmt::format("{} {:016x}\n", d.size, d.xxh64));
}

namespace {

std::map<std::string, std::string> shard_metadata(const ParamLayout& layout, const char* kind) {
  const ShardSpec& s = layout.shard();
  return {{"format", kind},
          {"version", std::to_string(kCheckpointFormatVersion)},
          {"tp", std::to_string(s.tp)},
          {"pp", std::to_string(s.pp)},
          {"tp_rank", std::to_string(s.tp_rank)},
          {"pp_rank", std::to_string(s.pp_rank)}};
}

json slice_json(const ParamInfo& p) {
  return {{"global_shape", p.global_shape}, {"split_dim", p.split_dim}, {"split_begin", p.split_begin}};
}

}  // namespace

std::map<std::string, std::string> model_shard_metadata(const ParamLayout& layout) {
  auto meta = shard_metadata(layout, "llamatrain-model-shard");
  for (const auto& p : layout.params())
    if (!p.tied_copy) meta[p.name] = slice_json(p).dump();
  return meta;
}

void write_model_shard(const std::string& tmp_dir, const ParamLayout& layout, FlatAccess& weights, DType dtype) {
  LT_CHECK(is_float_dtype(dtype), "checkpoint: model dtype must be F32, BF16 or F16, got {}", dtype_name(dtype));
  const ShardSpec& s = layout.shard();
  std::string path = (fs::path(tmp_dir) / model_shard_file(s.tp_rank, s.pp_rank)).string();
  std::vector<TensorDecl> decls;
  for (const auto& p : layout.params())
    if (!p.tied_copy) decls.push_back({p.name, dtype, p.shape});
  SafetensorsWriter w(path, decls, model_shard_metadata(layout));
  std::vector<uint8_t> tmp;
  for (const auto& p : layout.params()) {
    if (p.tied_copy) continue;
    const float* x = weights.read(p.offset, p.numel);
    if (dtype == DType::F32) {
      w.write(x, p.numel * 4);
    } else {
      tmp.resize(p.numel * dtype_size(dtype));
      convert_elements(DType::F32, x, dtype, tmp.data(), p.numel);
      w.write(tmp.data(), tmp.size());
    }
  }
  record_file_digest(path, w.finish());
}

void write_model_shard(const std::string& tmp_dir, const ParamLayout& layout, const float* weights, DType dtype) {
  HostFlat w = HostFlat::read_only(weights, layout.total());
  write_model_shard(tmp_dir, layout, w, dtype);
}

void write_optim_shard(const std::string& tmp_dir, const ParamLayout& layout, int part, int parts, size_t begin,
                       size_t end, const float* master, const float* exp_avg, const float* exp_avg_sq) {
  HostFlat m = HostFlat::read_only(master, end - begin), a = HostFlat::read_only(exp_avg, end - begin),
           b = HostFlat::read_only(exp_avg_sq, end - begin);
  write_optim_shard(tmp_dir, layout, part, parts, begin, end, m, a, b);
}

void write_optim_shard(const std::string& tmp_dir, const ParamLayout& layout, int part, int parts, size_t begin,
                       size_t end, FlatAccess& master, FlatAccess& exp_avg, FlatAccess& exp_avg_sq) {
  LT_CHECK(parts >= 1 && part >= 0 && part < parts, "checkpoint: optimizer part {} of {} is out of range", part, parts);
  LT_CHECK(begin <= end && end <= layout.total(), "checkpoint: optimizer range [{}, {}) outside the shard's {} elements",
           begin, end, layout.total());
  const ShardSpec& s = layout.shard();
  std::string path = (fs::path(tmp_dir) / optim_shard_file(s.tp_rank, s.pp_rank, part)).string();
  auto meta = shard_metadata(layout, "llamatrain-optim-shard");
  meta["part"] = std::to_string(part);
  meta["parts"] = std::to_string(parts);
  meta["range"] = json::array({begin, end}).dump();
  struct Piece {
    const ParamInfo* p;
    size_t a, b;  // elements of the flattened local tensor
  };
  std::vector<Piece> pieces;
  std::vector<TensorDecl> decls;
  for (const auto& p : layout.params()) {
    size_t a = std::max(begin, p.offset), b = std::min(end, p.offset + p.numel);
    if (a >= b) continue;
    pieces.push_back({&p, a - p.offset, b - p.offset});
    json j = slice_json(p);
    j["shape"] = p.shape;
    j["begin"] = a - p.offset;
    j["end"] = b - p.offset;
    meta[p.name] = j.dump();
  }
  const char* kinds[] = {"master.", "exp_avg.", "exp_avg_sq."};
  for (const char* k : kinds)
    for (const auto& pc : pieces) decls.push_back({k + pc.p->name, DType::F32, {int64_t(pc.b - pc.a)}});
  SafetensorsWriter w(path, decls, meta);
  FlatAccess* states[] = {&master, &exp_avg, &exp_avg_sq};
  for (FlatAccess* st : states)
    for (const auto& pc : pieces) w.write(st->read(pc.p->offset + pc.a - begin, pc.b - pc.a), (pc.b - pc.a) * 4);
  record_file_digest(path, w.finish());
}

namespace {

FileDigest read_digest(const std::string& path) {
  std::string side = path + ".digest";
  if (fs::exists(side)) {
    std::string text = read_file(side);
    unsigned long long size = 0, hash = 0;
    if (std::sscanf(text.c_str(), "%llu %llx", &size, &hash) == 2 && size == fs::file_size(path))
      return {size, hash};
  }
  return digest_file(path);  // no (valid) sidecar: hash it here
}

int64_t parse_step_name(const std::string& name) {
  // step_<digits> exactly; anything else (".tmp", ".old") is not a complete step.
  if (name.size() < 6 || name.compare(0, 5, "step_") != 0) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  if (name.size() - 5 > 18) return -1;
  return std::stoll(name.substr(5));
}

}  // namespace

std::vector<StepDir> list_step_dirs(const std::string& root) {
  std::vector<StepDir> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    int64_t s = parse_step_name(e.path().filename().string());
    if (s >= 0 && e.is_directory()) out.push_back({s, e.path().string(), fs::exists(e.path() / "DONE")});
  }
  std::sort(out.begin(), out.end(), [](const StepDir& a, const StepDir& b) { return a.step > b.step; });
  return out;
}

void remove_checkpoint_dir(const std::string& step_dir) {
  std::error_code ec;
  fs::remove(fs::path(step_dir) / "DONE", ec);
  LT_CHECK(!ec, "checkpoint: cannot remove {}/DONE: {}", step_dir, ec.message());
  fsync_dir(step_dir);
  // Test hook: hold the deletion open so that a fault-injection test can kill it half-way.
  if (double d = env_number("LT_FAULT_PRUNE_DELAY_S", 0); d > 0)
    std::this_thread::sleep_for(std::chrono::duration<double>(d));
  fs::remove_all(step_dir, ec);
  LT_CHECK(!ec, "checkpoint: cannot remove {}: {}", step_dir, ec.message());
}

std::vector<std::string> prune_checkpoints(const std::string& root, int keep_last,
                                           const std::function<bool(const std::string&)>& may_remove) {
  LT_CHECK(keep_last >= 1, "checkpoint: keep_last must be at least 1, got {}", keep_last);
  std::vector<std::string> removed;
  int complete = 0;
  int64_t newest_kept = -1;
  for (const StepDir& s : list_step_dirs(root)) {
    if (s.done && complete < keep_last) {
      ++complete;
      if (newest_kept < 0) newest_kept = s.step;
      continue;
    }
    // Beyond the kept ones: complete checkpoints the caller lets go, and (older than the newest
    // kept) directories that lost DONE in a deletion that was cut short.
    bool go = s.done ? (!may_remove || may_remove(s.dir)) : (newest_kept >= 0 && s.step < newest_kept);
    if (!go) continue;
    log::info("checkpoint: removing old {}", s.dir);
    remove_checkpoint_dir(s.dir);
    removed.push_back(s.dir);
  }
  return removed;
}

std::string finalize_checkpoint(const std::string& root, CheckpointMeta meta, int keep_last) {
  std::string tmp = checkpoint_tmp_dir(root, meta.step);
  LT_CHECK(fs::is_directory(tmp), "checkpoint: {} does not exist (begin_checkpoint was not called for step {})", tmp,
           meta.step);
  meta.version = kCheckpointFormatVersion;
  meta.files.clear();
  for (const auto& f : expected_files(meta)) {
    std::string path = (fs::path(tmp) / f).string();
    LT_CHECK(fs::exists(path), "checkpoint: {} is missing (did every rank write its shard?)", path);
    meta.files[f] = read_digest(path);
    fs::remove(path + ".digest");
  }
  write_file_atomic((fs::path(tmp) / "meta.json").string(), meta_to_json(meta));
  write_file_atomic((fs::path(tmp) / "DONE").string(), fmt::format("step {}\n", meta.step));
  fsync_dir((fs::path(tmp) / "model").string());
  fsync_dir((fs::path(tmp) / "optim").string());
  fsync_dir(tmp);

  std::string final_dir = (fs::path(root) / step_dir_name(meta.step)).string();
  std::error_code ec;
  if (fs::exists(final_dir)) {  // saving a step again (e.g. after a resume): replace it
    std::string old = final_dir + ".old";
    fs::remove_all(old, ec);
    fs::remove(fs::path(final_dir) / "DONE", ec);  // never two complete-looking copies
    fs::rename(final_dir, old, ec);
    LT_CHECK(!ec, "checkpoint: cannot move aside {}: {}", final_dir, ec.message());
  }
  fs::rename(tmp, final_dir, ec);
  LT_CHECK(!ec, "checkpoint: cannot rename {} to {}: {}", tmp, final_dir, ec.message());
  fsync_dir(root);
  fs::remove_all(final_dir + ".old", ec);
  write_file_atomic((fs::path(root) / "latest").string(), step_dir_name(meta.step) + "\n");

  // Leftovers of crashed saves of older steps (never resolved: they can only be garbage).
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::string n = e.path().filename().string();
    if (!n.ends_with(".tmp")) continue;
    int64_t s = parse_step_name(n.substr(0, n.size() - 4));
    if (s >= 0 && s < meta.step) fs::remove_all(e.path(), ec);
  }
  if (keep_last > 0) prune_checkpoints(root, keep_last);
  return final_dir;
}

std::string save_checkpoint(const std::string& root, CheckpointMeta meta, const std::vector<ShardState>& shards,
                            DType model_dtype, int keep_last) {
  LT_CHECK(!shards.empty(), "save_checkpoint: no shards given");
  std::string tmp = begin_checkpoint(root, meta.step);
  const ShardSpec& s0 = shards[0].layout->shard();
  LT_CHECK(int(shards.size()) == s0.tp * s0.pp, "save_checkpoint: {} shards given for tp={} pp={}", shards.size(),
           s0.tp, s0.pp);
  bool optim = shards[0].master != nullptr;
  for (const auto& s : shards) {
    write_model_shard(tmp, *s.layout, s.weights, model_dtype);
    if (optim) write_optim_shard(tmp, *s.layout, 0, 1, 0, s.layout->total(), s.master, s.exp_avg, s.exp_avg_sq);
  }
  meta.tp = s0.tp;
  meta.pp = s0.pp;
  meta.stage_starts = s0.stage_starts;
  meta.optim_parts = optim ? 1 : 0;
  meta.model_dtype = model_dtype;
  meta.config = shards[0].layout->config();
  return finalize_checkpoint(root, meta, keep_last);
}

CheckpointMeta verify_checkpoint(const std::string& step_dir, Verify verify) {
  LT_CHECK(fs::exists(fs::path(step_dir) / "DONE"), "checkpoint {} is incomplete: no DONE marker", step_dir);
  std::string meta_path = (fs::path(step_dir) / "meta.json").string();
  LT_CHECK(fs::exists(meta_path), "checkpoint {} has no meta.json", step_dir);
  CheckpointMeta m = parse_checkpoint_meta(read_file(meta_path), meta_path);
  for (const auto& [name, d] : m.files) {
    std::string path = (fs::path(step_dir) / name).string();
    std::error_code ec;
    uint64_t size = fs::file_size(path, ec);
    LT_CHECK(!ec, "checkpoint {}: file {} is missing", step_dir, name);
    LT_CHECK(size == d.size, "checkpoint {}: file {} has {} bytes, meta.json says {} (truncated?)", step_dir, name,
             size, d.size);
    if (verify == Verify::checksums) {
      uint64_t h = digest_file(path).xxh64;
      LT_CHECK(h == d.xxh64, "checkpoint {}: file {} has xxhash64 {:016x}, meta.json says {:016x} (corrupted)",
               step_dir, name, h, d.xxh64);
    }
  }
  return m;
}

namespace {
// The newest valid step under root; the reasons the newer ones failed go to `skipped`.
std::optional<CheckpointRef> newest_valid(const std::string& root, Verify verify, std::vector<std::string>& skipped) {
  for (const StepDir& s : list_step_dirs(root)) {
    try {
      return CheckpointRef{s.dir, verify_checkpoint(s.dir, verify)};
    } catch (const Error& e) {
      log::warn("skipping checkpoint: {}", e.what());
      skipped.push_back(e.what());
    }
  }
  return std::nullopt;
}
}  // namespace

std::optional<CheckpointRef> find_latest_checkpoint(const std::string& root, Verify verify) {
  std::vector<std::string> skipped;
  return newest_valid(root, verify, skipped);
}

std::optional<CheckpointRef> find_resume_checkpoint(const std::string& root, Verify verify) {
  std::vector<std::string> skipped;
  auto ref = newest_valid(root, verify, skipped);
  if (ref || skipped.empty()) return ref;
  std::string list;
  for (const auto& why : skipped) list += "\n  " + why;
  fail("checkpoint directory '{}' holds {} checkpoint(s) and none is usable; stopping rather than starting from "
       "random weights over them (nothing was changed):{}\nRepair or move them away, resume from a copy "
       "(checkpoint.resume=<step directory>), or start a new run in an empty checkpoint.dir",
       root, skipped.size(), list);
}

bool is_checkpoint_path(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return false;
  if (fs::exists(fs::path(path) / "meta.json") || fs::exists(fs::path(path) / "latest")) return true;
  return !list_step_dirs(path).empty();
}

CheckpointRef open_checkpoint(const std::string& path, int64_t step, Verify verify) {
  LT_CHECK(fs::is_directory(path), "checkpoint '{}' is not a directory", path);
  if (fs::exists(fs::path(path) / "meta.json")) {
    CheckpointRef r{path, verify_checkpoint(path, verify)};
    LT_CHECK(step < 0 || r.meta.step == step, "checkpoint {} holds step {}, not {}", path, r.meta.step, step);
    return r;
  }
  if (step >= 0) {
    std::string dir = (fs::path(path) / step_dir_name(step)).string();
    LT_CHECK(fs::is_directory(dir), "checkpoint directory '{}' has no step {} ({} does not exist)", path, step, dir);
    return {dir, verify_checkpoint(dir, verify)};
  }
  auto r = find_latest_checkpoint(path, verify);
  LT_CHECK(r.has_value(), "checkpoint directory '{}' holds no complete, valid checkpoint (see warnings above)", path);
  return *r;
}

}  // namespace lt
