#include "sparsetrain/tensor.h"

#include <malloc.h>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

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
  Tensor t = empty(shape_, layout_);
  std::memcpy(t.data_, data_, static_cast<std::size_t>(bytes()));
  return t;
}

void Tensor::fill(float value) { std::fill(data_, data_ + numel_, value); }

Tensor Tensor::reshaped(Shape shape, Layout layout) const {
  if (count(shape) != numel_) {
    throw Error("cannot reshape " + shape_string() + " to " + shape_to_string(shape));
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.layout_ = layout;
  return t;
}

void Tensor::copy_from(const Tensor& other) {
  if (other.numel() != numel_) {
    throw Error("copy_from: " + other.shape_string() + " into " + shape_string());
  }
  if (numel_ > 0) std::memcpy(data_, other.data_, static_cast<std::size_t>(bytes()));
}

bool Tensor::equals(const Tensor& other) const {
  if (shape_ != other.shape_) return false;
  return numel_ == 0 || std::memcmp(data_, other.data_, static_cast<std::size_t>(bytes())) == 0;
}

std::string Tensor::shape_string() const { return shape_to_string(shape_); }

namespace {

std::atomic<int64_t> g_reorders{0};

bool is_nchw_like(Layout l) { return l == Layout::kPlain || l == Layout::kNCHW; }

// A batch of 2-D transposes: dst[b][j][i] = src[b][i][j] for i < rows,
// j < cols, with row and batch strides in floats. Every reorder between the
// activation layouts is one of these, since H and W stay adjacent and in
// order in all of them: with S = H * W,
//   NCHW (N, C, S)  NHWC (N, S, C)  CHWN (C, S, N),
// and a 2-D (N, F) plain <-> (F, N) kCN is a single transpose.
struct Transpose {
  int64_t batch = 1, rows = 0, cols = 0;
  int64_t src_batch = 0, src_row = 0;
  int64_t dst_batch = 0, dst_row = 0;
};

// Square tiles of kTile x kTile floats. A tile is transposed into a small
// contiguous buffer and written out as whole destination rows: with the
// large power-of-two strides of activation layouts (a CHWN -> NCHW row is
// C*H*W floats apart) the 32 destination rows of a tile would otherwise fall
// into one L1 set and evict each other between the partial writes.
constexpr int64_t kTile = 32;
// Destination rows shorter than this are written directly, not through the
// tile buffer: NCHW -> NHWC of a 128x3x32x32 batch (the graph input for a
// dense stem) took 305 us through it and 104 us direct, on two threads.
constexpr int64_t kShortRows = 4;
// Below this many values a reorder runs on the calling thread (a TBB task
// costs about as much as copying a few thousand floats).
constexpr int64_t kParallelValues = 1 << 15;
// Values per TBB task, in whole tiles.
constexpr int64_t kValuesPerTask = 1 << 14;

// dst[j * dst_row + i] = src[i * src_row + j] for i < rows, j < cols (both
// at most kTile).
void transpose_tile(const float* src, float* dst, int64_t src_row, int64_t dst_row, int64_t rows,
                    int64_t cols) {
  if (rows < kShortRows) {
    // Destination rows of a few floats (the 3 channels of an NCHW image
    // batch going to NHWC): a copy call per row would cost more than the
    // data, and the rows are adjacent in dst anyway.
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t i = 0; i < rows; ++i) dst[j * dst_row + i] = src[i * src_row + j];
    return;
  }
  alignas(64) float buf[kTile * kTile];  // the destination tile, row j at buf + j * kTile
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 4 <= rows; i += 4) {
    const float* s = src + i * src_row;
    int64_t j = 0;
    for (; j + 4 <= cols; j += 4) {
      __m128 r0 = _mm_loadu_ps(s + j);
      __m128 r1 = _mm_loadu_ps(s + src_row + j);
      __m128 r2 = _mm_loadu_ps(s + 2 * src_row + j);
      __m128 r3 = _mm_loadu_ps(s + 3 * src_row + j);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      float* b = buf + j * kTile + i;
      _mm_store_ps(b, r0);
      _mm_store_ps(b + kTile, r1);
      _mm_store_ps(b + 2 * kTile, r2);
      _mm_store_ps(b + 3 * kTile, r3);
    }
    for (; j < cols; ++j)
      for (int64_t k = i; k < i + 4; ++k) buf[j * kTile + k] = src[k * src_row + j];
  }
#endif
  for (; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) buf[j * kTile + i] = src[i * src_row + j];
  // Whole destination rows, copied inline: a memcpy call per row of 16 or 32
  // floats costs about as much as the copy.
  for (int64_t j = 0; j < cols; ++j) {
    float* d = dst + j * dst_row;
    const float* b = buf + j * kTile;
    int64_t k = 0;
#if defined(__SSE2__)
    for (; k + 4 <= rows; k += 4) _mm_storeu_ps(d + k, _mm_load_ps(b + k));
#endif
    for (; k < rows; ++k) d[k] = b[k];
  }
}

