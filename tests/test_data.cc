// Dataset readers and the batch Loader: real datasets, hand-made datasets
// with known answers, and damaged files that must fail with a clear message.

#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "sparsetrain/data.h"
#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

const std::string kDataDir = SPARSETRAIN_TEST_DATA_DIR;

// Skips the test when the shared dataset folder is not there.
#define REQUIRE_DATASET_FOLDER(folder)                               \
  do {                                                               \
    if (!fs::is_directory(fs::path(kDataDir) / (folder))) {          \
      GTEST_SKIP() << "no " << (folder) << " folder in " << kDataDir \
                   << " (set SPARSETRAIN_TEST_DATA_DIR)";            \
    }                                                                \
  } while (0)

// ---------------------------------------------------------------------------
// Helpers

// A fresh directory under the system temp folder, removed with its contents.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ =
        fs::temp_directory_path() / ("sparsetrain_test_data_" + std::to_string(::getpid()) + "_" +
                                     std::to_string(counter++) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

using Bytes = std::vector<uint8_t>;

void write_file(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  // Remove, then create: rewriting a file in place through O_TRUNC makes
  // ext4 flush it to disk on close, which made this test slow.
  fs::remove(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

Bytes read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Bytes gzip(const Bytes& bytes) {
  TempDir tmp;
  const fs::path p = tmp.path() / "x.gz";
  gzFile f = gzopen(p.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  if (!bytes.empty()) {
    EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
  }
  gzclose(f);
  return read_file(p);
}

void put_be32(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

// Pixel (n, y, x) of the hand-made IDX images.
uint8_t idx_pixel(int64_t n, int64_t i) { return static_cast<uint8_t>((n * 31 + i * 7) % 256); }

Bytes idx_images(uint32_t count, uint32_t rows = 28, uint32_t cols = 28,
                 uint32_t magic = 0x00000803) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, count);
  put_be32(b, rows);
  put_be32(b, cols);
  for (uint32_t n = 0; n < count; ++n) {
    for (uint32_t i = 0; i < rows * cols; ++i) b.push_back(idx_pixel(n, i));
  }
  return b;
}

Bytes idx_labels(const std::vector<uint8_t>& labels, uint32_t magic = 0x00000801) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

const std::vector<uint8_t> kSmallLabels = {3, 0, 9};

// A valid 3-image MNIST train split in <dir>/mnist/, gzip-compressed or raw.
void write_small_mnist(const fs::path& dir, bool gz) {
  const Bytes images = idx_images(3);
  const Bytes labels = idx_labels(kSmallLabels);
  const std::string ext = gz ? ".gz" : "";
  write_file(dir / "mnist" / ("train-images-idx3-ubyte" + ext), gz ? gzip(images) : images);
  write_file(dir / "mnist" / ("train-labels-idx1-ubyte" + ext), gz ? gzip(labels) : labels);
}

Bytes cifar_records(int count, uint8_t label_of_first = 0) {
  Bytes b;
  for (int r = 0; r < count; ++r) {
    b.push_back(r == 0 ? label_of_first : static_cast<uint8_t>(r % 10));
    for (int i = 0; i < 3072; ++i) b.push_back(static_cast<uint8_t>((r * 13 + i) % 256));
  }
  return b;
}

// Runs f, which must throw sparsetrain::Error with a one-line message that
// contains every part.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no sparsetrain::Error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& part : parts) {
      EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nlacks: " << part;
    }
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

std::vector<int32_t> first_labels(const Dataset& d, int n) {
  return std::vector<int32_t>(d.labels.begin(), d.labels.begin() + n);
}

// Mean and standard deviation of channel c of all pixels, scaled to [0, 1].
std::pair<double, double> channel_stats(const Dataset& d, int64_t c) {
  const int64_t plane = d.height * d.width;
  double sum = 0, sum_sq = 0;
  for (int64_t n = 0; n < d.size(); ++n) {
    const uint8_t* p = d.pixels.data() + (n * d.channels + c) * plane;
    for (int64_t i = 0; i < plane; ++i) {
      const double v = p[i] / 255.0;
      sum += v;
      sum_sq += v * v;
    }
  }
  const double count = static_cast<double>(d.size() * plane);
  const double mean = sum / count;
  return {mean, std::sqrt(sum_sq / count - mean * mean)};
}

// ---------------------------------------------------------------------------
// Real datasets

TEST(RealData, Mnist) {
  REQUIRE_DATASET_FOLDER("mnist");
  const Dataset train = load_dataset("mnist", kDataDir, Split::kTrain);
  EXPECT_EQ(train.name, "mnist");
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(train.channels, 1);
  EXPECT_EQ(train.height, 28);
  EXPECT_EQ(train.width, 28);
  EXPECT_EQ(train.num_classes, 10);
  EXPECT_EQ(train.class_names.size(), 10u);
  EXPECT_EQ(train.pixels.size(), 60000u * 784u);
  EXPECT_EQ(first_labels(train, 5), (std::vector<int32_t>{5, 0, 4, 1, 9}));
  EXPECT_EQ(train.mean, std::vector<float>{0.1307f});
  EXPECT_EQ(train.stddev, std::vector<float>{0.3081f});
  // The normalisation constants are the statistics of the training pixels.
  const auto [mean, stddev] = channel_stats(train, 0);
  EXPECT_NEAR(mean, 0.1307, 1e-4);
  EXPECT_NEAR(stddev, 0.3081, 1e-4);

  const Dataset test = load_dataset("mnist", kDataDir, Split::kTest);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.pixels.size(), 10000u * 784u);
  EXPECT_EQ(first_labels(test, 5), (std::vector<int32_t>{7, 2, 1, 0, 4}));

  // The dataset folder itself works as data_dir too, and limit keeps a prefix.
  const Dataset head = load_dataset("mnist", kDataDir + "/mnist", Split::kTrain, 100);
  EXPECT_EQ(head.size(), 100);
  EXPECT_TRUE(std::equal(head.pixels.begin(), head.pixels.end(), train.pixels.begin()));
  EXPECT_TRUE(std::equal(head.labels.begin(), head.labels.end(), train.labels.begin()));
}

TEST(RealData, FashionMnist) {
  REQUIRE_DATASET_FOLDER("fashion-mnist");
  const Dataset train = load_dataset("fashion-mnist", kDataDir, Split::kTrain);
  EXPECT_EQ(train.name, "fashion-mnist");
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(train.pixels.size(), 60000u * 784u);
  EXPECT_EQ(first_labels(train, 5), (std::vector<int32_t>{9, 0, 0, 3, 0}));
  EXPECT_EQ(train.class_names.at(9), "Ankle boot");
  EXPECT_EQ(train.mean, std::vector<float>{0.2860f});
  EXPECT_EQ(train.stddev, std::vector<float>{0.3530f});
  const auto [mean, stddev] = channel_stats(train, 0);
  EXPECT_NEAR(mean, 0.2860, 1e-4);
  EXPECT_NEAR(stddev, 0.3530, 1e-4);

  const Dataset test = load_dataset("fashion-mnist", kDataDir, Split::kTest);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(first_labels(test, 5), (std::vector<int32_t>{9, 2, 1, 1, 6}));
}

TEST(RealData, Cifar10) {
  REQUIRE_DATASET_FOLDER("cifar-10");
  const Dataset train = load_dataset("cifar10", kDataDir, Split::kTrain);
  EXPECT_EQ(train.name, "cifar10");
  EXPECT_EQ(train.size(), 40000);
  EXPECT_EQ(train.channels, 3);
  EXPECT_EQ(train.height, 32);
  EXPECT_EQ(train.width, 32);
  EXPECT_EQ(train.pixels.size(), 40000u * 3072u);
  EXPECT_EQ(first_labels(train, 5), (std::vector<int32_t>{6, 9, 9, 4, 1}));
  EXPECT_EQ(train.class_names.at(0), "airplane");
  EXPECT_EQ(train.class_names.at(9), "truck");
  // Class counts of data_batch_1, as listed in data/README.md.
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 10000; ++i) ++counts[train.labels[i]];
  EXPECT_EQ(counts, (std::vector<int>{1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981}));
  EXPECT_EQ(train.mean, (std::vector<float>{0.4914f, 0.4822f, 0.4465f}));
  EXPECT_EQ(train.stddev, (std::vector<float>{0.2470f, 0.2435f, 0.2616f}));
  // The constants are the statistics of all 50,000 training images; the
  // 40,000 of batches 1-4 come close.
  const float kMeans[] = {0.4914f, 0.4822f, 0.4465f};
  const float kStddevs[] = {0.2470f, 0.2435f, 0.2616f};
  for (int c = 0; c < 3; ++c) {
    const auto [mean, stddev] = channel_stats(train, c);
    EXPECT_NEAR(mean, kMeans[c], 3e-3) << "channel " << c;
    EXPECT_NEAR(stddev, kStddevs[c], 3e-3) << "channel " << c;
  }

  // A limit that spans two batch files keeps an exact prefix.
  const Dataset head = load_dataset("cifar10", kDataDir, Split::kTrain, 10005);
  ASSERT_EQ(head.size(), 10005);
  EXPECT_TRUE(std::equal(head.pixels.begin(), head.pixels.end(), train.pixels.begin()));
  EXPECT_TRUE(std::equal(head.labels.begin(), head.labels.end(), train.labels.begin()));

  const Dataset test = load_dataset("cifar10", kDataDir, Split::kTest);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.pixels.size(), 10000u * 3072u);
  EXPECT_FALSE(std::equal(test.pixels.begin(), test.pixels.begin() + 3072, train.pixels.begin()));
}

