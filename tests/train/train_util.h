// Running the real binary from tests: shell commands, tiny models and token files.
#pragma once
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rng.h"
#include "test_util.h"

namespace lt::test {

struct CmdResult {
  int status = -1;
  std::string output;  // stdout + stderr
};

inline CmdResult run_cmd(const std::string& cmd) {
  CmdResult r;
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// Environment for the trainer in tests: few threads that yield when idle.
inline std::string train_env(int threads = 2) {
  return "OMP_NUM_THREADS=" + std::to_string(threads) + " OMP_WAIT_POLICY=passive ";
}

inline std::string mpirun(int np) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive "
         "LT_COMM_TIMEOUT=120 mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl "
         "self,vader,tcp -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -x LT_COMM_TIMEOUT -np " +
         std::to_string(np) + " ";
}

// A raw uint16 token file of `n` ids below `vocab`, from a fixed seed.
inline void write_tokens(const std::string& path, size_t n, int vocab, uint64_t seed = 1) {
  Rng r(seed);
  std::vector<uint16_t> ids(n);
  // Runs of repeated patterns so that the loss actually falls.
  for (size_t i = 0; i < n; ++i) ids[i] = uint16_t((i % 7 == 0) ? r.below(uint64_t(vocab)) : (i * 31 + 7) % uint64_t(vocab));
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), std::streamsize(n * 2));
}

inline void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A tiny Llama config.json with awkward shapes.
inline std::string tiny_config(int dim, int layers, int heads, int kv_heads, int hidden, int vocab, bool tied) {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", dim},
                      {"intermediate_size", hidden}, {"num_hidden_layers", layers}, {"num_attention_heads", heads},
                      {"num_key_value_heads", kv_heads}, {"vocab_size", vocab}, {"max_position_embeddings", 64},
                      {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", tied}};
  return j.dump();
}

// A scratch directory holding a model config.json and a token file, for tests that run the binary.
struct TinyFiles {
  std::filesystem::path dir;
  std::string model, data;
  TinyFiles(const std::string& name, const std::string& config_json, size_t tokens, int vocab, uint64_t seed)
      : dir(scratch_dir(name)), model((dir / "config.json").string()), data((dir / "tokens.bin").string()) {
    write_text(model, config_json);
    write_tokens(data, tokens, vocab, seed);
  }
};

// Every JSON line of metrics.jsonl that has a "loss".
inline std::vector<nlohmann::json> read_steps(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream f(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j);
  }
  return out;
}

}  // namespace lt::test
