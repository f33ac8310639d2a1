// CIFAR-10 binary version (https://www.cs.toronto.edu/~kriz/cifar.html):
// each data_batch_N.bin is a sequence of 3073-byte records and nothing else:
// one label byte (0..9), then the 32x32 red, green and blue planes, each
// row-major. A record's pixels are already in CHW order.

#include <tbb/parallel_for.h>

#include <algorithm>
#include <exception>
#include <string>

#include "data/input_file.h"
#include "data/readers.h"
#include "sparsetrain/error.h"

namespace sparsetrain::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kCifarChannels = 3;
constexpr int64_t kCifarImageBytes = kCifarChannels * kCifarSide * kCifarSide;  // 3072
constexpr int64_t kCifarRecordBytes = 1 + kCifarImageBytes;                     // 3073
// Every batch file of the format holds 10,000 records (30,730,000 bytes);
// reading stops one byte past that, so a small .gz that expands to gigabytes
// is refused after 30 MB, not after the 2 GiB any-file limit.
constexpr int64_t kMaxRecordsPerFile = 10000;
constexpr int64_t kMaxBatchBytes = kMaxRecordsPerFile * kCifarRecordBytes;

// With the official test batch (the unpacked cifar-10-binary.tar.gz): train
// on batches 1-5, test on test_batch. Without it (this project's
// ../shared/data has only its first 1000 records, see its README): train on
// batches 1-4 and hold out batch 5.
constexpr int kTrainBatchesOfficial = 5;
constexpr int kTrainBatchesHeldOut = 4;
constexpr int kHeldOutBatch = 5;
constexpr const char* kTestBatchFile = "test_batch.bin";

struct CifarBatch {
  std::vector<uint8_t> pixels;  // (records, 3, 32, 32)
  std::vector<int32_t> labels;  // (records)
};

std::string record_size_problem(const InputFile& f, int64_t bytes) {
  return "size " + f.bytes_phrase(bytes) + " is not a multiple of the " +
         std::to_string(kCifarRecordBytes) + "-byte CIFAR-10 record (1 label byte + " +
         std::to_string(kCifarImageBytes) + " pixel bytes)";
}

// bytes < 0: more than the limit, size unknown (a gzip stream not read to its end).
std::string too_large_problem(const InputFile& f, int64_t bytes) {
  return "too large: " +
         (bytes < 0 ? "more than " + f.bytes_phrase(kMaxBatchBytes) : f.bytes_phrase(bytes)) +
         ", but a CIFAR-10 batch file holds at most " + std::to_string(kMaxRecordsPerFile) +
         " records (" + std::to_string(kMaxBatchBytes) + " bytes)";
}

// Reads the first `limit` records (all when limit < 0). The whole file is
// checked whenever it is read to its end.
CifarBatch read_cifar_batch(const fs::path& path, int64_t limit) {
  InputFile f(path);
  if (!f.compressed()) {
    if (f.disk_size() == 0) f.fail("empty file (no records)");
    if (f.disk_size() % kCifarRecordBytes != 0) f.fail(record_size_problem(f, f.disk_size()));
    if (f.disk_size() > kMaxBatchBytes) f.fail(too_large_problem(f, f.disk_size()));
  }
  // One byte more than the limit tells "too large" from "exactly at the limit".
  const int64_t want =
      limit >= 0 ? std::min(limit, kMaxRecordsPerFile) * kCifarRecordBytes : kMaxBatchBytes + 1;
  std::vector<uint8_t> bytes;
  const int64_t got = f.append_up_to(bytes, want);
  if (got < want) {  // read to the end of the data: check all of it
    f.check_not_cut();
    if (got == 0) f.fail("empty file (no records)");
    if (got % kCifarRecordBytes != 0) f.fail(record_size_problem(f, got));
    f.expect_end(got);
  } else if (limit < 0) {
    f.fail(too_large_problem(f, -1));
  }

  const int64_t records = got / kCifarRecordBytes;
  CifarBatch out;
  out.pixels.resize(static_cast<size_t>(records * kCifarImageBytes));
  out.labels.resize(static_cast<size_t>(records));
  for (int64_t r = 0; r < records; ++r) {
    const uint8_t* record = bytes.data() + r * kCifarRecordBytes;
    if (record[0] >= kNumClasses10) {
      f.fail("label " + std::to_string(record[0]) + " of record " + std::to_string(r) +
             " is out of range (expected 0..9)");
    }
    out.labels[r] = record[0];
    std::copy(record + 1, record + kCifarRecordBytes, out.pixels.data() + r * kCifarImageBytes);
  }
  return out;
}

}  // namespace

bool has_official_test_batch(const fs::path& dir) {
  std::error_code ec;
  const fs::path raw = dir / kTestBatchFile;
  return fs::exists(raw, ec) || fs::exists(fs::path(raw.string() + ".gz"), ec);
}

void read_cifar10(const fs::path& dir, Split split, int64_t limit, Dataset& out) {
  std::vector<fs::path> files;
  auto add = [&](int batch) {
    files.push_back(dir / ("data_batch_" + std::to_string(batch) + ".bin"));
  };
  const bool official = has_official_test_batch(dir);
  if (split == Split::kTrain) {
    const int batches = official ? kTrainBatchesOfficial : kTrainBatchesHeldOut;
    for (int b = 1; b <= batches; ++b) add(b);
    out.files = "data_batch_1.bin .. data_batch_" + std::to_string(batches) + ".bin";
  } else if (official) {
    files.push_back(dir / kTestBatchFile);
    out.files = std::string(kTestBatchFile) + " (the official test set)";
  } else {
    add(kHeldOutBatch);
    out.files = "data_batch_5.bin (held out: no " + std::string(kTestBatchFile) + " here)";
  }

  std::vector<CifarBatch> batches(files.size());
  if (limit < 0) {
    // Decompress the files in parallel; report the first failure in file
    // order, so the message does not depend on the thread count.
    std::vector<std::exception_ptr> errors(files.size());
    tbb::parallel_for(size_t{0}, files.size(), [&](size_t i) {
      try {
        batches[i] = read_cifar_batch(files[i], -1);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
    for (const auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  } else {
    int64_t remaining = limit;
    for (size_t i = 0; i < files.size() && (i == 0 || remaining > 0); ++i) {
      batches[i] = read_cifar_batch(files[i], remaining);
      remaining -= static_cast<int64_t>(batches[i].labels.size());
    }
  }

  size_t total = 0;
  for (const auto& b : batches) total += b.labels.size();
  out.channels = kCifarChannels;
  out.height = kCifarSide;
  out.width = kCifarSide;
  out.num_classes = kNumClasses10;
  out.pixels.clear();
  out.labels.clear();
  out.pixels.reserve(total * kCifarImageBytes);
  out.labels.reserve(total);
  for (auto& b : batches) {
    out.pixels.insert(out.pixels.end(), b.pixels.begin(), b.pixels.end());
    out.labels.insert(out.labels.end(), b.labels.begin(), b.labels.end());
    b = CifarBatch{};
  }
}

}  // namespace sparsetrain::data
