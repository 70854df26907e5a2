// safetensors reader/writer: a round trip, and one hand-built byte string per kind of bad file.
#include "ckpt/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "test_util.h"

namespace lt {
namespace {

// An image: 8-byte little-endian header length, the header text, then `data`.
std::string image(const std::string& header, const std::string& data = "") {
  std::string s(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) s[i] = char(n >> (8 * i));
  return s + header + data;
}

std::string parse_error(const std::string& img) {
  try {
    parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(img, substr)                                  \
  do {                                                             \
    std::string msg = parse_error(img);                            \
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg; \
    EXPECT_NE(msg.find(substr), std::string::npos) << msg;         \
  } while (0)

TEST(Safetensors, ParsesAHandBuiltFile) {
  std::string img = image(R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
                          R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}})",
                          std::string(12, 'x'));
  auto h = parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "f");
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");  // sorted by offset
  EXPECT_EQ(h.tensors[1].dtype, DType::BF16);
  EXPECT_EQ(h.metadata.at("k"), "v");
}

TEST(Safetensors, WriterRoundTrip) {
  auto dir = test::scratch_dir("safetensors_roundtrip");
  std::string path = (dir / "t.safetensors").string();
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<uint16_t> b = {0x3f80, 0xc000, 0x1234};
  std::vector<int32_t> c = {42};
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {2, 3}}, {"b", DType::BF16, {3}}, {"c", DType::I32, {}}},
                        {{"format", "pt"}});
    w.write(a.data(), 8);  // chunked writes are fine
    w.write(reinterpret_cast<const char*>(a.data()) + 8, 16);
    w.write(b.data(), 6);
    w.write(c.data(), 4);
    FileDigest d = w.finish();
    EXPECT_EQ(d.size, std::filesystem::file_size(path));
    EXPECT_EQ(d.xxh64, digest_file(path).xxh64);
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const auto& ta = f.at("a");
  EXPECT_EQ(ta.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(f.bytes(ta).data(), a.data(), 24), 0);
  EXPECT_EQ(std::memcmp(f.bytes(f.at("b")).data(), b.data(), 6), 0);
  EXPECT_EQ(f.at("c").shape.size(), 0u);
  EXPECT_EQ(std::memcmp(f.bytes(f.at("c")).data(), c.data(), 4), 0);
  EXPECT_THROW(f.at("missing"), Error);
}

TEST(Safetensors, UnfinishedWriterLeavesNoFile) {
  auto dir = test::scratch_dir("safetensors_unfinished");
  std::string path = (dir / "t.safetensors").string();
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {4}}});
    float x = 1;
    w.write(&x, 4);
    EXPECT_THROW(w.finish(), Error);  // 4 of 16 bytes
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Safetensors, TooShortForHeaderLength) { EXPECT_ERROR(std::string(5, '\0'), "shorter than"); }

TEST(Safetensors, HeaderLengthPastTheEnd) {
  std::string img = image("{}");
  img[0] = 100;
  EXPECT_ERROR(img, "past the end");
}

TEST(Safetensors, HugeHeader) {
  std::string header = "{\"__metadata__\":{\"x\":\"" + std::string(kMaxSafetensorsHeader, 'a') + "\"}}";
  EXPECT_ERROR(image(header), "MB limit");
}

TEST(Safetensors, NotUtf8) { EXPECT_ERROR(image("{\"a\xff\":1}"), "UTF-8"); }
TEST(Safetensors, OverlongUtf8) { EXPECT_ERROR(image("{\"a\xc0\xaf\":1}"), "UTF-8"); }
TEST(Safetensors, NotJson) { EXPECT_ERROR(image("{\"a\":"), "not valid JSON"); }
TEST(Safetensors, NotAnObject) { EXPECT_ERROR(image("[1,2,3]"), "must be a JSON object"); }
TEST(Safetensors, DeeplyNested) { EXPECT_ERROR(image(std::string(1000, '[') + std::string(1000, ']')), "nested"); }

TEST(Safetensors, UnknownDtype) {
  EXPECT_ERROR(image(R"({"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", "x"), "unknown dtype 'F8_E9'");
}

TEST(Safetensors, ShapeAndByteCountDisagree) {
  std::string msg = parse_error(image(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"));
  EXPECT_NE(msg.find("tensor 'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 12 bytes"), std::string::npos) << msg;
}

TEST(Safetensors, OffsetsPastTheData) {
  EXPECT_ERROR(image(R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", "1234"), "past the end of the data");
}

TEST(Safetensors, BackwardsOffsets) {
  EXPECT_ERROR(image(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", "1234"), "backwards");
}

TEST(Safetensors, OverlappingTensors) {
  EXPECT_ERROR(image(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                     "123456"),
               "overlap");
}

TEST(Safetensors, NegativeOrFloatShape) {
  EXPECT_ERROR(image(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})"), "non-negative integer");
  EXPECT_ERROR(image(R"({"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})", "x"), "non-negative integer");
}

TEST(Safetensors, OverflowingShape) {
  EXPECT_ERROR(image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"),
               "too many elements");
}

TEST(Safetensors, MissingFields) {
  EXPECT_ERROR(image(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", "x"), "dtype");
  EXPECT_ERROR(image(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "x"), "shape");
  EXPECT_ERROR(image(R"({"a":{"dtype":"U8","shape":[1]}})", "x"), "data_offsets");
  EXPECT_ERROR(image(R"({"a":3})"), "not a JSON object");
}

TEST(Safetensors, NonStringMetadata) { EXPECT_ERROR(image(R"({"__metadata__":{"a":1}})"), "must be a string"); }

TEST(Safetensors, TruncatedFileOnDisk) {
  auto dir = test::scratch_dir("safetensors_truncated");
  std::string path = (dir / "t.safetensors").string();
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {100}}});
    std::vector<float> x(100, 1.0f);
    w.write(x.data(), 400);
    w.finish();
  }
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  try {
    SafetensorsFile f(path);
    FAIL() << "truncated file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'a'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lt
