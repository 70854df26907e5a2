// Continual pretraining of a Llama 3-config model end to end, with the real binary: a small
// random model (128,256-entry vocabulary, rope_theta 500000, llama3 rope_scaling with training
// sequences longer than its original context) is trained, exported to Hugging Face format, and
// trained on from that HF directory — in one process and at tp2 x pp2 under mpirun, which must
// agree — on uint32 token data; then evaluated. A model too small for the data's ids is a clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "ckpt/reshard.h"
#include "core/file.h"
#include "model/config.h"
#include "model/fixture.h"
#include "train/train_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using test::run_cmd;

constexpr const char* kRopeScaling =
    R"({"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 16, "rope_type": "llama3"})";

std::string llama3_config() {
  nlohmann::json j = nlohmann::json::parse(test::tiny_config(32, 3, 4, 2, 64, 128256, false));
  j["max_position_embeddings"] = 256;
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = nlohmann::json::parse(kRopeScaling);
  j["bos_token_id"] = 128000;
  j["eos_token_id"] = {128001, 128009};
  return j.dump(2);
}

// Raw uint32 ids spread over the whole vocabulary (most above 65,535), with repeats to learn.
void write_u32_tokens(const std::string& path, size_t n) {
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = uint32_t((i % 5 == 0) ? 128000 : (i * 7919 + 65536) % 128256);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), std::streamsize(n * 4));
}

std::vector<double> losses(const fs::path& run) {
  std::vector<double> out;
  for (const auto& j : test::read_steps(run.string())) out.push_back(j["loss"].get<double>());
  return out;
}

TEST(Llama3Train, ContinualPretrainingFromAnHfExportInAnyLayout) {
  fs::path dir = test::scratch_dir("llama3_train");
  std::string cfg = (dir / "config.json").string(), data = (dir / "tokens.u32").string();
  test::write_text(cfg, llama3_config());
  write_u32_tokens(data, 12000);
  auto args = [&](const std::string& model, const std::string& run, int steps, const std::string& extra) {
    return " train model=" + model + " data.path=" + data + " run.dir=" + (dir / run).string() +
           " train.seq_len=24 train.global_batch_size=8 train.micro_batch_size=2 optim.lr=1e-2 optim.warmup_steps=2" +
           " optim.decay_steps=40 train.steps=" + std::to_string(steps) + " " + extra;
  };
  // The "pretrained" model: random init, a few steps, exported to HF.
  auto base = run_cmd(test::train_env(2) + test::binary_path() + args(cfg, "base", 10, ""));
  ASSERT_EQ(base.status, 0) << base.output;
  auto conv = run_cmd(test::binary_path() + " convert --to hf --input " + (dir / "base/checkpoints").string() +
                      " --output " + (dir / "hf").string());
  ASSERT_EQ(conv.status, 0) << conv.output;
  auto hf_cfg = nlohmann::json::parse(read_file((dir / "hf/config.json").string()));
  EXPECT_EQ(hf_cfg["rope_scaling"], nlohmann::json::parse(kRopeScaling));
  EXPECT_EQ(hf_cfg["rope_theta"], 500000.0);
  EXPECT_EQ(hf_cfg["eos_token_id"], nlohmann::json::parse("[128001, 128009]"));

  // Continual pretraining from the HF directory, alone and at tp2 x pp2.
  std::string hf = (dir / "hf").string();
  auto one = run_cmd(test::train_env(2) + test::binary_path() + args(hf, "cont", 4, "init=" + hf));
  ASSERT_EQ(one.status, 0) << one.output;
  EXPECT_NE(one.output.find("initialised weights from"), std::string::npos) << one.output;
  auto par = run_cmd(test::mpirun(4) + test::binary_path() + args(hf, "cont_tp2pp2", 4, "init=" + hf + " parallel.tp=2 parallel.pp=2"));
  ASSERT_EQ(par.status, 0) << par.output;
  // The same run started from the checkpoint itself: the HF export changed no weight.
  auto ck = run_cmd(test::train_env(2) + test::binary_path() +
                    args(cfg, "cont_ckpt", 4, "init=" + (dir / "base/checkpoints").string()));
  ASSERT_EQ(ck.status, 0) << ck.output;
  auto lb = losses(dir / "base"), l1 = losses(dir / "cont"), l4 = losses(dir / "cont_tp2pp2");
  ASSERT_EQ(lb.size(), 10u);
  ASSERT_EQ(l1.size(), 4u);
  ASSERT_EQ(l4.size(), 4u);
  EXPECT_EQ(l1, losses(dir / "cont_ckpt"));
  EXPECT_LT(l1[0], lb[0] - 1.0) << "continued training should start from the trained weights";
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l4[i], l1[i], 1e-5 * l1[i]) << "step " << i + 1;
  ParamLayout layout(resolve_model_config(hf), ShardSpec{});
  std::vector<float> w1(layout.total()), w4(layout.total());
  load_model(open_checkpoint((dir / "cont/checkpoints").string()), layout, w1.data());
  load_model(open_checkpoint((dir / "cont_tp2pp2/checkpoints").string()), layout, w4.data());
  EXPECT_LT(test::norm_rel_err(w4.data(), w1.data(), w1.size()), 1e-5);

  // Evaluation reads the uint32 data too.
  auto ev = run_cmd(test::train_env(2) + test::binary_path() + " eval --model " + (dir / "cont/checkpoints").string() +
                    " --data " + data + " --seq-len 24 --max-samples 16 --json");
  ASSERT_EQ(ev.status, 0) << ev.output;
  EXPECT_NE(ev.output.find("\"loss\""), std::string::npos) << ev.output;

  // Ids beyond the model's vocabulary: a clear error naming the data and both numbers.
  auto bad = run_cmd(test::train_env(1) + test::binary_path() + args("stories260k", "bad", 3, ""));
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("but the model's vocab_size is 512"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace lt