TEST(RealData, CifarLoaderBatches) {
  REQUIRE_DATASET_FOLDER("cifar-10");
  const Dataset data = load_dataset("cifar10", kDataDir, Split::kTrain, 300);
  Loader loader(data, 128, /*shuffle=*/true, default_augmentation("cifar10", Split::kTrain), 7);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  loader.start_epoch(0);
  Batch batch;
  int64_t seen = 0;
  while (loader.next(batch)) {
    const int64_t rows = batch.images.dim(0);
    EXPECT_EQ(batch.images.shape(), (Shape{rows, 3, 32, 32}));
    EXPECT_EQ(batch.images.layout(), Layout::kNCHW);
    for (int64_t i = 0; i < rows; ++i) {
      EXPECT_EQ(batch.labels[i], data.labels[batch.sample_indices[i]]);
    }
    for (int64_t c = 0; c < 3; ++c) {
      const float lo = (0.0f - data.mean[c]) / data.stddev[c];
      const float hi = (1.0f - data.mean[c]) / data.stddev[c];
      for (int64_t i = 0; i < rows; ++i) {
        const float* plane = batch.images.data() + (i * 3 + c) * 1024;
        for (int64_t k = 0; k < 1024; ++k) {
          ASSERT_GE(plane[k], lo);
          ASSERT_LE(plane[k], hi);
        }
      }
    }
    seen += rows;
  }
  EXPECT_EQ(seen, 300);
}

