// The two tokenizer.json implementations, chosen by open_hf_tokenizer_json (tokenizer_hf.cpp)
// from the parsed file: no pre-tokenizer (Llama 2: SentencePiece-style BPE with byte fallback,
// tokenizer_hf.cpp) or a ByteLevel one (Llama 3, GPT-2: tokenizer_bytelevel.cpp).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/bpe.h"
#include "data/tokenizer.h"

namespace lt::data {

// The checks both implementations make on "model": type BPE, no dropout, no word prefixes or
// suffixes. Errors name `path`.
void check_bpe_model(const nlohmann::json& model, const std::string& path);
// "model.merges" ("left right" strings or [left, right] pairs) as ids of `vocab` (piece -> id),
// in rank order; a merge whose pieces or result are not in the vocabulary is an error.
std::vector<BpeMerge> parse_bpe_merges(const nlohmann::json& merges,
                                       const std::unordered_map<std::string, int32_t>& vocab,
                                       const std::string& path);

// `hash` is tokenizer_file_hash of the file's bytes, `j` the parsed file.
std::unique_ptr<Tokenizer> open_byte_level_bpe(const std::string& path, const std::string& hash,
                                               const nlohmann::json& j);

}  // namespace lt::data
