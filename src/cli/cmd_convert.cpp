// `llamatrain convert`: model weights between formats, streaming tensor by tensor.
//   convert --from hf|llama2c|ckpt --input X --output CKPT_DIR [--tp T --pp P] [--dtype D]
//   convert --to hf --input MODEL --output HF_DIR [--tokenizer FILE...] [--dtype D]
//           [--max-shard-size 5GB]
//   convert --to llama2c --input MODEL --output FILE.bin   (llama2.c's legacy format, fp32)
#include <cstdio>
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "ckpt/convert.h"
#include "ckpt/hf_source.h"
#include "ckpt/llama2c.h"
#include "ckpt/reshard.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/timer.h"

namespace lt::cli {

namespace {

std::optional<DType> parse_weight_dtype(const std::string& s) {
  if (s.empty()) return std::nullopt;
  if (s == "fp32" || s == "float32" || s == "f32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "fp16" || s == "float16" || s == "f16") return DType::F16;
  fail("--dtype '{}': expected fp32, bf16 or fp16", s);
}

std::unique_ptr<TensorSource> open_as(const std::string& format, const std::string& input) {
  if (format == "hf") return std::make_unique<HfSource>(input);
  if (format == "llama2c") return std::make_unique<Llama2cSource>(input);
  if (format == "ckpt") return std::make_unique<CheckpointSource>(open_checkpoint(input));
  fail("--from '{}': expected hf, llama2c or ckpt", format);
}

}  // namespace

void register_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "Convert model weights: HF / llama2.c / checkpoint <-> checkpoint / HF");
  struct Opts {
    std::string from, to, input, output, dtype, max_shard = "5GB";
    int tp = 1, pp = 1;
    std::vector<int> stage_starts;
    std::vector<std::string> tokenizer;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--from", o->from, "Input format when writing a checkpoint: hf, llama2c or ckpt")
      ->check(CLI::IsMember({"hf", "llama2c", "ckpt"}));
  cmd->add_option("--to", o->to, "Output format other than a checkpoint: hf, or llama2c (a .bin for llama2.c's run)")
      ->check(CLI::IsMember({"hf", "llama2c"}));
  cmd->add_option("--input", o->input, "Input: HF directory, llama2.c .bin, or checkpoint directory")->required();
  cmd->add_option("--output", o->output, "Output directory")->required();
  in_range(cmd->add_option("--tp", o->tp, "Tensor-parallel degree of the written checkpoint"), 1, 4096);
  in_range(cmd->add_option("--pp", o->pp, "Pipeline-parallel degree of the written checkpoint"), 1, 4096);
  in_range(cmd->add_option("--stage-starts", o->stage_starts, "First layer of each pipeline stage (default: even cut)")
               ->delimiter(','),
           0, 1 << 20);
  cmd->add_option("--dtype", o->dtype, "Stored dtype: fp32, bf16, fp16 (default: keep the input's)")
      ->check(CLI::IsMember({"fp32", "float32", "f32", "bf16", "bfloat16", "fp16", "float16", "f16"}));
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer files to copy into the HF directory");
  byte_size_range(cmd->add_option("--max-shard-size", o->max_shard, "Largest HF safetensors file (default 5GB)"),
                  1e3, 1e15);
  cmd->add_flag("--json", o->json, "Print a JSON summary");
  cmd->callback([o] {
    LT_CHECK(o->from.empty() != o->to.empty(), "convert: give exactly one of --from (to a checkpoint) or --to hf");
    const uint64_t max_shard = parse_byte_size(o->max_shard);  // checked before anything is read
    Timer timer;
    nlohmann::json out;
    if (!o->from.empty()) {
      auto src = open_as(o->from, o->input);
      ToCheckpointOptions opt;
      opt.tp = o->tp;
      opt.pp = o->pp;
      opt.stage_starts = o->stage_starts;
      opt.dtype = parse_weight_dtype(o->dtype);
      std::string dir = convert_to_checkpoint(*src, o->output, opt);
      out = {{"output", dir}, {"tp", o->tp}, {"pp", o->pp},
             {"dtype", dtype_name(opt.dtype.value_or(src->stored_dtype()))}};
    } else if (o->to == "llama2c") {
      auto src = open_weights(o->input);
      write_llama2c(*src, o->output);
      out = {{"output", o->output}, {"dtype", "F32"}};
    } else {
      LT_CHECK(o->to == "hf", "--to '{}': expected hf or llama2c", o->to);
      auto src = open_weights(o->input);
      ToHfOptions opt;
      opt.dtype = parse_weight_dtype(o->dtype);
      opt.max_shard_bytes = max_shard;
      opt.tokenizer_files = o->tokenizer;
      HfExportResult r = convert_to_hf(*src, o->output, opt);
      out = {{"output", o->output}, {"files", r.files}, {"total_bytes", r.total_bytes},
             {"dtype", dtype_name(opt.dtype.value_or(src->stored_dtype()))}};
    }
    out["seconds"] = timer.seconds();
    out["peak_rss_bytes"] = peak_rss_bytes();
    if (o->json) {
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      std::printf("converted %s -> %s in %.2f s (peak RSS %.1f MB)\n", o->input.c_str(),
                  out["output"].get<std::string>().c_str(), timer.seconds(), double(peak_rss_bytes()) / 1e6);
    }
  });
}

}  // namespace lt::cli