TEST(Datasets, NamesAndDefaults) {
  EXPECT_EQ(dataset_names(), (std::vector<std::string>{"mnist", "fashion-mnist", "cifar10"}));
  const AugmentOptions cifar_train = default_augmentation("cifar10", Split::kTrain);
  EXPECT_TRUE(cifar_train.random_crop);
  EXPECT_TRUE(cifar_train.hflip);
  EXPECT_EQ(cifar_train.crop_padding, 4);
  EXPECT_FALSE(default_augmentation("cifar10", Split::kTest).random_crop);
  EXPECT_FALSE(default_augmentation("cifar10", Split::kTest).hflip);
  EXPECT_FALSE(default_augmentation("mnist", Split::kTrain).random_crop);
  EXPECT_FALSE(default_augmentation("mnist", Split::kTrain).hflip);
  EXPECT_STREQ(split_name(Split::kTrain), "train");
  EXPECT_STREQ(split_name(Split::kTest), "test");
}

// ---------------------------------------------------------------------------
// Hand-made files that are valid

TEST(SmallFiles, GzipAndRawReadTheSame) {
  for (bool gz : {true, false}) {
    TempDir tmp;
    write_small_mnist(tmp.path(), gz);
    const Dataset d = load_dataset("mnist", tmp.str(), Split::kTrain);
    ASSERT_EQ(d.size(), 3);
    EXPECT_EQ(d.labels, (std::vector<int32_t>{3, 0, 9}));
    const Bytes images = idx_images(3);
    EXPECT_TRUE(std::equal(d.pixels.begin(), d.pixels.end(), images.begin() + 16));
    EXPECT_EQ(d.pixels.size(), images.size() - 16);
  }
}

TEST(SmallFiles, RawFileWinsOverGzip) {
  TempDir tmp;
  write_small_mnist(tmp.path(), /*gz=*/true);
  // A raw labels file beside the .gz, with other labels.
  write_file(tmp.path() / "mnist" / "train-labels-idx1-ubyte", idx_labels({1, 1, 1}));
  const Dataset d = load_dataset("mnist", tmp.str(), Split::kTrain);
  EXPECT_EQ(d.labels, (std::vector<int32_t>{1, 1, 1}));
}

TEST(SmallFiles, CifarBatchesInOrder) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "cifar-10";
  for (int b = 1; b <= 4; ++b) {
    write_file(dir / ("data_batch_" + std::to_string(b) + ".bin.gz"),
               gzip(cifar_records(2, static_cast<uint8_t>(b))));
  }
  write_file(dir / "data_batch_5.bin", cifar_records(3, 7));
  const Dataset train = load_dataset("cifar10", tmp.str(), Split::kTrain);
  EXPECT_EQ(train.labels, (std::vector<int32_t>{1, 1, 2, 1, 3, 1, 4, 1}));
  const Bytes records = cifar_records(2);
  EXPECT_TRUE(std::equal(train.pixels.begin(), train.pixels.begin() + 3072, records.begin() + 1));
  const Dataset test = load_dataset("cifar10", dir.string(), Split::kTest);
  EXPECT_EQ(test.labels, (std::vector<int32_t>{7, 1, 2}));
  const Dataset limited = load_dataset("cifar10", tmp.str(), Split::kTrain, 3);
  EXPECT_EQ(limited.labels, (std::vector<int32_t>{1, 1, 2}));
}

// ---------------------------------------------------------------------------
// Damaged files: every one fails with the file name and the problem.

class BadInput : public ::testing::Test {
 protected:
  fs::path mnist_dir() const { return tmp_.path() / "mnist"; }
  fs::path cifar_dir() const { return tmp_.path() / "cifar-10"; }
  void load_mnist() { load_dataset("mnist", tmp_.str(), Split::kTrain); }
  void load_cifar_test() { load_dataset("cifar10", tmp_.str(), Split::kTest); }

  TempDir tmp_;
};

TEST_F(BadInput, TruncatedGzipContent) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  Bytes images = idx_images(3);
  images.resize(1000);  // a complete gzip stream of too little data
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gzip(images));
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: truncated: expected 2368 bytes after "
                "decompression, got 1000"});
}

TEST_F(BadInput, TruncatedGzipStream) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  Bytes gz = gzip(idx_images(3));
  gz.resize(gz.size() / 2);  // the stream itself is cut
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gz);
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: truncated", "the gzip stream ends early"});
}

TEST_F(BadInput, GzipTrailerMissing) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  Bytes gz = gzip(idx_images(3));
  gz.resize(gz.size() - 8);  // CRC-32 and length gone, the data complete
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gz);
  expect_error([&] { load_mnist(); }, {"train-images-idx3-ubyte.gz: truncated", "trailer"});
}

