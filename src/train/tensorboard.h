// TensorBoard event files: scalars (loss, learning rate, ...) that TensorBoard plots while
// the job runs, written with libprotobuf in TensorBoard's own record format.
//
// File:   <dir>/events.out.tfevents.<unix time>.<hostname>.<pid>.<seq>, one per writer.
// Record: uint64 length (little endian), masked CRC32C of those 8 bytes, the serialized
//         Event, masked CRC32C of it (docs/FORMATS.md, "TensorBoard event files").
//
// Restarts append, never wipe: every writer opens a NEW file in the same directory (its
// name sorts after the files already there) and starts it with file_version
// "brain.Event:2" and a SessionLog START at `start_step`. TensorBoard reads all files of
// a directory in name order as one run; on a START after the first it drops the points
// it already has at steps >= start_step, so the tail a crashed run logged after its last
// checkpoint disappears from the curves and the resumed run's points replace it.
#pragma once
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lt {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses it.
uint32_t crc32c(const void* data, size_t size);
// TFRecord's masking, so CRCs of data that embeds CRCs stay well distributed.
inline uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

class TensorBoardWriter {
 public:
  // Creates `dir` if needed and a new event file in it. `start_step` is the first step
  // this process will log (the resume step); see the header comment.
  explicit TensorBoardWriter(const std::string& dir, int64_t start_step = 0);
  ~TensorBoardWriter();  // flushes; errors there are logged, not thrown
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One point of the curve `tag` (e.g. "train/loss") at `step`. Buffered until flush().
  void scalar(std::string_view tag, double value, int64_t step);
  // Several tags at one step in one record (what one logging step usually has).
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  // Hands buffered records to the OS (TensorBoard then sees them). Throws on write errors.
  void flush();

  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& payload);

  std::mutex mu_;
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace lt
