// Dense fully connected layer in fp32: forward, backward-data,
// backward-weights.
//
//   dst = src * weights^T + bias        dst (N, O), src (N, I), weights (O, I)
//   diff_src = diff_dst * weights       (N, I)
//   diff_weights += diff_dst^T * src    (O, I)
//   diff_bias += sum over n of diff_dst[n, :]
//
// All matrices are plain row-major. Forward and backward-data OVERWRITE
// dst / diff_src; backward-weights ACCUMULATES (+=) into diff_weights and
// diff_bias (the trainer zeroes gradients). bias and diff_bias may be null.
//
// Variants: `ref` is plain scalar loops (the oracle); `dnnl` runs oneDNN
// matmul primitives, one per (shape, pass, thread count), cached. Kernels
// never throw.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/common/dense_impl.h"
#include "kernels/common/kernel_list.h"

namespace sparsetrain::kernels {

struct LinearShape {
  int64_t batch = 1;         // N
  int64_t in_features = 1;   // I
  int64_t out_features = 1;  // O

  int64_t flops() const { return 2 * batch * in_features * out_features; }
  bool valid() const { return batch >= 0 && in_features > 0 && out_features > 0; }
};

// --- ref: scalar loops -------------------------------------------------------

void linear_forward_ref(float* dst,            // (N, O)
                        const float* src,      // (N, I)
                        const float* weights,  // (O, I)
                        const float* bias,     // (O) or null
                        const LinearShape& shape);
void linear_backward_data_ref(float* diff_src,        // (N, I), overwritten
                              const float* diff_dst,  // (N, O)
                              const float* weights,   // (O, I)
                              const LinearShape& shape);
void linear_backward_weights_ref(float* diff_weights,    // (O, I), +=
                                 float* diff_bias,       // (O) or null, +=
                                 const float* diff_dst,  // (N, O)
                                 const float* src,       // (N, I)
                                 const LinearShape& shape);

// --- dnnl: oneDNN matmul -------------------------------------------------------

void linear_forward_dnnl(float* dst, const float* src, const float* weights, const float* bias,
                         const LinearShape& shape);
void linear_backward_data_dnnl(float* diff_src, const float* diff_dst, const float* weights,
                               const LinearShape& shape);
void linear_backward_weights_dnnl(float* diff_weights, float* diff_bias, const float* diff_dst,
                                  const float* src, const LinearShape& shape);

// The oneDNN implementations chosen for the three passes, e.g.
// "fwd=brg:avx512_core bwd_d=brg:avx512_core bwd_w=brg:avx512_core".
std::string linear_dnnl_impl_info(const LinearShape& shape);

// --- the list of dense variants: drives tests, benchmarks and layers alike ---

using LinearForwardFn = void (*)(float*, const float*, const float*, const float*,
                                 const LinearShape&);
using LinearBackwardDataFn = void (*)(float*, const float*, const float*, const LinearShape&);
using LinearBackwardWeightsFn = void (*)(float*, float*, const float*, const float*,
                                         const LinearShape&);

using LinearKernels = DenseKernels<LinearForwardFn, LinearBackwardDataFn, LinearBackwardWeightsFn>;

inline constexpr LinearKernels kLinearDenseEntries[] = {
    {"dnnl", Isa::kRef, &linear_forward_dnnl, &linear_backward_data_dnnl,
     &linear_backward_weights_dnnl},
    {"ref", Isa::kRef, &linear_forward_ref, &linear_backward_data_ref,
     &linear_backward_weights_ref},
};
// oneDNN first, the scalar reference last.
inline constexpr KernelList<LinearKernels> kLinearDenseKernels(kLinearDenseEntries);

// The variant the runtime's dense linear nodes run (dense_pick).
inline const LinearKernels& linear_dense() { return dense_pick(kLinearDenseKernels); }

}  // namespace sparsetrain::kernels
