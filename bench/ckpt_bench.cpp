// Checkpoint I/O benchmark.
//   ckpt_bench save-load --dir D [--layers L] [--vocab V]   save + load a training checkpoint (weights +
//       AdamW state, fp32) vs a plain write/read of the same bytes; caches dropped before reads
//   ckpt_bench write-hf --dir D [--preset llama2-7b] [--dtype bf16] [--seed S]
//       writes a synthetic Hugging Face directory (random weights) for the conversion benchmark
//       (bench/ckpt_convert_bench.sh)
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/hf_source.h"
#include "ckpt/reshard.h"
#include "ckpt/safetensors.h"
#include "ckpt/tensor_source.h"
#include "core/bf16.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/layout.h"

using namespace lt;
namespace fs = std::filesystem;

namespace {

std::string arg(int argc, char** argv, const std::string& key, const std::string& def) {
  for (int i = 2; i + 1 < argc; ++i)
    if (argv[i] == key) return argv[i + 1];
  return def;
}

// Drops a file's clean pages from the page cache, so the next read comes from the disk.
void drop_cache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

void drop_cache_tree(const std::string& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) drop_cache(e.path().string());
}

void fill(float* p, size_t n, uint64_t seed) {
  Rng r(seed);
  for (size_t i = 0; i < n; ++i) p[i] = r.uniform() - 0.5f;
}