TEST_F(BadInput, TruncatedRawIdx) {
  write_small_mnist(tmp_.path(), /*gz=*/false);
  Bytes images = idx_images(3);
  images.resize(1000);
  write_file(mnist_dir() / "train-images-idx3-ubyte", images);
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte: truncated: expected 2368 bytes, got 1000"});
}

TEST_F(BadInput, TruncatedHeader) {
  write_small_mnist(tmp_.path(), /*gz=*/false);
  write_file(mnist_dir() / "train-labels-idx1-ubyte", Bytes{0, 0, 8, 1, 0});
  expect_error([&] { load_mnist(); },
               {"train-labels-idx1-ubyte: truncated: expected at least 8 bytes, got 5"});
}

TEST_F(BadInput, TrailingData) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  Bytes images = idx_images(3);
  images.push_back(0);
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gzip(images));
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: unexpected trailing data: expected 2368 bytes "
                "after decompression"});
  std::filesystem::remove(mnist_dir() / "train-images-idx3-ubyte.gz");
  write_file(mnist_dir() / "train-images-idx3-ubyte", images);
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte: unexpected trailing data: expected 2368 bytes, got "
                "2369"});
}

TEST_F(BadInput, BadMagic) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gzip(idx_images(3, 28, 28, 0)));
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: bad magic 0x00000000 (expected 0x00000803 for IDX "
                "images)"});
  // Images and labels swapped.
  write_small_mnist(tmp_.path(), /*gz=*/true);
  write_file(mnist_dir() / "train-labels-idx1-ubyte.gz", gzip(idx_images(3)));
  expect_error([&] { load_mnist(); },
               {"train-labels-idx1-ubyte.gz: bad magic 0x00000803 (expected 0x00000801 for IDX "
                "labels)"});
}

TEST_F(BadInput, GzipDataUnderARawName) {
  write_small_mnist(tmp_.path(), /*gz=*/false);
  write_file(mnist_dir() / "train-images-idx3-ubyte", gzip(idx_images(3)));
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte: bad magic 0x1f8b", "looks gzip-compressed"});
}

TEST_F(BadInput, WrongImageSize) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gzip(idx_images(3, 28, 27)));
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: unexpected image size 28x27 (expected 28x28)"});
}

TEST_F(BadInput, ZeroCount) {
  write_small_mnist(tmp_.path(), /*gz=*/false);
  write_file(mnist_dir() / "train-images-idx3-ubyte", idx_images(0));
  expect_error([&] { load_mnist(); }, {"train-images-idx3-ubyte: no images"});
}

TEST_F(BadInput, HugeCountInHeader) {
  // A 16-byte file that claims 4 billion images must not allocate them.
  write_small_mnist(tmp_.path(), /*gz=*/true);
  Bytes images;
  put_be32(images, 0x00000803);
  put_be32(images, 0xffffffffu);
  put_be32(images, 28);
  put_be32(images, 28);
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gzip(images));
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: the header claims 4294967295 images, but a train "
                "file of MNIST or Fashion-MNIST holds at most 60000"});
  // One over what the format holds, for labels and for the test split.
  Bytes labels;
  put_be32(labels, 0x00000801);
  put_be32(labels, 10001);
  write_file(tmp_.path() / "mnist" / "t10k-images-idx3-ubyte.gz", gzip(idx_images(3)));
  write_file(tmp_.path() / "mnist" / "t10k-labels-idx1-ubyte.gz", gzip(labels));
  expect_error([&] { load_dataset("mnist", tmp_.str(), Split::kTest); },
               {"t10k-labels-idx1-ubyte.gz: the header claims 10001 labels, but a test file",
                "holds at most 10000"});
  // Within the limit but far beyond the data: truncated, after reading what
  // is there.
  Bytes some;
  put_be32(some, 0x00000803);
  put_be32(some, 60000);
  put_be32(some, 28);
  put_be32(some, 28);
  some.resize(some.size() + 784, 1);
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gzip(some));
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: truncated: expected 47040016 bytes after "
                "decompression, got 800"});
}

TEST_F(BadInput, LabelCountMismatch) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  write_file(mnist_dir() / "train-labels-idx1-ubyte.gz", gzip(idx_labels({1, 2})));
  expect_error([&] { load_mnist(); },
               {"train-labels-idx1-ubyte.gz: holds 2 labels, but",
                "train-images-idx3-ubyte.gz holds 3 images", "label count mismatch"});
}

TEST_F(BadInput, LabelOutOfRange) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  write_file(mnist_dir() / "train-labels-idx1-ubyte.gz", gzip(idx_labels({1, 10, 2})));
  expect_error([&] { load_mnist(); },
               {"train-labels-idx1-ubyte.gz: label 10 of sample 1 is out of range (expected "
                "0..9)"});
}

TEST_F(BadInput, CorruptGzipStream) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  // A valid gzip header followed by a deflate block of the reserved type 3.
  const uint8_t header[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  Bytes gz(sizeof header + 64, 0xff);
  std::copy(std::begin(header), std::end(header), gz.begin());
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gz);
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: corrupt gzip stream", "invalid block type"});
}