void run_transpose(const float* src, float* dst, const Transpose& t) {
  if (t.rows == 0 || t.cols == 0 || t.batch == 0) return;
  const int64_t row_tiles = (t.rows + kTile - 1) / kTile;
  const int64_t col_tiles = (t.cols + kTile - 1) / kTile;
  const int64_t tiles = t.batch * row_tiles * col_tiles;
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t b = k / (row_tiles * col_tiles);
      const int64_t rest = k % (row_tiles * col_tiles);
      const int64_t i0 = rest / col_tiles * kTile, j0 = rest % col_tiles * kTile;
      transpose_tile(src + b * t.src_batch + i0 * t.src_row + j0,
                     dst + b * t.dst_batch + j0 * t.dst_row + i0, t.src_row, t.dst_row,
                     std::min(kTile, t.rows - i0), std::min(kTile, t.cols - j0));
    }
  };
  const int64_t values = t.batch * t.rows * t.cols;
  if (values < kParallelValues || tiles == 1) {
    run(0, tiles);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kValuesPerTask / (kTile * kTile));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, tiles, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { run(r.begin(), r.end()); });
}

// The transposes that take a 4-D (N, C, H, W) tensor from one activation
// layout to another (NCHW-like, NHWC or CHWN, all distinct).
Transpose reorder4(const Shape& shape, Layout from, Layout to) {
  const int64_t N = shape[0], C = shape[1], S = shape[2] * shape[3];
  const auto nchw = [](Layout l) { return is_nchw_like(l); };
  if (nchw(from) && to == Layout::kNHWC) return {N, C, S, C * S, S, C * S, C};
  if (from == Layout::kNHWC && nchw(to)) return {N, S, C, C * S, C, C * S, S};
  if (nchw(from) && to == Layout::kCHWN) return {1, N, C * S, 0, C * S, 0, N};
  if (from == Layout::kCHWN && nchw(to)) return {1, C * S, N, 0, N, 0, C * S};
  // NHWC <-> CHWN: for each pixel s, the (N, C) matrix at stride S*C becomes
  // the (C, N) matrix at stride S*N (and back).
  if (from == Layout::kNHWC) return {S, N, C, C, S * C, N, S * N};
  return {S, C, N, N, S * N, C, S * C};
}

bool is_4d_layout(Layout l) { return is_nchw_like(l) || l == Layout::kNHWC || l == Layout::kCHWN; }

}  // namespace

int64_t reorder_count() { return g_reorders.load(std::memory_order_relaxed); }

Tensor to_layout(const Tensor& t, Layout layout) {
  const Layout from = t.layout();
  if (from == layout) return t;
  if (is_nchw_like(from) && is_nchw_like(layout)) return t.reshaped(t.shape(), layout);
  const auto refuse = [&] {
    return Error("to_layout: cannot reorder a rank-" + std::to_string(t.rank()) + " " +
                 layout_name(from) + " tensor " + t.shape_string() + " to " + layout_name(layout));
  };
  Transpose op;
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
    op = reorder4(t.shape(), from, layout);
  } else {
    throw refuse();
  }
  Tensor out = Tensor::empty(t.shape(), layout);
  g_reorders.fetch_add(1, std::memory_order_relaxed);
  run_transpose(t.data(), out.data(), op);
  return out;
}

}  // namespace sparsetrain
