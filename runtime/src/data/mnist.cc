// IDX reader for MNIST and Fashion-MNIST (format: http://yann.lecun.com/exdb/mnist/):
// big-endian u32 header fields, then u8 payload.
//   images: magic 0x00000803, count, rows, cols, count * rows * cols pixels
//   labels: magic 0x00000801, count, count labels

#include <algorithm>
#include <cstdio>
#include <string>

#include "data/input_file.h"
#include "data/readers.h"
#include "sparsetrain/error.h"

namespace sparsetrain::data {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // u8 data, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // u8 data, 1 dimension
constexpr int64_t kIdxImagesHeaderBytes = 16;
constexpr int64_t kIdxLabelsHeaderBytes = 8;
constexpr uint32_t kGzipMagicPrefix = 0x1f8b0000;  // first two bytes of a gzip file

uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

void check_magic(const InputFile& f, uint32_t magic, uint32_t expected, const char* what) {
  if (magic == expected) return;
  std::string problem =
      "bad magic " + hex32(magic) + " (expected " + hex32(expected) + " for " + what + ")";
  if ((magic & 0xffff0000u) == kGzipMagicPrefix && !f.compressed()) {
    problem += "; the file looks gzip-compressed: give it a .gz name";
  }
  f.fail(problem);
}

// Reads the header (`header_bytes`: magic, count, dimensions) into `header`,
// checks the magic and returns the count.
int64_t read_idx_header(InputFile& f, uint8_t* header, int64_t header_bytes, uint32_t magic,
                        const char* what) {
  f.read_exact(header, header_bytes, header_bytes, /*at_least=*/true);
  check_magic(f, load_be32(header), magic, what);
  return load_be32(header + 4);
}

// The items of one IDX file: its name, the count its header declares and the
// bytes of the items kept.
struct IdxFile {
  std::string file;
  int64_t count = 0;
  std::vector<uint8_t> bytes;  // (kept, item bytes)
};

// The most items an IDX file of the split may declare: MNIST and
// Fashion-MNIST hold 60,000 training and 10,000 test samples. A header that
// claims more is refused before anything is read or decompressed.
int64_t max_idx_count(Split split) { return split == Split::kTrain ? 60000 : 10000; }

// Reads the first `limit` (all when negative) of the `count` `items` of
// `item_bytes` after the header; a file read to its last item must end there.
IdxFile read_idx_items(InputFile& f, int64_t header_bytes, int64_t count, int64_t item_bytes,
                       Split split, int64_t limit, const std::string& items) {
  if (count == 0) f.fail("no " + items + " (the header's count is 0)");
  if (count > max_idx_count(split)) {
    f.fail("the header claims " + std::to_string(count) + " " + items + ", but a " +
           split_name(split) + " file of MNIST or Fashion-MNIST holds at most " +
           std::to_string(max_idx_count(split)));
  }
  IdxFile out{f.name(), count, {}};
  const int64_t total = header_bytes + count * item_bytes;
  f.check_size(total);
  const int64_t kept = limit >= 0 ? std::min(limit, count) : count;
  f.append_exact(out.bytes, kept * item_bytes, total);
  if (kept == count) f.expect_end(total);
  return out;
}

// Pixels (kept, 28, 28).
IdxFile read_idx_images(const fs::path& path, Split split, int64_t limit) {
  InputFile f(path);
  uint8_t header[kIdxImagesHeaderBytes];
  const int64_t count =
      read_idx_header(f, header, kIdxImagesHeaderBytes, kIdxImagesMagic, "IDX images");
  const int64_t rows = load_be32(header + 8);
  const int64_t cols = load_be32(header + 12);
  if (rows != kMnistSide || cols != kMnistSide) {
    f.fail("unexpected image size " + std::to_string(rows) + "x" + std::to_string(cols) +
           " (expected 28x28)");
  }
  return read_idx_items(f, kIdxImagesHeaderBytes, count, rows * cols, split, limit, "images");
}

// Labels (kept), each checked to be a class.
IdxFile read_idx_labels(const fs::path& path, Split split, int64_t limit) {
  InputFile f(path);
  uint8_t header[kIdxLabelsHeaderBytes];
  const int64_t count =
      read_idx_header(f, header, kIdxLabelsHeaderBytes, kIdxLabelsMagic, "IDX labels");
  IdxFile out = read_idx_items(f, kIdxLabelsHeaderBytes, count, 1, split, limit, "labels");
  for (size_t i = 0; i < out.bytes.size(); ++i) {
    if (out.bytes[i] >= kNumClasses10) {
      f.fail("label " + std::to_string(out.bytes[i]) + " of sample " + std::to_string(i) +
             " is out of range (expected 0..9)");
    }
  }
  return out;
}

}  // namespace

void read_mnist_family(const fs::path& dir, Split split, int64_t limit, Dataset& out) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  IdxFile images = read_idx_images(dir / (prefix + "-images-idx3-ubyte"), split, limit);
  IdxFile labels = read_idx_labels(dir / (prefix + "-labels-idx1-ubyte"), split, limit);
  if (images.count != labels.count) {
    throw Error(labels.file + ": holds " + std::to_string(labels.count) + " labels, but " +
                images.file + " holds " + std::to_string(images.count) +
                " images (label count mismatch)");
  }
  out.channels = 1;
  out.height = kMnistSide;
  out.width = kMnistSide;
  out.num_classes = kNumClasses10;
  out.pixels = std::move(images.bytes);
  out.labels.assign(labels.bytes.begin(), labels.bytes.end());
  out.files =
      fs::path(images.file).filename().string() + ", " + fs::path(labels.file).filename().string();
}

}  // namespace sparsetrain::data
