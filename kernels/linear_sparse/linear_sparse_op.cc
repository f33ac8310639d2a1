// The operator layer of the sparse linear layer: cuts a pass into
// micro-kernel calls (batch tile x panel x chunk of rows) and runs them on
// TBB.
//
// Batch tiles. The kernels read the dense operand B (cols, N) one batch tile
// at a time with the tile's rows contiguous: then a panel of B occupies
// consecutive cache lines (in L1 while every row of a chunk visits it),
// instead of rows N floats apart whose power-of-two strides would crowd a
// few cache sets. A kBlocked operand is stored that way; a kPlain one is
// packed per call into a scratch buffer.
//
// Tasks. The rows of the sparse matrix are cut into chunks of about equal
// work, and for SpMM (where each output element belongs to one batch tile) a
// task takes one batch tile of one chunk; SDDMM sums over the tiles into each
// diff_values entry, so its tasks take every tile of their chunk. A task walks
// its tiles, then the panels in order, then its rows. Each output element is
// thus produced by exactly one task in an order that depends neither on the
// thread count nor on the schedule: results are bit-identical from run to run
// and across thread counts, with no atomics.
//
// Tuning (2-core Zen 5, 768 <-> 3072, batch 256): splitting SpMM by batch
// tile lets each core read only its tiles of B (backward-data's B, diff_dst,
// is 3 MiB, more than an L2); about two tasks per thread, each as large as
// that allows, keep every panel of B in cache for many rows and still let a
// thread that starts late catch up. See the panel widths in
// linear_sparse_format.cc.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/common/scratch.h"
#include "kernels/linear_sparse/linear_sparse.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

// Batch columns per block of the kBlocked layout, and the vector width its
// narrow blocks round up to.
constexpr int64_t kBatchBlock = 64;
constexpr int64_t kBlockVector = 16;
// Row chunks per thread: a chunk walks every panel of B once per batch tile,
// so fewer, larger chunks reuse each panel more; two per thread leave some
// slack for a thread that starts late.
constexpr int64_t kChunksPerThread = 2;
// What a row costs per panel besides its nonzeros (loading and storing its
// output tile), in nonzeros, when balancing chunks.
constexpr int64_t kRowCost = 4;
// Rows of B packed per task.
constexpr int64_t kPackChunkRows = 64;
// Bytes of output rows (of one batch tile) a row chunk may span: a quarter
// of a 1 MiB L2, the rest left to the panels of B.
constexpr int64_t kChunkBytesInL2 = int64_t{256} << 10;
// Below this many multiply-adds (nonzeros x batch) a pass runs on the calling
// thread: starting TBB tasks would cost more than they save.
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// One batch tile as the micro-kernels see it: columns [n0, n0 + n), which
// sit in layout block `block` at column `sub` of that block.
struct Tile {
  int64_t n0;
  int64_t n;
  int64_t block;
  int64_t sub;
};

// Every layout block cut into tiles of at most tile_n columns. A kPlain
// activation is one block as wide as the batch.
std::vector<Tile> make_tiles(int64_t batch, BatchLayout layout, int tile_n) {
  const int64_t width = layout == BatchLayout::kBlocked ? linear_sparse_block_width(batch) : batch;
  std::vector<Tile> tiles;
  for (int64_t b0 = 0; b0 < batch; b0 += width) {
    const int64_t bn = std::min(width, batch - b0);
    for (int64_t s = 0; s < bn; s += tile_n)
      tiles.push_back({b0 + s, std::min<int64_t>(tile_n, bn - s), b0 / width, s});
  }
  return tiles;
}

// An activation operand (features, batch) in a layout: where a tile's rows
// start and their stride.
template <class T>
struct View {
  T* base;
  int64_t features;
  int64_t batch;
  BatchLayout layout;

  int64_t width() const {
    return layout == BatchLayout::kBlocked ? linear_sparse_block_width(batch) : batch;
  }
  T* tile(const Tile& t) const {
    return layout == BatchLayout::kBlocked ? base + t.block * features * width() + t.sub
                                           : base + t.n0;
  }
  int64_t ld() const { return width(); }
};

