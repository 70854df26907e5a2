// `llamatrain train [--config run.yaml] [key=value ...]`: one rank of a training job.
#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "cli/options.h"
#include "train/run_config.h"
#include "train/trainer.h"

namespace lt::cli {

void register_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train (or continue training) a Llama model; run under mpirun for tp/pp/dp");
  struct Opts {
    std::string config;
    std::vector<std::string> overrides;
    bool json = false, help_config = false, markdown = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--config", o->config, "YAML run config (optional; keys can all be given as key=value)");
  cmd->add_option("overrides", o->overrides, "dotted key=value settings, e.g. train.steps=100 optim.lr=1e-3");
  cmd->add_flag("--json", o->json, "Print a JSON summary at the end");
  cmd->add_flag("--help-config", o->help_config,
                "List every config key with its type, default, allowed values and meaning, and exit");
  cmd->add_flag("--markdown", o->markdown, "With --help-config: the key table of docs/USER_GUIDE.md");
  cmd->footer("Config keys: see `llamatrain train --help-config`. Exit status: 0 done, 1 error, 85 stopped by "
              "SIGTERM/SIGINT after saving a checkpoint, 87 done but some checkpoints have no complete "
              "copy at checkpoint.remote (exit.json names them; the next run uploads them).");
  cmd->callback([o] {
    if (o->help_config) {
      std::printf("%s", run_config_help(o->markdown).c_str());
      return;
    }
    check_config_file(o->config);
    RunConfig cfg = load_run_config(o->config, o->overrides);
    int rc = run_training(cfg, TrainOptions{o->json});
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace lt::cli
