#include "sparsetrain/tensor.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "kernels/reorder/reorder.h"
#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

constexpr std::size_t kAlignment = 64;

std::atomic<int64_t> g_current_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};

void note_allocation(int64_t bytes) {
  const int64_t now = g_current_bytes.fetch_add(bytes) + bytes;
  int64_t peak = g_peak_bytes.load();
  while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

// Activations of a training step are allocated and freed every step. With
// glibc's defaults every block above 128 KiB is a fresh mmap, and each step
// pays a page fault per 4 KiB of activations (about 5% of a ResNet-20 step).
// Raising the thresholds once keeps freed blocks in the heap for reuse.
void keep_large_blocks_in_heap() {
  static const bool once = [] {
    constexpr int kMmapThreshold = 512 << 20;
    mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
    mallopt(M_TRIM_THRESHOLD, 2 * kMmapThreshold);
    return true;
  }();
  (void)once;
}

std::shared_ptr<float> allocate(int64_t count) {
  keep_large_blocks_in_heap();
  const int64_t bytes = std::max<int64_t>(count, 1) * static_cast<int64_t>(sizeof(float));
  const std::size_t rounded =
      (static_cast<std::size_t>(bytes) + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) throw std::bad_alloc();
  note_allocation(bytes);
  return std::shared_ptr<float>(static_cast<float*>(p), [bytes](float* q) {
    g_current_bytes.fetch_sub(bytes);
    std::free(q);
  });
}

// Copies `channels` planes of `plane` floats, `from_stride` floats apart in
// `from`, to `to_stride` apart in `to` (padded <-> packed channel planes).
void copy_planes(float* to, int64_t to_stride, const float* from, int64_t from_stride,
                 int64_t channels, int64_t plane) {
  for (int64_t c = 0; c < channels; ++c)
    std::memcpy(to + c * to_stride, from + c * from_stride,
                static_cast<std::size_t>(plane) * sizeof(float));
}

}  // namespace

MemoryStats memory_stats() { return {g_current_bytes.load(), g_peak_bytes.load()}; }
void reset_peak_memory() { g_peak_bytes.store(g_current_bytes.load()); }

int64_t Tensor::count(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("tensor shape " + shape_to_string(shape) + " has a negative dimension");
    n *= d;
  }
  return n;
}

Tensor::Tensor(Shape shape, Layout layout) : Tensor(empty(std::move(shape), layout)) { zero(); }

