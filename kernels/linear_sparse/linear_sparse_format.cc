// Building, refreshing and exporting the panelled-CSR weight of
// linear_sparse.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "kernels/common/csr_pair.h"
#include "kernels/linear_sparse/linear_sparse.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

// A panel of the dense operand is panel_cols rows of one batch tile (64
// floats, 256 bytes): at most 128 rows keep it within 32 KiB, two thirds of
// the 48 KiB L1, the rest left to the output rows and the index streams.
constexpr int64_t kPanelColsForL1 = 128;
// But every (row, panel) segment also costs about a dozen cycles besides its
// nonzeros (about three cycles each): entering and leaving the loop, and
// loading, summing and storing the row's output tile. So panels are only
// cut as long as a segment keeps about this many nonzeros on average, and a
// sparser weight gets fewer, wider panels (one at 98% sparsity on 768
// inputs). Measured on 768 <-> 3072 at 90/95/98% sparsity: this rule was
// within a few percent of the best fixed width at each density.
constexpr int64_t kMinSegmentNnz = 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Panel width for a rows x cols direction holding nnz nonzeros.
int64_t choose_panel_cols(int64_t rows, int64_t cols, int64_t nnz, int64_t forced) {
  if (cols <= 0) return 1;
  int64_t panels;
  if (forced > 0) {
    panels = ceil_div(cols, std::min(forced, kMaxPanelCols));
  } else {
    const int64_t per_row = rows > 0 ? nnz / rows : 0;
    const int64_t for_l1 = ceil_div(cols, kPanelColsForL1);
    const int64_t for_segments = per_row / kMinSegmentNnz;
    panels = std::clamp<int64_t>(for_segments, 1, std::max<int64_t>(for_l1, 1));
    panels = std::max(panels, ceil_div(cols, kMaxPanelCols));
  }
  return ceil_div(cols, panels);
}

void init_panels(SparsePanels& s, int64_t rows, int64_t cols, int64_t panel_cols) {
  s.rows = rows;
  s.cols = cols;
  s.panel_cols = panel_cols;
  s.num_panels = cols > 0 ? ceil_div(cols, panel_cols) : 1;
  s.ptr.assign(static_cast<std::size_t>(s.num_panels * rows + 1), 0);
}

// nnz_before[r]: the nonzeros of rows [0, r) over all panels (the operator
// layer balances its row chunks by it).
void count_rows(SparsePanels& s) {
  s.nnz_before.assign(static_cast<std::size_t>(s.rows + 1), 0);
  for (int64_t p = 0; p < s.num_panels; ++p) {
    const uint32_t* ptr = s.row_ptr(p);
    for (int64_t r = 0; r < s.rows; ++r)
      s.nnz_before[static_cast<std::size_t>(r + 1)] += ptr[r + 1] - ptr[r];
  }
  for (int64_t r = 0; r < s.rows; ++r)
    s.nnz_before[static_cast<std::size_t>(r + 1)] += s.nnz_before[static_cast<std::size_t>(r)];
}

template <class Keep>
LinearSparseWeights pack(const float* weights, int64_t out, int64_t in, Keep keep,
                         const LinearSparseOptions& options) {
  if (out < 0 || in < 0) {
    throw Error("linear_sparse_pack: weight shape (" + std::to_string(out) + ", " +
                std::to_string(in) + ") has a negative dimension");
  }
  LinearSparseWeights w;
  w.out_features = out;
  w.in_features = in;

  int64_t nnz = 0;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) nnz += keep(o, i) ? 1 : 0;
  if (nnz > static_cast<int64_t>(std::numeric_limits<uint32_t>::max())) {
    throw Error("linear_sparse_pack: " + std::to_string(nnz) +
                " nonzeros exceed the 2^32 - 1 the 32-bit row pointers can address; split the "
                "layer");
  }
  w.nnz = nnz;

  SparsePanels& f = w.fwd;
  SparsePanels& b = w.bwd;
  init_panels(f, out, in, choose_panel_cols(out, in, nnz, options.fwd_panel_cols));
  init_panels(b, in, out, choose_panel_cols(in, out, nnz, options.bwd_panel_cols));

  // Scanning o then i gives ascending columns within each fwd row and
  // ascending rows o within each bwd row, the order both sums run in.
  const auto for_each_entry = [&](auto&& visit) {
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t i = 0; i < in; ++i) {
        if (!keep(o, i)) continue;
        visit(static_cast<uint32_t>((i / f.panel_cols) * out + o),
              static_cast<uint32_t>((o / b.panel_cols) * in + i), std::pair{o, i});
      }
    }
  };
  const auto n = static_cast<std::size_t>(nnz);
  f.col.resize(n);
  b.col.resize(n);
  w.values.resize(n);
  w.bwd_perm.resize(n);
  w.bwd_values.resize(n);
  build_csr_pair(f.ptr, b.ptr, for_each_entry,
                 [&](std::pair<int64_t, int64_t> entry, uint32_t kf, uint32_t kb) {
                   const auto [o, i] = entry;
                   f.col[kf] = static_cast<uint16_t>(i % f.panel_cols);
                   b.col[kb] = static_cast<uint16_t>(o % b.panel_cols);
                   w.values[kf] = weights[o * in + i];
                   w.bwd_perm[kb] = kf;
                 });
  linear_sparse_sync_transposed(w);
  count_rows(f);
  count_rows(b);
  return w;
}

