// `llamatrain eval --model M --data D [--json]`: mean loss and perplexity over a dataset.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "train/evaluate.h"

namespace lt::cli {

void register_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Mean next-token loss and perplexity of a model over a dataset");
  auto o = std::make_shared<EvalOptions>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--model", o->model,
                  "Weights (Hugging Face dir, checkpoint dir, llama2.c .bin), or a preset/config.json with --init")
      ->required();
  cmd->add_option("--init", o->init, "Weights to load when --model is a preset or config.json");
  cmd->add_option("--data", o->data, "Dataset directory (llamatrain prepare) or raw uint16 token file")->required();
  cmd->add_option("--split", o->split, "Split of a prepared dataset (default validation, else train)")
      ->check(CLI::IsMember({"train", "validation"}));
  in_range(cmd->add_option("--seq-len", o->seq_len, "Tokens per sequence (default: the sample length, at most the model's)"),
           1, 1 << 24);
  in_range(cmd->add_option("--micro-batch", o->micro_batch, "Sequences per forward pass"), 1, 1 << 20);
  in_range(cmd->add_option("--max-samples", o->max_samples, "Evaluate at most this many samples (0 = all)"), 0,
           INT64_MAX);
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([o, json] {
    EvalResult r = evaluate_dataset(*o);
    if (*json) {
      nlohmann::json j = {{"model", r.model_name}, {"split", r.split}, {"loss", r.loss}, {"perplexity", r.perplexity},
                          {"tokens", r.tokens},    {"samples", r.samples}, {"seconds", r.seconds}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("model %s on %s (%s): loss %.4f, perplexity %.3f over %lld tokens (%lld samples, %.1f s)\n",
                  r.model_name.c_str(), o->data.c_str(), r.split.c_str(), r.loss, r.perplexity, (long long)r.tokens,
                  (long long)r.samples, r.seconds);
    }
  });
}

}  // namespace lt::cli
