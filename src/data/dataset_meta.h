// meta.json of a prepared dataset (docs/FORMATS.md, written by `prepare`), read strictly: every
// reader (training, eval, `data inspect`) can trust the fields it uses, and a damaged or
// hand-edited file is an error naming the file and the field. Fuzzed: fuzz/fuzz_dataset_meta.cpp.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lt::data {

// Parses `text` (the contents of `path`) and checks: "format" "llamatrain-dataset", "version" 1
// (uint16 ids), 2 (uint32 ids) or 3 (with document boundaries), "block_size" an integer >= 1, "dtype" uint16 or uint32, "documents" an unsigned integer,
// "splits" an object whose splits each have "shards" (plain file names) and unsigned "blocks",
// "tokens", "documents", "dropped_tokens"; "tokenizer", when present, an object whose kind,
// file, path and hash are strings and vocab_size, bos_id, eos_id integers.
nlohmann::json parse_dataset_meta(const std::string& text, const std::string& path);
// Reads and checks <dir>/meta.json.
nlohmann::json read_dataset_meta(const std::string& dir);
// The shard file names of `split` of a checked meta.json (an error naming the split when it is
// absent or has no shards).
std::vector<std::string> dataset_split_shards(const nlohmann::json& meta, const std::string& split,
                                              const std::string& path);

}  // namespace lt::data
