#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "src/train/event.pb.h"  // protobuf_generate names outputs from the source root

namespace lt {
namespace {

std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// The timestamp for a new file's name: now, or one past the newest file already in `dir`,
// so the new file sorts last (TensorBoard reads a directory's files in name order, and the
// START record only purges correctly when the resumed run's file comes after the old ones).
int64_t file_timestamp(const std::string& dir) {
  int64_t ts = static_cast<int64_t>(now_seconds());
  const std::string prefix = "events.out.tfevents.";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    int64_t old = std::atoll(name.c_str() + prefix.size());
    if (old >= ts) ts = old + 1;
  }
  return ts;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = make_crc32c_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir, int64_t start_step) {
  ensure_writable_dir(dir, "TensorBoard log directory");
  static std::atomic<int> seq{0};
  path_ = fmt::format("{}/events.out.tfevents.{:010d}.{}.{}.{}", dir, file_timestamp(dir),
                      host_name(), getpid(), seq++);
  // "x": never open (and so never truncate) a file that already exists.
  file_ = std::fopen(path_.c_str(), "wbx");
  if (!file_) fail("cannot create TensorBoard event file {}: {}", path_, std::strerror(errno));

  tb::Event version;
  version.set_wall_time(now_seconds());
  version.set_file_version("brain.Event:2");
  write_record(version.SerializeAsString());
  tb::Event start;
  start.set_wall_time(now_seconds());
  start.set_step(start_step);
  start.mutable_session_log()->set_status(tb::SessionLog::START);
  write_record(start.SerializeAsString());
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (!file_) return;
  if (std::fflush(file_) != 0 || std::fclose(file_) != 0)
    log::warn("closing TensorBoard event file {}: {}", path_, std::strerror(errno));
}

void TensorBoardWriter::scalar(std::string_view tag, double value, int64_t step) {
  scalars(step, {{std::string(tag), value}});
}

void TensorBoardWriter::scalars(int64_t step,
                                const std::vector<std::pair<std::string, double>>& values) {
  tb::Event ev;
  ev.set_wall_time(now_seconds());
  ev.set_step(step);
  tb::Summary* summary = ev.mutable_summary();
  for (const auto& [tag, value] : values) {
    tb::Summary::Value* v = summary->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));  // TensorBoard scalars are float32
  }
  write_record(ev.SerializeAsString());
}

void TensorBoardWriter::write_record(const std::string& payload) {
  uint8_t header[12];
  uint64_t len = payload.size();
  for (int i = 0; i < 8; ++i) header[i] = static_cast<uint8_t>(len >> (8 * i));
  uint32_t len_crc = mask_crc32c(crc32c(header, 8));
  for (int i = 0; i < 4; ++i) header[8 + i] = static_cast<uint8_t>(len_crc >> (8 * i));
  uint32_t data_crc = mask_crc32c(crc32c(payload.data(), payload.size()));
  uint8_t footer[4];
  for (int i = 0; i < 4; ++i) footer[i] = static_cast<uint8_t>(data_crc >> (8 * i));

  std::lock_guard<std::mutex> lock(mu_);
  if (std::fwrite(header, 1, sizeof(header), file_) != sizeof(header) ||
      std::fwrite(payload.data(), 1, payload.size(), file_) != payload.size() ||
      std::fwrite(footer, 1, sizeof(footer), file_) != sizeof(footer))
    fail("writing TensorBoard event file {}: {}", path_, std::strerror(errno));
}

void TensorBoardWriter::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::fflush(file_) != 0)
    fail("writing TensorBoard event file {}: {}", path_, std::strerror(errno));
}

}  // namespace lt