int save_load(const std::string& dir, int layers, int vocab) {
  LlamaConfig c;
  c.name = "bench";
  c.dim = 1024;
  c.hidden_dim = 2816;
  c.n_layers = layers;
  c.n_heads = 16;
  c.n_kv_heads = 16;
  c.vocab_size = vocab;
  c.max_seq_len = 2048;
  ParamLayout layout(c, ShardSpec{});
  const size_t n = layout.total();
  Buffer w(n * 4), ms(n * 4), m(n * 4), v(n * 4);
  fill(w.as<float>(), n, 1);
  fill(ms.as<float>(), n, 2);
  fill(m.as<float>(), n, 3);
  fill(v.as<float>(), n, 4);
  const double bytes = 4.0 * n * 4;
  fs::remove_all(dir);
  fs::create_directories(dir);

  // Baseline: the same bytes written to one file and fsynced, then read back cold.
  std::string plain = dir + "/plain.bin";
  Timer t;
  {
    int fd = ::open(plain.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (const Buffer* b : {&w, &ms, &m, &v}) {
      size_t off = 0;
      while (off < b->size()) off += size_t(::write(fd, b->as<char>() + off, b->size() - off));
    }
    ::fsync(fd);
    ::close(fd);
  }
  double plain_write = t.seconds();
  drop_cache(plain);
  t.reset();
  {
    int fd = ::open(plain.c_str(), O_RDONLY);
    for (const Buffer* b : {&w, &ms, &m, &v}) {
      size_t off = 0;
      while (off < b->size()) off += size_t(::read(fd, b->as<char>() + off, b->size() - off));
    }
    ::close(fd);
  }
  double plain_read = t.seconds();
  fs::remove(plain);

  CheckpointMeta meta;
  meta.step = 1;
  meta.config = c;
  t.reset();
  std::string step_dir = save_checkpoint(dir + "/ckpt", meta, {{&layout, w.as<float>(), ms.as<float>(), m.as<float>(), v.as<float>()}},
                                         DType::F32, 0);
  double save_s = t.seconds();
  drop_cache_tree(step_dir);
  t.reset();
  CheckpointRef ref = open_checkpoint(dir + "/ckpt", -1, Verify::checksums);
  double verify_s = t.seconds();
  load_model(ref, layout, w.as<float>());
  load_optimizer(ref, layout, 0, n, ms.as<float>(), m.as<float>(), v.as<float>());
  double load_s = t.seconds();
  drop_cache_tree(step_dir);
  t.reset();
  CheckpointRef ref2 = open_checkpoint(dir + "/ckpt", -1, Verify::sizes);
  load_model(ref2, layout, w.as<float>());
  load_optimizer(ref2, layout, 0, n, ms.as<float>(), m.as<float>(), v.as<float>());
  double load_nohash_s = t.seconds();

  std::printf("{\"params\": %zu, \"bytes\": %.0f,\n", n, bytes);
  std::printf(" \"plain_write_GBps\": %.3f, \"plain_read_cold_GBps\": %.3f,\n", bytes / plain_write / 1e9,
              bytes / plain_read / 1e9);
  std::printf(" \"save_GBps\": %.3f, \"save_seconds\": %.3f,\n", bytes / save_s / 1e9, save_s);
  std::printf(" \"verify_seconds\": %.3f, \"load_cold_with_checksums_GBps\": %.3f,\n", verify_s,
              bytes / load_s / 1e9);
  std::printf(" \"load_cold_sizes_only_GBps\": %.3f}\n", bytes / load_nohash_s / 1e9);
  fs::remove_all(dir);
  return 0;
}

int write_hf(const std::string& dir, const std::string& preset, DType dtype, uint64_t seed) {
  LlamaConfig c = preset_config(preset);
  ParamLayout layout(c, ShardSpec{});
  fs::create_directories(dir);
  write_file_atomic(dir + "/config.json", hf_config_json(c, torch_dtype_name(dtype)));
  const uint64_t max_shard = 5'000'000'000ull;
  std::vector<std::vector<const ParamInfo*>> shards(1);
  uint64_t in = 0, total = 0;
  for (const auto& p : layout.params()) {
    uint64_t b = p.numel * dtype_size(dtype);
    if (in + b > max_shard && !shards.back().empty()) {
      shards.emplace_back();
      in = 0;
    }
    shards.back().push_back(&p);
    in += b;
    total += b;
  }
  std::string index = "{\"metadata\": {\"total_size\": " + std::to_string(total) + "}, \"weight_map\": {";
  std::vector<uint16_t> buf;
  Rng rng(seed);
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<TensorDecl> decls;
    for (const ParamInfo* p : shards[s]) decls.push_back({p->name, dtype, p->global_shape});
    SafetensorsWriter w(dir + "/" + name, decls, {{"format", "pt"}});
    for (const ParamInfo* p : shards[s]) {
      buf.resize(p->numel);
      // Random N(0, 0.02)-like values; cheap: uniform bits of the mantissa and a fixed exponent range.
      for (auto& x : buf) {
        float f = (rng.uniform() - 0.5f) * 0.04f;
        x = dtype == DType::BF16 ? float_to_bf16(f) : float_to_f16(f);
      }
      w.write(buf.data(), buf.size() * 2);
      index += (index.back() == '{' ? "\"" : ", \"") + p->name + "\": \"" + name + "\"";
    }
    w.finish();
    std::fprintf(stderr, "wrote %s\n", name);
  }
  write_file_atomic(dir + "/model.safetensors.index.json", index + "}}\n");
  std::printf("{\"dir\": \"%s\", \"bytes\": %llu, \"shards\": %zu}\n", dir.c_str(), (unsigned long long)total,
              shards.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 1 ? argv[1] : "";
    std::string dir = arg(argc, argv, "--dir", "");
    if (mode == "save-load" && !dir.empty()) return save_load(dir, std::stoi(arg(argc, argv, "--layers", "5")), std::stoi(arg(argc, argv, "--vocab", "32000")));
    if (mode == "write-hf" && !dir.empty()) {
      std::string dt = arg(argc, argv, "--dtype", "bf16");
      return write_hf(dir, arg(argc, argv, "--preset", "llama2-7b"), dt == "fp16" ? DType::F16 : DType::BF16,
                      std::stoull(arg(argc, argv, "--seed", "1")));
    }
    std::fprintf(stderr, "usage: ckpt_bench save-load --dir D [--layers L] | write-hf --dir D [--preset P] [--dtype bf16|fp16]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
