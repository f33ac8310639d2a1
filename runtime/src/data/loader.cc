// Loader: shuffle, augment, normalise and batch, one batch ahead on TBB.
//
// Reproducibility: the order of an epoch comes from an Rng seeded with
// (seed, epoch); the crop offsets and flip of the sample at position p of the
// epoch come from an Rng seeded with (seed, epoch, p). Nothing depends on
// which thread assembles what, or on where in the epoch a run started.

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <string>

#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"

namespace sparsetrain {
namespace {

// Stream tags that keep the shuffle and the augmentation draws independent.
constexpr uint64_t kShuffleStream = 0x5348554646'4c4531ULL;  // "SHUFFLE1"
constexpr uint64_t kAugmentStream = 0x4155474d45'4e5431ULL;  // "AUGMENT1"
constexpr int kPixelLevels = 256;
constexpr float kPixelScale = 255.0f;
// parallel_for over the samples of a batch hands each task at least this many
// output floats, so small images (MNIST) are not split into tiny tasks.
constexpr int64_t kMinFloatsPerTask = 16 * 1024;

// The splitmix64 output function (Steele, Lea, Flood 2014): a bijective
// 64-bit mixer.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
  uint64_t h = mix64(seed ^ mix64(stream));
  h = mix64(h ^ mix64(a + 0x9e3779b97f4a7c15ULL));
  return mix64(h ^ mix64(b + 0x3c6ef372fe94f82aULL));
}

// Where the output pixels of one sample come from: output (h, w) reads the
// source at (h + dy, w' + dx), or black where that falls outside the image,
// with w' = W - 1 - w when flipped (a crop followed by a mirror of the crop).
// dy, dx are in [-pad, pad]: the crop offset in the padded image minus pad.
struct SampleDraw {
  int64_t dy = 0;
  int64_t dx = 0;
  bool flip = false;
};

SampleDraw draw_augmentation(const AugmentOptions& aug, uint64_t seed, int64_t epoch,
                             int64_t position) {
  SampleDraw d;
  if (!aug.random_crop && !aug.hflip) return d;
  Rng rng(derive_seed(seed, kAugmentStream, static_cast<uint64_t>(epoch),
                      static_cast<uint64_t>(position)));
  // Always three draws in this order, so turning one option on or off does
  // not change the other's choices.
  const auto offsets = static_cast<uint64_t>(aug.random_crop ? 2 * aug.crop_padding + 1 : 1);
  const auto dy = static_cast<int64_t>(rng.below(offsets));
  const auto dx = static_cast<int64_t>(rng.below(offsets));
  const bool flip = (rng.next() >> 63) != 0;
  if (aug.random_crop) {
    d.dy = dy - aug.crop_padding;
    d.dx = dx - aug.crop_padding;
  }
  d.flip = aug.hflip && flip;
  return d;
}

void check_labels(const Dataset& data, const std::string& what);

void check_dataset(const Dataset& data) {
  const std::string what = "Loader: dataset '" + data.name + "'";
  if (data.channels <= 0 || data.height <= 0 || data.width <= 0) {
    throw Error(what + " has image shape " + std::to_string(data.channels) + "x" +
                std::to_string(data.height) + "x" + std::to_string(data.width) +
                " (channels, height and width must be positive)");
  }
  const int64_t expected = data.size() * data.image_numel();
  if (!data.values.empty()) {
    if (!data.pixels.empty() || static_cast<int64_t>(data.values.size()) != expected) {
      throw Error(what + " has " + std::to_string(data.values.size()) + " float values and " +
                  std::to_string(data.pixels.size()) + " pixel bytes, but " +
                  std::to_string(data.size()) + " labels of " + std::to_string(data.channels) +
                  "x" + std::to_string(data.height) + "x" + std::to_string(data.width) +
                  " samples need " + std::to_string(expected) + " values and no pixels");
    }
  } else if (static_cast<int64_t>(data.pixels.size()) != expected) {
    throw Error(what + " has " + std::to_string(data.pixels.size()) + " pixel bytes, but " +
                std::to_string(data.size()) + " labels of " + std::to_string(data.channels) + "x" +
                std::to_string(data.height) + "x" + std::to_string(data.width) + " images need " +
                std::to_string(expected));
  }
  if (!data.values.empty()) {
    check_labels(data, what);
    return;
  }
  if (static_cast<int64_t>(data.mean.size()) != data.channels ||
      static_cast<int64_t>(data.stddev.size()) != data.channels) {
    throw Error(what + " has " + std::to_string(data.mean.size()) + " mean and " +
                std::to_string(data.stddev.size()) + " stddev values for " +
                std::to_string(data.channels) + " channels (need one of each per channel)");
  }
  for (int64_t c = 0; c < data.channels; ++c) {
    if (!(data.stddev[c] > 0.0f) || !std::isfinite(data.stddev[c]) ||
        !std::isfinite(data.mean[c])) {
      throw Error(what + ": channel " + std::to_string(c) + " has mean " +
                  std::to_string(data.mean[c]) + " and stddev " + std::to_string(data.stddev[c]) +
                  " (need finite values and stddev > 0)");
    }
  }
  check_labels(data, what);
}

void check_labels(const Dataset& data, const std::string& what) {
  for (int64_t i = 0; i < data.size(); ++i) {
    const int32_t label = data.labels[i];
    if (label < 0 || (data.num_classes > 0 && label >= data.num_classes)) {
      throw Error(what + ": label " + std::to_string(label) + " of sample " + std::to_string(i) +
                  " is outside [0, " + std::to_string(data.num_classes) + ")");
    }
  }
}

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  if (n < 0) throw Error("epoch_permutation: negative sample count " + std::to_string(n));
  if (epoch < 0) throw Error("epoch_permutation: negative epoch " + std::to_string(epoch));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  Rng rng(derive_seed(seed, kShuffleStream, static_cast<uint64_t>(epoch), 0));
  // Fisher-Yates (Knuth, TAOCP vol. 2, Algorithm 3.4.2 P).
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    std::swap(order[i], order[j]);
  }
  return order;
}

