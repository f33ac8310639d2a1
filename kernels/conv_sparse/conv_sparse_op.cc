// The operator layer of the sparse convolution: turns a call's geometry into
// the lines and tap offsets of conv_sparse_ukernels.h, cuts the pass into
// micro-kernel calls and runs them on TBB.
//
// Lines. The output plane (dst for forward and backward-weights, diff_src for
// backward-data) is cut into lines along which the same kernel positions land
// inside the image: each image row's interior (every kernel position valid),
// each border column walked down the interior rows, and the corners one
// position at a time. A line lists the (i, j) runs that are valid along it,
// so the kernels run register tiles with no tests and nothing is copied or
// padded; only the few corner positions run one at a time.
//
// Strided backward-data. An input column ix receives from kernel column j only
// when ix + PW - j is a multiple of SW, at output column (ix + PW - j) / SW.
// The columns are split by ix mod SW: within one class the kernel columns are
// those with j = ix + PW (mod SW), and consecutive columns of the class map to
// consecutive output columns, so a register tile of the class reads
// contiguous positions of diff_dst. Rows likewise: input row iy takes kernel
// rows i = iy + PH (mod SH) at output rows (iy + PH - i) / SH.
//
// Work units. A unit is one batch block of one image row (with its corners)
// or of one border column, for all index rows (output or input channels).
// Rows outer and channels inner keep the few image rows a unit reads (KH rows
// of every channel) in cache while every channel's taps stream them; a thread
// takes consecutive units, which share KH - 1 of those rows. When there are
// too few units to feed the threads, the channels are also cut into chunks.
//
// Determinism. Forward and backward-data: each output element belongs to one
// unit and one channel, and one micro-kernel call computes it whole, summing
// in index order. Backward-weights sums over units into each entry: the units
// are cut into a fixed number of slices (from the shape, never from the
// thread count), each slice sums into its own partial buffer, and the slices
// are added in slice order. Results are bit-identical from run to run and
// across thread counts, with no atomics.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/common/scratch.h"
#include "kernels/conv_sparse/conv_sparse.h"
#include "kernels/conv_sparse/conv_sparse_ukernels.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

// Tasks per thread when cutting units (and channels): a few, so a thread that
// starts late still gets its share.
constexpr int64_t kTasksPerThread = 4;
// Below this many multiply-adds (stored entries x output positions x batch)
// a pass runs on the calling thread: starting TBB tasks would cost more.
constexpr int64_t kMinParallelWork = int64_t{1} << 16;
// Batch statistics from float lane sums of x and x^2: the variance
// E[x^2] - E[x]^2 loses the digits the mean's square shares with E[x^2], so
// statistics whose channel has mean^2 above this many variances are not
// handed on (the BatchNorm computes its own, in two exact passes). Below it
// the variance keeps about 1e-5 of relative accuracy.
constexpr double kMaxMeanToVariance = 64.0;
// Backward-weights: the units are cut into at most this many slices, each
// with its own partial sums (zeroed, then added up: one pass over nnz floats
// each). Fixed, so the summation order (and the result) does not depend on
// the thread count; more threads than slices split each slice's channels.
constexpr int64_t kWeightSlices = 8;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0

// The call's geometry, all in elements; sp and dp the channel planes'
// strides (a plane, or more where they are padded).
struct Geometry {
  int64_t n, c, h, w, o, oh, ow, kh, kw, sh, sw, ph, pw, cg, og, sp, dp;
  int64_t src_plane() const { return sp; }
  int64_t dst_plane() const { return dp; }
};

Geometry geometry(const ConvSparseWeights& wt, const Conv2dShape& s) {
  SPARSETRAIN_ASSERT(s.valid());
  SPARSETRAIN_ASSERT(s.in_channels == wt.in_channels && s.out_channels == wt.out_channels);
  SPARSETRAIN_ASSERT(s.kernel_h == wt.kernel_h && s.kernel_w == wt.kernel_w);
  SPARSETRAIN_ASSERT(s.groups == wt.groups);
  return {.n = s.batch,
          .c = s.in_channels,
          .h = s.in_h,
          .w = s.in_w,
          .o = s.out_channels,
          .oh = s.out_h(),
          .ow = s.out_w(),
          .kh = s.kernel_h,
          .kw = s.kernel_w,
          .sh = s.stride_h,
          .sw = s.stride_w,
          .ph = s.pad_h,
          .pw = s.pad_w,
          .cg = s.in_channels / s.groups,
          .og = s.out_channels / s.groups,
          .sp = s.src_plane_stride(),
          .dp = s.dst_plane_stride()};
}

