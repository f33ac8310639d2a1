// BatchNorm2d over TBB for AVX-512 (this file gets the AVX-512 and FMA flags):
// the loops of batchnorm_tbb_impl.h, 16 floats per vector.
#include "kernels/batchnorm/batchnorm_tbb_impl.h"
#include "kernels/common/cpu.h"

namespace sparsetrain::kernels {

void batchnorm_forward_training_avx512(float* dst, float* mean, float* rstd, const float* src,
                                       const float* gamma, const float* beta,
                                       const BatchNormDesc& d) {
  forward_training(dst, mean, rstd, src, gamma, beta, d);
}

void batchnorm_backward_avx512(float* diff_src, float* diff_gamma, float* diff_beta,
                               const float* diff_dst, const float* src, const float* gamma,
                               const float* beta, const float* mean, const float* rstd,
                               const BatchNormDesc& d) {
  backward(diff_src, diff_gamma, diff_beta, diff_dst, src, gamma, beta, mean, rstd, d);
}

void batchnorm_forward_inference_avx512(float* dst, const float* src, const float* gamma,
                                        const float* beta, const float* mean, const float* var,
                                        const BatchNormDesc& d) {
  forward_inference(dst, src, gamma, beta, mean, var, d);
}

void batchnorm_backward_inference_avx512(float* diff_src, float* diff_gamma, float* diff_beta,
                                         const float* diff_dst, const float* src,
                                         const float* gamma, const float* mean, const float* var,
                                         const BatchNormDesc& d) {
  backward_inference(diff_src, diff_gamma, diff_beta, diff_dst, src, gamma, mean, var, d);
}

bool batchnorm_avx512_supports(const BatchNormDesc&) { return best_isa() >= Isa::kAvx512; }

}  // namespace sparsetrain::kernels
