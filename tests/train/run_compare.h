// What training runs leave behind, for tests that compare runs of different layouts: a metric
// of every step (metrics.jsonl) and the final weights, reassembled whatever the layout.
#pragma once
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/reshard.h"
#include "model/config.h"

namespace lt::test {

// `key` ("loss", "eval_loss", ...) of every metrics.jsonl line that has it, in order.
inline std::vector<double> run_metric(const std::filesystem::path& run_dir, const char* key) {
  std::vector<double> out;
  std::ifstream f(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains(key)) out.push_back(j[key].get<double>());
  }
  return out;
}

// The newest checkpoint's weights as one tp1/pp1 buffer.
inline std::vector<float> final_weights(const std::string& model, const std::filesystem::path& run_dir) {
  CheckpointRef ref = open_checkpoint((run_dir / "checkpoints").string());
  ParamLayout layout(resolve_model_config(model), ShardSpec{});
  std::vector<float> w(layout.total());
  load_model(ref, layout, w.data());
  return w;
}

}  // namespace lt::test