// The lines of a pass (see conv_sparse_ukernels.h), in groups: a group is
// one work unit per batch block (an image row with its corners, or one
// border column).
class Lines {
 public:
  struct Line {
    int64_t seg_begin, num_segs, positions, in_base, in_ps, out_base, out_ps;
  };

  // Runs (i, j) for i in {i0 + di * a : a < ni} and j in {j0 + dj * b : b < nj}
  // (row-major over a run table kw wide), merged where they adjoin.
  void add_segments(int64_t kw, int64_t i0, int64_t ni, int64_t di, int64_t j0, int64_t nj,
                    int64_t dj) {
    for (int64_t a = 0; a < ni; ++a)
      for (int64_t b = 0; b < nj; ++b) {
        const auto lo = static_cast<int32_t>((i0 + di * a) * kw + j0 + dj * b);
        if (segs_.size() > static_cast<std::size_t>(open_) && segs_.back() == lo) {
          segs_.back() = lo + 1;
        } else {
          segs_.push_back(lo);
          segs_.push_back(lo + 1);
        }
      }
  }
  // Closes the line whose segments were just added.
  void add_line(int64_t positions, int64_t in_base, int64_t in_ps, int64_t out_base,
                int64_t out_ps) {
    const auto end = static_cast<int64_t>(segs_.size());
    lines_.push_back({open_ / 2, (end - open_) / 2, positions, in_base, in_ps, out_base, out_ps});
    open_ = end;
  }
  void end_group() {
    if (groups_.empty() || groups_.back() != static_cast<int64_t>(lines_.size()))
      groups_.push_back(static_cast<int64_t>(lines_.size()));
  }

  int64_t groups() const { return static_cast<int64_t>(groups_.size()); }
  int64_t group_begin(int64_t g) const {
    return g == 0 ? 0 : groups_[static_cast<std::size_t>(g - 1)];
  }
  int64_t group_end(int64_t g) const { return groups_[static_cast<std::size_t>(g)]; }
  ConvLine line(int64_t k) const {
    const Line& l = lines_[static_cast<std::size_t>(k)];
    return {segs_.data() + 2 * l.seg_begin,
            l.num_segs,
            l.positions,
            l.in_base,
            l.in_ps,
            l.out_base,
            l.out_ps};
  }

 private:
  std::vector<int32_t> segs_;
  std::vector<Line> lines_;
  std::vector<int64_t> groups_;  // end of each group in lines_
  int64_t open_ = 0;             // first segment value of the line being built
};

// Forward geometry (forward and backward-weights): output (y, x) reads input
// (y*SH - PH + i, x*SW - PW + j). Kernel rows [i_lo, i_hi) land inside the
// image for row y, columns [j_lo, j_hi) for column x; rows and columns where
// all of them do are the interior.
struct Span {
  int64_t lo, hi;
};
Span valid_taps(int64_t out_pos, int64_t stride, int64_t pad, int64_t in_size, int64_t k) {
  const int64_t at = out_pos * stride - pad;
  const int64_t lo = std::clamp<int64_t>(-at, 0, k);
  return {lo, std::clamp<int64_t>(in_size - at, lo, k)};
}

