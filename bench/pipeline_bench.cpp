// The pipeline schedules' bubble, measured on the real schedule code and real MPI messages with
// stages whose forward and backward sleep for fixed times (so ranks that share cores do not
// slow each other, and every stage costs the same): the measured bubble is the share of the
// step a rank is not inside a forward or backward, 1 − busy / step time (averaged over ranks),
// against (P−1) / (v·M + P−1).
//
//   mpirun -np P build/bench/pipeline_bench [--micro-batches 8] [--virtual 1] [--forward-ms 40]
//          [--steps 5] [--message-kib 288]
//
// A stage's forward sleeps forward-ms / v and its backward twice that (a chunk is 1/v of a
// stage); messages carry message-kib (the stories15M shape: 256 tokens x 288 x 4 B).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/timer.h"
#include "model/layout.h"
#include "model/stage.h"
#include "parallel/runtime.h"
#include "train/pipeline.h"

namespace lt {
namespace {

StageSizes no_sizes() { return {}; }

class SleepStage final : public Stage {
 public:
  SleepStage(const ParamLayout& layout, const StageOptions& opt, double forward_s, size_t message_bytes)
      : Stage(layout, opt, no_sizes(), 16), forward_s_(forward_s), bytes_(message_bytes) {
    for (int s = 0; s < opt.slots; ++s) {
      in_.emplace_back(bytes_);
      out_.emplace_back(bytes_);
      grad_.emplace_back(bytes_);
    }
    dres_.resize(bytes_);
    w_.assign(16, 0.0f);
    g_.assign(16, 0.0f);
  }
  float* weights() override { return w_.data(); }
  float* grads() override { return g_.data(); }
  void zero_grads() override {}
  void refresh_weights() override {}
  void forward(int, const int32_t*, const int32_t*, float, bool) override { sleep(forward_s_); }
  void backward(int) override { sleep(2 * forward_s_); }
  static double busy_s;  // time inside forward/backward, all chunks of this rank
  double take_loss() override { return 0; }
  StageMessage input_message(int slot) override { return {in_[size_t(slot)].data(), bytes_}; }
  StageMessage output_message(int slot) override { return {out_[size_t(slot)].data(), bytes_}; }
  StageMessage output_grad_message() override { return {dres_.data(), bytes_}; }
  StageMessage input_grad_message() override { return {dres_.data(), bytes_}; }
  StageMessage slot_grad_message(int slot) override { return {grad_[size_t(slot)].data(), bytes_}; }
  void logits(int, float*) override {}
  double activation_bytes() const override { return 0; }

 private:
  static void sleep(double s) {
    Timer t;
    std::this_thread::sleep_for(std::chrono::duration<double>(s));
    busy_s += t.seconds();
  }
  double forward_s_;
  size_t bytes_;
  std::vector<std::vector<char>> in_, out_, grad_;
  std::vector<char> dres_;
  std::vector<float> w_, g_;
};

double SleepStage::busy_s = 0;

int run(int argc, char** argv) {
  int M = 8, v = 1, steps = 5;
  double forward_ms = 40, message_kib = 288;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--micro-batches") M = std::atoi(argv[i + 1]);
    else if (a == "--virtual") v = std::atoi(argv[i + 1]);
    else if (a == "--forward-ms") forward_ms = std::atof(argv[i + 1]);
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
    else if (a == "--message-kib") message_kib = std::atof(argv[i + 1]);
  }
  Runtime rt;
  Comm& world = rt.world();
  const int P = world.size(), r = world.rank();
  LlamaConfig c = preset_config("stories260k");
  c.n_layers = std::max(c.n_layers, v * P);
  std::vector<std::unique_ptr<ParamLayout>> layouts;
  std::vector<std::unique_ptr<Stage>> stages;
  std::vector<Stage*> chunks;
  const std::vector<int> slots = PipelineSchedule::chunk_slots(P, r, M, v);
  for (int k = 0; k < v; ++k) {
    layouts.push_back(std::make_unique<ParamLayout>(c, ShardSpec{1, 0, v * P, k * P + r, {}}));
    StageOptions o;
    o.slots = slots[size_t(k)];
    stages.push_back(std::make_unique<SleepStage>(*layouts.back(), o, forward_ms / 1e3 / v, size_t(message_kib * 1024)));
    chunks.push_back(stages.back().get());
  }
  PipelineSchedule pipe(chunks, P > 1 ? &world : nullptr, M);
  std::vector<int32_t> tokens(size_t(M), 0);
  double total = 0, waits = 0, busy = 0;
  for (int s = 0; s <= steps; ++s) {
    world.barrier();
    SleepStage::busy_s = 0;
    Timer t;
    pipe.train(tokens.data(), tokens.data(), 1.0f);
    world.barrier();
    if (s == 0) continue;  // warm-up: connections, first messages
    total += t.seconds();
    waits += pipe.wait_seconds();
    busy += SleepStage::busy_s;
  }
  const double step = total / steps, work = busy / steps;
  double measured = 1.0 - work / step, wait_share = waits / steps / step;
  double sums[2] = {measured, wait_share};
  world.all_reduce_sum(sums, 2);
  if (r == 0)
    std::printf("{\"pp\": %d, \"virtual\": %d, \"micro_batches\": %d, \"step_s\": %.4f, \"work_s\": %.4f, "
                "\"bubble\": %.4f, \"wait_share\": %.4f, \"theory\": %.4f}\n",
                P, v, M, step, work, sums[0] / P, sums[1] / P, double(P - 1) / double(v * M + P - 1));
  return 0;
}

}  // namespace
}  // namespace lt

int main(int argc, char** argv) { return lt::run(argc, argv); }
