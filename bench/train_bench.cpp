// Training-step throughput of one CPU stage (single process, whole model): forward +
// backward + AdamW on random tokens, timed after warm-up steps. Prints ONE JSON line:
// tokens/s, step seconds, MFU against the measured oneDNN ceiling of this machine (345 GFLOP/s
// fp32, 700 GFLOP/s bf16 on 2 threads; override with --peak-gflops), peak RSS, page faults and
// the time split (forward incl. loss / backward / optimizer; gemm_s: the part inside GEMM
// calls) per step.
//
//   train_bench --model stories15m --batch 32 --seq 256 --steps 5 --warmup 1 [--precision bf16]
//               [--recompute] [--no-optim]
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/error.h"
#include "kernels/cpu/gemm.h"
#include "model/backend.h"
#include "model/config.h"
#include "model/init.h"
#include "model/layout.h"
#include "train/optimizer.h"

namespace {

// User + system CPU seconds of this process (all threads): on a loaded machine CPU time per
// step / threads estimates the unloaded step time better than the wall clock (with
// OMP_WAIT_POLICY=passive, so that spinning waits do not count).
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double load1() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int run(int argc, char** argv) {
  std::string model = "stories15m", precision = "fp32";
  int batch = 32, seq = 256, steps = 5, warmup = 1;
  bool recompute = false, optim = true;
  double peak = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      LT_CHECK(i + 1 < argc, "train_bench: {} needs a value", a);
      return argv[++i];
    };
    if (a == "--model") model = next();
    else if (a == "--batch") batch = std::stoi(next());
    else if (a == "--seq") seq = std::stoi(next());
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--warmup") warmup = std::stoi(next());
    else if (a == "--precision") precision = next();
    else if (a == "--peak-gflops") peak = std::stod(next());
    else if (a == "--recompute") recompute = true;
    else if (a == "--no-optim") optim = false;
    else lt::fail("train_bench: unknown argument '{}'", a);
  }
  LT_CHECK(steps >= 1 && warmup >= 0, "train_bench: --steps must be >= 1");
  lt::LlamaConfig c = lt::resolve_model_config(model);
  if (seq > c.max_seq_len) c.max_seq_len = seq;
  lt::ParamLayout layout(c, lt::ShardSpec{});
  lt::StageGeometry geo;
  geo.config = c;
  geo.options.micro_batch = batch;
  geo.options.seq_len = seq;
  geo.options.recompute = recompute;
  auto prec = lt::parse_enum<lt::Precision>(precision);
  LT_CHECK(prec, "train_bench: --precision must be fp32 or bf16");
  geo.options.precision = *prec;
  geo.threads = omp_get_max_threads();
  auto backend = lt::make_backend(lt::Device::cpu, {omp_get_max_threads(), 0});
  auto stage = backend->make_stage(layout, geo);
  lt::init_weights(layout, *backend->access(stage->weights(), layout.total()), 1234);
  lt::ShardedAdamW adamw(layout, {0.9, 0.95, 1e-8, 0.1, true}, 0, 1, false, *backend);
  const int64_t N = int64_t(batch) * seq;
  std::vector<int32_t> tokens(size_t(N) + 1);
  uint64_t s = 42;
  for (auto& t : tokens) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = int32_t((s >> 33) % uint64_t(c.vocab_size));
  }
  double t_fwd = 0, t_bwd = 0, t_opt = 0, loss = 0;
  int64_t faults0 = 0;
  double t0 = 0, c0 = 0, gemm0 = 0;
  for (int it = 0; it < warmup + steps; ++it) {
    if (it == warmup) {
      t0 = now();
      c0 = cpu_seconds();
      faults0 = lt::page_faults();
      t_fwd = t_bwd = t_opt = 0;
      gemm0 = lt::cpu::gemm_seconds();
    }
    double a = now();
    stage->refresh_weights();
    stage->zero_grads();
    stage->forward(0, tokens.data(), tokens.data() + 1, float(1.0 / double(N)), true);
    loss = stage->take_loss();
    double b = now();
    stage->backward(0);
    double e = now();
    if (optim) {
      double ss = adamw.range_sum_squares(stage->grads());
      float clip = ss > 1.0 ? float(1.0 / std::sqrt(ss)) : 1.0f;
      adamw.update(stage->weights(), stage->grads(), 3e-4, clip, it + 1);
    }
    double f = now();
    t_fwd += b - a;
    t_bwd += e - b;
    t_opt += f - e;
  }
  const double elapsed = now() - t0;
  const double gemm_s = (lt::cpu::gemm_seconds() - gemm0) / steps;
  const double cpu_s = (cpu_seconds() - c0) / steps;
  const int64_t faults = lt::page_faults() - faults0;
  const double step_s = elapsed / steps;
  const double tps = double(N) / step_s;
  if (peak == 0) peak = (geo.options.precision == lt::Precision::bf16 ? 700.0 : 345.0) * omp_get_max_threads() / 2.0;
  std::printf(
      "{\"impl\": \"llamatrain\", \"model\": \"%s\", \"precision\": \"%s\", \"batch\": %d, \"seq\": %d, "
      "\"threads\": %d, \"recompute\": %s, \"steps\": %d, \"tokens_per_s\": %.1f, \"step_s\": %.4f, "
      "\"forward_s\": %.4f, \"backward_s\": %.4f, \"optim_s\": %.4f, \"gemm_s\": %.4f, \"mfu\": %.4f, \"peak_gflops\": %.0f, "
      "\"loss\": %.5f, \"peak_rss_gb\": %.3f, \"activation_gb\": %.3f, \"page_faults_per_step\": %.1f, \"cpu_s_per_step\": %.3f, \"load1\": %.2f}\n",
      model.c_str(), precision.c_str(), batch, seq, omp_get_max_threads(), recompute ? "true" : "false", steps,
      tps, step_s, t_fwd / steps, t_bwd / steps, t_opt / steps, gemm_s,
      c.flops_per_token(seq) * double(N) / step_s / (peak * 1e9), peak, loss / double(N),
      double(lt::peak_rss_bytes()) / 1e9, double(stage->activation_bytes()) / 1e9, double(faults) / steps, cpu_s, load1());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