Lines forward_lines(const Geometry& g) {
  Lines lines;
  const auto full = [](Span s, int64_t k) { return s.lo == 0 && s.hi == k; };
  // Interior columns [xa, xb) and rows [ya, yb).
  int64_t xa = g.ow, xb = g.ow, ya = g.oh, yb = g.oh;
  for (int64_t x = 0; x < g.ow; ++x)
    if (full(valid_taps(x, g.sw, g.pw, g.w, g.kw), g.kw)) {
      if (xa == g.ow) xa = x;
      xb = x + 1;
    }
  for (int64_t y = 0; y < g.oh; ++y)
    if (full(valid_taps(y, g.sh, g.ph, g.h, g.kh), g.kh)) {
      if (ya == g.oh) ya = y;
      yb = y + 1;
    }
  const int64_t wn = g.w * g.n, own = g.ow * g.n;
  const auto input = [&](int64_t y, int64_t x) {
    return (y * g.sh - g.ph) * wn + (x * g.sw - g.pw) * g.n;
  };
  for (int64_t y = 0; y < g.oh; ++y) {
    const Span i = valid_taps(y, g.sh, g.ph, g.h, g.kh);
    if (xb > xa) {
      lines.add_segments(g.kw, i.lo, i.hi - i.lo, 1, 0, g.kw, 1);
      lines.add_line(xb - xa, input(y, xa), g.sw * g.n, y * own + xa * g.n, g.n);
    }
    if (y < ya || y >= yb) {
      for (int64_t x = 0; x < g.ow; ++x) {
        if (x >= xa && x < xb) continue;
        const Span j = valid_taps(x, g.sw, g.pw, g.w, g.kw);
        lines.add_segments(g.kw, i.lo, i.hi - i.lo, 1, j.lo, j.hi - j.lo, 1);
        lines.add_line(1, input(y, x), g.sw * g.n, y * own + x * g.n, g.n);
      }
    }
    lines.end_group();
  }
  if (yb > ya) {
    for (int64_t x = 0; x < g.ow; ++x) {
      if (x >= xa && x < xb) continue;
      const Span j = valid_taps(x, g.sw, g.pw, g.w, g.kw);
      lines.add_segments(g.kw, 0, g.kh, 1, j.lo, j.hi - j.lo, 1);
      lines.add_line(yb - ya, input(ya, x), g.sh * wn, ya * own + x * g.n, own);
      lines.end_group();
    }
  }
  return lines;
}

// Backward-data: input row iy receives from kernel rows i = ci + SH*k at
// output row yq - k (ci = (iy + PH) mod SH, yq = (iy + PH) / SH), valid for
// 0 <= yq - k < OH; columns likewise within each column class.
struct Phase {
  int64_t q;     // output origin: yq or xq
  int64_t c;     // first kernel row / column of the class
  int64_t most;  // number of kernel rows / columns in the class
  Span valid;    // [k_lo, k_hi) of them valid
};
Phase phase(int64_t in_pos, int64_t stride, int64_t pad, int64_t out_size, int64_t k) {
  Phase p;
  p.q = (in_pos + pad) / stride;
  p.c = in_pos + pad - p.q * stride;
  p.most = p.c < k ? (k - 1 - p.c) / stride + 1 : 0;
  const int64_t lo = std::clamp<int64_t>(p.q - out_size + 1, 0, p.most);
  p.valid = {lo, std::clamp<int64_t>(p.q + 1, lo, p.most)};
  return p;
}