TEST_F(BadInput, GzipChecksumMismatch) {
  write_small_mnist(tmp_.path(), /*gz=*/true);
  Bytes gz = gzip(idx_images(3));
  gz[gz.size() - 8] ^= 0x5a;  // first byte of the CRC-32
  write_file(mnist_dir() / "train-images-idx3-ubyte.gz", gz);
  expect_error([&] { load_mnist(); },
               {"train-images-idx3-ubyte.gz: corrupt gzip stream", "incorrect data check"});
}

TEST_F(BadInput, CifarSizeNotAMultipleOfTheRecord) {
  Bytes records = cifar_records(1);
  records.push_back(0);  // 3074 bytes
  write_file(cifar_dir() / "data_batch_5.bin", records);
  expect_error([&] { load_cifar_test(); },
               {"data_batch_5.bin: size 3074 bytes is not a multiple of the 3073-byte CIFAR-10 "
                "record"});
  fs::remove(cifar_dir() / "data_batch_5.bin");
  write_file(cifar_dir() / "data_batch_5.bin.gz", gzip(records));
  expect_error([&] { load_cifar_test(); },
               {"data_batch_5.bin.gz: size 3074 bytes after decompression is not a multiple of "
                "the 3073-byte CIFAR-10 record"});
}

TEST_F(BadInput, CifarFileLargerThanABatchStopsAtTheBatchSize) {
  // A batch file holds 10,000 records. A small .gz that expands to more is
  // refused once one byte past 10,000 records has been decompressed, not at
  // the 2 GiB limit of any file (issue 16: 3 GB took 30 s and 4.6 GB).
  const Bytes zeros(static_cast<size_t>(12000) * 3073, 0);
  const Bytes gz = gzip(zeros);
  EXPECT_LT(gz.size(), zeros.size() / 100);
  write_file(cifar_dir() / "data_batch_5.bin.gz", gz);
  expect_error([&] { load_cifar_test(); },
               {"data_batch_5.bin.gz: too large: more than 30730000 bytes after decompression, "
                "but a CIFAR-10 batch file holds at most 10000 records (30730000 bytes)"});
  fs::remove(cifar_dir() / "data_batch_5.bin.gz");
  write_file(cifar_dir() / "data_batch_5.bin", zeros);
  expect_error([&] { load_cifar_test(); },
               {"data_batch_5.bin: too large: 36876000 bytes, but a CIFAR-10 batch file"});
  // Exactly 10,000 records load.
  write_file(cifar_dir() / "data_batch_5.bin", Bytes(zeros.begin(), zeros.begin() + 30730000));
  EXPECT_EQ(load_dataset("cifar10", tmp_.str(), Split::kTest).size(), 10000);
}

TEST_F(BadInput, CifarBadLabelAndEmptyFile) {
  write_file(cifar_dir() / "data_batch_5.bin.gz", gzip(cifar_records(2, 10)));
  expect_error([&] { load_cifar_test(); },
               {"data_batch_5.bin.gz: label 10 of record 0 is out of range (expected 0..9)"});
  write_file(cifar_dir() / "data_batch_5.bin.gz", gzip({}));
  expect_error([&] { load_cifar_test(); }, {"data_batch_5.bin.gz: empty file"});
}

TEST_F(BadInput, CifarTrainReportsTheFirstBadFile) {
  for (int b = 1; b <= 4; ++b) {
    write_file(cifar_dir() / ("data_batch_" + std::to_string(b) + ".bin.gz"),
               gzip(cifar_records(2)));
  }
  Bytes short_records = cifar_records(2);
  short_records.pop_back();
  write_file(cifar_dir() / "data_batch_2.bin.gz", gzip(short_records));
  write_file(cifar_dir() / "data_batch_4.bin.gz", gzip(short_records));
  expect_error([&] { load_dataset("cifar10", tmp_.str(), Split::kTrain); },
               {"data_batch_2.bin.gz: size 6145 bytes"});
}

TEST_F(BadInput, MissingFile) {
  const fs::path expected = mnist_dir() / "train-images-idx3-ubyte";
  fs::create_directories(mnist_dir());
  expect_error([&] { load_mnist(); }, {expected.string() + ": no such file (looked for " +
                                       expected.string() + " and " + expected.string() + ".gz)"});
  expect_error([&] { load_cifar_test(); }, {"data_batch_5.bin: no such file"});
}

TEST_F(BadInput, MissingDataDirectory) {
  const std::string missing = (tmp_.path() / "nowhere").string();
  expect_error([&] { load_dataset("mnist", missing, Split::kTrain); },
               {missing + ": no such directory"});
}

TEST(BadInputNames, UnknownDataset) {
  expect_error([&] { load_dataset("imagenet", kDataDir, Split::kTrain); },
               {"unknown dataset 'imagenet' (expected mnist, fashion-mnist, cifar10)"});
}

