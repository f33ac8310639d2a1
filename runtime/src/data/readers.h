// File-format readers behind load_dataset(). Each validates what it reads
// and throws sparsetrain::Error("<file>: <problem>").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sparsetrain/data.h"

namespace sparsetrain::data {

inline constexpr int kNumClasses10 = 10;   // MNIST, Fashion-MNIST and CIFAR-10
inline constexpr int64_t kMnistSide = 28;  // MNIST and Fashion-MNIST: 28x28, one channel
inline constexpr int64_t kCifarSide = 32;  // CIFAR-10: 32x32, three channels

// MNIST and Fashion-MNIST: IDX files in `dir`. Fills pixels, labels and the
// image geometry of `out`.
void read_mnist_family(const std::filesystem::path& dir, Split split, int64_t limit, Dataset& out);

// CIFAR-10 binary batches in `dir`: data_batch_1..5 (train) and test_batch
// (test) when test_batch.bin[.gz] is there, else data_batch_1..4 (train) and
// data_batch_5 (test). Fills pixels, labels, the image geometry and `files`
// of `out`.
void read_cifar10(const std::filesystem::path& dir, Split split, int64_t limit, Dataset& out);

}  // namespace sparsetrain::data