Lines backward_lines(const Geometry& g) {
  Lines lines;
  const auto full = [](const Phase& p) { return p.valid.hi - p.valid.lo == p.most; };
  const int64_t wn = g.w * g.n, own = g.ow * g.n;
  // Column classes cx (input columns cx + SW*q): positions, interior [qa, qb).
  struct ColumnClass {
    int64_t positions, qa, qb;
  };
  std::vector<ColumnClass> classes(static_cast<std::size_t>(g.sw));
  for (int64_t cx = 0; cx < g.sw; ++cx) {
    ColumnClass& k = classes[static_cast<std::size_t>(cx)];
    k.positions = cx < g.w ? (g.w - cx + g.sw - 1) / g.sw : 0;
    k.qa = k.qb = k.positions;
    for (int64_t q = 0; q < k.positions; ++q)
      if (full(phase(cx + g.sw * q, g.sw, g.pw, g.ow, g.kw))) {
        if (k.qa == k.positions) k.qa = q;
        k.qb = q + 1;
      }
  }
  const auto input = [&](const Phase& y, const Phase& x) { return y.q * own + x.q * g.n; };
  for (int64_t iy = 0; iy < g.h; ++iy) {
    const Phase y = phase(iy, g.sh, g.ph, g.oh, g.kh);
    for (int64_t cx = 0; cx < g.sw; ++cx) {
      const ColumnClass& k = classes[static_cast<std::size_t>(cx)];
      if (k.qb > k.qa) {
        const Phase x = phase(cx + g.sw * k.qa, g.sw, g.pw, g.ow, g.kw);
        lines.add_segments(g.kw, y.c + g.sh * y.valid.lo, y.valid.hi - y.valid.lo, g.sh, x.c,
                           x.most, g.sw);
        lines.add_line(k.qb - k.qa, input(y, x), g.n, iy * wn + (cx + g.sw * k.qa) * g.n,
                       g.sw * g.n);
      }
      if (full(y)) continue;
      for (int64_t q = 0; q < k.positions; ++q) {
        if (q >= k.qa && q < k.qb) continue;
        const Phase x = phase(cx + g.sw * q, g.sw, g.pw, g.ow, g.kw);
        lines.add_segments(g.kw, y.c + g.sh * y.valid.lo, y.valid.hi - y.valid.lo, g.sh,
                           x.c + g.sw * x.valid.lo, x.valid.hi - x.valid.lo, g.sw);
        lines.add_line(1, input(y, x), g.n, iy * wn + (cx + g.sw * q) * g.n, g.sw * g.n);
      }
    }
    lines.end_group();
  }
  // Border columns of each class, walked down the interior rows of each row
  // class (those rows are every SH-th row, and map to consecutive output rows).
  for (int64_t ry = 0; ry < g.sh; ++ry) {
    int64_t first = -1, count = 0;
    for (int64_t iy = ry; iy < g.h; iy += g.sh) {
      if (!full(phase(iy, g.sh, g.ph, g.oh, g.kh))) continue;
      if (first < 0) first = iy;
      SPARSETRAIN_ASSERT(iy == first + g.sh * count);  // the interior rows are contiguous
      ++count;
    }
    if (count == 0) continue;
    const Phase y = phase(first, g.sh, g.ph, g.oh, g.kh);
    for (int64_t cx = 0; cx < g.sw; ++cx) {
      const ColumnClass& k = classes[static_cast<std::size_t>(cx)];
      for (int64_t q = 0; q < k.positions; ++q) {
        if (q >= k.qa && q < k.qb) continue;
        const Phase x = phase(cx + g.sw * q, g.sw, g.pw, g.ow, g.kw);
        lines.add_segments(g.kw, y.c, y.most, g.sh, x.c + g.sw * x.valid.lo,
                           x.valid.hi - x.valid.lo, g.sw);
        lines.add_line(count, input(y, x), own, first * wn + (cx + g.sw * q) * g.n, g.sh * wn);
        lines.end_group();
      }
    }
  }
  return lines;
}

// The offset tables: offset(ch, i, j) for every tap (ch, i, j) of a
// filter over `channels` channels, in tap order.
template <class Offset>
std::vector<int64_t> tap_offsets(const Geometry& g, int64_t channels, Offset offset) {
  std::vector<int64_t> off(static_cast<std::size_t>(channels * g.kh * g.kw));
  std::size_t k = 0;
  for (int64_t ch = 0; ch < channels; ++ch)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) off[k++] = offset(ch, i, j);
  return off;
}

// Forward: tap (c, i, j) of a filter reads input channel c of its group at
// row i and column j from the position's origin.
std::vector<int64_t> forward_offsets(const Geometry& g) {
  return tap_offsets(g, g.cg, [&](int64_t c, int64_t i, int64_t j) {
    return c * g.src_plane() + i * g.w * g.n + j * g.n;
  });
}

// Backward-data: tap (o, i, j) of an input channel reads output channel o of
// its group at row yq - i / SH and column xq - j / SW from the position's
// origin (yq, xq).
std::vector<int64_t> backward_offsets(const Geometry& g) {
  return tap_offsets(g, g.og, [&](int64_t o, int64_t i, int64_t j) {
    return o * g.dst_plane() - (i / g.sh) * g.ow * g.n - (j / g.sw) * g.n;
  });
}

