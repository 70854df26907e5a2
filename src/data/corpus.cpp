#include "data/corpus.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "data/utf8.h"

namespace lt::data {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\f\v") == std::string::npos; }

void trim(std::string& s) {
  const char* ws = " \t\r\n\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) {
    s.clear();
    return;
  }
  size_t e = s.find_last_not_of(ws);
  s = s.substr(b, e - b + 1);
}

bool jsonl_name(const std::string& p) {
  for (const char* ext : {".jsonl", ".ndjson"})
    for (const char* z : {"", ".gz", ".zst", ".zstd"})
      if (ends_with(p, std::string(ext) + z)) return true;
  return false;
}

}  // namespace

CorpusFormat parse_corpus_format(const std::string& s) {
  if (s == "auto") return CorpusFormat::automatic;
  if (s == "text") return CorpusFormat::text;
  if (s == "jsonl") return CorpusFormat::jsonl;
  if (s == "wikicorpus") return CorpusFormat::wikicorpus;
  fail("unknown input format \"{}\" (expected auto, text, jsonl or wikicorpus)", s);
}

const char* to_string(CorpusFormat f) {
  switch (f) {
    case CorpusFormat::automatic: return "auto";
    case CorpusFormat::text: return "text";
    case CorpusFormat::jsonl: return "jsonl";
    case CorpusFormat::wikicorpus: return "wikicorpus";
  }
  return "?";
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& specs) {
  std::set<std::string> out;
  auto add_file = [&](const fs::path& p) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) out.insert(p.lexically_normal().string());
  };
  auto add = [&](const std::string& spec, bool from_glob) {
    std::error_code ec;
    fs::path p(spec);
    if (fs::is_directory(p, ec)) {
      size_t before = out.size();
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {  // hidden files and folders (.git, editor temp files)
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        add_file(it->path());
      }
      if (ec) fail("cannot list input directory {}: {}", spec, ec.message());
      if (out.size() == before && !from_glob) fail("input directory {} contains no files", spec);
    } else if (fs::exists(p, ec)) {
      if (!fs::is_regular_file(p, ec)) fail("input {} is not a regular file or directory", spec);
      add_file(p);
    } else {
      fail("input {} does not exist", spec);
    }
  };
  for (const auto& spec : specs) {
    if (spec.find_first_of("*?[") != std::string::npos && !fs::exists(spec)) {
      glob_t g{};
      int rc = ::glob(spec.c_str(), 0, nullptr, &g);
      if (rc != 0 || g.gl_pathc == 0) {
        globfree(&g);
        fail("input pattern {} matches no files", spec);
      }
      for (size_t i = 0; i < g.gl_pathc; ++i) add(g.gl_pathv[i], true);
      globfree(&g);
    } else {
      add(spec, false);
    }
  }
  if (out.empty()) fail("no input files");
  return {out.begin(), out.end()};
}

CorpusReader::CorpusReader(std::vector<std::string> files, CorpusOptions options)
    : files_(std::move(files)), opt_(std::move(options)) {
  for (const auto& f : files_) {
    std::error_code ec;
    uint64_t size = fs::file_size(f, ec);
    if (ec) fail("cannot read input {}: {}", f, ec.message());
    total_bytes_ += size;
  }
}

CorpusReader::~CorpusReader() = default;

uint64_t CorpusReader::bytes_read() const { return done_bytes_ + (in_ ? in_->raw_bytes_read() : 0); }

bool CorpusReader::open_next_file() {
  if (next_file_ >= files_.size()) return false;
  const std::string& path = files_[next_file_++];
  in_ = InputStream::open(path);
  lines_ = std::make_unique<LineReader>(*in_);
  has_peeked_ = false;
  cur_format_ = opt_.format;
  if (cur_format_ == CorpusFormat::automatic) {
    if (jsonl_name(path)) {
      cur_format_ = CorpusFormat::jsonl;
    } else {
      has_peeked_ = lines_->next(peeked_);
      cur_format_ = has_peeked_ && peeked_.rfind("<doc id=", 0) == 0 ? CorpusFormat::wikicorpus : CorpusFormat::text;
    }
  }
  SourceInfo info;
  info.path = path;
  info.format = to_string(cur_format_);
  info.compression = in_->compression();
  std::error_code ec;
  info.bytes = fs::file_size(path, ec);
  sources_.push_back(info);
  return true;
}

