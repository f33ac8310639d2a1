// Tensor front ends of the sparse linear format (kernels take raw arrays).
#include "nodes/kernel_tensors.h"

#include <string>
#include <vector>

#include "sparsetrain/error.h"

namespace sparsetrain::kernels {
namespace {

void check_weight_tensor(const Tensor& weights, const char* what) {
  if (weights.rank() != 2) {
    throw Error(std::string(what) + ": the weight must be 2-D (out_features, in_features), got " +
                weights.shape_string());
  }
}

}  // namespace

LinearSparseWeights linear_sparse_pack(const Tensor& weights, const Tensor& mask,
                                       const LinearSparseOptions& options) {
  check_weight_tensor(weights, "linear_sparse_pack");
  if (mask.shape() != weights.shape()) {
    throw Error("linear_sparse_pack: the mask " + mask.shape_string() +
                " must have the weight's shape " + weights.shape_string());
  }
  const int64_t out = weights.dim(0), in = weights.dim(1);
  std::vector<uint8_t> keep(static_cast<size_t>(out * in));
  for (int64_t k = 0; k < out * in; ++k) keep[k] = mask.data()[k] != 0.0f;
  return linear_sparse_pack(weights.data(), keep.data(), out, in, options);
}

LinearSparseWeights linear_sparse_pack_threshold(const Tensor& weights, float threshold,
                                                 const LinearSparseOptions& options) {
  check_weight_tensor(weights, "linear_sparse_pack_threshold");
  if (!(threshold >= 0.0f)) {
    throw Error("linear_sparse_pack_threshold: the magnitude threshold must be >= 0, got " +
                std::to_string(threshold));
  }
  return linear_sparse_pack_threshold(weights.data(), weights.dim(0), weights.dim(1), threshold,
                                      options);
}

Tensor linear_sparse_unpack(const LinearSparseWeights& w) {
  Tensor t = Tensor::empty({w.out_features, w.in_features});
  linear_sparse_unpack(w, t.data());
  return t;
}

}  // namespace sparsetrain::kernels
