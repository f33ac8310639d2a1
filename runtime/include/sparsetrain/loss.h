// The training loss: softmax cross-entropy of a classifier's logits.
#pragma once

#include <cstdint>
#include <span>

#include "sparsetrain/core/export.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

struct LossResult {
  float loss = 0.0f;    // mean over the batch of -log softmax(logits)[label]
  int64_t correct = 0;  // rows whose largest logit (the first, on ties) is the label
};

// logits: (N, K), plain (or kCN, reordered first); labels: N class indices
// in [0, K). When diff_logits is not null it receives a new (N, K) plain
// tensor, the gradient of the mean loss: (softmax(logits) - onehot) / N.
// Throws Error on a size mismatch, an empty batch or a label out of range. A
// non-finite loss (from non-finite logits) is returned as is.
LossResult softmax_cross_entropy(const Tensor& logits, std::span<const int32_t> labels,
                                 Tensor* diff_logits);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
