// Scalar reference for BatchNorm2d: the oracle of the tests. Plain loops over
// the logical index (n, c, h, w), statistics accumulated in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/batchnorm/batchnorm.h"

namespace sparsetrain::kernels {
namespace {

// Calls f(offset) for every element of channel c, in (n, h, w) order.
template <typename F>
void for_each_in_channel(const BatchNormDesc& d, int64_t c, F&& f) {
  const Shape s = {d.n, d.c, d.h, d.w};
  // Padded kCHWN planes: the plane's offset moves by the padding of the
  // planes before it.
  const int64_t shift = d.layout == Layout::kCHWN ? c * (d.plane_stride() - d.per_channel()) : 0;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t h = 0; h < d.h; ++h)
      for (int64_t w = 0; w < d.w; ++w) f(offset4(d.layout, s, n, c, h, w) + shift);
}

// sum(diff_dst) and sum(diff_dst * (src - mean)) of channel c.
void channel_grad_sums(const BatchNormDesc& d, int64_t c, const float* diff_dst, const float* src,
                       double mean, double& sum_dy, double& sum_dy_xc) {
  sum_dy = 0.0;
  sum_dy_xc = 0.0;
  for_each_in_channel(d, c, [&](int64_t i) {
    sum_dy += diff_dst[i];
    sum_dy_xc += static_cast<double>(diff_dst[i]) * (src[i] - mean);
  });
}

// dst of channel c from its batch mean m and variance var; mean and rstd.
void normalize_channel(const BatchNormDesc& d, int64_t c, float* dst, float* mean, float* rstd,
                       const float* src, const float* residual, const float* gamma,
                       const float* beta, double m, double var) {
  const double r = 1.0 / std::sqrt(var + d.eps);
  for_each_in_channel(d, c, [&](int64_t i) {
    auto y = static_cast<float>(gamma[c] * (src[i] - m) * r + beta[c]);
    if (residual != nullptr) y += residual[i];
    dst[i] = d.relu && y < 0.0f ? 0.0f : y;
  });
  mean[c] = static_cast<float>(m);
  rstd[c] = static_cast<float>(r);
}

}  // namespace

void batchnorm_forward_training_add_ref(float* dst, float* mean, float* rstd, const float* src,
                                        const float* residual, const float* gamma,
                                        const float* beta, const BatchNormDesc& d) {
  const double count = static_cast<double>(d.per_channel());
  for (int64_t c = 0; c < d.c; ++c) {
    double sum = 0.0;
    for_each_in_channel(d, c, [&](int64_t i) { sum += src[i]; });
    const double m = sum / count;
    double sq = 0.0;
    for_each_in_channel(d, c, [&](int64_t i) { sq += (src[i] - m) * (src[i] - m); });
    normalize_channel(d, c, dst, mean, rstd, src, residual, gamma, beta, m, sq / count);
  }
}

void batchnorm_forward_training_given_ref(float* dst, float* mean, float* rstd, const float* src,
                                          const float* residual, const float* gamma,
                                          const float* beta, const double* batch_mean,
                                          const double* batch_var, const BatchNormDesc& d) {
  for (int64_t c = 0; c < d.c; ++c)
    normalize_channel(d, c, dst, mean, rstd, src, residual, gamma, beta, batch_mean[c],
                      batch_var[c]);
}

void batchnorm_forward_training_ref(float* dst, float* mean, float* rstd, const float* src,
                                    const float* gamma, const float* beta, const BatchNormDesc& d) {
  batchnorm_forward_training_add_ref(dst, mean, rstd, src, nullptr, gamma, beta, d);
}

