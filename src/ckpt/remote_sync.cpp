#include "ckpt/remote_sync.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"

namespace lt {

namespace fs = std::filesystem;

namespace {

std::string join_key(const std::string& prefix, const std::string& rest) {
  return prefix.empty() ? rest : prefix + "/" + rest;
}

// "step_00000100" -> 100; nullopt for anything else.
std::optional<int64_t> parse_step_name(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5) return std::nullopt;
  for (size_t i = 5; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return std::nullopt;
  return std::stoll(name.substr(5));
}

// Relative paths of every regular file under `dir`, sorted, DONE moved to the end.
std::vector<std::string> checkpoint_files(const std::string& dir) {
  LT_CHECK(fs::is_directory(dir), "checkpoint directory {} does not exist", dir);
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), dir).generic_string());
  std::sort(files.begin(), files.end());
  auto done = std::find(files.begin(), files.end(), kCheckpointDoneMarker);
  LT_CHECK(done != files.end(), "checkpoint {} has no {} marker: it is not complete", dir,
           kCheckpointDoneMarker);
  std::rotate(done, done + 1, files.end());
  return files;
}

// Remote checkpoints under prefix: name -> {relative key -> size}.
std::map<std::string, std::map<std::string, uint64_t>> remote_checkpoints(RemoteStore& store,
                                                                          const std::string& prefix) {
  std::map<std::string, std::map<std::string, uint64_t>> out;
  std::string base = prefix.empty() ? "" : prefix + "/";
  for (const RemoteObject& o : store.list(base)) {
    std::string rest = o.key.substr(base.size());
    size_t slash = rest.find('/');
    if (slash == std::string::npos) continue;
    std::string name = rest.substr(0, slash);
    if (parse_step_name(name)) out[name][rest.substr(slash + 1)] = o.size;
  }
  return out;
}

}  // namespace

void upload_checkpoint(const std::string& local_step_dir, RemoteStore& store,
                       const std::string& prefix) {
  std::string dir = local_step_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string name = fs::path(dir).filename().string();
  LT_CHECK(parse_step_name(name), "checkpoint directory {} is not named step_<number>", dir);
  std::vector<std::string> files = checkpoint_files(dir);
  std::string base = join_key(prefix, name) + "/";

  std::map<std::string, uint64_t> remote;
  for (const RemoteObject& o : store.list(base)) remote[o.key.substr(base.size())] = o.size;
  if (remote.count(kCheckpointDoneMarker)) {
    bool same = remote.size() == files.size();
    for (const std::string& f : files)
      same = same && remote.count(f) && remote[f] == fs::file_size(fs::path(dir) / f);
    if (same) {
      log::info("checkpoint {} is already complete at {}", name, store.describe(base));
      return;
    }
    // Replacing a complete copy: make it incomplete first, so nobody restores a mix.
    store.remove(base + kCheckpointDoneMarker);
  }
  auto t0 = std::chrono::steady_clock::now();
  uint64_t bytes = 0;
  for (const std::string& f : files) {  // DONE is last
    store.put_file((fs::path(dir) / f).string(), base + f);
    bytes += fs::file_size(fs::path(dir) / f);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::info("uploaded checkpoint {} to {}: {} files, {:.1f} MiB in {:.1f} s", name,
            store.describe(base), files.size(), bytes / 1048576.0, s);
}

std::vector<RemoteCheckpoint> list_complete_remote(RemoteStore& store, const std::string& prefix) {
  std::vector<RemoteCheckpoint> out;
  for (const auto& [name, files] : remote_checkpoints(store, prefix))
    if (files.count(kCheckpointDoneMarker)) out.push_back({*parse_step_name(name), name});
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.step < b.step; });
  return out;
}

std::optional<RemoteCheckpoint> newest_complete_remote(RemoteStore& store, const std::string& prefix) {
  auto all = list_complete_remote(store, prefix);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::string download_checkpoint(RemoteStore& store, const std::string& prefix,
                                 const std::string& name, const std::string& local_root) {
  std::string base = join_key(prefix, name) + "/";
  std::map<std::string, uint64_t> files;
  for (const RemoteObject& o : store.list(base)) files[o.key.substr(base.size())] = o.size;
  LT_CHECK(files.count(kCheckpointDoneMarker), "remote checkpoint {} is not complete (no {} marker)",
           store.describe(base), kCheckpointDoneMarker);
  fs::path final_dir = fs::path(local_root) / name, tmp_dir = fs::path(local_root) / (name + ".tmp");
  LT_CHECK(!fs::exists(final_dir), "cannot download {}: {} already exists", store.describe(base),
           final_dir.string());
  fs::remove_all(tmp_dir);  // a previous interrupted download
  fs::create_directories(tmp_dir);
  for (const auto& [rel, size] : files) {
    fs::path local = tmp_dir / rel;
    store.get_file(base + rel, local.string());
    LT_CHECK(fs::file_size(local) == size, "downloaded {} has {} bytes, the listing said {}",
             store.describe(base + rel), fs::file_size(local), size);
  }
  fsync_dir(tmp_dir.string());
  fs::rename(tmp_dir, final_dir);
  fsync_dir(local_root);
  log::info("downloaded checkpoint {} from {} to {}", name, store.describe(base), final_dir.string());
  return final_dir.string();
}

std::optional<std::string> restore_newest_if_local_empty(const std::string& local_root,
                                                         RemoteStore& store,
                                                         const std::string& prefix) {
  std::error_code ec;
  if (fs::is_directory(local_root, ec))
    for (const auto& e : fs::directory_iterator(local_root))
      if (e.is_directory() && parse_step_name(e.path().filename().string()) &&
          fs::exists(e.path() / kCheckpointDoneMarker))
        return std::nullopt;
  auto newest = newest_complete_remote(store, prefix);
  if (!newest) return std::nullopt;
  fs::create_directories(local_root);
  return download_checkpoint(store, prefix, newest->name, local_root);
}

int prune_remote(RemoteStore& store, const std::string& prefix, int keep_last) {
  LT_CHECK(keep_last >= 1, "keep_last must be at least 1, got {}", keep_last);
  auto all = remote_checkpoints(store, prefix);
  std::vector<std::pair<int64_t, std::string>> complete;
  for (const auto& [name, files] : all)
    if (files.count(kCheckpointDoneMarker)) complete.push_back({*parse_step_name(name), name});
  std::sort(complete.begin(), complete.end());
  if (complete.size() <= size_t(keep_last)) return 0;
  int64_t oldest_kept = complete[complete.size() - keep_last].first;
  int deleted = 0;
  for (const auto& [name, files] : all) {
    if (*parse_step_name(name) >= oldest_kept) continue;
    std::string base = join_key(prefix, name) + "/";
    if (files.count(kCheckpointDoneMarker)) store.remove(base + kCheckpointDoneMarker);
    for (const auto& [rel, size] : files)
      if (rel != kCheckpointDoneMarker) store.remove(base + rel);
    log::info("removed old remote checkpoint {}", store.describe(base));
    ++deleted;
  }
  return deleted;
}

}  // namespace lt
