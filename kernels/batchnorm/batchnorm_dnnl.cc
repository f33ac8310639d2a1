// BatchNorm2d on oneDNN 2.6 batch_normalization primitives, created once per
// (shape, layout, eps, thread count) and kept in the shared primitive cache.
// oneDNN keeps mean and variance where this op saves mean and rstd: the
// conversion var = 1 / rstd^2 - eps is exact to float rounding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "kernels/batchnorm/batchnorm.h"
#include "kernels/common/dnnl_context.h"

namespace sparsetrain::kernels {
namespace {

using dnnl::memory;
using dnnl::normalization_flags;
using dnnl::prop_kind;
using BnForward = dnnl::batch_normalization_forward;
using BnBackward = dnnl::batch_normalization_backward;

// Per-channel scratch vectors of one call (slots of dnnl_scratch).
enum ScratchSlot { kVariance = 0, kDiffGamma = 1, kDiffBeta = 2, kShift = 3 };

float* channel_scratch(ScratchSlot slot, const BatchNormDesc& d) {
  return static_cast<float*>(dnnl_scratch(slot, static_cast<size_t>(d.c) * sizeof(float)));
}

// The four primitives of one problem. oneDNN 2.6 wants the shift tensor in
// backward too whenever use_shift is set.
struct Primitives {
  memory::desc data, stat;
  BnForward forward_training, forward_inference;
  BnBackward backward, backward_inference;
};

Primitives make_primitives(const BatchNormDesc& d) {
  const normalization_flags affine =
      normalization_flags::use_scale | normalization_flags::use_shift;
  const normalization_flags frozen = affine | normalization_flags::use_global_stats;
  const dnnl::engine& engine = dnnl_cpu_engine();
  Primitives p;
  p.data =
      memory::desc({d.n, d.c, d.h, d.w}, memory::data_type::f32, dnnl_activation_tag(d.layout));
  p.stat = memory::desc({d.c}, memory::data_type::f32, memory::format_tag::x);
  const BnForward::primitive_desc train_pd({prop_kind::forward_training, p.data, d.eps, affine},
                                           engine);
  const BnForward::primitive_desc infer_pd({prop_kind::forward_inference, p.data, d.eps, frozen},
                                           engine);
  const BnBackward::primitive_desc back_pd({prop_kind::backward, p.data, p.data, d.eps, affine},
                                           engine, train_pd);
  const BnBackward::primitive_desc back_infer_pd(
      {prop_kind::backward, p.data, p.data, d.eps, frozen}, engine, infer_pd);
  p.forward_training = BnForward(train_pd);
  p.forward_inference = BnForward(infer_pd);
  p.backward = BnBackward(back_pd);
  p.backward_inference = BnBackward(back_infer_pd);
  return p;
}

std::shared_ptr<const Primitives> primitives(const BatchNormDesc& d) {
  uint32_t eps_bits;
  std::memcpy(&eps_bits, &d.eps, sizeof(eps_bits));
  DnnlKey key("batchnorm", "all");
  key.add(d.n).add(d.c).add(d.h).add(d.w).add(static_cast<int64_t>(d.layout)).add(eps_bits);
  return dnnl_cached<Primitives>(key, [&] { return make_primitives(d); });
}

// The arguments every pass reads: src and the per-channel tensors.
std::unordered_map<int, memory> stat_args(const Primitives& p, const float* src, const float* gamma,
                                          const float* beta, const float* mean, const float* var) {
  return {{DNNL_ARG_SRC, dnnl_wrap(p.data, src)},
          {DNNL_ARG_SCALE, dnnl_wrap(p.stat, gamma)},
          {DNNL_ARG_SHIFT, dnnl_wrap(p.stat, beta)},
          {DNNL_ARG_MEAN, dnnl_wrap(p.stat, mean)},
          {DNNL_ARG_VARIANCE, dnnl_wrap(p.stat, var)}};
}

// var = 1 / rstd^2 - eps, the inverse of rstd = 1 / sqrt(var + eps).
const float* variance_from_rstd(const float* rstd, const BatchNormDesc& d) {
  float* var = channel_scratch(kVariance, d);
  for (int64_t c = 0; c < d.c; ++c) {
    const double r = rstd[c];
    var[c] = static_cast<float>(std::max(1.0 / (r * r) - d.eps, 0.0));
  }
  return var;
}

// Runs a backward primitive into scratch parameter gradients, then adds them
// (oneDNN overwrites, this op accumulates).
void run_backward(const BnBackward& primitive, const Primitives& p, float* diff_src,
                  float* diff_gamma, float* diff_beta, const float* diff_dst, const float* src,
                  const float* gamma, const float* mean, const float* var, const BatchNormDesc& d) {
  float* dgamma = channel_scratch(kDiffGamma, d);
  float* dbeta = channel_scratch(kDiffBeta, d);
  float* shift = channel_scratch(kShift, d);  // read by oneDNN 2.6, unused by the math
  std::fill(shift, shift + d.c, 0.0f);
  std::vector<float> unused_diff_src;
  if (diff_src == nullptr) {
    unused_diff_src.resize(static_cast<size_t>(d.numel()));
    diff_src = unused_diff_src.data();
  }
  auto args = stat_args(p, src, gamma, shift, mean, var);
  args.emplace(DNNL_ARG_DIFF_DST, dnnl_wrap(p.data, diff_dst));
  args.emplace(DNNL_ARG_DIFF_SRC, dnnl_wrap(p.data, diff_src));
  args.emplace(DNNL_ARG_DIFF_SCALE, dnnl_wrap(p.stat, dgamma));
  args.emplace(DNNL_ARG_DIFF_SHIFT, dnnl_wrap(p.stat, dbeta));
  dnnl_run(primitive, args, "batchnorm backward");
  for (int64_t c = 0; c < d.c; ++c) {
    diff_gamma[c] += dgamma[c];
    diff_beta[c] += dbeta[c];
  }
}

}  // namespace

// A fused ReLU would need oneDNN's fuse_norm_relu workspace kept from forward
// to backward; the primitives here run plain BatchNorm only (no residual sum).
bool batchnorm_dnnl_supports(const BatchNormDesc& d) {
  return d.layout == Layout::kNHWC && !d.relu && !d.residual && d.plane == 0;
}

void batchnorm_forward_training_dnnl(float* dst, float* mean, float* rstd, const float* src,
                                     const float* gamma, const float* beta,
                                     const BatchNormDesc& d) {
  const auto p = primitives(d);
  float* var = channel_scratch(kVariance, d);
  auto args = stat_args(*p, src, gamma, beta, mean, var);
  args.emplace(DNNL_ARG_DST, dnnl_wrap(p->data, dst));
  dnnl_run(p->forward_training, args, "batchnorm forward training");
  for (int64_t c = 0; c < d.c; ++c)
    rstd[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[c]) + d.eps));
}

