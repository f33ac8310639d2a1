#include "kernels/reorder/reorder.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>

namespace sparsetrain::kernels {
namespace {

bool is_nchw_like(Layout l) { return l == Layout::kPlain || l == Layout::kNCHW; }

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

}  // namespace

void transpose_batched(const float* src, float* dst, const TransposeDesc& t) {
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

TransposeDesc layout_transpose_4d(int64_t N, int64_t C, int64_t H, int64_t W, Layout from,
                                  Layout to) {
  const int64_t S = H * W;
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

}  // namespace sparsetrain::kernels