// The call's taps (ConvTap): each entry's input offset, from the offset table
// of its tap index, and its value, gathered from `values` through the order's
// entry index. Built per call (about nnz x 8 bytes, against the
// nnz x OH x OW x N multiply-adds of the pass), so the weight keeps no copy of
// its values in either order and an update of `values` needs no refresh.
class CallTaps {
 public:
  CallTaps(const std::vector<uint32_t>& tap, const std::vector<uint32_t>& entry,
           const std::vector<float>& values, const std::vector<int64_t>& off)
      : taps_(tap.size()) {
    // The offsets are 32-bit: a group of channels of one activation spans
    // fewer than 2^31 floats (8 GiB).
    for (int64_t o : off)
      SPARSETRAIN_ASSERT(o >= std::numeric_limits<int32_t>::min() &&
                         o <= std::numeric_limits<int32_t>::max());
    ConvTap* out = taps_.data();
    const auto fill = [&](std::size_t k0, std::size_t k1) {
      for (std::size_t k = k0; k < k1; ++k)
        out[k] = {static_cast<int32_t>(off[tap[k]]), values[entry[k]]};
    };
    const std::size_t n = tap.size();
    if (n < static_cast<std::size_t>(kMinParallelWork)) {
      fill(0, n);
    } else {
      oneapi::tbb::parallel_for(
          oneapi::tbb::blocked_range<std::size_t>(0, n, 1 << 14),
          [&](const oneapi::tbb::blocked_range<std::size_t>& r) { fill(r.begin(), r.end()); });
    }
  }
  const ConvTap* data() const { return taps_.data(); }

 private:
  Scratch<ConvTap> taps_;
};

int64_t threads() { return std::max(1, oneapi::tbb::this_task_arena::max_concurrency()); }

// Runs body(unit, row_begin, row_end) for every unit and a cut of the `rows`
// index rows into chunks; chunks only when there are too few units.
template <class Body>
void for_units(int64_t units, int64_t rows, int64_t work, Body body) {
  if (units <= 0 || rows <= 0) return;
  const int64_t want = threads() * kTasksPerThread;
  if (work < kMinParallelWork || (units == 1 && rows == 1)) {
    for (int64_t u = 0; u < units; ++u) body(u, 0, rows);
    return;
  }
  const int64_t chunks = units >= want ? 1 : std::min(rows, ceil_div(want, units));
  const int64_t tasks = units * chunks;
  const int64_t grain = std::max<int64_t>(1, tasks / want);
  oneapi::tbb::parallel_for(
      oneapi::tbb::blocked_range<int64_t>(0, tasks, grain),
      [&](const oneapi::tbb::blocked_range<int64_t>& range) {
        for (int64_t t = range.begin(); t != range.end(); ++t) {
          const int64_t u = t / chunks, k = t % chunks;
          const int64_t r0 = rows * k / chunks, r1 = rows * (k + 1) / chunks;
          if (r0 < r1) body(u, r0, r1);
        }
      },
      oneapi::tbb::simple_partitioner());
}

// Calls the kernel along every line of line group `group`.
template <class Kernel, class Args>
void run_lines(const Kernel& kernel, Args& a, const Lines& lines, int64_t group) {
  for (int64_t k = lines.group_begin(group); k < lines.group_end(group); ++k) {
    a.line = lines.line(k);
    kernel.fn(a);
  }
}

