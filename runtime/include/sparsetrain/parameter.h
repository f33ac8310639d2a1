// Parameters (trainable tensors with their gradient) and buffers (state that
// is saved but not trained, such as BatchNorm running statistics).
#pragma once

#include <string>

#include "sparsetrain/tensor.h"

namespace sparsetrain {

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

  bool trainable() const { return kind != ParamKind::kBuffer; }
  bool prunable() const { return kind == ParamKind::kWeight; }
  // Weight decay applies to weights only (not biases, BatchNorm or buffers).
  bool decays() const { return kind == ParamKind::kWeight; }
};

}  // namespace sparsetrain
