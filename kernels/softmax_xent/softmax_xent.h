// Softmax cross-entropy over logits, the loss of a classifier, fused with its
// gradient. For row i with label y_i:
//   lse_i  = m_i + log(sum_j exp(x_ij - m_i)),  m_i = max_j x_ij  (log-sum-exp,
//            so no exp overflows)
//   loss   = mean_i (lse_i - x_i,y_i)
//   diff_x = (softmax(x_i) - onehot(y_i)) / N
// Non-finite logits give a non-finite loss, returned as is (the trainer
// checks). The diff is OVERWRITTEN.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/common/kernel_list.h"

namespace sparsetrain::kernels {

// logits (N, K) row-major; labels (N), each in [0, K) (the caller checks);
// diff_logits (N, K) row-major, may be null. Writes the mean loss to *loss
// and the number of rows whose first maximum is the label to *correct.
using SoftmaxXentFn = void (*)(float* diff_logits, float* loss, int64_t* correct,
                               const float* logits, const int32_t* labels, int64_t n, int64_t k);

struct SoftmaxXentKernel {
  const char* name;  // "tbb", "ref"
  Isa isa;           // kernels/common/kernel_list.h
  SoftmaxXentFn forward_backward;
};

// Every implementation, most preferred first; the scalar reference is last.
// The loss runs softmax_xent_kernels().pick() (the reference when
// SPARSETRAIN_ISA=ref).
const KernelList<SoftmaxXentKernel>& softmax_xent_kernels();

// The first index of the row's largest logit (the prediction both variants
// count as correct or not).
inline int64_t first_argmax(const float* x, int64_t k) {
  int64_t argmax = 0;
  for (int64_t j = 1; j < k; ++j)
    if (x[j] > x[argmax]) argmax = j;
  return argmax;
}

// Scalar reference, all in double.
void softmax_xent_ref(float* diff_logits, float* loss, int64_t* correct, const float* logits,
                      const int32_t* labels, int64_t n, int64_t k);
// Rows in parallel TBB blocks, float within a row, per-row losses added in
// row order in double (the result does not depend on the thread count).
void softmax_xent_tbb(float* diff_logits, float* loss, int64_t* correct, const float* logits,
                      const int32_t* labels, int64_t n, int64_t k);

}  // namespace sparsetrain::kernels