struct Loader::Impl {
  Impl(const Dataset& d, int64_t b, bool s, AugmentOptions a, uint64_t sd, bool dl)
      : data(&d), batch_size(b), shuffle(s), aug(a), seed(sd), drop_last(dl) {
    if (batch_size <= 0) {
      throw Error("Loader: batch_size must be positive, got " + std::to_string(batch_size));
    }
    check_dataset(d);
    if (!d.values.empty() && (aug.random_crop || aug.hflip)) {
      throw Error("Loader: dataset '" + d.name +
                  "' holds float samples (features), which are not augmented");
    }
    const int64_t max_padding = std::max(d.height, d.width);
    if (aug.random_crop && (aug.crop_padding < 0 || aug.crop_padding > max_padding)) {
      throw Error("Loader: crop_padding " + std::to_string(aug.crop_padding) + " is outside [0, " +
                  std::to_string(max_padding) + "]");
    }
    const int64_t n = d.size();
    batches = drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
    lut.resize(d.values.empty() ? static_cast<size_t>(d.channels * kPixelLevels) : 0);
    for (int64_t c = 0; c < d.channels && d.values.empty(); ++c) {
      for (int v = 0; v < kPixelLevels; ++v) {
        lut[c * kPixelLevels + v] = (static_cast<float>(v) / kPixelScale - d.mean[c]) / d.stddev[c];
      }
    }
  }

  ~Impl() { drain(); }

  // Writes the normalised, augmented image of dataset sample `index` to dst
  // (C, H, W).
  void assemble_sample(int64_t index, const SampleDraw& draw, float* dst) const {
    const int64_t C = data->channels, H = data->height, W = data->width;
    if (!data->values.empty()) {
      const float* values = data->values.data() + index * C * H * W;
      std::copy(values, values + C * H * W, dst);
      return;
    }
    const uint8_t* src = data->pixels.data() + index * C * H * W;
    for (int64_t c = 0; c < C; ++c) {
      const float* table = lut.data() + c * kPixelLevels;
      const uint8_t* plane = src + c * H * W;
      for (int64_t h = 0; h < H; ++h) {
        float* row = dst + (c * H + h) * W;
        const int64_t sy = h + draw.dy;
        if (sy < 0 || sy >= H) {
          std::fill(row, row + W, table[0]);
          continue;
        }
        const uint8_t* src_row = plane + sy * W;
        for (int64_t w = 0; w < W; ++w) {
          const int64_t sx = (draw.flip ? W - 1 - w : w) + draw.dx;
          row[w] = (sx >= 0 && sx < W) ? table[src_row[sx]] : table[0];
        }
      }
    }
  }

