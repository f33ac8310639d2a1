#include "sparsetrain/loss.h"

#include <string>

#include "kernels/softmax_xent/softmax_xent.h"
#include "sparsetrain/error.h"

namespace sparsetrain {

LossResult softmax_cross_entropy(const Tensor& logits, std::span<const int32_t> labels,
                                 Tensor* diff_logits) {
  if (!logits.defined() || logits.rank() != 2) {
    throw Error("softmax_cross_entropy: logits must be a (batch, classes) tensor, got " +
                (logits.defined() ? logits.shape_string() : std::string("an empty tensor")));
  }
  const int64_t n = logits.dim(0), k = logits.dim(1);
  if (n == 0 || k == 0) {
    throw Error("softmax_cross_entropy: logits " + logits.shape_string() +
                " hold no values (empty batch or no classes)");
  }
  if (static_cast<int64_t>(labels.size()) != n) {
    throw Error("softmax_cross_entropy: " + std::to_string(labels.size()) +
                " labels for a batch of " + std::to_string(n) + " logit rows");
  }
  for (int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= k) {
      throw Error("softmax_cross_entropy: label " + std::to_string(labels[i]) + " of sample " +
                  std::to_string(i) + " is outside [0, " + std::to_string(k) +
                  "): the dataset has more classes than the model outputs");
    }
  }
  const Tensor rows = to_layout(logits, Layout::kPlain);
  LossResult result;
  float* diff = nullptr;
  if (diff_logits != nullptr) {
    *diff_logits = Tensor::empty({n, k});
    diff = diff_logits->data();
  }
  kernels::softmax_xent_kernels().pick().forward_backward(diff, &result.loss, &result.correct,
                                                          rows.data(), labels.data(), n, k);
  return result;
}

}  // namespace sparsetrain
