// Corpus readers: the real Wikicorpus excerpts (document counts, accents after ISO-8859-1 ->
// UTF-8), text/paragraph/JSONL modes, gzip and zstd, globs and directories, bad input.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <fstream>

#include "core/error.h"
#include "data/corpus.h"
#include "test_util.h"

namespace {

using lt::data::CorpusOptions;
using lt::data::CorpusReader;

std::vector<std::string> read_all(const std::vector<std::string>& specs, CorpusOptions opt = {},
                                  lt::data::CorpusStats* stats = nullptr) {
  CorpusReader r(lt::data::expand_inputs(specs), opt);
  std::vector<std::string> docs;
  std::string d;
  while (r.next(d)) docs.push_back(d);
  if (stats) *stats = r.stats();
  return docs;
}

void write(const std::filesystem::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

TEST(DataCorpus, WikicorpusExcerpts) {
  std::string dir = lt::test::source_path("assets/corpus/wikicorpus_sample");
  lt::data::CorpusStats st;
  auto docs = read_all({dir}, {}, &st);
  // Complete <doc>...</doc> documents per file (sorted paths): ca 1+1, en 4+4, es 1+2; each file
  // ends inside a truncated document, which is dropped.
  EXPECT_EQ(docs.size(), 13u);
  EXPECT_EQ(st.unterminated_dropped, 6u);
  for (const auto& d : docs) {
    EXPECT_EQ(d.find('\r'), std::string::npos);
    EXPECT_EQ(d.find("ENDOFARTICLE"), std::string::npos);
    EXPECT_EQ(d.find("<doc"), std::string::npos);
    EXPECT_EQ(d.find("</doc>"), std::string::npos);
  }
  // ISO-8859-1 accents become UTF-8: the first Catalan article is "Àbac".
  EXPECT_EQ(docs[0].rfind("Un \xc3\xa0" "bac (del llat\xc3\xad ", 0), 0u) << docs[0].substr(0, 60);
  EXPECT_NE(docs[0].find("\xc3\xa9s una eina"), std::string::npos);         // "és"
  EXPECT_NE(docs[0].find("paral\xc2\xb7lels"), std::string::npos);         // middle dot
  bool spanish_tilde = false;
  for (size_t i = 10; i < docs.size(); ++i) spanish_tilde |= docs[i].find("\xc3\xb1") != std::string::npos;  // ñ
  EXPECT_TRUE(spanish_tilde);
}

TEST(DataCorpus, TextModesAndCrlf) {
  auto dir = lt::test::scratch_dir("corpus_text");
  write(dir / "a.txt", "first para\r\nline two\r\n\r\n\r\n  \nsecond para\n");
  write(dir / "b.txt", "\n\n");  // empty: skipped
  auto whole = read_all({(dir / "a.txt").string(), (dir / "b.txt").string()});
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0], "first para\nline two\n\n\n  \nsecond para");
  CorpusOptions para;
  para.text_mode = lt::data::TextMode::paragraph;
  lt::data::CorpusStats st;
  auto paras = read_all({dir.string()}, para, &st);
  ASSERT_EQ(paras.size(), 2u);
  EXPECT_EQ(paras[0], "first para\nline two");
  EXPECT_EQ(paras[1], "second para");
}

TEST(DataCorpus, JsonlFieldAndErrors) {
  auto dir = lt::test::scratch_dir("corpus_jsonl");
  write(dir / "a.jsonl", "{\"text\": \"caf\\u00e9\", \"id\": 1}\n\n{\"body\": \"x\", \"text\": \"two\"}\n");
  auto docs = read_all({(dir / "a.jsonl").string()});
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], "caf\xc3\xa9");
  CorpusOptions body;
  body.jsonl_field = "body";
  try {
    read_all({(dir / "a.jsonl").string()}, body);
    FAIL();
  } catch (const lt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.jsonl:1: no string field \"body\""), std::string::npos) << e.what();
  }
  write(dir / "b.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\nnot json\n");
  try {
    read_all({(dir / "b.jsonl").string()});
    FAIL();
  } catch (const lt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.jsonl:3: not valid JSON"), std::string::npos) << e.what();
  }
}

TEST(DataCorpus, GzipZstdGlobAndDirectories) {
  auto dir = lt::test::scratch_dir("corpus_compressed");
  std::string text = "compressed \xc3\xa8 text\nsecond line";
  gzFile g = gzopen((dir / "a.txt.gz").c_str(), "wb");
  gzwrite(g, text.data(), unsigned(text.size()));
  gzclose(g);
  std::string z(ZSTD_compressBound(text.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), text.data(), text.size(), 3));
  write(dir / "b.txt.zst", z);
  std::filesystem::create_directories(dir / "sub" / ".hidden");
  write(dir / "sub" / "c.txt", "plain");
  write(dir / "sub" / ".hidden" / "x.txt", "ignored");
  auto docs = read_all({dir.string()});
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0], text);
  EXPECT_EQ(docs[1], text);
  EXPECT_EQ(docs[2], "plain");
  CorpusReader r(lt::data::expand_inputs({(dir / "*.txt.*").string()}), {});
  std::string d;
  while (r.next(d)) {}
  ASSERT_EQ(r.sources().size(), 2u);
  EXPECT_EQ(r.sources()[0].compression, "gzip");
  EXPECT_EQ(r.sources()[1].compression, "zstd");
  EXPECT_EQ(r.bytes_read(), r.total_bytes());
  // Corrupt compressed data is an error naming the file.
  write(dir / "bad.gz", std::string("\x1f\x8b\x08\x00garbage-not-deflate", 24));
  EXPECT_THROW(read_all({(dir / "bad.gz").string()}), lt::Error);
}

TEST(DataCorpus, BadInputs) {
  auto dir = lt::test::scratch_dir("corpus_bad");
  EXPECT_THROW(lt::data::expand_inputs({(dir / "missing.txt").string()}), lt::Error);
  EXPECT_THROW(lt::data::expand_inputs({(dir / "*.nothing").string()}), lt::Error);
  EXPECT_THROW(lt::data::expand_inputs({dir.string()}), lt::Error);  // empty directory
  write(dir / "latin1.txt", "caf\xe9 ok");                           // not UTF-8
  lt::data::CorpusStats st;
  auto docs = read_all({(dir / "latin1.txt").string()}, {}, &st);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0], "caf\xef\xbf\xbd ok");
  EXPECT_EQ(st.invalid_utf8_replaced, 1u);
  CorpusOptions strict;
  strict.fail_on_invalid_utf8 = true;
  try {
    read_all({(dir / "latin1.txt").string()}, strict);
    FAIL();
  } catch (const lt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("latin1.txt:1: invalid UTF-8"), std::string::npos) << e.what();
  }
}

}  // namespace
