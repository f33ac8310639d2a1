// Sequential reading of a dataset file, raw or gzip-compressed, with every
// failure reported as sparsetrain::Error("<file>: <problem>").
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

struct gzFile_s;  // zlib's gzFile

namespace sparsetrain::data {

// No dataset file decodes to more than this; a header or a gzip stream that
// claims more is rejected before it can exhaust memory. The largest official
// file (Fashion-MNIST train images) is 47 MB.
inline constexpr int64_t kMaxFileBytes = int64_t{2} << 30;

// Opens `path` if it exists, else `path` + ".gz" (read through zlib).
class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& name() const { return name_; }  // the file actually opened
  bool compressed() const { return gz_ != nullptr; }
  int64_t position() const { return position_; }  // bytes delivered so far (decompressed)
  int64_t disk_size() const { return disk_size_; }

  [[noreturn]] void fail(const std::string& problem) const;
  // "N bytes" or "N bytes after decompression".
  std::string bytes_phrase(int64_t n) const;

  // Appends up to n bytes to `out`, growing it only as data arrives, so a
  // header that lies about its count cannot make it allocate more than the
  // file holds. Returns the number appended (< n only at the end of the
  // data). Throws on a corrupt gzip stream.
  int64_t append_up_to(std::vector<uint8_t>& out, int64_t n);
  // Reads exactly n bytes, or throws "truncated: expected [at least]
  // <expected_total> bytes, got <position>".
  void read_exact(uint8_t* dst, int64_t n, int64_t expected_total, bool at_least = false);
  void append_exact(std::vector<uint8_t>& out, int64_t n, int64_t expected_total);
  // Throws if the gzip stream ended before its end-of-stream marker (call
  // once append_up_to() has returned short).
  void check_not_cut() const;
  // For a raw file, whose size is known up front: throws unless it is
  // exactly expected_total bytes. Does nothing for a gzip file.
  void check_size(int64_t expected_total) const;
  // Throws unless the data (and, for gzip, the stream with its checksum)
  // ends exactly at `expected_total` bytes.
  void expect_end(int64_t expected_total);

 private:
  // Reads up to n bytes into dst; short only at the end of the data.
  int64_t read_some(uint8_t* dst, int64_t n);
  [[noreturn]] void fail_truncated(int64_t expected_total, bool at_least) const;

  std::string name_;
  gzFile_s* gz_ = nullptr;
  std::FILE* raw_ = nullptr;
  int64_t disk_size_ = 0;
  int64_t position_ = 0;
  bool cut_ = false;  // the gzip stream ended before its end-of-stream marker
};

}  // namespace sparsetrain::data
