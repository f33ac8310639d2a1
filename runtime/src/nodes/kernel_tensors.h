// Tensor front ends of kernel formats, for the runtime and the tests (the
// kernels themselves take raw arrays and know no Tensor).
#pragma once

#include "kernels/linear_sparse/linear_sparse.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::kernels {

// weights is (O, I) plain; mask (O, I), nonzero = kept. Throw
// sparsetrain::Error naming the mismatch on bad shapes or a negative
// threshold.
LinearSparseWeights linear_sparse_pack(const Tensor& weights, const Tensor& mask,
                                       const LinearSparseOptions& options = {});
LinearSparseWeights linear_sparse_pack_threshold(const Tensor& weights, float threshold,
                                                 const LinearSparseOptions& options = {});
// The dense (O, I) weight (zeros at the pruned positions).
Tensor linear_sparse_unpack(const LinearSparseWeights& w);

}  // namespace sparsetrain::kernels
