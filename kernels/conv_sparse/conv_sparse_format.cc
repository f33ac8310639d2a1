// Building, refreshing and exporting the compressed convolution weight of
// conv_sparse.h: the stored positions in OIHW order, and the fwd and bwd
// orders of the same entries that the kernels walk.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/common/csr_pair.h"
#include "kernels/conv_sparse/conv_sparse.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

void check_geometry(const char* what, int64_t out, int64_t in, int64_t kh, int64_t kw,
                    int64_t groups) {
  const auto dims = [&] {
    return " (O=" + std::to_string(out) + ", C=" + std::to_string(in) +
           ", KH=" + std::to_string(kh) + ", KW=" + std::to_string(kw) +
           ", groups=" + std::to_string(groups) + ")";
  };
  if (out < 0 || in < 0 || kh <= 0 || kw <= 0 || groups <= 0) {
    throw Error(std::string(what) + ": invalid weight geometry" + dims() +
                "; channel counts must be >= 0, kernel sizes and groups > 0");
  }
  if (in % groups != 0 || out % groups != 0) {
    throw Error(std::string(what) + ": groups must divide both channel counts" + dims());
  }
  const int64_t dense = out * (in / groups) * kh * kw;
  if (dense > static_cast<int64_t>(std::numeric_limits<uint32_t>::max())) {
    throw Error(std::string(what) + ": the weight has " + std::to_string(dense) +
                " positions, more than the 2^32 - 1 the 32-bit index can address" + dims());
  }
}

// Panels. Every (row, panel) reloads and stores its tile's accumulators (a
// dozen cycles besides its taps), so a panel only pays when a row keeps
// enough taps in it: panels hold enough channels for about kPanelTaps stored
// taps per row. Measured on 3x3 layers at 90% sparsity (2-core Zen 5): at
// batch 128 (a 64-lane block of a 512-byte position: strided inputs that L2
// holds poorly) such panels ran 10-15% faster than none; at batch 32 they
// neither helped nor hurt; narrower panels, sized for L1, were slower at both
// (the reloads of the partial sums cost more than the L1 hits save).
constexpr double kPanelTaps = 24.0;

int64_t panel_channels(int64_t channels, int64_t khw, double density) {
  if (channels <= 1 || density <= 0.0) return std::max<int64_t>(channels, 1);
  const double want = std::ceil(kPanelTaps / (static_cast<double>(khw) * density));
  return std::clamp<int64_t>(static_cast<int64_t>(want), 1, channels);
}

// Fills the fwd and bwd orders from `position`, and both value copies.
void build_index(ConvSparseWeights& w) {
  const int64_t kh = w.kernel_h, kw = w.kernel_w, khw = kh * kw;
  const int64_t cg = w.groups > 0 ? w.in_channels / w.groups : 0;
  const int64_t og = w.groups > 0 ? w.out_channels / w.groups : 0;
  const int64_t per_filter = cg * khw;
  const auto n = static_cast<std::size_t>(w.nnz);
  w.fwd_panel = panel_channels(cg, khw, w.density());
  w.fwd_panels = std::max<int64_t>(1, (cg + w.fwd_panel - 1) / w.fwd_panel);
  w.bwd_panel = panel_channels(og, khw, w.density());
  w.bwd_panels = std::max<int64_t>(1, (og + w.bwd_panel - 1) / w.bwd_panel);

  // Counting sorts, stable in position order: fwd by (o, panel, i, j), so
  // each run keeps c ascending; bwd by (c, panel, i, j), so each run keeps o
  // ascending.
  w.fwd_ptr.assign(static_cast<std::size_t>(w.out_channels * w.fwd_panels * khw + 1), 0);
  w.bwd_ptr.assign(static_cast<std::size_t>(w.in_channels * w.bwd_panels * khw + 1), 0);
  const auto for_each_entry = [&](auto&& visit) {
    for (std::size_t k = 0; k < n; ++k) {
      const int64_t o = w.position[k] / per_filter, r = w.position[k] % per_filter;
      const int64_t c = r / khw, ij = r % khw;
      const int64_t c_all = o / og * cg + c, o_in = o % og;
      visit(static_cast<uint32_t>((o * w.fwd_panels + c / w.fwd_panel) * khw + ij),
            static_cast<uint32_t>((c_all * w.bwd_panels + o_in / w.bwd_panel) * khw + ij), k);
    }
  };
  w.fwd_entry.resize(n);
  w.fwd_tap.resize(n);
  w.bwd_entry.resize(n);
  w.bwd_tap.resize(n);
  build_csr_pair(w.fwd_ptr, w.bwd_ptr, for_each_entry,
                 [&](std::size_t k, uint32_t kf, uint32_t kb) {
                   const int64_t o = w.position[k] / per_filter, r = w.position[k] % per_filter;
                   w.fwd_entry[kf] = static_cast<uint32_t>(k);
                   w.fwd_tap[kf] = static_cast<uint32_t>(r);
                   w.bwd_entry[kb] = static_cast<uint32_t>(k);
                   w.bwd_tap[kb] = static_cast<uint32_t>((o % og) * khw + r % khw);
                 });
}