// The dense operand B as the kernels read it: rows of each tile contiguous
// (stride ld). A kBlocked operand already is; a kPlain one is copied tile by
// tile into a scratch buffer (zero-padded to a multiple of the kernel's
// vector) unless the whole batch is a single tile of whole vectors.
class PackedOperand {
 public:
  PackedOperand(const View<const float>& b, const std::vector<Tile>& tiles, int vec) : b_(b) {
    if (b.layout == BatchLayout::kBlocked || b.features == 0 ||
        (tiles.size() == 1 && b.batch % vec == 0)) {
      return;
    }
    offset_.resize(tiles.size());
    ld_.resize(tiles.size());
    int64_t floats = 0;
    for (std::size_t i = 0; i < tiles.size(); ++i) {
      offset_[i] = floats;
      ld_[i] = round_up(tiles[i].n, vec);
      floats += b.features * ld_[i];
    }
    buffer_ = ScratchPool<float>::instance().acquire(static_cast<std::size_t>(floats));
    float* packed = buffer_->data;
    const int64_t rows = b.features;
    const int64_t chunks = (rows + kPackChunkRows - 1) / kPackChunkRows;
    const int64_t tasks = chunks * static_cast<int64_t>(tiles.size());
    oneapi::tbb::parallel_for(
        oneapi::tbb::blocked_range<int64_t>(0, tasks),
        [&](const oneapi::tbb::blocked_range<int64_t>& range) {
          for (int64_t task = range.begin(); task != range.end(); ++task) {
            const auto i = static_cast<std::size_t>(task / chunks);
            const Tile& t = tiles[i];
            const int64_t r0 = (task % chunks) * kPackChunkRows;
            const int64_t r1 = std::min(rows, r0 + kPackChunkRows);
            for (int64_t r = r0; r < r1; ++r) {
              float* dst = packed + offset_[i] + r * ld_[i];
              std::memcpy(dst, b.base + r * b.batch + t.n0,
                          static_cast<std::size_t>(t.n) * sizeof(float));
              std::fill(dst + t.n, dst + ld_[i], 0.0f);
            }
          }
        },
        oneapi::tbb::simple_partitioner());
  }
  ~PackedOperand() {
    if (buffer_) ScratchPool<float>::instance().release(std::move(buffer_));
  }
  PackedOperand(const PackedOperand&) = delete;
  PackedOperand& operator=(const PackedOperand&) = delete;

  const float* tile(std::size_t i, const Tile& t) const {
    return buffer_ ? buffer_->data + offset_[i] : b_.tile(t);
  }
  int64_t ld(std::size_t i) const { return buffer_ ? ld_[i] : b_.ld(); }

 private:
  View<const float> b_;
  std::vector<int64_t> offset_, ld_;
  std::unique_ptr<ScratchPool<float>::Buffer> buffer_;
};