// Runs a gather pass: forward (`forward`: the fwd index, its rows the output
// channels, from src to dst) or backward-data (the bwd index, its rows the
// input channels, from diff_dst to diff_src); in and out at batch lane 0. A
// unit is one batch block of one line group; units are numbered group-major
// in forward, else block-major.
//
// sums: null, or (units, rows, 2): per unit and row, the sum of the row's
// outputs in the unit and the sum of their squares (each unit's rows summed
// by one task, lane sums from the kernel's epilogue added in lane order).
void run_gather(const ConvGatherKernel& kernel, const ConvSparseWeights& w, const Geometry& g,
                bool forward, const float* in, float* out, const float* bias, ConvSparseInit init,
                const float* keep = nullptr, double* sums = nullptr) {
  const CallTaps taps = forward ? CallTaps(w.fwd_tap, w.fwd_entry, w.values, forward_offsets(g))
                                : CallTaps(w.bwd_tap, w.bwd_entry, w.values, backward_offsets(g));
  const Lines lines = forward ? forward_lines(g) : backward_lines(g);
  const int64_t rows = forward ? g.o : g.c;
  const int64_t work = w.nnz * g.oh * g.ow * g.n;  // multiply-adds
  const bool group_major = forward;
  const ConvGatherArgs base{
      .taps = {forward ? w.fwd_ptr.data() : w.bwd_ptr.data(), forward ? w.fwd_panels : w.bwd_panels,
               g.kh * g.kw, taps.data()},
      .line = {},  // line, rows and n: set per unit and line
      .in = in,
      .in_group_stride = forward ? g.cg * g.src_plane() : g.og * g.dst_plane(),
      .rows_per_group = forward ? g.og : g.cg,
      .out = out,
      .out_rs = forward ? g.dst_plane() : g.src_plane(),
      .bias = bias,
      .row_begin = 0,
      .row_end = 0,
      .n = 0,
      .init = init,
      .keep = keep,
      .stats = nullptr};
  const int64_t tile = kernel.tile_n;
  const int64_t blocks = ceil_div(g.n, tile);
  for_units(blocks * lines.groups(), rows, work, [&](int64_t u, int64_t r0, int64_t r1) {
    const int64_t b = group_major ? u % blocks : u / lines.groups();
    const int64_t group = group_major ? u / blocks : u % lines.groups();
    const int64_t n0 = b * tile;
    ConvGatherArgs a = base;
    a.in += n0;
    a.out += n0;
    if (a.keep != nullptr) a.keep += n0;
    a.row_begin = r0;
    a.row_end = r1;
    a.n = std::min(tile, g.n - n0);
    if (sums == nullptr) {
      run_lines(kernel, a, lines, group);
      return;
    }
    // Each row's sums in a 512-byte block, at the half of it whose cache
    // sets the tile's inputs do not crowd: a position's batch block lands
    // at a fixed offset modulo 512 bytes (the batch stride, a power of two
    // at the usual batch sizes), and channel planes whose sizes are powers
    // of two put every channel's lines into those same sets.
    // (Room for the alignment and the offset into the last block.)
    const auto size = static_cast<std::size_t>((r1 - r0 + 3) * kStatRowStride);
    const Scratch<float> lanes(size);
    const auto at = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 512; };
    const std::size_t cold = (at(a.in) / 4 + kStatRowStride / 2) % kStatRowStride;
    float* block = lanes.data() + (kStatRowStride - at(lanes.data()) / 4) % kStatRowStride;
    for (int64_t r = r0; r < r1; ++r)
      std::fill_n(block + (r - r0) * kStatRowStride + cold, 2 * kStatLanes, 0.0f);
    a.stats = block + cold;
    run_lines(kernel, a, lines, group);
    for (int64_t r = r0; r < r1; ++r) {
      const float* l = a.stats + (r - r0) * kStatRowStride;
      double s = 0.0, q = 0.0;
      for (int64_t k = 0; k < kStatLanes; ++k) {
        s += l[k];
        q += l[kStatLanes + k];
      }
      sums[2 * (u * rows + r)] = s;
      sums[2 * (u * rows + r) + 1] = q;
    }
  });
}

}  // namespace

void conv_sparse_forward_with(const ConvGatherKernel& kernel, float* dst, const float* src,
                              const ConvSparseWeights& w, const float* bias,
                              const Conv2dShape& shape) {
  const Geometry g = geometry(w, shape);
  if (g.n == 0) return;
  run_gather(kernel, w, g, true, src, dst, bias,
             bias != nullptr ? ConvSparseInit::kBias : ConvSparseInit::kZero);
}

