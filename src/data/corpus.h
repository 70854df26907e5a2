// Corpus readers: turn input files into a stream of documents, in a fixed order (files sorted
// by path, documents in file order), one document in memory at a time.
//
// Formats (per file; `auto` picks jsonl for *.jsonl / *.ndjson names, wikicorpus when the first
// line starts with "<doc id=", text otherwise):
//  - text: one document per file, or per block of lines separated by blank lines (TextMode).
//  - jsonl: one JSON object per line, the document is the string field `jsonl_field`; blank lines
//    are skipped; a line that is not JSON or lacks the field is an error with its line number.
//  - wikicorpus (raw Wikicorpus v1.0): ISO-8859-1, CRLF; a document is the lines between
//    `<doc id=.. title=..>` and `</doc>` minus the "ENDOFARTICLE." marker, converted to UTF-8 and
//    trimmed. A document still open at end of file (a truncated excerpt) is dropped and counted.
// Every file may be gzip- or zstd-compressed (detected by magic bytes). Line ends: "\r\n" is read
// as "\n" in all formats. Invalid UTF-8 (text, jsonl): replaced by U+FFFD and counted, or an error
// naming file and line when fail_on_invalid_utf8. Documents that are empty after trimming
// whitespace are skipped and counted.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/stream.h"

namespace lt::data {

enum class CorpusFormat { automatic, text, jsonl, wikicorpus };
enum class TextMode { file, paragraph };

CorpusFormat parse_corpus_format(const std::string& s);  // "auto", "text", "jsonl", "wikicorpus"
const char* to_string(CorpusFormat f);

struct CorpusOptions {
  CorpusFormat format = CorpusFormat::automatic;
  TextMode text_mode = TextMode::file;
  std::string jsonl_field = "text";
  bool fail_on_invalid_utf8 = false;
};

// Files named directly, regular files under directories (recursively) and glob matches,
// sorted and de-duplicated. A missing path or a pattern matching nothing is an error.
std::vector<std::string> expand_inputs(const std::vector<std::string>& specs);

struct SourceInfo {
  std::string path;
  std::string format;       // as detected
  std::string compression;  // "none", "gzip", "zstd"
  uint64_t bytes = 0;       // raw file size
  std::string hash;         // xxh64 of the raw file
  uint64_t documents = 0;
};

struct CorpusStats {
  uint64_t documents = 0;
  uint64_t invalid_utf8_replaced = 0;  // bytes replaced by U+FFFD
  uint64_t empty_skipped = 0;
  uint64_t unterminated_dropped = 0;   // wikicorpus documents without </doc>
};

class CorpusReader {
 public:
  CorpusReader(std::vector<std::string> files, CorpusOptions options);
  ~CorpusReader();
  // The next document's UTF-8 text; false at the end of the last file.
  bool next(std::string& doc);
  uint64_t total_bytes() const { return total_bytes_; }  // raw sizes of all files
  uint64_t bytes_read() const;                           // raw bytes consumed so far
  const std::vector<SourceInfo>& sources() const { return sources_; }  // complete after the end
  const CorpusStats& stats() const { return stats_; }

 private:
  bool open_next_file();
  void close_file();
  bool next_text(std::string& doc);
  bool next_jsonl(std::string& doc);
  bool next_wikicorpus(std::string& doc);
  bool read_line(std::string& line);  // strips "\r"; honours the peeked first line
  void fix_utf8(std::string& s);
  bool accept(std::string& doc);      // trims/skips empty; counts

  std::vector<std::string> files_;
  CorpusOptions opt_;
  size_t next_file_ = 0;
  std::unique_ptr<InputStream> in_;
  std::unique_ptr<LineReader> lines_;
  CorpusFormat cur_format_ = CorpusFormat::text;
  std::string peeked_;
  bool has_peeked_ = false;
  uint64_t done_bytes_ = 0;
  uint64_t total_bytes_ = 0;
  std::vector<SourceInfo> sources_;
  CorpusStats stats_;
};

}  // namespace lt::data
