// `llamatrain plan --model SPEC --nodes N --procs-per-node P --tp T --pp P --gbs G --seq S
// [--mbs M] [--zero1] [--recompute full|none] [--virtual-stages V] [--stage-starts auto|even|0,a,..]
// [--sequence-parallel] [--precision bf16|fp32]
// [--steps N] [--device cpu|h100|h200|trn1] [--mfu 0.4] [--buffers] [--json]`: what a layout costs before
// it runs (parallel/plan.h says how each number is computed). `--config run.yaml [key=value ...]`
// takes the layout from a run config (options given on the command line win) and adds the run's
// learning-rate plan (train/schedule.h).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "parallel/plan.h"
#include "train/run_config.h"

namespace lt::cli {

namespace {
double gib(double b) { return b / (1024.0 * 1024.0 * 1024.0); }

std::string human_seconds(double s) {
  if (s < 120) return fmt::format("{:.1f} s", s);
  if (s < 2 * 3600) return fmt::format("{:.1f} min", s / 60);
  if (s < 2 * 86400) return fmt::format("{:.1f} h", s / 3600);
  return fmt::format("{:.1f} days", s / 86400);
}

// The first layer of every (virtual) stage, in layer order.
std::vector<int> first_layers(const TrainPlan& p) {
  std::vector<int> f;
  for (const StageMemory& m : p.stages)
    for (auto [first, n] : m.chunks) f.push_back(first);
  std::sort(f.begin(), f.end());
  return f;
}

double total_cost(const TrainPlan& p) {
  double t = 0;
  for (const StageMemory& m : p.stages) t += m.cost;
  return t;
}

nlohmann::json to_json(const TrainPlan& p) {
  const JobLayout& L = p.layout;
  const double total_cost = lt::cli::total_cost(p);
  nlohmann::json stages = nlohmann::json::array();
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const StageMemory& m = p.stages[i];
    const StageComm& cm = p.comm[i];
    nlohmann::json comm = {{"tp_payload_bytes", cm.tp_payload}, {"tp_sent_bytes", cm.tp_sent},
                           {"pp_payload_bytes", cm.pp_payload}, {"pp_sent_bytes", cm.pp_sent},
                           {"dp_payload_bytes", cm.dp_payload}, {"dp_sent_bytes", cm.dp_sent}};
    stages.push_back({{"comm_per_step", comm}, {"stage", m.stage}, {"first_layer", m.first_layer}, {"layers", m.layers},
                      {"cost_flops_per_token", m.cost}, {"cost_share", m.cost / total_cost}, {"params", m.params}, {"in_flight", m.in_flight},
                      {"weights_bytes", m.weights}, {"gradients_bytes", m.gradients}, {"optimizer_bytes", m.optimizer},
                      {"activations_bytes", m.activations}, {"activations_full_bytes", m.activations_full},
                      {"activations_recompute_bytes", m.activations_recompute},
                      {"activations_per_micro_batch_full_bytes", m.activations_full / m.in_flight},
                      {"activations_per_micro_batch_recompute_bytes", m.activations_recompute / m.in_flight},
                      {"workspace_bytes", m.workspace}, {"runtime_bytes", m.runtime}, {"total_bytes", m.total()}});
  }
  const PlanOptions& o = p.options;
  return {{"model", p.model},
          {"nodes", o.shape.nodes},
          {"procs_per_node", o.shape.procs_per_node},
          {"world", L.world},
          {"tp", L.tp},
          {"pp", L.pp},
          {"dp", L.dp},
          {"global_batch", L.global_batch},
          {"micro_batch", L.micro_batch},
          {"per_replica_batch", L.per_replica_batch},
          {"micro_batches", L.micro_batches},
          {"seq_len", L.seq_len},
          {"tokens_per_step", p.tokens_per_step},
          {"pipeline_bubble", p.bubble},
          {"virtual_stages", p.options.virtual_stages},
          {"stage_starts", first_layers(p)},
          {"zero1", o.zero1},
          {"recompute", o.recompute ? "full" : "none"},
          {"sequence_parallel", o.sequence_parallel},
          {"pack_weights", o.pack_weights},
          {"precision", o.precision},
          {"device", o.device},
          {"stages", stages},
          {"peak_stage", p.peak_stage},
          {"peak_rank_bytes", p.stages[p.peak_stage].total()},
          {"model_flops_per_step", p.model_flops_per_step},
          {"hardware_flops_per_step", p.hardware_flops_per_step},
          {"peak_flops_per_rank", p.peak_flops_per_rank},
          {"efficiency", o.efficiency},
          {"step_seconds", p.step_seconds},
          {"steps", o.steps},
          {"total_seconds", p.total_seconds},
          {"mfu", p.mfu},
          {"notes", p.notes}};
}

void print_human(const TrainPlan& p) {
  const JobLayout& L = p.layout;
  const PlanOptions& o = p.options;
  std::printf("plan: %s on %d ranks (%d nodes x %d processes per node), device %s, %s\n", p.model.c_str(), L.world,
              o.shape.nodes, o.shape.procs_per_node, o.device.c_str(), o.precision.c_str());
  std::printf("  layout     tp %d x pp %d x dp %d%s%s\n", L.tp, L.pp, L.dp, o.zero1 ? ", ZeRO-1" : "",
              o.sequence_parallel ? ", sequence parallel" : "");
  std::printf("  batch      %d sequences x %d tokens = %.3fM tokens/step; per replica %d = %d micro-batches of %d\n",
              L.global_batch, L.seq_len, double(p.tokens_per_step) / 1e6, L.per_replica_batch, L.micro_batches,
              L.micro_batch);
  const int v = o.virtual_stages;
  if (v == 1)
    std::printf("  pipeline   1F1B bubble (p-1)/(m+p-1) = %d/%d = %.1f%%\n", L.pp - 1, L.micro_batches + L.pp - 1,
                100.0 * p.bubble);
  else
    std::printf("  pipeline   interleaved 1F1B, %d chunks per rank: bubble (p-1)/(v*m+p-1) = %d/%d = %.1f%% (v=1: %.1f%%)\n",
                v, L.pp - 1, v * L.micro_batches + L.pp - 1, 100.0 * p.bubble, 100.0 * L.bubble());
  if (L.pp > 1) {
    const double total = total_cost(p);
    std::printf("  stages     cut %s (parallel.stage_starts=%s); cost per token, forward + backward:\n",
                stage_cut_text({StageCutMode::list, first_layers(p)}).c_str(), stage_cut_text(o.cut).c_str());
    for (const StageMemory& m : p.stages) {
      std::string layers;
      for (auto [first, n] : m.chunks) layers += fmt::format("{}{}-{}", layers.empty() ? "" : ", ", first, first + n - 1);
      std::printf("    stage %d: layers %s%s%s  %.3g GFLOP (%.1f%%)\n", m.stage, layers.c_str(),
                  m.stage == 0 ? " + embedding" : "", m.stage == L.pp - 1 ? " + LM head + loss" : "", m.cost / 1e9,
                  100.0 * m.cost / total);
    }
  }
  std::printf("  memory per rank (GiB; tp rank 0 of each stage; activations for the micro-batches in flight)\n");
  std::printf("    %5s %6s %9s %8s %8s %8s %10s %10s %9s %8s %8s\n", "stage", "layers", "params(M)", "weights", "grads",
              "optim", "acts-full", "acts-recmp", "workspace", "runtime", "total");
  for (const StageMemory& m : p.stages)
    std::printf("    %5d %6d %9.1f %8.2f %8.2f %8.2f %7.2f x%-2d %7.2f x%-2d %9.2f %8.2f %8.2f%s\n", m.stage, m.layers,
                double(m.params) / 1e6, gib(m.weights), gib(m.gradients), gib(m.optimizer), gib(m.activations_full),
                m.in_flight, gib(m.activations_recompute), m.in_flight, gib(m.workspace), gib(m.runtime),
                gib(m.total()), m.stage == p.peak_stage ? "  <- peak" : "");
  std::printf("    total uses %s activations (--recompute %s)\n", o.recompute ? "recomputed" : "full",
              o.recompute ? "full" : "none");
  std::printf("  comm/step  per rank, sent (payload), GiB:");
  for (size_t i = 0; i < p.comm.size(); ++i) {
    const StageComm& cm = p.comm[i];
    std::printf("%s stage %zu: tp %.2f (%.2f), pp %.2f (%.2f), dp %.2f (%.2f)", i ? ";" : "", i, gib(cm.tp_sent),
                gib(cm.tp_payload), gib(cm.pp_sent), gib(cm.pp_payload), gib(cm.dp_sent), gib(cm.dp_payload));
    if (p.comm.size() > 2 && i == 0) {  // first, and last, stand for all
      i = p.comm.size() - 2;
      std::printf("; ...");
    }
  }
  std::printf("\n");
  std::printf("  compute    %.3g model FLOPs/step (%.3g with recomputation), peak %.3g TFLOP/s per rank\n",
              p.model_flops_per_step, p.hardware_flops_per_step, p.peak_flops_per_rank / 1e12);
  std::printf("  time       %s per step at %.0f%% efficiency (MFU %.1f%%); %lld steps: %s\n",
              human_seconds(p.step_seconds).c_str(), 100.0 * o.efficiency, 100.0 * p.mfu, (long long)o.steps,
              human_seconds(p.total_seconds).c_str());
  for (const std::string& n : p.notes) std::printf("  note: %s\n", n.c_str());
}
}  // namespace