void batchnorm_backward_dnnl(float* diff_src, float* diff_gamma, float* diff_beta,
                             const float* diff_dst, const float* src, const float* gamma,
                             const float* /*beta*/, const float* mean, const float* rstd,
                             const BatchNormDesc& d) {
  const auto p = primitives(d);
  run_backward(p->backward, *p, diff_src, diff_gamma, diff_beta, diff_dst, src, gamma, mean,
               variance_from_rstd(rstd, d), d);
}

void batchnorm_forward_inference_dnnl(float* dst, const float* src, const float* gamma,
                                      const float* beta, const float* mean, const float* var,
                                      const BatchNormDesc& d) {
  const auto p = primitives(d);
  auto args = stat_args(*p, src, gamma, beta, mean, var);
  args.emplace(DNNL_ARG_DST, dnnl_wrap(p->data, dst));
  dnnl_run(p->forward_inference, args, "batchnorm forward inference");
}

void batchnorm_backward_inference_dnnl(float* diff_src, float* diff_gamma, float* diff_beta,
                                       const float* diff_dst, const float* src, const float* gamma,
                                       const float* mean, const float* var,
                                       const BatchNormDesc& d) {
  const auto p = primitives(d);
  run_backward(p->backward_inference, *p, diff_src, diff_gamma, diff_beta, diff_dst, src, gamma,
               mean, var, d);
}

}  // namespace sparsetrain::kernels
