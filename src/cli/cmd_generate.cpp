// `llamatrain generate --model M --tokenizer FILE --prompt TEXT [--max-new-tokens N]
//  [--temperature T] [--top-p P] [--seed S] [--samples K] [--json]`: sample a continuation with the
// KV-cached fp32 forward (K independent ones, one RNG stream, each followed by a blank line —
// so `prepare --text-mode paragraph` reads them back as K documents, e.g. a replay corpus of
// a model's own distribution; --json prints one object per line then). M is a Hugging Face directory, a checkpoint (root or step
// directory) or a llama2.c .bin. The prompt is BOS + encode(TEXT). Generation stops at EOS,
// at BOS (llama2.c's stories models end a story by starting the next one with BOS), after N
// tokens, or when the context (max_position_embeddings) is full.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "ckpt/tensor_source.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/tokenizer.h"
#include "model/infer.h"

namespace lt::cli {

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text from a model (KV-cached sampling)");
  struct Opts {
    std::string model, tokenizer, prompt;
    int max_new = 256;
    float temperature = 1.0f, top_p = 0.9f;
    uint64_t seed = 1234;
    int samples = 1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "HF directory, checkpoint directory, or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.model (SentencePiece) or tokenizer.json")->required();
  cmd->add_option("--prompt", o->prompt, "Text to continue (default: empty, start from BOS)");
  in_range(cmd->add_option("--max-new-tokens", o->max_new, "Most tokens to generate (default 256)"), 0, 1 << 24);
  in_range(cmd->add_option("--temperature", o->temperature, "Sampling temperature; 0 = greedy (default 1.0)"), 0.0,
           100.0, "[]");
  in_range(cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass (default 0.9; 1 = off)"), 0.0, 1.0, "(]");
  in_range(cmd->add_option("--seed", o->seed, "Sampling seed (default 1234)"), 0, INT64_MAX);
  in_range(cmd->add_option("--samples", o->samples, "Independent samples, each followed by a blank line (default 1)"), 1,
           1 << 20);
  cmd->add_flag("--json", o->json, "Print JSON with the token ids");
  cmd->callback([o] {
    auto src = open_weights(o->model);
    LlamaConfig c = src->config();
    auto tok = open_tokenizer(o->tokenizer);
    LT_CHECK(tok->vocab_size() <= c.vocab_size, "tokenizer {} has {} tokens but the model only {}", o->tokenizer,
             tok->vocab_size(), c.vocab_size);
    std::vector<int32_t> prompt;
    if (tok->bos_id() >= 0) prompt.push_back(tok->bos_id());
    tok->encode_append(o->prompt, prompt);
    LT_CHECK(!prompt.empty(), "generate: empty prompt and the tokenizer has no BOS token");
    LT_CHECK(int(prompt.size()) < c.max_seq_len, "generate: the prompt has {} tokens, the context holds {}",
             prompt.size(), c.max_seq_len);
    // The KV cache holds only the positions this run can reach (Llama 3.1's 131,072 would not fit).
    c.max_seq_len = int(std::min<int64_t>(c.max_seq_len, int64_t(prompt.size()) + o->max_new + 1));
    ParamLayout layout(c, ShardSpec{});
    std::vector<float> w(layout.total());
    load_weights(*src, layout, w.data());
    src.reset();
    InferenceModel model(c, std::move(w));

    const std::vector<int32_t> stop_ids = tok->stop_ids();  // EOS, and <|eot_id|> etc. for Llama 3
    Rng rng(o->seed);
    for (int sample = 0; sample < o->samples; ++sample) {
      model.reset();
      Timer timer;
      const float* logits = nullptr;
      for (int32_t t : prompt) logits = model.step(t);
      double prefill_s = timer.seconds();
      std::vector<int32_t> out;
      std::string stop = "max_new_tokens";
      while (int(out.size()) < o->max_new) {
        int next = sample_token(logits, c.vocab_size, o->temperature, o->top_p, rng);
        if (std::ranges::count(stop_ids, next)) { stop = "eos"; break; }
        if (next == tok->bos_id()) { stop = "bos"; break; }
        out.push_back(next);
        if (int(out.size()) == o->max_new) break;
        if (model.position() >= c.max_seq_len) { stop = "context_full"; break; }
        logits = model.step(next);
      }
      double gen_s = timer.seconds() - prefill_s;
      std::vector<int32_t> all = prompt;
      all.insert(all.end(), out.begin(), out.end());
      std::string text = tok->decode(all), prompt_text = tok->decode(prompt);
      std::string completion = text.starts_with(prompt_text) ? text.substr(prompt_text.size()) : tok->decode(out);
      if (o->json) {
        nlohmann::json j = {{"model", o->model},
                            {"prompt", o->prompt},
                            {"prompt_ids", prompt},
                            {"generated_ids", out},
                            {"text", text},
                            {"completion", completion},
                            {"stop_reason", stop},
                            {"temperature", o->temperature},
                            {"top_p", o->top_p},
                            {"seed", o->seed},
                            {"tokens_per_second", out.empty() || gen_s <= 0 ? 0.0 : double(out.size()) / gen_s}};
        if (o->samples > 1) j["sample"] = sample;
        std::printf("%s\n", j.dump(o->samples > 1 ? -1 : 2).c_str());
      } else {
        std::printf("%s\n%s", text.c_str(), o->samples > 1 ? "\n" : "");
        std::fflush(stdout);
        if (o->samples == 1)
          std::fprintf(stderr, "[%zu tokens, %.1f tokens/s, stop: %s]\n", out.size(),
                       gen_s > 0 ? double(out.size()) / gen_s : 0.0, stop.c_str());
      }
    }
  });
}

}  // namespace lt::cli
