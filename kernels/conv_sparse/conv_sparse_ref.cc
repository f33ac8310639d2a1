// Scalar micro-kernels of the sparse convolution: the SPARSETRAIN_ISA=ref
// path and a fallback on any x86-64. They run through the same operator layer
// as the SIMD kernels and sum every output in the same order (from the bias
// or zero, then the taps in index order; in accumulate mode that sum is then
// added to the previous value, and a fused ReLU backward keeps the result
// where the ReLU's output is positive; batch statistics add each output to
// its lane's sums).
#include <algorithm>

#include "kernels/conv_sparse/conv_sparse_ukernels.h"

namespace sparsetrain::kernels::ukernel {
namespace {

// Batch lanes summed together in the local accumulator.
constexpr int64_t kLanes = 64;

// Calls fn(k) for the line's entries of row r, panel by panel, in index order.
template <class Fn>
void for_each_tap(const ConvTaps& t, const ConvLine& line, int64_t r, Fn fn) {
  for (int64_t p = 0; p < t.panels; ++p) {
    const uint32_t* ptr = t.run_ptr + (r * t.panels + p) * t.runs_per_panel;
    for (int64_t s = 0; s < line.num_segs; ++s) {
      for (uint32_t k = ptr[line.segs[2 * s]]; k < ptr[line.segs[2 * s + 1]]; ++k) fn(k);
    }
  }
}

}  // namespace

void f32_conv_gather__ref(const ConvGatherArgs& a) {
  const ConvTaps& t = a.taps;
  const ConvLine& line = a.line;
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const int64_t base = line.in_base + (r / a.rows_per_group) * a.in_group_stride;
    float* out = a.out + r * a.out_rs + line.out_base;
    const float init = a.init == ConvSparseInit::kBias ? a.bias[r] : 0.0f;
    for (int64_t q = 0; q < line.positions; ++q) {
      for (int64_t l0 = 0; l0 < a.n; l0 += kLanes) {
        const int64_t lanes = std::min(kLanes, a.n - l0);
        float acc[kLanes];
        float* o = out + q * line.out_ps + l0;
        std::fill(acc, acc + lanes, init);
        for_each_tap(t, line, r, [&](uint32_t k) {
          const float v = t.tap[k].value;
          const float* x = a.in + (base + q * line.in_ps + t.tap[k].off + l0);
          for (int64_t l = 0; l < lanes; ++l) acc[l] += v * x[l];
        });
        if (a.init == ConvSparseInit::kAccumulate) {
          for (int64_t l = 0; l < lanes; ++l) acc[l] = o[l] + acc[l];
        }
        if (a.keep != nullptr) {
          const float* y = a.keep + r * a.out_rs + line.out_base + q * line.out_ps + l0;
          for (int64_t l = 0; l < lanes; ++l) acc[l] = y[l] > 0.0f ? acc[l] : 0.0f;
        }
        std::copy(acc, acc + lanes, o);
        if (a.stats != nullptr) {
          float* sums = a.stats + (r - a.row_begin) * kStatRowStride;
          for (int64_t l = 0; l < lanes; ++l) {
            sums[l % kStatLanes] += acc[l];
            sums[kStatLanes + l % kStatLanes] += acc[l] * acc[l];
          }
        }
      }
    }
  }
}

void f32_conv_sddmm__ref(const ConvSddmmArgs& a) {
  const ConvTaps& t = a.taps;
  const ConvLine& line = a.line;
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const int64_t base = line.in_base + (r / a.rows_per_group) * a.in_group_stride;
    const float* grad = a.grad + r * a.grad_rs + line.out_base;
    for (int64_t q = 0; q < line.positions; ++q) {
      const float* gq = grad + q * line.out_ps;
      if (a.partial_bias != nullptr) {
        float s = 0.0f;
        for (int64_t l = 0; l < a.n; ++l) s += gq[l];
        a.partial_bias[r] += s;
      }
      for_each_tap(t, line, r, [&](uint32_t k) {
        const float* x = a.in + (base + q * line.in_ps + t.tap[k].off);
        float s = 0.0f;
        for (int64_t l = 0; l < a.n; ++l) s += gq[l] * x[l];
        a.partial[k] += s;
      });
    }
  }
}

}  // namespace sparsetrain::kernels::ukernel