Tensor Tensor::empty(Shape shape, Layout layout) {
  Tensor t;
  t.numel_ = count(shape);
  t.shape_ = std::move(shape);
  t.layout_ = layout;
  t.storage_ = allocate(t.numel_);
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::empty_planes(Shape shape, int64_t plane) {
  if (shape.size() != 4) {
    throw Error("Tensor::empty_planes: a 4-D shape is needed, got " + shape_to_string(shape));
  }
  const int64_t packed = count(shape) / std::max<int64_t>(shape[1], 1);
  if (plane <= packed || shape[1] == 0) return empty(std::move(shape), Layout::kCHWN);
  Tensor t;
  t.numel_ = count(shape);
  t.plane_ = plane;
  t.shape_ = std::move(shape);
  t.layout_ = Layout::kCHWN;
  t.storage_ = allocate(t.span());
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::empty_like(const Tensor& t) {
  return t.padded() ? empty_planes(t.shape_, t.plane_) : empty(t.shape_, t.layout_);
}

int64_t Tensor::span() const {
  if (!padded()) return numel_;
  // Up to the end of the last plane's elements.
  return (shape_[1] - 1) * plane_ + numel_ / shape_[1];
}

Tensor Tensor::packed() const {
  if (!padded()) return *this;
  Tensor t = empty(shape_, layout_);
  const int64_t plane = numel_ / shape_[1];
  copy_planes(t.data_, plane, data_, plane_, shape_[1], plane);
  return t;
}

Tensor Tensor::zeros(Shape shape, Layout layout) { return Tensor(std::move(shape), layout); }

Tensor Tensor::full(Shape shape, float value, Layout layout) {
  Tensor t = empty(std::move(shape), layout);
  t.fill(value);
  return t;
}

Tensor Tensor::from(Shape shape, const std::vector<float>& values, Layout layout) {
  Tensor t = empty(std::move(shape), layout);
  if (static_cast<int64_t>(values.size()) != t.numel()) {
    throw Error("Tensor::from: " + std::to_string(values.size()) + " values for shape " +
                t.shape_string());
  }
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

int64_t Tensor::dim(int i) const {
  const int r = rank();
  const int k = i < 0 ? i + r : i;
  SPARSETRAIN_ASSERT(k >= 0 && k < r);
  return shape_[k];
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor t = empty_like(*this);
  std::memcpy(t.data_, data_, static_cast<std::size_t>(span()) * sizeof(float));
  return t;
}

void Tensor::fill(float value) { std::fill(data_, data_ + span(), value); }

Tensor Tensor::reshaped(Shape shape, Layout layout) const {
  if (padded()) {
    throw Error("cannot reshape " + shape_string() +
                " with padded channel planes (reshape its packed copy)");
  }
  if (count(shape) != numel_) {
    throw Error("cannot reshape " + shape_string() + " to " + shape_to_string(shape));
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.layout_ = layout;
  return t;
}

void Tensor::copy_from(const Tensor& other) {
  if (other.numel() != numel_ || other.plane_ != plane_) {
    throw Error("copy_from: " + other.shape_string() + " into " + shape_string() +
                (other.plane_ != plane_ ? " (channel planes padded differently)" : ""));
  }
  if (numel_ > 0) std::memcpy(data_, other.data_, static_cast<std::size_t>(span()) * sizeof(float));
}

bool Tensor::equals(const Tensor& other) const {
  if (shape_ != other.shape_) return false;
  if (padded() || other.padded()) return packed().equals(other.packed());
  return numel_ == 0 || std::memcmp(data_, other.data_, static_cast<std::size_t>(bytes())) == 0;
}

std::string Tensor::shape_string() const { return shape_to_string(shape_); }

namespace {

std::atomic<int64_t> g_reorders{0};

bool is_nchw_like(Layout l) { return l == Layout::kPlain || l == Layout::kNCHW; }

bool is_4d_layout(Layout l) { return is_nchw_like(l) || l == Layout::kNHWC || l == Layout::kCHWN; }

}  // namespace

int64_t reorder_count() { return g_reorders.load(std::memory_order_relaxed); }

Tensor to_layout_of(const Tensor& t, const Tensor& like) {
  SPARSETRAIN_ASSERT(t.shape() == like.shape());
  if (t.layout() == like.layout() && t.plane() == like.plane()) return t;
  const Tensor packed = to_layout(t, like.layout()).packed();
  if (!like.padded()) return packed;
  Tensor out = Tensor::empty_like(like);
  const int64_t channels = t.dim(1), plane = t.numel() / channels;
  copy_planes(out.data(), like.plane(), packed.data(), plane, channels, plane);
  return out;
}

Tensor to_layout(const Tensor& t, Layout layout) {
  const Layout from = t.layout();
  if (from == layout) return t;
  if (t.padded()) return to_layout(t.packed(), layout);
  if (is_nchw_like(from) && is_nchw_like(layout)) return t.reshaped(t.shape(), layout);
  const auto refuse = [&] {
    return Error("to_layout: cannot reorder a rank-" + std::to_string(t.rank()) + " " +
                 layout_name(from) + " tensor " + t.shape_string() + " to " + layout_name(layout));
  };
  kernels::TransposeDesc op;
  if (t.rank() == 2) {
    // (N, F) plain <-> (F, N) kCN.
    const int64_t n = t.dim(0), f = t.dim(1);
    if (from == Layout::kPlain && layout == Layout::kCN) {
      op = {1, n, f, 0, f, 0, n};
    } else if (from == Layout::kCN && layout == Layout::kPlain) {
      op = {1, f, n, 0, n, 0, f};
    } else {
      throw refuse();
    }
  } else if (t.rank() == 4 && is_4d_layout(from) && is_4d_layout(layout)) {
    op = kernels::layout_transpose_4d(t.dim(0), t.dim(1), t.dim(2), t.dim(3), from, layout);
  } else {
    throw refuse();
  }
  Tensor out = Tensor::empty(t.shape(), layout);
  g_reorders.fetch_add(1, std::memory_order_relaxed);
  kernels::transpose_batched(t.data(), out.data(), op);
  return out;
}

}  // namespace sparsetrain
