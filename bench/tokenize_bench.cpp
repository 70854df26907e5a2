// Tokenization throughput: our Llama tokenizer (tokenizer.model and tokenizer.json) against Python
// sentencepiece's fastest batch API on the same documents (the trilingual gimp_help corpus, one
// document per non-blank line), same thread count, same run; the ids are compared by checksum.
//   build/bench/tokenize_bench [--source REPO_DIR] [--threads N] [--reps R] [--no-python]
// (run from the repository root, or pass --source).
//   build/bench/tokenize_bench --tokenizer FILE [--threads N] [--reps R]
// times only FILE (e.g. Llama 3's tokenizer.json, bench/llama3_tokenize_bench.sh) and prints one
// JSON line {name, seconds, bytes, tokens, checksum} like the JavaScript peers.
// Each repetition opens a fresh tokenizer, so our per-thread word cache starts cold every time.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/file.h"
#include "data/tokenizer.h"

namespace {

struct Result {
  double seconds = 1e30;
  uint64_t tokens = 0, checksum = 0;
};

Result run_ours(const std::string& path, const std::vector<std::string>& docs, int threads, int reps) {
  Result r;
  std::vector<std::vector<int32_t>> out(docs.size());
  for (int rep = 0; rep < reps; ++rep) {
    auto tok = lt::open_tokenizer(path);
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads)
    for (long i = 0; i < long(docs.size()); ++i) out[size_t(i)] = tok->encode(docs[size_t(i)]);
    r.seconds = std::min(r.seconds, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  for (const auto& ids : out) {
    for (int32_t id : ids) r.checksum = r.checksum * 1000003ull + uint64_t(id) + 1;
    r.tokens += ids.size();
  }
  return r;
}

std::string fmt_hex(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", (unsigned long long)v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 3;
  bool python = true;
  std::string only;  // --tokenizer
  std::string src = std::filesystem::exists("assets/llama2") ? "." : "..";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--no-python")) python = false;
    else if (!std::strcmp(argv[i], "--source") && i + 1 < argc) src = argv[++i];
    else if (!std::strcmp(argv[i], "--tokenizer") && i + 1 < argc) only = argv[++i];
  }
  std::vector<std::string> files;
  for (const char* l : {"ca", "es", "en"}) files.push_back(src + "/assets/corpus/gimp_help/gimp_help_" + l + ".txt");
  std::vector<std::string> docs;
  size_t bytes = 0;
  for (const auto& f : files) {
    std::istringstream in(lt::read_file(f));
    std::string line;
    while (std::getline(in, line))
      if (line.find_first_not_of(" \t\r\n\f\v") != std::string::npos) {
        bytes += line.size();
        docs.push_back(line);
      }
  }
  if (!only.empty()) {
    Result r = run_ours(only, docs, threads, reps);
    std::printf("%s\n", nlohmann::json({{"name", "llamatrain"}, {"seconds", r.seconds}, {"bytes", bytes},
                                        {"tokens", r.tokens}, {"checksum", fmt_hex(r.checksum)}})
                            .dump()
                            .c_str());
    return 0;
  }
  std::printf("corpus: %zu documents, %.2f MB (gimp_help ca+es+en), %d threads, best of %d\n", docs.size(),
              double(bytes) / 1e6, threads, reps);
  auto report = [&](const char* name, const Result& r) {
    std::printf("%-34s %7.3f s  %7.2f MB/s  %8.2f M tok/s  tokens %llu  checksum %016llx\n", name, r.seconds,
                double(bytes) / 1e6 / r.seconds, double(r.tokens) / 1e6 / r.seconds, (unsigned long long)r.tokens,
                (unsigned long long)r.checksum);
  };
  Result model = run_ours(src + "/assets/llama2/tokenizer.model", docs, threads, reps);
  report("llamatrain tokenizer.model", model);
  Result json = run_ours(src + "/assets/llama2/tokenizer.json", docs, threads, reps);
  report("llamatrain tokenizer.json", json);
  if (model.checksum != json.checksum) std::printf("MISMATCH between tokenizer.model and tokenizer.json ids\n");
  if (!python) return 0;
  std::string cmd = "/usr/bin/python3 " + src + "/bench/tokenize_bench_sentencepiece.py " + src +
                    "/assets/llama2/tokenizer.model " + std::to_string(threads) + " " + std::to_string(reps);
  for (const auto& f : files) cmd += " " + f;
  std::FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  if (!p || pclose(p) != 0) {
    std::printf("python sentencepiece reference failed to run: %s\n", cmd.c_str());
    return 1;
  }
  nlohmann::json j = nlohmann::json::parse(out);
  Result py;
  py.seconds = j["seconds"];
  py.tokens = j["tokens"];
  py.checksum = j["checksum"];
  report("python sentencepiece encode(list)", py);
  std::printf("ids identical to python sentencepiece: %s\n", py.checksum == model.checksum ? "yes" : "NO");
  std::printf("speed-up vs python sentencepiece: tokenizer.model %.2fx, tokenizer.json %.2fx\n",
              py.seconds / model.seconds, py.seconds / json.seconds);
  return py.checksum == model.checksum ? 0 : 1;
}
