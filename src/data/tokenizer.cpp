#include "data/tokenizer.h"

#include <xxhash.h>

#include <fmt/format.h>

#include <filesystem>

#include "core/error.h"
#include "core/file.h"

namespace lt {

std::string data::tokenizer_file_hash(const std::string& bytes) {
  return fmt::format("xxh64:{:016x}", XXH64(bytes.data(), bytes.size(), 0));
}

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path_or_dir) {
  std::string path = path_or_dir;
  if (std::filesystem::is_directory(path)) {  // a model directory: prefer the SentencePiece file
    for (const char* name : {"tokenizer.model", "tokenizer.json"})
      if (std::filesystem::exists(std::filesystem::path(path) / name)) {
        path = (std::filesystem::path(path) / name).string();
        break;
      }
    if (path == path_or_dir) fail("directory {} has no tokenizer.model or tokenizer.json", path_or_dir);
  }
  std::string bytes = read_file(path);
  if (bytes.empty()) fail("tokenizer file {} is empty", path);
  size_t i = bytes.find_first_not_of(" \t\r\n");
  if (i != std::string::npos && bytes[i] == '{') return data::open_hf_tokenizer_json(path, bytes);
  return data::open_sentencepiece(path, bytes);
}

}  // namespace lt