// Every prefix and many random corruptions of a valid file either load or
// throw sparsetrain::Error; none may crash (run this under the sanitizers).
TEST_F(BadInput, NoPrefixOrCorruptionCrashes) {
  write_small_mnist(tmp_.path(), /*gz=*/false);
  const fs::path images_path = mnist_dir() / "train-images-idx3-ubyte";
  const Bytes images = idx_images(3);
  const Bytes gz = gzip(images);
  auto try_load = [&] {
    try {
      load_mnist();
    } catch (const Error&) {
    }
  };
  for (size_t n = 0; n < images.size(); n += 7) {
    write_file(images_path, Bytes(images.begin(), images.begin() + n));
    EXPECT_THROW(load_mnist(), Error) << n;
  }
  fs::remove(images_path);
  const fs::path gz_path = mnist_dir() / "train-images-idx3-ubyte.gz";
  for (size_t n = 0; n < gz.size(); ++n) {
    write_file(gz_path, Bytes(gz.begin(), gz.begin() + n));
    EXPECT_THROW(load_mnist(), Error) << n;
  }
  std::mt19937 gen(1234);
  for (int trial = 0; trial < 300; ++trial) {
    Bytes damaged = trial % 2 ? gz : images;
    const int flips = 1 + trial % 4;
    for (int k = 0; k < flips; ++k) {
      damaged[gen() % damaged.size()] ^= static_cast<uint8_t>(1 + gen() % 255);
    }
    fs::remove(gz_path);
    fs::remove(images_path);
    write_file(trial % 2 ? gz_path : images_path, damaged);
    try_load();
  }
}

// ---------------------------------------------------------------------------
// Loader on hand-made datasets

// N images of C x H x W whose pixels are distinct and nonzero within each
// image, with mean 0 and stddev 1 so that pixel = round(255 * output).
Dataset tiny_dataset(int64_t n, int64_t c, int64_t h, int64_t w) {
  Dataset d;
  d.name = "tiny";
  d.channels = c;
  d.height = h;
  d.width = w;
  d.num_classes = 10;
  const int64_t numel = c * h * w;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < numel; ++k) {
      d.pixels.push_back(static_cast<uint8_t>(1 + (k + i * 5) % numel));
    }
    d.labels.push_back(static_cast<int32_t>(i % 10));
  }
  d.mean.assign(static_cast<size_t>(c), 0.0f);
  d.stddev.assign(static_cast<size_t>(c), 1.0f);
  return d;
}

Bytes to_pixels(const float* x, int64_t numel) {
  Bytes out(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) out[i] = static_cast<uint8_t>(std::lround(x[i] * 255.0f));
  return out;
}

// Reference crop + flip of one image: pad by `pad` zeros, take the H x W
// window at (dy, dx), then mirror it left-right if `flip`.
Bytes reference_augment(const Dataset& d, int64_t index, int64_t pad, int64_t dy, int64_t dx,
                        bool flip) {
  const int64_t C = d.channels, H = d.height, W = d.width;
  std::vector<uint8_t> padded(static_cast<size_t>(C * (H + 2 * pad) * (W + 2 * pad)), 0);
  const int64_t PH = H + 2 * pad, PW = W + 2 * pad;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        padded[(c * PH + y + pad) * PW + x + pad] = d.pixels[((index * C + c) * H + y) * W + x];
  Bytes crop(static_cast<size_t>(C * H * W));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        crop[(c * H + y) * W + x] = padded[(c * PH + y + dy) * PW + x + dx];
  if (flip) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y) {
        auto row = crop.begin() + (c * H + y) * W;
        std::reverse(row, row + W);
      }
  }
  return crop;
}

std::vector<Batch> whole_epoch(Loader& loader, int64_t epoch) {
  std::vector<Batch> batches;
  loader.start_epoch(epoch);
  Batch b;
  while (loader.next(b)) batches.push_back(b);
  return batches;
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].index, b[i].index);
    EXPECT_TRUE(a[i].images.equals(b[i].images)) << "batch " << i;
    EXPECT_EQ(a[i].labels, b[i].labels) << "batch " << i;
    EXPECT_EQ(a[i].sample_indices, b[i].sample_indices) << "batch " << i;
  }
}

TEST(Loader, BatchesInOrderWithoutShuffle) {
  const Dataset d = tiny_dataset(10, 2, 3, 4);
  Loader loader(d, 4, /*shuffle=*/false, {}, 1);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  EXPECT_EQ(loader.epoch(), -1);
  Batch b;
  // next() before start_epoch() starts epoch 0.
  std::vector<int64_t> rows, indices;
  while (loader.next(b)) {
    EXPECT_EQ(b.index, static_cast<int64_t>(rows.size()));
    rows.push_back(b.images.dim(0));
    for (size_t i = 0; i < b.labels.size(); ++i) {
      const int64_t index = b.sample_indices[i];
      indices.push_back(index);
      EXPECT_EQ(b.labels[i], d.labels[index]);
      const Bytes got = to_pixels(b.images.data() + i * 24, 24);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), d.pixels.begin() + index * 24));
    }
  }
  EXPECT_EQ(loader.epoch(), 0);
  EXPECT_EQ(rows, (std::vector<int64_t>{4, 4, 2}));
  std::vector<int64_t> expected(10);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(indices, expected);
  EXPECT_FALSE(loader.next(b));  // stays exhausted until the next epoch

  Loader dropping(d, 4, false, {}, 1, /*drop_last=*/true);
  EXPECT_EQ(dropping.batches_per_epoch(), 2);
  EXPECT_EQ(whole_epoch(dropping, 0).size(), 2u);
  Loader too_big(d, 11, false, {}, 1, /*drop_last=*/true);
  EXPECT_EQ(too_big.batches_per_epoch(), 0);
  EXPECT_TRUE(whole_epoch(too_big, 0).empty());
}