void batchnorm_backward_ref(float* diff_src, float* diff_gamma, float* diff_beta,
                            const float* diff_dst, const float* src, const float* gamma,
                            const float* beta, const float* mean, const float* rstd,
                            const BatchNormDesc& d) {
  const double count = static_cast<double>(d.per_channel());
  // With a fused ReLU the gradient reaching the normalisation is diff_dst
  // where the forward output gamma * xhat + beta was positive, else 0.
  std::vector<float> masked;
  if (d.relu) {
    // Up to the last plane's end (padded kCHWN planes included).
    const int64_t span =
        d.layout == Layout::kCHWN ? (d.c - 1) * d.plane_stride() + d.per_channel() : d.numel();
    masked.assign(diff_dst, diff_dst + span);
    for (int64_t c = 0; c < d.c; ++c) {
      const double m = mean[c], r = rstd[c];
      for_each_in_channel(d, c, [&](int64_t i) {
        const auto y = static_cast<float>(gamma[c] * (src[i] - m) * r + beta[c]);
        if (!(y > 0.0f)) masked[i] = 0.0f;
      });
    }
    diff_dst = masked.data();
  }
  for (int64_t c = 0; c < d.c; ++c) {
    const double m = mean[c], r = rstd[c];
    double sum_dy = 0.0, sum_dy_xc = 0.0;
    channel_grad_sums(d, c, diff_dst, src, m, sum_dy, sum_dy_xc);
    const double sum_dy_xhat = sum_dy_xc * r;
    diff_beta[c] += static_cast<float>(sum_dy);
    diff_gamma[c] += static_cast<float>(sum_dy_xhat);
    if (diff_src == nullptr) continue;
    const double mean_dy = sum_dy / count, mean_dy_xhat = sum_dy_xhat / count;
    for_each_in_channel(d, c, [&](int64_t i) {
      const double xhat = (src[i] - m) * r;
      diff_src[i] =
          static_cast<float>(gamma[c] * r * (diff_dst[i] - mean_dy - xhat * mean_dy_xhat));
    });
  }
}

void batchnorm_forward_inference_ref(float* dst, const float* src, const float* gamma,
                                     const float* beta, const float* mean, const float* var,
                                     const BatchNormDesc& d) {
  for (int64_t c = 0; c < d.c; ++c) {
    const double m = mean[c], r = 1.0 / std::sqrt(static_cast<double>(var[c]) + d.eps);
    for_each_in_channel(d, c, [&](int64_t i) {
      dst[i] = static_cast<float>(gamma[c] * (src[i] - m) * r + beta[c]);
    });
  }
}

void batchnorm_backward_inference_ref(float* diff_src, float* diff_gamma, float* diff_beta,
                                      const float* diff_dst, const float* src, const float* gamma,
                                      const float* mean, const float* var, const BatchNormDesc& d) {
  for (int64_t c = 0; c < d.c; ++c) {
    const double m = mean[c], r = 1.0 / std::sqrt(static_cast<double>(var[c]) + d.eps);
    double sum_dy = 0.0, sum_dy_xc = 0.0;
    channel_grad_sums(d, c, diff_dst, src, m, sum_dy, sum_dy_xc);
    diff_beta[c] += static_cast<float>(sum_dy);
    diff_gamma[c] += static_cast<float>(sum_dy_xc * r);
    if (diff_src == nullptr) continue;
    for_each_in_channel(
        d, c, [&](int64_t i) { diff_src[i] = static_cast<float>(gamma[c] * r * diff_dst[i]); });
  }
}

void batchnorm_update_running_stats(float* running_mean, float* running_var, const float* mean,
                                    const float* rstd, int64_t channels, int64_t count,
                                    float momentum, float eps) {
  const double bessel = static_cast<double>(count) / static_cast<double>(count - 1);
  for (int64_t c = 0; c < channels; ++c) {
    const double r = rstd[c];
    const double var = std::max(1.0 / (r * r) - eps, 0.0);
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] +
                                         momentum * static_cast<double>(mean[c]));
    running_var[c] =
        static_cast<float>((1.0 - momentum) * running_var[c] + momentum * var * bessel);
  }
}

}  // namespace sparsetrain::kernels
