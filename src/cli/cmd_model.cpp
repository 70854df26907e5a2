// `llamatrain model info --model SPEC [--tp T --pp P] [--json]`: the architecture, parameter
// counts and the shard layout, the way users check a config before a run.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "model/config.h"
#include "model/layout.h"

namespace lt::cli {

void register_model_info(CLI::App& app) {
  auto* model = app.add_subcommand("model", "Inspect model architectures");
  model->require_subcommand(1);
  auto* info = model->add_subcommand("info", "Print a model's hyper-parameters and parameter count");
  struct Opts {
    std::string spec;
    int tp = 1, pp = 1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  info->add_option("--model", o->spec, "Preset name, config.json, or Hugging Face directory")->required();
  in_range(info->add_option("--tp", o->tp, "Tensor-parallel degree for the shard listing"), 1, 4096);
  in_range(info->add_option("--pp", o->pp, "Pipeline-parallel degree for the shard listing"), 1, 4096);
  info->add_flag("--json", o->json, "Print JSON");
  info->callback([o] {
    LlamaConfig c = resolve_model_config(o->spec);
    ShardSpec s;
    s.tp = o->tp;
    s.pp = o->pp;
    validate_shard(c, s);
    nlohmann::json j = nlohmann::json::parse(hf_config_json(c, "float32"));
    j["name"] = c.name;
    j["num_parameters"] = c.num_params();
    j["flops_per_token"] = c.flops_per_token(c.max_seq_len);
    nlohmann::json shards = nlohmann::json::array();
    for (int p = 0; p < o->pp; ++p)
      for (int t = 0; t < o->tp; ++t) {
        s.tp_rank = t;
        s.pp_rank = p;
        ParamLayout layout(c, s);
        shards.push_back({{"tp_rank", t}, {"pp_rank", p}, {"layers", {layout.layers().begin, layout.layers().end}},
                          {"num_parameters", layout.total()}});
      }
    j["shards"] = shards;
    if (o->json) {
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf("model %s: %.3fM parameters\n", c.name.c_str(), double(c.num_params()) / 1e6);
    std::printf("  hidden_size %d, intermediate_size %d, layers %d, heads %d, kv heads %d, head_dim %d\n", c.dim,
                c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim());
    std::printf("  vocab %d, max positions %d, rms eps %g, rope theta %g, tied embeddings %s\n", c.vocab_size,
                c.max_seq_len, c.norm_eps, c.rope_theta, c.tie_embeddings ? "yes" : "no");
    for (const auto& sh : shards)
      std::printf("  shard tp%d pp%d: layers [%d, %d), %.3fM parameters\n", sh["tp_rank"].get<int>(),
                  sh["pp_rank"].get<int>(), sh["layers"][0].get<int>(), sh["layers"][1].get<int>(),
                  sh["num_parameters"].get<double>() / 1e6);
  });
}

}  // namespace lt::cli