void register_plan(CLI::App& app) {
  auto* cmd = app.add_subcommand("plan", "Memory, FLOPs and time of a parallel training layout, before running it");
  struct Opts {
    std::string model, recompute = "none", config, cut = "auto";
    std::vector<std::string> overrides;
    PlanOptions plan;
    double peak_tflops = 0, runtime_mib = 0;
    bool json = false, buffers = false;
  };
  auto o = std::make_shared<Opts>();
  PlanOptions& p = o->plan;
  p.zero1 = false;
  cmd->add_option("--config", o->config,
                  "A run config (YAML): the layout, batch, steps and learning-rate schedule of that run");
  cmd->add_option("overrides", o->overrides, "with --config: dotted key=value settings, as `train` takes them");
  auto* model_opt = cmd->add_option("--model", o->model, "Preset name, config.json, or Hugging Face directory");
  in_range(cmd->add_option("--nodes", p.shape.nodes, "Nodes")->capture_default_str(), 1, 1 << 20);
  in_range(cmd->add_option("--procs-per-node", p.shape.procs_per_node, "Processes (ranks) per node")->capture_default_str(),
           1, 1 << 16);
  in_range(cmd->add_option("--tp", p.shape.tp, "Tensor-parallel degree")->capture_default_str(), 1, 4096);
  in_range(cmd->add_option("--pp", p.shape.pp, "Pipeline-parallel degree")->capture_default_str(), 1, 4096);
  auto* gbs_opt = in_range(cmd->add_option("--gbs", p.shape.global_batch, "Global batch size (sequences per step)"), 1,
                           1 << 30);
  auto* seq_opt = in_range(cmd->add_option("--seq", p.shape.seq_len, "Sequence length (tokens)"), 1, 1 << 24);
  in_range(cmd->add_option("--mbs", p.shape.micro_batch, "Micro-batch size (sequences)")->capture_default_str(), 1,
           1 << 30);
  cmd->add_flag("--zero1", p.zero1, "Shard the optimizer state over data-parallel ranks (ZeRO-1)");
  cmd->add_option("--recompute", o->recompute, "Activation recomputation")
      ->check(CLI::IsMember({"full", "none"}))
      ->capture_default_str();
  in_range(cmd->add_option("--virtual-stages", p.virtual_stages,
                           "Model chunks per pipeline rank (interleaved 1F1B, parallel.virtual_stages)")
               ->capture_default_str(),
           1, 4096);
  cmd->add_option("--stage-starts", o->cut, "Pipeline cut: auto (by cost), even, or first layers e.g. 0,3,5")
      ->capture_default_str();
  cmd->add_flag("--sequence-parallel", p.sequence_parallel,
                "Sequence parallelism (parallel.sequence_parallel): residual stream and norms sharded over tp");
  cmd->add_flag("!--no-pack-weights", p.pack_weights,
                "cpu fp32: without packed GEMM copies of the weights (train.pack_weights=false)");
  cmd->add_option("--precision", p.precision, "Training precision")
      ->check(CLI::IsMember({"bf16", "fp32"}))
      ->capture_default_str();
  in_range(cmd->add_option("--steps", p.steps, "Optimizer steps for the total time")->capture_default_str(), 1,
           int64_t(1e15));
  cmd->add_option("--device", p.device, "Device of each rank")
      ->check(CLI::IsMember({"cpu", "h100", "h200", "trn1"}))
      ->capture_default_str();
  in_range(cmd->add_option("--mfu", p.efficiency, "Fraction of peak FLOP/s the kernels reach")->capture_default_str(),
           0.0, 1.0, "(]");
  in_range(cmd->add_option("--peak-tflops", o->peak_tflops, "Override the device's peak TFLOP/s per rank"), 0.0, 1e6,
           "(]");
  in_range(cmd->add_option("--cores-per-rank", p.cores_per_rank, "CPU cores per rank (device cpu)")->capture_default_str(),
           1, 4096);
  in_range(cmd->add_option("--runtime-mib", o->runtime_mib, "Per-rank baseline memory in MiB (default 32)"), 0.0,
           1 << 24, "(]");
  cmd->add_flag("--buffers", o->buffers, "Also list every buffer of the peak stage (the backend's size table)");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, cmd, model_opt, gbs_opt, seq_opt] {
    PlanOptions p = o->plan;
    std::string lr_plan;
    if (!o->config.empty() || !o->overrides.empty()) {
      const RunConfig rc = load_run_config(o->config, o->overrides);
      auto unset = [&](const char* name) { return cmd->get_option(name)->count() == 0; };
      if (model_opt->count() == 0) o->model = rc.model;
      if (gbs_opt->count() == 0) p.shape.global_batch = rc.global_batch_size;
      if (seq_opt->count() == 0) p.shape.seq_len = rc.seq_len;
      if (unset("--mbs")) p.shape.micro_batch = rc.micro_batch_size;
      if (unset("--tp")) p.shape.tp = rc.tp;
      if (unset("--pp")) p.shape.pp = rc.pp;
      if (unset("--procs-per-node") && unset("--nodes")) p.shape.procs_per_node = p.shape.tp * p.shape.pp;
      if (unset("--zero1")) p.zero1 = rc.zero1;
      if (unset("--recompute")) o->recompute = rc.recompute ? "full" : "none";
      if (unset("--sequence-parallel")) p.sequence_parallel = rc.sequence_parallel;
      if (unset("--precision")) p.precision = enum_name(rc.precision);
      if (unset("--steps")) p.steps = rc.steps;
      if (unset("--no-pack-weights")) p.pack_weights = rc.pack_weights;
      if (unset("--virtual-stages")) p.virtual_stages = rc.virtual_stages;
      if (unset("--stage-starts")) o->cut = stage_cut_text(rc.stage_starts);
      const LrSchedule sched{rc.schedule,       rc.lr,           rc.min_lr,         rc.warmup_steps,   rc.decay_steps,
                             rc.cooldown_steps, rc.decay_fraction, rc.decay_shape, rc.warmup_start_lr};
      lr_plan = sched.describe(rc.steps);
    }
    LT_CHECK(!lr_plan.empty() || (model_opt->count() && gbs_opt->count() && seq_opt->count()),
             "plan: --model, --gbs and --seq are required (or --config with a run config)");
    LlamaConfig c = resolve_model_config(o->model);
    p.recompute = o->recompute == "full";
    p.cut = parse_stage_cut(o->cut, "--stage-starts");
    p.peak_flops = o->peak_tflops * 1e12;
    p.runtime_bytes = o->runtime_mib * 1024.0 * 1024.0;
    TrainPlan plan = make_train_plan(c, p);
    if (o->json) {
      nlohmann::json j = to_json(plan);
      if (!lr_plan.empty()) j["lr_plan"] = lr_plan;
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    print_human(plan);
    if (!lr_plan.empty()) std::printf("  lr plan    %s\n", lr_plan.c_str());
    if (o->buffers)
      std::printf("  buffers of stage %d (tp rank 0; count x bytes per element x copies):\n%s", plan.peak_stage,
                  plan.tables[size_t(plan.peak_stage)].report().c_str());
  });
}

}  // namespace lt::cli