  void assemble(int64_t b, Batch& out) const {
    const int64_t n = data->size();
    const int64_t global_rows = std::min(batch_size, n - b * batch_size);
    const int64_t lo = global_rows * shard_rank / shards;
    const int64_t rows = global_rows * (shard_rank + 1) / shards - lo;
    const int64_t first = b * batch_size + lo;
    const int64_t numel = data->image_numel();
    out.index = b;
    out.images = Tensor::empty({rows, data->channels, data->height, data->width}, Layout::kNCHW);
    out.labels.resize(static_cast<size_t>(rows));
    out.sample_indices.resize(static_cast<size_t>(rows));
    float* images = out.images.data();
    const int64_t grain = std::max<int64_t>(1, kMinFloatsPerTask / numel);
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, grain),
                      [&](const tbb::blocked_range<int64_t>& r) {
                        for (int64_t i = r.begin(); i < r.end(); ++i) {
                          const int64_t position = first + i;
                          const int64_t index = order[position];
                          out.sample_indices[i] = index;
                          out.labels[i] = data->labels[index];
                          assemble_sample(index, draw_augmentation(aug, seed, epoch, position),
                                          images + i * numel);
                        }
                      });
  }

  // Starts assembling batch b in the background.
  void launch(int64_t b) {
    pending = true;
    pending_index = b;
    tasks.run([this, b] {
      try {
        assemble(b, prefetched);
      } catch (...) {
        prefetch_error = std::current_exception();
      }
    });
  }

  // Waits for a background batch, if any, and discards it.
  void drain() {
    if (!pending) return;
    tasks.wait();
    pending = false;
    prefetched = Batch{};
    prefetch_error = nullptr;
  }

  const Dataset* data;
  int64_t batch_size;
  bool shuffle;
  AugmentOptions aug;
  uint64_t seed;
  bool drop_last;
  int shard_rank = 0;  // set_shard
  int shards = 1;
  int64_t batches = 0;
  std::vector<float> lut;  // (C, 256): normalised value of each pixel level

  int64_t epoch = -1;
  int64_t cursor = 0;          // the batch next() returns next
  std::vector<int64_t> order;  // (N) dataset index at each position of the epoch

  tbb::task_group tasks;
  bool pending = false;
  int64_t pending_index = -1;
  Batch prefetched;
  std::exception_ptr prefetch_error;
};

Loader::Loader(const Dataset& data, int64_t batch_size, bool shuffle, AugmentOptions aug,
               uint64_t seed, bool drop_last)
    : impl_(std::make_unique<Impl>(data, batch_size, shuffle, aug, seed, drop_last)) {}

Loader::~Loader() = default;
Loader::Loader(Loader&&) noexcept = default;
Loader& Loader::operator=(Loader&&) noexcept = default;

void Loader::start_epoch(int64_t epoch) {
  Impl& m = *impl_;
  if (epoch < 0) throw Error("Loader::start_epoch: negative epoch " + std::to_string(epoch));
  m.drain();
  m.epoch = epoch;
  m.cursor = 0;
  if (m.shuffle) {
    m.order = epoch_permutation(m.data->size(), m.seed, epoch);
  } else if (static_cast<int64_t>(m.order.size()) != m.data->size()) {
    m.order.resize(static_cast<size_t>(m.data->size()));
    std::iota(m.order.begin(), m.order.end(), int64_t{0});
  }
  if (m.batches > 0) m.launch(0);
}

bool Loader::next(Batch& out) {
  Impl& m = *impl_;
  if (m.epoch < 0) start_epoch(0);
  if (m.cursor >= m.batches) return false;
  Batch batch;
  if (m.pending && m.pending_index == m.cursor) {
    m.tasks.wait();
    m.pending = false;
    if (m.prefetch_error) {
      std::exception_ptr error = m.prefetch_error;
      m.prefetch_error = nullptr;
      std::rethrow_exception(error);
    }
    batch = std::move(m.prefetched);
    m.prefetched = Batch{};
  } else {
    m.drain();
    m.assemble(m.cursor, batch);
  }
  ++m.cursor;
  if (m.cursor < m.batches) m.launch(m.cursor);
  out = std::move(batch);
  return true;
}

void Loader::skip_to(int64_t batch_index) {
  Impl& m = *impl_;
  if (m.epoch < 0) throw Error("Loader::skip_to: call start_epoch() first");
  if (batch_index < 0 || batch_index > m.batches) {
    throw Error("Loader::skip_to: batch " + std::to_string(batch_index) + " is outside [0, " +
                std::to_string(m.batches) + "], the batches of an epoch");
  }
  m.drain();
  m.cursor = batch_index;
  if (m.cursor < m.batches) m.launch(m.cursor);
}

void Loader::set_shard(int rank, int ranks) {
  Impl& m = *impl_;
  if (ranks < 1 || rank < 0 || rank >= ranks) {
    throw Error("Loader::set_shard: rank " + std::to_string(rank) + " of " + std::to_string(ranks) +
                " is not a rank");
  }
  m.drain();
  m.shard_rank = rank;
  m.shards = ranks;
  if (m.epoch >= 0 && m.cursor < m.batches) m.launch(m.cursor);
}

int64_t Loader::batches_per_epoch() const { return impl_->batches; }
int64_t Loader::batch_size() const { return impl_->batch_size; }
int64_t Loader::epoch() const { return impl_->epoch; }

}  // namespace sparsetrain
