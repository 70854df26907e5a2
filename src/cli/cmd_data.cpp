// Data commands: `prepare` (corpus -> dataset directory), `tokenize` (check a tokenizer by hand)
// and `data inspect` (statistics of a dataset and one block decoded back to text).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/dataset_meta.h"
#include "data/prepare.h"
#include "data/tokenizer.h"

namespace lt::cli {

namespace {

std::string read_stdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// "1 2 3", "1,2,3" or "[1, 2, 3]".
std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::string cleaned = s;
  for (char& c : cleaned)
    if (c == ',' || c == '[' || c == ']') c = ' ';
  std::istringstream in(cleaned);
  std::string tok;
  while (in >> tok) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || v < 0 || v > INT32_MAX) fail("standard input: \"{}\" is not a token id", tok);
    ids.push_back(int32_t(v));
  }
  return ids;
}

void register_prepare(CLI::App& app) {
  auto* cmd = app.add_subcommand("prepare",
                                 "Tokenize a corpus and pack it into a dataset directory of fixed-size blocks");
  cmd->footer(
      "Each document becomes [BOS] tokens [EOS if --eos]; documents are concatenated in reading order\n"
      "(files sorted by path) and cut into --block-size blocks; the final partial block is dropped\n"
      "(counted in meta.json as dropped_tokens). With --validation-fraction F, each document goes to\n"
      "the validation split with probability F, decided by a hash of (--split-seed, document index).\n"
      "Inputs are files, directories (recursive) or globs; gzip/zstd are detected. Formats: text\n"
      "(--text-mode file: one document per file; paragraph: per blank-line-separated block), jsonl\n"
      "(--jsonl-field), wikicorpus (raw Wikicorpus: ISO-8859-1, <doc ...> ... </doc>), or auto.\n"
      "Invalid UTF-8 is replaced by U+FFFD and counted (--invalid-utf8 replace) or is an error (fail).\n"
      "Output: <out>/meta.json + <split>-NNNNN.bin shards (docs/FORMATS.md), built as <out>.tmp-<pid>\n"
      "and renamed when complete. Same input and options give the same bytes for any --threads.");
  struct Opts {
    data::PrepareOptions p;
    std::string format = "auto", text_mode = "file", invalid_utf8 = "replace";
    double shard_mb = 1024;
    bool json = false, no_progress = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("inputs", o->p.inputs, "Input files, directories or glob patterns")->required();
  cmd->add_option("-o,--output", o->p.output, "Dataset directory to create")->required();
  cmd->add_option("--tokenizer", o->p.tokenizer, "tokenizer.model (SentencePiece) or tokenizer.json")->required();
  cmd->add_option("--format", o->format, "Input format")
      ->check(CLI::IsMember({"auto", "text", "jsonl", "wikicorpus"}))
      ->capture_default_str();
  cmd->add_option("--text-mode", o->text_mode, "Text documents: one per file, or per blank-line-separated block")
      ->check(CLI::IsMember({"file", "paragraph"}))
      ->capture_default_str();
  cmd->add_option("--jsonl-field", o->p.corpus.jsonl_field, "JSONL field holding the text")->capture_default_str();
  in_range(cmd->add_option("--block-size", o->p.block_size, "Tokens per block")->capture_default_str(), 2, 1 << 24);
  cmd->add_flag("--eos", o->p.add_eos, "Append EOS to every document");
  in_range(cmd->add_option("--validation-fraction", o->p.validation_fraction, "Fraction of documents for validation")
               ->capture_default_str(),
           0.0, 1.0, "[)");
  in_range(cmd->add_option("--split-seed", o->p.split_seed, "Seed of the train/validation split")->capture_default_str(),
           0, INT64_MAX);
  in_range(cmd->add_option("--threads", o->p.threads, "Tokenizer threads (0: all cores)")->capture_default_str(), 0,
           4096);
  in_range(cmd->add_option("--shard-size-mb", o->shard_mb, "Maximum shard file size in MB")->capture_default_str(), 0.0,
           1e7, "(]");
  cmd->add_option("--invalid-utf8", o->invalid_utf8, "Invalid UTF-8 policy")
      ->check(CLI::IsMember({"replace", "fail"}))
      ->capture_default_str();
  cmd->add_flag("--force", o->p.force, "Replace an existing dataset at the output path");
  cmd->add_flag("--no-progress", o->no_progress, "No progress bar");
  cmd->add_flag("--json", o->json, "Print the dataset metadata as JSON");
  cmd->callback([o] {
    o->p.corpus.format = data::parse_corpus_format(o->format);
    o->p.corpus.text_mode = o->text_mode == "file" ? data::TextMode::file : data::TextMode::paragraph;
    o->p.corpus.fail_on_invalid_utf8 = o->invalid_utf8 == "fail";
    LT_CHECK(o->shard_mb > 0, "--shard-size-mb must be positive");
    o->p.shard_bytes = uint64_t(o->shard_mb * 1e6);
    o->p.progress = !o->no_progress && !o->json;
    nlohmann::json meta = data::prepare_dataset(o->p);
    if (o->json) {
      std::printf("%s\n", meta.dump(2).c_str());
      return;
    }
    const auto& tr = meta["splits"]["train"];
    const auto& va = meta["splits"]["validation"];
    std::printf("%s: %llu documents; train %llu blocks x %d tokens (%llu documents), validation %llu blocks; "
                "%llu tokens dropped (remainder)\n",
                o->p.output.c_str(), meta["documents"].get<unsigned long long>(),
                tr["blocks"].get<unsigned long long>(), o->p.block_size, tr["documents"].get<unsigned long long>(),
                va["blocks"].get<unsigned long long>(),
                tr["dropped_tokens"].get<unsigned long long>() + va["dropped_tokens"].get<unsigned long long>());
  });
}

void register_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Encode standard input to token ids, or decode ids to text");
  cmd->footer(
      "Encoding reads all of standard input; one trailing newline is removed (so `echo text |` works).\n"
      "Output: ids separated by spaces, or with --json {\"ids\", \"pieces\", \"count\"}.\n"
      "--decode reads ids (spaces, commas or a JSON array) and prints the text.\n"
      "--jsonl: one text per line, each a JSON string, in; one JSON array of ids per line out (with\n"
      "--decode: arrays in, strings out).");
  struct Opts {
    std::string tokenizer;
    bool json = false, decode = false, bos = false, eos = false, jsonl = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.model (SentencePiece) or tokenizer.json")->required();
  cmd->add_flag("--decode", o->decode, "Decode ids from standard input to text");
  cmd->add_flag("--bos", o->bos, "Prepend BOS when encoding");
  cmd->add_flag("--eos", o->eos, "Append EOS when encoding");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_flag("--jsonl", o->jsonl, "Many texts: a JSON string (or id array with --decode) per line");
  cmd->callback([o] {
    auto tok = open_tokenizer(o->tokenizer);
    std::string in = read_stdin();
    if (o->jsonl) {
      std::istringstream lines(in);
      std::string line;
      for (int n = 1; std::getline(lines, line); ++n) {
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          fail("tokenize --jsonl: standard input line {} is not JSON: {}", n, e.what());
        }
        LT_CHECK(o->decode ? j.is_array() : j.is_string(), "tokenize --jsonl: line {} must be a JSON {}", n,
                 o->decode ? "array of ids" : "string");
        nlohmann::json out;
        if (o->decode) {
          out = tok->decode(j.get<std::vector<int32_t>>());
        } else {
          std::vector<int32_t> ids;
          if (o->bos) ids.push_back(tok->bos_id());
          tok->encode_append(j.get<std::string>(), ids);
          if (o->eos) ids.push_back(tok->eos_id());
          out = ids;
        }
        std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      }
      return;
    }
    if (o->decode) {
      std::vector<int32_t> ids = parse_ids(in);
      std::string text = tok->decode(ids);
      if (o->json) std::printf("%s\n", nlohmann::json({{"text", text}, {"count", ids.size()}}).dump(2).c_str());
      else std::printf("%s\n", text.c_str());
      return;
    }
    if (!in.empty() && in.back() == '\n') in.pop_back();
    if (!in.empty() && in.back() == '\r') in.pop_back();
    std::vector<int32_t> ids;
    if (o->bos) ids.push_back(tok->bos_id());
    tok->encode_append(in, ids);
    if (o->eos) ids.push_back(tok->eos_id());
    if (o->json) {
      nlohmann::json pieces = nlohmann::json::array();
      for (int32_t id : ids) pieces.push_back(tok->piece(id));
      nlohmann::json j = {{"ids", ids}, {"pieces", pieces}, {"count", ids.size()}};
      std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return;
    }
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  });
}