bool conv_sparse_forward_stats_with(const ConvGatherKernel& kernel, float* dst, double* mean,
                                    double* var, const float* src, const ConvSparseWeights& w,
                                    const float* bias, const Conv2dShape& shape) {
  const Geometry g = geometry(w, shape);
  if (g.n == 0) return false;
  const int64_t units = ceil_div(g.n, kernel.tile_n) * forward_lines(g).groups();
  const Scratch<double> sums(static_cast<std::size_t>(units * g.o * 2));
  run_gather(kernel, w, g, true, src, dst, bias,
             bias != nullptr ? ConvSparseInit::kBias : ConvSparseInit::kZero, nullptr, sums.data());
  // Each channel's units added in unit order: the same sums whatever the
  // threads did.
  const auto count = static_cast<double>(g.n * g.oh * g.ow);
  bool conditioned = true;
  for (int64_t r = 0; r < g.o; ++r) {
    double s = 0.0, q = 0.0;
    for (int64_t u = 0; u < units; ++u) {
      s += sums.data()[2 * (u * g.o + r)];
      q += sums.data()[2 * (u * g.o + r) + 1];
    }
    mean[r] = s / count;
    var[r] = std::max(0.0, q / count - mean[r] * mean[r]);
    conditioned = conditioned && mean[r] * mean[r] <= kMaxMeanToVariance * var[r];
  }
  return conditioned;
}

void conv_sparse_backward_data_with(const ConvGatherKernel& kernel, float* diff_src,
                                    const float* diff_dst, const ConvSparseWeights& w,
                                    const Conv2dShape& shape, bool accumulate,
                                    const float* relu_output) {
  const Geometry g = geometry(w, shape);
  if (g.n == 0) return;
  if (w.bwd_panels > 1 && (accumulate || relu_output != nullptr)) {
    // The kernels add into the output and mask it only with one panel (the
    // partial sums of several live in the output): the sum goes to a buffer,
    // then is added and masked, with the same operations.
    // The buffer has diff_src's planes (padding included, left alone).
    const int64_t plane = g.h * g.w * g.n;
    const Scratch<float> sum(static_cast<std::size_t>(g.c * g.src_plane()));
    conv_sparse_backward_data_with(kernel, sum.data(), diff_dst, w, shape, false);
    const float* from = sum.data();
    // Values [k0, k1) of the planes, numbered as if packed.
    const auto finish = [&](int64_t k0, int64_t k1) {
      while (k0 < k1) {
        const int64_t c = k0 / plane, i0 = k0 % plane;
        const int64_t i1 = std::min(plane, i0 + (k1 - k0)), base = c * g.src_plane();
        for (int64_t k = base + i0; k < base + i1; ++k) {
          const float v = accumulate ? diff_src[k] + from[k] : from[k];
          diff_src[k] = relu_output == nullptr || relu_output[k] > 0.0f ? v : 0.0f;
        }
        k0 += i1 - i0;
      }
    };
    const int64_t count = g.c * plane;
    if (count < kMinParallelWork) {
      finish(0, count);
    } else {
      oneapi::tbb::parallel_for(
          oneapi::tbb::blocked_range<int64_t>(0, count, 1 << 14),
          [&](const oneapi::tbb::blocked_range<int64_t>& r) { finish(r.begin(), r.end()); });
    }
    return;
  }
  run_gather(kernel, w, g, false, diff_dst, diff_src, nullptr,
             accumulate ? ConvSparseInit::kAccumulate : ConvSparseInit::kZero, relu_output);
}

