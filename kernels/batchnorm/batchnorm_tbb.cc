// BatchNorm2d over TBB for baseline x86-64 (SSE2): the loops of
// batchnorm_tbb_impl.h.
#include "kernels/batchnorm/batchnorm_tbb_impl.h"

namespace sparsetrain::kernels {

void batchnorm_forward_training_tbb(float* dst, float* mean, float* rstd, const float* src,
                                    const float* gamma, const float* beta, const BatchNormDesc& d) {
  forward_training(dst, mean, rstd, src, gamma, beta, d);
}

void batchnorm_backward_tbb(float* diff_src, float* diff_gamma, float* diff_beta,
                            const float* diff_dst, const float* src, const float* gamma,
                            const float* beta, const float* mean, const float* rstd,
                            const BatchNormDesc& d) {
  backward(diff_src, diff_gamma, diff_beta, diff_dst, src, gamma, beta, mean, rstd, d);
}

void batchnorm_forward_inference_tbb(float* dst, const float* src, const float* gamma,
                                     const float* beta, const float* mean, const float* var,
                                     const BatchNormDesc& d) {
  forward_inference(dst, src, gamma, beta, mean, var, d);
}

void batchnorm_backward_inference_tbb(float* diff_src, float* diff_gamma, float* diff_beta,
                                      const float* diff_dst, const float* src, const float* gamma,
                                      const float* mean, const float* var, const BatchNormDesc& d) {
  backward_inference(diff_src, diff_gamma, diff_beta, diff_dst, src, gamma, mean, var, d);
}

}  // namespace sparsetrain::kernels