void register_inspect(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Inspect prepared datasets");
  data->require_subcommand(1);
  auto* cmd = data->add_subcommand("inspect", "Print a dataset's statistics and decode one block");
  struct Opts {
    std::string dir, split = "train", tokenizer;
    int64_t block = 0;
    bool json = false, no_decode = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("dir", o->dir, "Dataset directory")->required();
  cmd->add_option("--split", o->split, "Split to read the block from")
      ->check(CLI::IsMember({"train", "validation"}))
      ->capture_default_str();
  in_range(cmd->add_option("--block", o->block, "Block to decode")->capture_default_str(), 0, INT64_MAX);
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer to decode with (default: the one in meta.json)");
  cmd->add_flag("--no-decode", o->no_decode, "Only statistics");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] {
    nlohmann::json meta = data::read_dataset_meta(o->dir);
    nlohmann::json out = {{"dir", o->dir},
                          {"block_size", meta["block_size"]},
                          {"dtype", meta["dtype"]},
                          {"documents", meta["documents"]},
                          {"tokenizer", meta["tokenizer"]},
                          {"splits", nlohmann::json::object()}};
    for (auto& [name, s] : meta["splits"].items()) {
      nlohmann::json sj = s;
      if (!s["shards"].empty()) {  // cross-check the shard headers against meta.json
        auto ds = TokenDataset::open(o->dir, 0, name);
        if (uint64_t(ds->num_samples()) != s["blocks"].get<uint64_t>())
          fail("{}: split {} has {} blocks in its shards but meta.json says {}", o->dir, name, ds->num_samples(),
               s["blocks"].get<uint64_t>());
      }
      out["splits"][name] = sj;
    }
    if (!o->no_decode) {
      auto ds = TokenDataset::open(o->dir, 0, o->split);
      LT_CHECK(o->block >= 0 && o->block < ds->num_samples(), "--block {} is outside [0, {}) of split {}", o->block,
               ds->num_samples(), o->split);
      std::string tpath = o->tokenizer.empty() ? meta["tokenizer"].value("path", "") : o->tokenizer;
      if (!std::filesystem::exists(tpath))
        fail("tokenizer {} (from meta.json) not found; pass --tokenizer FILE or --no-decode", tpath);
      auto tok = open_tokenizer(tpath);
      if (tok->file_hash() != meta["tokenizer"].value("hash", ""))
        log::warn("tokenizer {} has hash {} but the dataset was made with {}", tpath, tok->file_hash(),
                  meta["tokenizer"].value("hash", ""));
      std::vector<int32_t> ids(size_t(ds->sample_tokens()));
      ds->read(o->block, ids.data());
      int bos = 0;
      for (int32_t id : ids) bos += id == tok->bos_id();
      // Decode per document so BOS shows where documents start.
      std::string text;
      std::vector<int32_t> cur;
      for (int32_t id : ids) {
        if (id == tok->bos_id()) {
          text += tok->decode(cur);
          text += tok->piece(tok->bos_id());
          cur.clear();
          continue;
        }
        cur.push_back(id);
      }
      text += tok->decode(cur);
      out["block"] = {{"split", o->split}, {"index", o->block}, {"bos_count", bos}, {"ids", ids}, {"text", text}};
    }
    if (o->json) {
      std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return;
    }
    std::printf("dataset %s: block size %d (%s), %llu documents, tokenizer %s (%s, vocab %d)\n", o->dir.c_str(),
                meta["block_size"].get<int>(), meta["dtype"].get<std::string>().c_str(),
                meta["documents"].get<unsigned long long>(), meta["tokenizer"].value("file", "?").c_str(),
                meta["tokenizer"].value("hash", "?").c_str(), meta["tokenizer"].value("vocab_size", 0));
    for (auto& [name, s] : meta["splits"].items())
      std::printf("  %-10s %8llu blocks  %10llu tokens  %8llu documents  %6llu dropped  %zu shard(s)\n", name.c_str(),
                  s["blocks"].get<unsigned long long>(), s["tokens"].get<unsigned long long>(),
                  s["documents"].get<unsigned long long>(), s["dropped_tokens"].get<unsigned long long>(),
                  s["shards"].size());
    if (out.contains("block"))
      std::printf("--- %s block %lld (%d document starts) ---\n%s\n--- end ---\n", o->split.c_str(),
                  (long long)o->block, out["block"]["bos_count"].get<int>(),
                  out["block"]["text"].get<std::string>().c_str());
  });
}

}  // namespace

void register_data(CLI::App& app) {
  register_prepare(app);
  register_tokenize(app);
  register_inspect(app);
}

}  // namespace lt::cli