void conv_sparse_backward_weights_with(const ConvSddmmKernel& kernel, float* diff_values,
                                       float* diff_bias, const float* diff_dst, const float* src,
                                       const ConvSparseWeights& w, const Conv2dShape& shape) {
  const Geometry g = geometry(w, shape);
  if (g.n == 0 || g.o == 0) return;
  const CallTaps taps(w.fwd_tap, w.fwd_entry, w.values, forward_offsets(g));
  const Lines lines = forward_lines(g);
  const int64_t tile = kernel.tile_n;
  const int64_t blocks = ceil_div(g.n, tile);
  const int64_t units = blocks * lines.groups();
  const int64_t slices = std::min(units, kWeightSlices);
  const int64_t stride = w.nnz + g.o;  // floats per slice: entries, then bias
  const Scratch<float> scratch(static_cast<std::size_t>(slices * stride));
  float* partial = scratch.data();
  std::fill(partial, partial + slices * stride, 0.0f);

  const int64_t work = w.nnz * g.oh * g.ow * g.n;
  // A "unit" of for_units here is a slice; each runs its units in order.
  for_units(slices, g.o, work, [&](int64_t s, int64_t r0, int64_t r1) {
    float* slice = partial + s * stride;
    for (int64_t u = units * s / slices; u < units * (s + 1) / slices; ++u) {
      const int64_t b = u / lines.groups(), group = u % lines.groups();
      const int64_t n0 = b * tile;
      ConvSddmmArgs a;
      a.taps = {w.fwd_ptr.data(), w.fwd_panels, g.kh * g.kw, taps.data()};
      a.in = src + n0;
      a.in_group_stride = g.cg * g.src_plane();
      a.rows_per_group = g.og;
      a.grad = diff_dst + n0;
      a.grad_rs = g.dst_plane();
      a.partial = slice;
      a.partial_bias = diff_bias != nullptr ? slice + w.nnz : nullptr;
      a.row_begin = r0;
      a.row_end = r1;
      a.n = std::min(tile, g.n - n0);
      run_lines(kernel, a, lines, group);
    }
  });

  // The slices in order into the caller's gradients (+=).
  const auto reduce = [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      float sum = partial[k];
      for (int64_t s = 1; s < slices; ++s) sum += partial[s * stride + k];
      if (k < w.nnz) {
        diff_values[w.fwd_entry[static_cast<std::size_t>(k)]] += sum;
      } else if (diff_bias != nullptr) {
        diff_bias[k - w.nnz] += sum;
      }
    }
  };
  if (stride * slices < kMinParallelWork) {
    reduce(0, stride);
  } else {
    oneapi::tbb::parallel_for(
        oneapi::tbb::blocked_range<int64_t>(0, stride, 4096),
        [&](const oneapi::tbb::blocked_range<int64_t>& r) { reduce(r.begin(), r.end()); });
  }
}

void conv_sparse_forward(float* dst, const float* src, const ConvSparseWeights& w,
                         const float* bias, const Conv2dShape& shape, Isa isa) {
  conv_sparse_forward_with(*conv_sparse_kernels(isa).fwd, dst, src, w, bias, shape);
}

bool conv_sparse_forward_stats(float* dst, double* mean, double* var, const float* src,
                               const ConvSparseWeights& w, const float* bias,
                               const Conv2dShape& shape, Isa isa) {
  return conv_sparse_forward_stats_with(*conv_sparse_kernels(isa).fwd, dst, mean, var, src, w, bias,
                                        shape);
}

void conv_sparse_backward_data(float* diff_src, const float* diff_dst, const ConvSparseWeights& w,
                               const Conv2dShape& shape, bool accumulate, Isa isa) {
  conv_sparse_backward_data_with(*conv_sparse_kernels(isa).bwd_data, diff_src, diff_dst, w, shape,
                                 accumulate);
}

void conv_sparse_backward_data_relu(float* diff_src, const float* diff_dst,
                                    const ConvSparseWeights& w, const Conv2dShape& shape,
                                    bool accumulate, const float* relu_output, Isa isa) {
  conv_sparse_backward_data_with(*conv_sparse_kernels(isa).bwd_data, diff_src, diff_dst, w, shape,
                                 accumulate, relu_output);
}

void conv_sparse_backward_weights(float* diff_values, float* diff_bias, const float* diff_dst,
                                  const float* src, const ConvSparseWeights& w,
                                  const Conv2dShape& shape, Isa isa) {
  conv_sparse_backward_weights_with(*conv_sparse_kernels(isa).bwd_weights, diff_values, diff_bias,
                                    diff_dst, src, w, shape);
}

}  // namespace sparsetrain::kernels
