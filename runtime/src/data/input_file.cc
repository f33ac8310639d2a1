#include "data/input_file.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "sparsetrain/error.h"

namespace sparsetrain::data {
namespace {

namespace fs = std::filesystem;

// zlib's read buffer; larger than its 8 KB default for fewer system calls.
constexpr unsigned kGzBufferBytes = 256 * 1024;
// One gzread() / fread() call never asks for more than this (gzread takes an
// unsigned count and returns an int).
constexpr int64_t kMaxReadChunk = int64_t{1} << 24;
// Deflate cannot expand data by more than about 1032:1, which bounds how much
// a gzip file of a given size can honestly decode to. Used, with a cap, to
// size pre-allocations only.
constexpr int64_t kMaxDeflateRatio = 1032;
constexpr int64_t kMaxReserveBytes = int64_t{64} << 20;

bool exists_quietly(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec) && !ec;
}

}  // namespace

InputFile::InputFile(const fs::path& path) {
  fs::path chosen = path;
  bool gzip = false;
  if (!exists_quietly(path)) {
    fs::path gz_path = path;
    gz_path += ".gz";
    if (!exists_quietly(gz_path)) {
      throw Error(path.string() + ": no such file (looked for " + path.string() + " and " +
                  gz_path.string() + ")");
    }
    chosen = gz_path;
    gzip = true;
  }
  name_ = chosen.string();
  std::error_code ec;
  if (!fs::is_regular_file(chosen, ec)) fail("not a regular file");
  const auto size = fs::file_size(chosen, ec);
  if (ec) fail("cannot read its size: " + ec.message());
  disk_size_ = static_cast<int64_t>(size);

  if (gzip) {
    gz_ = gzopen(name_.c_str(), "rb");
    if (gz_ == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
    gzbuffer(gz_, kGzBufferBytes);
  } else {
    raw_ = std::fopen(name_.c_str(), "rb");
    if (raw_ == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
  }
}

InputFile::~InputFile() {
  if (gz_ != nullptr) gzclose(gz_);
  if (raw_ != nullptr) std::fclose(raw_);
}

void InputFile::fail(const std::string& problem) const { throw Error(name_ + ": " + problem); }

std::string InputFile::bytes_phrase(int64_t n) const {
  return std::to_string(n) + (compressed() ? " bytes after decompression" : " bytes");
}

int64_t InputFile::read_some(uint8_t* dst, int64_t n) {
  int64_t got = 0;
  while (got < n) {
    const int64_t want = std::min(n - got, kMaxReadChunk);
    int64_t r = 0;
    if (gz_ != nullptr) {
      const int status = gzread(gz_, dst + got, static_cast<unsigned>(want));
      if (status < 0) {
        int code = Z_OK;
        const char* msg = gzerror(gz_, &code);
        fail("corrupt gzip stream after " + std::to_string(position_ + got) +
             " decompressed bytes (" + (msg != nullptr ? msg : "unknown zlib error") + ")");
      }
      r = status;
      if (r == 0) {
        // A clean end of data, or a stream cut short (zlib's Z_BUF_ERROR).
        int code = Z_OK;
        gzerror(gz_, &code);
        cut_ = code == Z_BUF_ERROR;
      }
    } else {
      r = static_cast<int64_t>(std::fread(dst + got, 1, static_cast<size_t>(want), raw_));
      if (r < want && std::ferror(raw_)) fail(std::string("read error: ") + std::strerror(errno));
    }
    if (r == 0) break;
    got += r;
  }
  position_ += got;
  return got;
}

int64_t InputFile::append_up_to(std::vector<uint8_t>& out, int64_t n) {
  // Pre-allocate what the file can honestly hold, then grow only as data
  // arrives.
  const int64_t plausible = compressed() ? std::min(disk_size_, kMaxFileBytes) * kMaxDeflateRatio
                                         : std::max<int64_t>(disk_size_ - position_, 0);
  const size_t start = out.size();
  out.reserve(start + static_cast<size_t>(std::min({n, plausible, kMaxReserveBytes})));
  int64_t got = 0;
  while (got < n) {
    const int64_t want = std::min(n - got, kMaxReadChunk);
    const size_t at = out.size();
    out.resize(at + static_cast<size_t>(want));
    const int64_t r = read_some(out.data() + at, want);
    out.resize(at + static_cast<size_t>(r));
    got += r;
    if (r < want) break;
  }
  return got;
}

void InputFile::fail_truncated(int64_t expected_total, bool at_least) const {
  std::string problem = "truncated: expected " + std::string(at_least ? "at least " : "") +
                        bytes_phrase(expected_total) + ", got " + std::to_string(position_);
  if (cut_) problem += " (the gzip stream ends early)";
  fail(problem);
}

void InputFile::read_exact(uint8_t* dst, int64_t n, int64_t expected_total, bool at_least) {
  if (read_some(dst, n) < n) fail_truncated(expected_total, at_least);
}

void InputFile::append_exact(std::vector<uint8_t>& out, int64_t n, int64_t expected_total) {
  if (append_up_to(out, n) < n) fail_truncated(expected_total, false);
}

void InputFile::check_not_cut() const {
  if (cut_) {
    fail("truncated: the gzip stream ends early, after " + std::to_string(position_) +
         " decompressed bytes");
  }
}

void InputFile::check_size(int64_t expected_total) const {
  if (compressed()) return;
  if (disk_size_ < expected_total) {
    fail("truncated: expected " + bytes_phrase(expected_total) + ", got " +
         std::to_string(disk_size_));
  }
  if (disk_size_ > expected_total) {
    fail("unexpected trailing data: expected " + bytes_phrase(expected_total) + ", got " +
         std::to_string(disk_size_));
  }
}

void InputFile::expect_end(int64_t expected_total) {
  if (!compressed()) {
    check_size(expected_total);
    return;
  }
  // Reading past the data makes zlib check the gzip trailer (CRC-32, length).
  uint8_t extra = 0;
  if (read_some(&extra, 1) != 0) {
    fail("unexpected trailing data: expected " + bytes_phrase(expected_total) + ", got more");
  }
  if (cut_) {
    fail("truncated: the gzip stream ends before its trailer (all " + bytes_phrase(expected_total) +
         " are present)");
  }
}

}  // namespace sparsetrain::data
