// Scalar reference for softmax cross-entropy, in double: the test oracle.
#include <cmath>

#include "kernels/softmax_xent/softmax_xent.h"

namespace sparsetrain::kernels {

void softmax_xent_ref(float* diff_logits, float* loss, int64_t* correct, const float* logits,
                      const int32_t* labels, int64_t n, int64_t k) {
  double total = 0.0;
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* x = logits + i * k;
    const int64_t argmax = first_argmax(x, k);
    const double m = x[argmax];
    double sum = 0.0;
    for (int64_t j = 0; j < k; ++j) sum += std::exp(x[j] - m);
    const double lse = m + std::log(sum);
    total += lse - x[labels[i]];
    hits += argmax == labels[i] ? 1 : 0;
    if (diff_logits == nullptr) continue;
    for (int64_t j = 0; j < k; ++j) {
      const double p = std::exp(x[j] - m) / sum;
      diff_logits[i * k + j] = static_cast<float>((p - (j == labels[i] ? 1.0 : 0.0)) / n);
    }
  }
  *loss = static_cast<float>(total / static_cast<double>(n));
  *correct = hits;
}

}  // namespace sparsetrain::kernels
