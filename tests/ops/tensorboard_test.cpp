// TensorBoard event files, checked with tools independent of the writer: the record framing
// and CRCs are parsed and recomputed here (bitwise CRC-32C, not the writer's table), and each
// payload is decoded by Debian's `protoc --decode_raw`, which knows no schema, so the field
// numbers are checked against TensorBoard's, not against our event.proto.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"
#include "core/error.h"
#include "train/tensorboard.h"

namespace fs = std::filesystem;

namespace {

uint32_t bitwise_crc32c(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}
uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Splits a TFRecord file into payloads, failing the test on any framing or CRC error.
std::vector<std::string> read_records(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    EXPECT_LE(pos + 12, bytes.size()) << "truncated header";
    uint64_t len = le(p + pos, 8);
    EXPECT_EQ(le(p + pos + 8, 4), masked(bitwise_crc32c(p + pos, 8))) << "length CRC";
    EXPECT_LE(pos + 12 + len + 4, bytes.size()) << "truncated record";
    if (pos + 12 + len + 4 > bytes.size()) break;
    EXPECT_EQ(le(p + pos + 12 + len, 4), masked(bitwise_crc32c(p + pos + 12, len))) << "data CRC";
    out.emplace_back(bytes.substr(pos + 12, len));
    pos += 12 + len + 4;
  }
  return out;
}

std::string decode_raw(const std::string& payload, const fs::path& scratch) {
  fs::path tmp = scratch / "payload.bin";
  std::ofstream(tmp, std::ios::binary) << payload;
  std::string cmd = "protoc --decode_raw < '" + tmp.string() + "' 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) text.append(buf, n);
  EXPECT_EQ(pclose(pipe), 0) << text;
  return text;
}

std::string float_hex(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", bits);
  return buf;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST(OpsTensorBoard, Crc32cPublishedVectors) {
  // "123456789" is the standard check value; the 32-byte vectors are from RFC 3720 B.4.
  EXPECT_EQ(lt::crc32c("123456789", 9), 0xE3069283u);
  uint8_t zeros[32] = {}, ones[32], inc[32];
  for (int i = 0; i < 32; ++i) ones[i] = 0xFF, inc[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(lt::crc32c(zeros, 32), 0x8A9136AAu);
  EXPECT_EQ(lt::crc32c(ones, 32), 0x62A8AB43u);
  EXPECT_EQ(lt::crc32c(inc, 32), 0x46DD794Eu);
  EXPECT_EQ(lt::crc32c(inc, 32), bitwise_crc32c(inc, 32));
}

TEST(OpsTensorBoard, RecordsDecodeWithProtocAndCrcsCheck) {
  fs::path dir = lt::test::scratch_dir("ops_tb_decode");
  fs::path logdir = dir / "tb";
  {
    lt::TensorBoardWriter w(logdir.string(), 7);
    w.scalar("train/loss", 2.5, 7);
    w.scalars(8, {{"train/loss", 2.25}, {"train/lr", 1.5e-4}});
    w.flush();
  }
  auto files = event_files(logdir);
  ASSERT_EQ(files.size(), 1u);
  std::string name = files[0].filename().string();
  // events.out.tfevents.<10-digit time>.<host>.<pid>.<seq>
  EXPECT_EQ(name.size() > 31 && std::isdigit(name[20]) && name[30] == '.', true) << name;
  EXPECT_NE(name.find("." + std::to_string(getpid()) + "."), std::string::npos) << name;

  auto records = read_records(files[0]);
  ASSERT_EQ(records.size(), 4u);
  // Event.file_version is field 3; wall_time (field 1) is a double (fixed64).
  std::string r0 = decode_raw(records[0], dir);
  EXPECT_NE(r0.find("3: \"brain.Event:2\""), std::string::npos) << r0;
  EXPECT_NE(r0.find("1: 0x"), std::string::npos) << r0;
  // SessionLog (field 7) with status START (field 1 = 1) at step (field 2) 7.
  std::string r1 = decode_raw(records[1], dir);
  EXPECT_NE(r1.find("2: 7\n"), std::string::npos) << r1;
  EXPECT_NE(r1.find("7 {\n  1: 1\n}"), std::string::npos) << r1;
  // Event.step = 2; Event.summary = 5 { Summary.value = 1 { tag = 1, simple_value = 2 } }.
  std::string r2 = decode_raw(records[2], dir);
  EXPECT_NE(r2.find("2: 7\n"), std::string::npos) << r2;
  EXPECT_NE(r2.find("5 {\n  1 {\n    1: \"train/loss\"\n    2: " + float_hex(2.5f) + "\n  }\n}"),
            std::string::npos) << r2;
  std::string r3 = decode_raw(records[3], dir);
  EXPECT_NE(r3.find("2: 8\n"), std::string::npos) << r3;
  EXPECT_NE(r3.find("1: \"train/loss\"\n    2: " + float_hex(2.25f)), std::string::npos) << r3;
  EXPECT_NE(r3.find("1: \"train/lr\"\n    2: " + float_hex(1.5e-4f)), std::string::npos) << r3;
}

TEST(OpsTensorBoard, RestartAppendsANewFileThatSortsLast) {
  fs::path logdir = lt::test::scratch_dir("ops_tb_restart") / "tb";
  fs::create_directories(logdir);
  // A file from a "previous run" stamped in the future: the new one must still sort after it.
  std::string future = "events.out.tfevents.9999999990.otherhost.1.0";
  std::ofstream(logdir / future) << "";
  {
    lt::TensorBoardWriter a(logdir.string(), 0);
    a.scalar("train/loss", 3.0, 1);
  }
  {
    lt::TensorBoardWriter b(logdir.string(), 1);
    b.scalar("train/loss", 2.0, 1);
  }
  auto files = event_files(logdir);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].filename().string(), future);
  EXPECT_EQ(files[1].filename().string().substr(20, 10), "9999999991");
  EXPECT_EQ(files[2].filename().string().substr(20, 10), "9999999992");
  EXPECT_EQ(read_records(files[1]).size(), 3u);  // the first writer's file is left alone
  EXPECT_EQ(read_records(files[2]).size(), 3u);
}

TEST(OpsTensorBoard, UnwritableDirectoryIsAClearError) {
  try {
    lt::TensorBoardWriter w("/proc/llamatrain-no-such-dir/tb");
    FAIL() << "expected an error";
  } catch (const lt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/proc/llamatrain-no-such-dir/tb"), std::string::npos)
        << e.what();
  }
}
