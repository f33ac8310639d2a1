// Parameters (trainable tensors with their gradient) and buffers (state that
// is saved but not trained, such as BatchNorm running statistics).
#pragma once

#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

enum class ParamKind : uint8_t {
  kWeight,  // conv / linear weight: prunable
  kBias,
  kNorm,    // BatchNorm scale and shift
  kBuffer,  // not trained: running mean / variance
};

struct Parameter {
  std::string name;  // "<node>.<field>", e.g. "conv1.weight"
  ParamKind kind = ParamKind::kWeight;
  Tensor value;
  Tensor grad;  // same shape; backward accumulates (+=), the trainer zeroes
  // Compressed state (DESIGN.md "Parameters and sparsity"): value and grad
  // hold only the stored entries, shape {nnz}, in the sparse format's order;
  // dense_shape is the logical shape and dense_index[k] the row-major flat
  // position in it of entry k. Both are empty for a dense parameter.
  Shape dense_shape;
  std::vector<int64_t> dense_index;

  // Masked state: dense storage plus a mask of the same shape (1 keep,
  // 0 pruned), re-applied to the gradient before every optimizer step and to
  // the value after it, so a pruned weight stays exactly zero whatever the
  // momentum or weight decay. Undefined when not masked.
  Tensor mask;

  // Frozen (Graph::set_frozen): backward adds no gradient to it and skips a
  // weight-gradient pass that only it needs, and the optimizer leaves it
  // exactly as it is (no step, no weight decay). Still counted and saved.
  bool frozen = false;

  bool compressed() const { return !dense_shape.empty(); }
  bool masked() const { return mask.defined(); }
  // Elements of the logical (dense) parameter.
  int64_t dense_numel() const { return compressed() ? Tensor::count(dense_shape) : value.numel(); }

  bool trainable() const { return kind != ParamKind::kBuffer; }
  // Trainable and not frozen: what an optimizer step changes.
  bool updated() const { return trainable() && !frozen; }
  bool prunable() const { return kind == ParamKind::kWeight; }
  // Weight decay applies to weights only (not biases, BatchNorm or buffers).
  bool decays() const { return kind == ParamKind::kWeight; }
};

// A dense parameter `name` of `kind` with value and gradient zero.
Parameter zero_parameter(std::string name, ParamKind kind, const Shape& shape);

// The logical value in plain row-major order: the value itself, or the
// stored entries of a compressed parameter scattered into zeros.
Tensor dense_value(const Parameter& p);
// The 0/1 mask (logical shape) of the positions a compressed or masked
// parameter keeps; all ones for a dense one.
Tensor kept_mask(const Parameter& p);

// Zeroes the pruned entries of a masked parameter's value (and grad, when
// `grads` is set); no-op for others.
inline void apply_mask(Parameter& p, bool grads) {
  if (!p.masked()) return;
  const float* m = p.mask.data();
  float* v = p.value.data();
  for (int64_t i = 0; i < p.value.numel(); ++i) v[i] *= m[i];
  if (grads && p.grad.defined()) {
    float* g = p.grad.data();
    for (int64_t i = 0; i < p.grad.numel(); ++i) g[i] *= m[i];
  }
}

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