// Calls fn(o, i, k) for every stored nonzero, k its position in fwd order.
template <class Fn>
void for_each_nonzero(const LinearSparseWeights& w, Fn fn) {
  const SparsePanels& f = w.fwd;
  for (int64_t p = 0; p < f.num_panels; ++p) {
    const uint32_t* ptr = f.row_ptr(p);
    const int64_t base = f.panel_begin(p);
    for (int64_t o = 0; o < f.rows; ++o) {
      for (uint32_t k = ptr[o]; k < ptr[o + 1]; ++k) fn(o, base + f.col[k], k);
    }
  }
}

}  // namespace

int64_t SparsePanels::panel_width(int64_t p) const {
  return std::min(panel_cols, cols - p * panel_cols);
}

double LinearSparseWeights::density() const {
  const double total = static_cast<double>(out_features) * static_cast<double>(in_features);
  return total > 0 ? static_cast<double>(nnz) / total : 0.0;
}

int64_t LinearSparseWeights::bytes() const {
  const auto vec_bytes = [](const auto& v) {
    return static_cast<int64_t>(v.size() * sizeof(v[0]));
  };
  return vec_bytes(fwd.ptr) + vec_bytes(fwd.col) + vec_bytes(fwd.nnz_before) + vec_bytes(values) +
         vec_bytes(bwd.ptr) + vec_bytes(bwd.col) + vec_bytes(bwd.nnz_before) + vec_bytes(bwd_perm) +
         vec_bytes(bwd_values);
}

LinearSparseWeights linear_sparse_pack(const float* weights, const uint8_t* mask,
                                       int64_t out_features, int64_t in_features,
                                       const LinearSparseOptions& options) {
  return pack(
      weights, out_features, in_features,
      [&](int64_t o, int64_t i) { return mask[o * in_features + i] != 0; }, options);
}

LinearSparseWeights linear_sparse_pack_threshold(const float* weights, int64_t out_features,
                                                 int64_t in_features, float threshold,
                                                 const LinearSparseOptions& options) {
  return pack(
      weights, out_features, in_features,
      [&](int64_t o, int64_t i) { return std::fabs(weights[o * in_features + i]) > threshold; },
      options);
}

void linear_sparse_refresh(LinearSparseWeights& w, const float* weights) {
  const int64_t in = w.in_features;
  for_each_nonzero(w, [&](int64_t o, int64_t i, uint32_t k) { w.values[k] = weights[o * in + i]; });
  linear_sparse_sync_transposed(w);
}

void linear_sparse_sync_transposed(LinearSparseWeights& w) {
  const std::size_t n = w.bwd_perm.size();
  w.bwd_values.resize(n);
  for (std::size_t k = 0; k < n; ++k) w.bwd_values[k] = w.values[w.bwd_perm[k]];
}

void linear_sparse_scatter(const LinearSparseWeights& w, const float* per_nonzero, float* dense) {
  const int64_t in = w.in_features;
  std::fill(dense, dense + w.out_features * in, 0.0f);
  for_each_nonzero(w,
                   [&](int64_t o, int64_t i, uint32_t k) { dense[o * in + i] = per_nonzero[k]; });
}

void linear_sparse_unpack(const LinearSparseWeights& w, float* weights) {
  linear_sparse_scatter(w, w.values.data(), weights);
}

void linear_sparse_mask(const LinearSparseWeights& w, uint8_t* mask) {
  const int64_t in = w.in_features;
  std::fill(mask, mask + w.out_features * in, uint8_t{0});
  for_each_nonzero(w, [&](int64_t o, int64_t i, uint32_t) { mask[o * in + i] = 1; });
}

}  // namespace sparsetrain::kernels