// Runs body(tile_begin, tile_end, row_begin, row_end) over tasks on TBB.
// Rows are cut into chunks of about equal work (nonzeros plus a per-row,
// per-panel cost), so that a weight with uneven rows still splits evenly.
// With `split_tiles` (SpMM: each output element belongs to one tile) a task
// also takes one batch tile only: then a thread reads only its tiles of B,
// which halves what each core pulls from L3 when B exceeds its L2 (the 3072
// rows of diff_dst in backward-data), and fewer, larger row chunks keep each
// panel of B in cache for more rows. SDDMM sums over the tiles into each
// diff_values entry, so its tasks take all tiles of a row chunk.
template <class Body>
void for_tasks(const SparsePanels& s, int64_t batch, int64_t num_tiles, int64_t tile_bytes,
               bool split_tiles, Body body) {
  const int64_t rows = s.rows;
  const int64_t work = (static_cast<int64_t>(s.nnz_before.back()) + rows) * batch;
  const int64_t threads = std::max(1, oneapi::tbb::this_task_arena::max_concurrency());
  if (work < kMinParallelWork || rows == 0) {
    body(0, num_tiles, 0, rows);
    return;
  }
  const int64_t target = threads * kChunksPerThread;
  const int64_t tile_groups = split_tiles ? num_tiles : 1;
  // Also enough chunks that one chunk's rows of a batch tile (the output
  // tiles that every panel reads and writes back, or diff_dst's for SDDMM)
  // stay in L2.
  const int64_t for_l2 = (rows * tile_bytes + kChunkBytesInL2 - 1) / kChunkBytesInL2;
  const int64_t chunks = std::min(rows, std::max((target + tile_groups - 1) / tile_groups, for_l2));

  const int64_t per_row = kRowCost * s.num_panels;
  const auto cost = [&](int64_t r) {
    return static_cast<int64_t>(s.nnz_before[static_cast<std::size_t>(r)]) + r * per_row;
  };
  std::vector<int64_t> bounds(static_cast<std::size_t>(chunks + 1), rows);
  bounds[0] = 0;
  for (int64_t c = 1; c < chunks; ++c) {
    const int64_t target_cost = cost(rows) * c / chunks;
    int64_t lo = bounds[static_cast<std::size_t>(c - 1)], hi = rows;
    while (lo < hi) {  // first row whose cost reaches the target
      const int64_t mid = lo + (hi - lo) / 2;
      if (cost(mid) < target_cost)
        lo = mid + 1;
      else
        hi = mid;
    }
    bounds[static_cast<std::size_t>(c)] = lo;
  }
  const auto run = [&](int64_t task) {
    const int64_t group = task / chunks, c = task % chunks;
    const int64_t t0 = split_tiles ? group : 0, t1 = split_tiles ? group + 1 : num_tiles;
    const int64_t r0 = bounds[static_cast<std::size_t>(c)];
    const int64_t r1 = bounds[static_cast<std::size_t>(c + 1)];
    if (r0 < r1) body(t0, t1, r0, r1);
  };
  const int64_t tasks = tile_groups * chunks;
  if (tasks == 1) {
    run(0);
    return;
  }
  oneapi::tbb::parallel_for(
      oneapi::tbb::blocked_range<int64_t>(0, tasks, 1),
      [&](const oneapi::tbb::blocked_range<int64_t>& range) {
        for (int64_t task = range.begin(); task != range.end(); ++task) run(task);
      },
      oneapi::tbb::simple_partitioner());
}

// Runs fn(tile, the call's PanelTileArgs, panel) over every batch tile of
// `b` and every panel of `s`, rows split into tasks (for_tasks; `by_rows` as
// there). The kernel's tile width and vector width set how b is packed.
template <class Kernel, class Fn>
void for_panel_tiles(const SparsePanels& s, View<const float> b, const Kernel& kernel, bool by_rows,
                     Fn fn) {
  const std::vector<Tile> tiles = make_tiles(b.batch, b.layout, kernel.tile_n);
  const PackedOperand packed(b, tiles, kernel.vec);
  const auto num_tiles = static_cast<int64_t>(tiles.size());
  const int64_t tile_bytes = kernel.tile_n * static_cast<int64_t>(sizeof(float));
  for_tasks(s, b.batch, num_tiles, tile_bytes, by_rows,
            [&](int64_t t0, int64_t t1, int64_t r0, int64_t r1) {
              for (int64_t t = t0; t < t1; ++t) {
                const auto i = static_cast<std::size_t>(t);
                const float* bt = packed.tile(i, tiles[i]);
                const int64_t ldb = packed.ld(i);
                for (int64_t p = 0; p < s.num_panels; ++p) {
                  fn(tiles[i],
                     PanelTileArgs{s.row_ptr(p), s.col.data(), bt + s.panel_begin(p) * ldb, ldb, r0,
                                   r1, tiles[i].n},
                     p);
                }
              }
            });
}