TEST(Loader, Normalisation) {
  Dataset d = tiny_dataset(3, 2, 2, 2);
  d.pixels[0] = 0;
  d.pixels[1] = 255;
  d.mean = {0.5f, 0.25f};
  d.stddev = {0.5f, 2.0f};
  Loader loader(d, 3, false, {}, 0);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_FLOAT_EQ(b.images[0], -1.0f);
  EXPECT_FLOAT_EQ(b.images[1], 1.0f);
  for (int64_t i = 0; i < 3 * 8; ++i) {
    const int64_t c = (i / 4) % 2;
    const float expected = (d.pixels[i] / 255.0f - d.mean[c]) / d.stddev[c];
    EXPECT_NEAR(b.images[i], expected, 1e-6f) << i;
  }
}

TEST(Loader, RandomCropAndFlip) {
  const Dataset d = tiny_dataset(10, 2, 3, 4);
  constexpr int64_t kPad = 2;
  AugmentOptions aug;
  aug.random_crop = true;
  aug.crop_padding = kPad;
  aug.hflip = true;
  Loader loader(d, 4, /*shuffle=*/true, aug, 99);
  std::set<std::tuple<int64_t, int64_t, bool>> seen;
  int flips = 0, total = 0;
  for (int64_t epoch = 0; epoch < 200; ++epoch) {
    for (const Batch& b : whole_epoch(loader, epoch)) {
      for (size_t i = 0; i < b.labels.size(); ++i) {
        const Bytes got = to_pixels(b.images.data() + i * 24, 24);
        // Pixels are distinct and nonzero, so at most one window matches.
        int matches = 0;
        for (int64_t dy = 0; dy <= 2 * kPad; ++dy)
          for (int64_t dx = 0; dx <= 2 * kPad; ++dx)
            for (bool flip : {false, true}) {
              if (reference_augment(d, b.sample_indices[i], kPad, dy, dx, flip) == got) {
                ++matches;
                seen.insert({dy, dx, flip});
                flips += flip;
              }
            }
        ASSERT_EQ(matches, 1) << "epoch " << epoch << " batch " << b.index << " row " << i;
        ++total;
      }
    }
  }
  EXPECT_EQ(seen.size(), 5u * 5u * 2u);  // every window and both orientations occur
  EXPECT_GT(flips, total * 4 / 10);
  EXPECT_LT(flips, total * 6 / 10);
}

TEST(Loader, FlipOnlyAndCropOnly) {
  const Dataset d = tiny_dataset(6, 1, 2, 3);
  AugmentOptions flip_only;
  flip_only.hflip = true;
  AugmentOptions crop_only;
  crop_only.random_crop = true;
  crop_only.crop_padding = 1;
  std::set<bool> flips_seen;
  std::set<std::pair<int64_t, int64_t>> offsets_seen;
  Loader flipper(d, 6, false, flip_only, 3);
  Loader cropper(d, 6, false, crop_only, 3);
  for (int64_t epoch = 0; epoch < 20; ++epoch) {
    const Batch bf = whole_epoch(flipper, epoch).at(0);
    const Batch bc = whole_epoch(cropper, epoch).at(0);
    for (int64_t i = 0; i < 6; ++i) {
      const Bytes f = to_pixels(bf.images.data() + i * 6, 6);
      const bool plain = f == reference_augment(d, i, 0, 0, 0, false);
      const bool mirrored = f == reference_augment(d, i, 0, 0, 0, true);
      ASSERT_NE(plain, mirrored);
      flips_seen.insert(mirrored);
      const Bytes c = to_pixels(bc.images.data() + i * 6, 6);
      int matches = 0;
      for (int64_t dy = 0; dy <= 2; ++dy)
        for (int64_t dx = 0; dx <= 2; ++dx)
          if (c == reference_augment(d, i, 1, dy, dx, false)) {
            ++matches;
            offsets_seen.insert({dy, dx});
          }
      ASSERT_EQ(matches, 1);
    }
  }
  EXPECT_EQ(flips_seen.size(), 2u);
  EXPECT_EQ(offsets_seen.size(), 9u);
}

TEST(Loader, PaddingIsBlackBeforeNormalisation) {
  Dataset d = tiny_dataset(1, 1, 2, 2);
  d.mean = {0.5f};
  d.stddev = {0.25f};
  AugmentOptions aug;
  aug.random_crop = true;
  aug.crop_padding = 2;  // some windows are all padding
  Loader loader(d, 1, false, aug, 5);
  const float black = (0.0f - 0.5f) / 0.25f;
  bool saw_all_padding = false;
  for (int64_t epoch = 0; epoch < 100 && !saw_all_padding; ++epoch) {
    const Batch b = whole_epoch(loader, epoch).at(0);
    saw_all_padding =
        std::all_of(b.images.data(), b.images.data() + 4, [&](float v) { return v == black; });
  }
  EXPECT_TRUE(saw_all_padding);
}