void CorpusReader::close_file() {
  char sink[1 << 14];
  while (in_->read(sink, sizeof sink) > 0) {}  // finish the hash
  sources_.back().hash = in_->raw_hash();
  done_bytes_ += in_->raw_bytes_read();
  lines_.reset();
  in_.reset();
}

bool CorpusReader::read_line(std::string& line) {
  if (has_peeked_) {
    line = std::move(peeked_);
    has_peeked_ = false;
  } else if (!lines_->next(line)) {
    return false;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

void CorpusReader::fix_utf8(std::string& s) {
  if (opt_.fail_on_invalid_utf8) {
    std::string copy = s;
    if (utf8_sanitize(copy) != 0)
      fail("{}:{}: invalid UTF-8 (use --invalid-utf8=replace to replace such bytes with U+FFFD)", in_->path(),
           lines_->line_number());
    return;
  }
  stats_.invalid_utf8_replaced += utf8_sanitize(s);
}

bool CorpusReader::accept(std::string& doc) {
  if (doc.find_first_not_of(" \t\r\n\f\v") == std::string::npos) {
    ++stats_.empty_skipped;
    return false;
  }
  ++stats_.documents;
  ++sources_.back().documents;
  return true;
}

bool CorpusReader::next(std::string& doc) {
  for (;;) {
    if (!in_ && !open_next_file()) return false;
    bool got = false;
    switch (cur_format_) {
      case CorpusFormat::jsonl: got = next_jsonl(doc); break;
      case CorpusFormat::wikicorpus: got = next_wikicorpus(doc); break;
      default: got = next_text(doc); break;
    }
    if (got) return true;
    close_file();
  }
}

bool CorpusReader::next_text(std::string& doc) {
  std::string line;
  for (;;) {
    doc.clear();
    bool any = false;
    if (opt_.text_mode == TextMode::file) {
      while (read_line(line)) {
        if (any) doc += '\n';
        doc += line;
        any = true;
      }
    } else {
      while (read_line(line)) {
        if (blank(line)) {
          if (any) break;
          continue;
        }
        if (any) doc += '\n';
        doc += line;
        any = true;
      }
    }
    if (!any) return false;
    fix_utf8(doc);
    if (accept(doc)) return true;
    if (opt_.text_mode == TextMode::file) return false;
  }
}

bool CorpusReader::next_jsonl(std::string& doc) {
  std::string line;
  while (read_line(line)) {
    if (blank(line)) continue;
    fix_utf8(line);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: not valid JSON: {}", in_->path(), lines_->line_number(), e.what());
    }
    if (!j.is_object() || !j.contains(opt_.jsonl_field) || !j[opt_.jsonl_field].is_string())
      fail("{}:{}: no string field \"{}\" (choose the field with --jsonl-field)", in_->path(), lines_->line_number(),
           opt_.jsonl_field);
    doc = j[opt_.jsonl_field].get<std::string>();
    if (accept(doc)) return true;
  }
  return false;
}

bool CorpusReader::next_wikicorpus(std::string& doc) {
  std::string line;
  bool inside = false;
  std::string latin;
  while (read_line(line)) {
    if (!inside) {
      if (line.rfind("<doc", 0) == 0) {
        inside = true;
        latin.clear();
      }
      continue;
    }
    if (line.rfind("</doc>", 0) == 0) {
      inside = false;
      doc = latin1_to_utf8(latin);
      trim(doc);
      if (accept(doc)) return true;
      continue;
    }
    if (line.rfind("ENDOFARTICLE", 0) == 0) continue;
    latin += line;
    latin += '\n';
  }
  if (inside) {
    ++stats_.unterminated_dropped;
    log::warn("{}: last document has no </doc> (truncated file?); dropped", in_->path());
  }
  return false;
}

}  // namespace lt::data
