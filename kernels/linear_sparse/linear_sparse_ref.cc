// Scalar reference of the sparse linear layer: the oracle every kernel is
// tested against (plain loops over the index and the unpacked operands), and
// scalar micro-kernels that run through the same operator layer as the SIMD
// ones (the SPARSETRAIN_ISA=ref path, and a fallback on any x86-64).
#include <algorithm>

#include "kernels/linear_sparse/linear_sparse.h"
#include "kernels/linear_sparse/linear_sparse_ukernels.h"

namespace sparsetrain::kernels {

// --- oracle ------------------------------------------------------------------

void linear_sparse_forward_oracle(float* dst,        // (O, N)
                                  const float* src,  // (I, N)
                                  const LinearSparseWeights& w,
                                  const float* bias,  // (O) or null
                                  int64_t batch) {
  const SparsePanels& s = w.fwd;
  for (int64_t o = 0; o < w.out_features; ++o) {
    float* d = dst + o * batch;
    std::fill(d, d + batch, bias != nullptr ? bias[o] : 0.0f);
  }
  // Panels in order, so each dst element sums its nonzeros by ascending i.
  for (int64_t p = 0; p < s.num_panels; ++p) {
    const uint32_t* ptr = s.row_ptr(p);
    for (int64_t o = 0; o < w.out_features; ++o) {
      float* d = dst + o * batch;
      for (uint32_t k = ptr[o]; k < ptr[o + 1]; ++k) {
        const float v = w.values[k];
        const float* x = src + (s.panel_begin(p) + s.col[k]) * batch;
        for (int64_t n = 0; n < batch; ++n) d[n] += v * x[n];
      }
    }
  }
}

void linear_sparse_backward_data_oracle(float* diff_src,        // (I, N)
                                        const float* diff_dst,  // (O, N)
                                        const LinearSparseWeights& w, int64_t batch) {
  // Scatter form straight from the fwd index (no transposed copy): for each
  // i the contributions arrive by ascending o, as in the bwd index.
  const SparsePanels& s = w.fwd;
  std::fill(diff_src, diff_src + w.in_features * batch, 0.0f);
  for (int64_t o = 0; o < w.out_features; ++o) {
    const float* g = diff_dst + o * batch;
    for (int64_t p = 0; p < s.num_panels; ++p) {
      const uint32_t* ptr = s.row_ptr(p);
      for (uint32_t k = ptr[o]; k < ptr[o + 1]; ++k) {
        const float v = w.values[k];
        float* d = diff_src + (s.panel_begin(p) + s.col[k]) * batch;
        for (int64_t n = 0; n < batch; ++n) d[n] += v * g[n];
      }
    }
  }
}

void linear_sparse_backward_weights_oracle(float* diff_values,     // (nnz), +=
                                           float* diff_bias,       // (O) or null, +=
                                           const float* diff_dst,  // (O, N)
                                           const float* src,       // (I, N)
                                           const LinearSparseWeights& w, int64_t batch) {
  const SparsePanels& s = w.fwd;
  for (int64_t p = 0; p < s.num_panels; ++p) {
    const uint32_t* ptr = s.row_ptr(p);
    for (int64_t o = 0; o < w.out_features; ++o) {
      const float* g = diff_dst + o * batch;
      for (uint32_t k = ptr[o]; k < ptr[o + 1]; ++k) {
        const float* x = src + (s.panel_begin(p) + s.col[k]) * batch;
        float sum = 0.0f;
        for (int64_t n = 0; n < batch; ++n) sum += g[n] * x[n];
        diff_values[k] += sum;
      }
    }
  }
  if (diff_bias != nullptr) {
    for (int64_t o = 0; o < w.out_features; ++o) {
      const float* g = diff_dst + o * batch;
      float sum = 0.0f;
      for (int64_t n = 0; n < batch; ++n) sum += g[n];
      diff_bias[o] += sum;
    }
  }
}

// --- scalar micro-kernels ----------------------------------------------------

namespace ukernel {

void f32_spmm__ref(const SpmmArgs& a) {
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    float* out = a.out + r * a.ldo;
    if (a.init == SpmmInit::kZero) std::fill(out, out + a.n, 0.0f);
    if (a.init == SpmmInit::kBias) std::fill(out, out + a.n, a.bias[r]);
    for (uint32_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
      const float v = a.values[k];
      const float* b = a.b + static_cast<int64_t>(a.col[k]) * a.ldb;
      for (int64_t j = 0; j < a.n; ++j) out[j] += v * b[j];
    }
  }
}

void f32_sddmm__ref(const SddmmArgs& a) {
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const float* g = a.a + r * a.lda;
    for (uint32_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
      const float* b = a.b + static_cast<int64_t>(a.col[k]) * a.ldb;
      float sum = 0.0f;
      for (int64_t j = 0; j < a.n; ++j) sum += g[j] * b[j];
      a.diff_values[k] += sum;
    }
    if (a.diff_bias != nullptr) {
      float sum = 0.0f;
      for (int64_t j = 0; j < a.n; ++j) sum += g[j];
      a.diff_bias[r] += sum;
    }
  }
}

}  // namespace ukernel
}  // namespace sparsetrain::kernels