template <class Keep>
ConvSparseWeights pack(const char* what, const float* weights, int64_t out, int64_t in, int64_t kh,
                       int64_t kw, int64_t groups, Keep keep) {
  check_geometry(what, out, in, kh, kw, groups);
  ConvSparseWeights w;
  w.out_channels = out;
  w.in_channels = in;
  w.kernel_h = kh;
  w.kernel_w = kw;
  w.groups = groups;
  const int64_t dense = w.dense_size();
  for (int64_t p = 0; p < dense; ++p) {
    if (!keep(p)) continue;
    w.position.push_back(static_cast<uint32_t>(p));
    w.values.push_back(weights[p]);
  }
  w.nnz = static_cast<int64_t>(w.position.size());
  build_index(w);
  return w;
}

}  // namespace

double ConvSparseWeights::density() const {
  const int64_t total = dense_size();
  return total > 0 ? static_cast<double>(nnz) / static_cast<double>(total) : 0.0;
}

int64_t ConvSparseWeights::bytes() const {
  const auto vec_bytes = [](const auto& v) {
    return static_cast<int64_t>(v.size() * sizeof(v[0]));
  };
  return vec_bytes(position) + vec_bytes(values) + vec_bytes(fwd_ptr) + vec_bytes(fwd_entry) +
         vec_bytes(fwd_tap) + vec_bytes(bwd_ptr) + vec_bytes(bwd_entry) + vec_bytes(bwd_tap);
}

ConvSparseWeights conv_sparse_pack(const float* weights, const uint8_t* mask, int64_t out_channels,
                                   int64_t in_channels, int64_t kernel_h, int64_t kernel_w,
                                   int64_t groups) {
  return pack("conv_sparse_pack", weights, out_channels, in_channels, kernel_h, kernel_w, groups,
              [&](int64_t p) { return mask[p] != 0; });
}

ConvSparseWeights conv_sparse_pack_threshold(const float* weights, int64_t out_channels,
                                             int64_t in_channels, int64_t kernel_h,
                                             int64_t kernel_w, int64_t groups, float threshold) {
  if (!(threshold >= 0.0f)) {
    throw Error("conv_sparse_pack_threshold: the magnitude threshold must be >= 0, got " +
                std::to_string(threshold));
  }
  return pack("conv_sparse_pack_threshold", weights, out_channels, in_channels, kernel_h, kernel_w,
              groups, [&](int64_t p) { return std::fabs(weights[p]) > threshold; });
}

void conv_sparse_refresh(ConvSparseWeights& w, const float* weights) {
  for (std::size_t k = 0; k < w.position.size(); ++k) w.values[k] = weights[w.position[k]];
}

void conv_sparse_scatter(const ConvSparseWeights& w, const float* per_nonzero, float* dense) {
  std::fill(dense, dense + w.dense_size(), 0.0f);
  for (std::size_t k = 0; k < w.position.size(); ++k) dense[w.position[k]] = per_nonzero[k];
}

void conv_sparse_unpack(const ConvSparseWeights& w, float* weights) {
  conv_sparse_scatter(w, w.values.data(), weights);
}

void conv_sparse_mask(const ConvSparseWeights& w, uint8_t* mask) {
  std::fill(mask, mask + w.dense_size(), uint8_t{0});
  for (uint32_t p : w.position) mask[p] = 1;
}

}  // namespace sparsetrain::kernels
