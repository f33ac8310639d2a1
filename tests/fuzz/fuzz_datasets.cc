// The dataset readers: MNIST's IDX files and CIFAR-10's binary batches,
// plain or gzip. The first input byte picks the file the rest of the input
// replaces in an otherwise valid tiny dataset (so the other files of a split
// are there and the reader gets to the fuzzed one).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sparsetrain/data.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// Two 28x28 images and their labels, as IDX.
std::vector<uint8_t> idx_images() {
  std::vector<uint8_t> out;
  for (uint32_t v : {0x803u, 2u, 28u, 28u})
    for (uint8_t b : be32(v)) out.push_back(b);
  out.resize(out.size() + 2 * 28 * 28, 7);
  return out;
}
std::vector<uint8_t> idx_labels() {
  std::vector<uint8_t> out;
  for (uint32_t v : {0x801u, 2u})
    for (uint8_t b : be32(v)) out.push_back(b);
  out.push_back(3);
  out.push_back(9);
  return out;
}
// Two CIFAR-10 records: a label byte and 3x32x32 pixels each.
std::vector<uint8_t> cifar_batch() {
  std::vector<uint8_t> out(2 * (1 + 3 * 32 * 32), 100);
  out[0] = 1;
  out[1 + 3 * 32 * 32] = 8;
  return out;
}

struct Slot {
  const char* dataset;
  const char* folder;
  const char* file;  // the one the input replaces
};
constexpr Slot kSlots[] = {
    {"mnist", "mnist", "t10k-images-idx3-ubyte"},    {"mnist", "mnist", "t10k-labels-idx1-ubyte"},
    {"mnist", "mnist", "t10k-images-idx3-ubyte.gz"}, {"cifar10", "cifar-10", "data_batch_5.bin"},
    {"cifar10", "cifar-10", "data_batch_5.bin.gz"},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparsetrain;
  if (size == 0) return 0;
  const Slot& slot = kSlots[data[0] % std::size(kSlots)];
  const fs::path root = fuzz::work_dir() / "data";
  std::error_code ec;
  fs::remove_all(root, ec);
  const fs::path dir = root / slot.folder;
  fs::create_directories(dir);
  const auto put = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    fuzz::write_file(dir / name, bytes.data(), bytes.size());
  };
  if (std::string(slot.dataset) == "mnist") {
    put("t10k-images-idx3-ubyte", idx_images());
    put("t10k-labels-idx1-ubyte", idx_labels());
  } else {
    for (int b = 1; b <= 5; ++b) put("data_batch_" + std::to_string(b) + ".bin", cifar_batch());
  }
  const std::string fuzzed = slot.file;
  if (fuzzed.ends_with(".gz")) fs::remove(dir / fuzzed.substr(0, fuzzed.size() - 3), ec);
  fuzz::write_file(dir / fuzzed, data + 1, size - 1);
  fuzz::expect_only_errors("fuzz_datasets", [&] {
    const Dataset d = load_dataset(slot.dataset, root.string(), Split::kTest, -1);
    (void)d;
  });
  return 0;
}
