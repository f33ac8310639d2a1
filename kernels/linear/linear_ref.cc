// The scalar oracle: each output element is one dot product, summed in double
// precision so the reference is at least as accurate as any optimised variant.
#include "kernels/linear/linear.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {

void linear_forward_ref(float* dst, const float* src, const float* weights, const float* bias,
                        const LinearShape& s) {
  SPARSETRAIN_ASSERT(s.valid());
  const int64_t in = s.in_features, out = s.out_features;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias != nullptr ? bias[o] : 0.0;
      for (int64_t i = 0; i < in; ++i)
        acc += static_cast<double>(src[n * in + i]) * weights[o * in + i];
      dst[n * out + o] = static_cast<float>(acc);
    }
}

void linear_backward_data_ref(float* diff_src, const float* diff_dst, const float* weights,
                              const LinearShape& s) {
  SPARSETRAIN_ASSERT(s.valid());
  const int64_t in = s.in_features, out = s.out_features;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t i = 0; i < in; ++i) {
      double acc = 0.0;
      for (int64_t o = 0; o < out; ++o)
        acc += static_cast<double>(diff_dst[n * out + o]) * weights[o * in + i];
      diff_src[n * in + i] = static_cast<float>(acc);
    }
}

void linear_backward_weights_ref(float* diff_weights, float* diff_bias, const float* diff_dst,
                                 const float* src, const LinearShape& s) {
  SPARSETRAIN_ASSERT(s.valid());
  const int64_t in = s.in_features, out = s.out_features;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      double acc = 0.0;
      for (int64_t n = 0; n < s.batch; ++n)
        acc += static_cast<double>(diff_dst[n * out + o]) * src[n * in + i];
      diff_weights[o * in + i] += static_cast<float>(acc);
    }
    if (diff_bias != nullptr) {
      double acc = 0.0;
      for (int64_t n = 0; n < s.batch; ++n) acc += diff_dst[n * out + o];
      diff_bias[o] += static_cast<float>(acc);
    }
  }
}

}  // namespace sparsetrain::kernels