TEST(Loader, ShuffleIsADeterministicPermutationPerEpoch) {
  const std::vector<int64_t> p0 = epoch_permutation(1000, 42, 0);
  std::vector<int64_t> sorted = p0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(p0, identity);
  EXPECT_EQ(p0, epoch_permutation(1000, 42, 0));
  EXPECT_NE(p0, epoch_permutation(1000, 42, 1));
  EXPECT_NE(p0, epoch_permutation(1000, 43, 0));
  EXPECT_TRUE(epoch_permutation(0, 1, 0).empty());
  EXPECT_EQ(epoch_permutation(1, 1, 0), std::vector<int64_t>{0});

  // The loader visits exactly that order.
  const Dataset d = tiny_dataset(1000, 1, 1, 1);
  Loader loader(d, 64, /*shuffle=*/true, {}, 42);
  for (int64_t epoch : {0, 1, 5}) {
    std::vector<int64_t> visited;
    for (const Batch& b : whole_epoch(loader, epoch)) {
      visited.insert(visited.end(), b.sample_indices.begin(), b.sample_indices.end());
    }
    EXPECT_EQ(visited, epoch_permutation(1000, 42, epoch)) << "epoch " << epoch;
  }
}

TEST(Loader, SameBatchesForAnyThreadCount) {
  const Dataset d = tiny_dataset(300, 3, 8, 8);
  AugmentOptions aug;
  aug.random_crop = true;
  aug.crop_padding = 3;
  aug.hflip = true;
  auto run = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    Loader loader(d, 32, true, aug, 2024);
    std::vector<Batch> all;
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      for (Batch& b : whole_epoch(loader, epoch)) all.push_back(std::move(b));
    }
    return all;
  };
  const std::vector<Batch> one = run(1);
  const std::vector<Batch> two = run(2);
  expect_same_batches(one, two);
  expect_same_batches(one, run(4));
}

TEST(Loader, SkipToResumesExactly) {
  const Dataset d = tiny_dataset(100, 2, 5, 5);
  AugmentOptions aug;
  aug.random_crop = true;
  aug.crop_padding = 2;
  aug.hflip = true;
  Loader reference(d, 8, true, aug, 77);
  const std::vector<Batch> full = whole_epoch(reference, 3);
  ASSERT_EQ(full.size(), 13u);

  // A new loader (as after a restart) resumes epoch 3 at batch 5.
  Loader resumed(d, 8, true, aug, 77);
  resumed.start_epoch(3);
  resumed.skip_to(5);
  std::vector<Batch> rest;
  Batch b;
  while (resumed.next(b)) rest.push_back(b);
  expect_same_batches(std::vector<Batch>(full.begin() + 5, full.end()), rest);

  // Skipping back and forth in the middle of an epoch (a prefetch pending).
  resumed.start_epoch(3);
  ASSERT_TRUE(resumed.next(b));
  resumed.skip_to(9);
  ASSERT_TRUE(resumed.next(b));
  expect_same_batches({full[9]}, {b});
  resumed.skip_to(0);
  ASSERT_TRUE(resumed.next(b));
  expect_same_batches({full[0]}, {b});
  resumed.skip_to(13);
  EXPECT_FALSE(resumed.next(b));

  // A different epoch gives different batches.
  const std::vector<Batch> other = whole_epoch(reference, 4);
  EXPECT_NE(other[0].sample_indices, full[0].sample_indices);
}

TEST(Loader, MovedLoaderKeepsGoing) {
  const Dataset d = tiny_dataset(20, 1, 2, 2);
  Loader a(d, 4, true, {}, 8);
  const std::vector<Batch> expected = whole_epoch(a, 0);
  a.start_epoch(0);
  Batch b;
  ASSERT_TRUE(a.next(b));
  Loader moved = std::move(a);
  std::vector<Batch> got = {b};
  while (moved.next(b)) got.push_back(b);
  expect_same_batches(expected, got);
}

TEST(Loader, RejectsBadArguments) {
  const Dataset d = tiny_dataset(10, 2, 3, 4);
  expect_error([&] { Loader(d, 0, false, {}, 0); }, {"batch_size must be positive, got 0"});
  AugmentOptions aug;
  aug.random_crop = true;
  aug.crop_padding = -1;
  expect_error([&] { Loader(d, 2, false, aug, 0); }, {"crop_padding -1 is outside [0, 4]"});
  Dataset bad = d;
  bad.pixels.pop_back();
  expect_error([&] { Loader(bad, 2, false, {}, 0); },
               {"dataset 'tiny' has 239 pixel bytes", "need 240"});
  bad = d;
  bad.mean.pop_back();
  expect_error([&] { Loader(bad, 2, false, {}, 0); }, {"dataset 'tiny' has 1 mean"});
  bad = d;
  bad.stddev[1] = 0.0f;
  expect_error([&] { Loader(bad, 2, false, {}, 0); }, {"channel 1", "stddev > 0"});
  bad = d;
  bad.labels[4] = 10;
  expect_error([&] { Loader(bad, 2, false, {}, 0); }, {"label 10 of sample 4"});

  Loader loader(d, 4, false, {}, 0);
  expect_error([&] { loader.skip_to(1); }, {"call start_epoch() first"});
  loader.start_epoch(0);
  expect_error([&] { loader.skip_to(4); }, {"batch 4 is outside [0, 3]"});
  expect_error([&] { loader.start_epoch(-1); }, {"negative epoch -1"});
}

}  // namespace
}  // namespace sparsetrain