// out (s.rows, N) = [bias +] S * B, or += when init0 is kAccumulate.
void run_spmm(const SparsePanels& s, const float* values, View<const float> b, View<float> out,
              const float* bias, SpmmInit init0, const SpmmKernel& kernel) {
  if (s.rows == 0 || b.batch == 0) return;
  for_panel_tiles(s, b, kernel, true, [&](const Tile& tile, const PanelTileArgs& at, int64_t p) {
    kernel.fn({at, values, out.tile(tile), out.ld(), bias, p == 0 ? init0 : SpmmInit::kAccumulate});
  });
}

}  // namespace

int64_t linear_sparse_block_width(int64_t batch) {
  return batch >= kBatchBlock ? kBatchBlock : round_up(std::max<int64_t>(batch, 1), kBlockVector);
}

int64_t linear_sparse_blocked_size(int64_t features, int64_t batch) {
  const int64_t width = linear_sparse_block_width(batch);
  return features * round_up(batch, width);
}

void linear_sparse_to_blocked(float* blocked, const float* plain, int64_t features, int64_t batch) {
  const int64_t width = linear_sparse_block_width(batch);
  for (int64_t b0 = 0, t = 0; b0 < batch; b0 += width, ++t) {
    const int64_t bn = std::min(width, batch - b0);
    for (int64_t f = 0; f < features; ++f) {
      float* row = blocked + (t * features + f) * width;
      std::memcpy(row, plain + f * batch + b0, static_cast<std::size_t>(bn) * sizeof(float));
      std::fill(row + bn, row + width, 0.0f);
    }
  }
}

void linear_sparse_from_blocked(float* plain, const float* blocked, int64_t features,
                                int64_t batch) {
  const int64_t width = linear_sparse_block_width(batch);
  for (int64_t b0 = 0, t = 0; b0 < batch; b0 += width, ++t) {
    const int64_t bn = std::min(width, batch - b0);
    for (int64_t f = 0; f < features; ++f)
      std::memcpy(plain + f * batch + b0, blocked + (t * features + f) * width,
                  static_cast<std::size_t>(bn) * sizeof(float));
  }
}

void linear_sparse_forward(float* dst, const float* src, const LinearSparseWeights& w,
                           const float* bias, int64_t batch, BatchLayout layout,
                           const SpmmKernel* kernel) {
  const SpmmKernel& k = kernel != nullptr ? *kernel : *linear_sparse_default_kernels().fwd;
  run_spmm(w.fwd, w.values.data(), {src, w.in_features, batch, layout},
           {dst, w.out_features, batch, layout}, bias,
           bias != nullptr ? SpmmInit::kBias : SpmmInit::kZero, k);
}

void linear_sparse_backward_data(float* diff_src, const float* diff_dst,
                                 const LinearSparseWeights& w, int64_t batch, BatchLayout layout,
                                 bool accumulate, const SpmmKernel* kernel) {
  const SpmmKernel& k = kernel != nullptr ? *kernel : *linear_sparse_default_kernels().bwd_data;
  run_spmm(w.bwd, w.bwd_values.data(), {diff_dst, w.out_features, batch, layout},
           {diff_src, w.in_features, batch, layout}, nullptr,
           accumulate ? SpmmInit::kAccumulate : SpmmInit::kZero, k);
}

void linear_sparse_backward_weights(float* diff_values, float* diff_bias, const float* diff_dst,
                                    const float* src, const LinearSparseWeights& w, int64_t batch,
                                    BatchLayout layout, const SddmmKernel* kernel) {
  const SddmmKernel& k = kernel != nullptr ? *kernel : *linear_sparse_default_kernels().bwd_weights;
  const SparsePanels& s = w.fwd;
  if (s.rows == 0 || batch == 0) return;
  const View<const float> a{diff_dst, w.out_features, batch, layout};
  const View<const float> b{src, w.in_features, batch, layout};
  for_panel_tiles(s, b, k, false, [&](const Tile& tile, const PanelTileArgs& at, int64_t p) {
    k.fn({at, a.tile(tile), a.ld(), diff_values, p == 0 ? diff_bias : nullptr});
  });
}

}  // namespace sparsetrain::kernels
