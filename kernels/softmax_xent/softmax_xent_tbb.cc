// Softmax cross-entropy over row blocks in parallel (TBB). Within a row the
// max and the exponentials run in float; the log-sum-exp and the loss of
// each row in double. Per-row losses are added in row order afterwards, so
// the result never depends on the thread count.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/softmax_xent/softmax_xent.h"

namespace sparsetrain::kernels {
namespace {

constexpr int64_t kRowsPerTask = 32;

}  // namespace

void softmax_xent_tbb(float* diff_logits, float* loss, int64_t* correct, const float* logits,
                      const int32_t* labels, int64_t n, int64_t k) {
  std::vector<double> row_loss(static_cast<size_t>(n));
  std::vector<char> row_hit(static_cast<size_t>(n));
  const float inv_n = 1.0f / static_cast<float>(n);
  const auto rows = [&](int64_t begin, int64_t end) {
    std::vector<float> e(static_cast<size_t>(k));
    for (int64_t i = begin; i < end; ++i) {
      const float* x = logits + i * k;
      const int64_t argmax = first_argmax(x, k);
      const float m = x[argmax];
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        e[j] = std::exp(x[j] - m);
        sum += e[j];
      }
      const double lse = static_cast<double>(m) + std::log(static_cast<double>(sum));
      row_loss[i] = lse - x[labels[i]];
      row_hit[i] = argmax == labels[i] ? 1 : 0;
      if (diff_logits == nullptr) continue;
      float* g = diff_logits + i * k;
      const float scale = inv_n / sum;
      for (int64_t j = 0; j < k; ++j) g[j] = e[j] * scale;
      g[labels[i]] -= inv_n;
    }
  };
  if (n * k <= kRowsPerTask * 1024) {
    rows(0, n);
  } else {
    const int64_t tasks = (n + kRowsPerTask - 1) / kRowsPerTask;
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks),
                      [&](const tbb::blocked_range<int64_t>& r) {
                        rows(r.begin() * kRowsPerTask, std::min(n, r.end() * kRowsPerTask));
                      });
  }
  double total = 0.0;
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    total += row_loss[i];
    hits += row_hit[i];
  }
  *loss = static_cast<float>(total / static_cast<double>(n));
  *correct = hits;
}

}  // namespace sparsetrain::kernels
