// The oneDNN baseline. Activations stay in the caller's layout (no reorders
// of the large tensors); weights are handed to each primitive in the format it
// asks for (format_tag::any), because with plain OIHW weights oneDNN falls back
// to its gemm or reference convolutions. The weight reorders (OIHW -> blocked
// for forward and backward-data, blocked -> OIHW with a sum post-op for
// backward-weights, which makes it accumulate) are cached with the primitives.
#include <optional>
#include <unordered_map>

#include "kernels/common/dnnl_context.h"
#include "kernels/conv2d/conv2d.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr memory::data_type kF32 = memory::data_type::f32;
constexpr dnnl::algorithm kAlgorithm = dnnl::algorithm::convolution_direct;

// The descriptors every pass shares.
struct ConvDescs {
  memory::desc src, dst, bias;
  memory::desc user_weights;  // plain OIHW, or GOIHW with groups
  memory::desc any_weights;   // same dims, format left to the primitive
  memory::dims strides, pad_l, pad_r;
};

ConvDescs make_descs(const Conv2dShape& s, Layout layout) {
  const Tag act = dnnl_activation_tag(layout);
  ConvDescs d;
  d.src = memory::desc({s.batch, s.in_channels, s.in_h, s.in_w}, kF32, act);
  d.dst = memory::desc({s.batch, s.out_channels, s.out_h(), s.out_w()}, kF32, act);
  d.bias = memory::desc({s.out_channels}, kF32, Tag::x);
  memory::dims weights_dims;
  Tag weights_tag;
  if (s.groups == 1) {
    weights_dims = {s.out_channels, s.in_channels, s.kernel_h, s.kernel_w};
    weights_tag = Tag::oihw;
  } else {
    weights_dims = {s.groups, s.out_channels / s.groups, s.in_channels / s.groups, s.kernel_h,
                    s.kernel_w};
    weights_tag = Tag::goihw;
  }
  d.user_weights = memory::desc(weights_dims, kF32, weights_tag);
  d.any_weights = memory::desc(weights_dims, kF32, Tag::any);
  d.strides = {s.stride_h, s.stride_w};
  // oneDNN checks (H + PL + PR - KH) / SH + 1 == OH with integer division,
  // which symmetric padding satisfies by the definition of out_h().
  d.pad_l = {s.pad_h, s.pad_w};
  d.pad_r = {s.pad_h, s.pad_w};
  return d;
}

DnnlKey conv_key(const char* pass, const Conv2dShape& s, Layout layout, bool with_bias) {
  DnnlKey key("conv2d", pass);
  key.add(s.batch).add(s.in_channels).add(s.in_h).add(s.in_w).add(s.out_channels);
  key.add(s.kernel_h).add(s.kernel_w).add(s.stride_h).add(s.stride_w).add(s.pad_h).add(s.pad_w);
  key.add(s.groups).add(static_cast<int64_t>(dnnl_activation_tag(layout))).add(with_bias);
  return key;
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvDescs& d, bool with_bias) {
  const dnnl::prop_kind prop = dnnl::prop_kind::forward_training;
  const auto desc =
      with_bias ? dnnl::convolution_forward::desc(prop, kAlgorithm, d.src, d.any_weights, d.bias,
                                                  d.dst, d.strides, d.pad_l, d.pad_r)
                : dnnl::convolution_forward::desc(prop, kAlgorithm, d.src, d.any_weights, d.dst,
                                                  d.strides, d.pad_l, d.pad_r);
  return dnnl::convolution_forward::primitive_desc(desc, dnnl_cpu_engine());
}

// A reorder between two weight formats; with `accumulate`, dst += src.
std::optional<dnnl::reorder> weights_reorder(const memory::desc& from, const memory::desc& to,
                                             bool accumulate) {
  if (from == to && !accumulate) return std::nullopt;
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const auto& engine = dnnl_cpu_engine();
  return dnnl::reorder(dnnl::reorder::primitive_desc(engine, from, engine, to, attr));
}

struct ForwardEntry {
  dnnl::convolution_forward conv;
  ConvDescs descs;
  memory::desc weights;                  // the primitive's format
  std::optional<dnnl::reorder> reorder;  // user -> weights, when they differ
  std::string impl;
};

struct BackwardDataEntry {
  dnnl::convolution_backward_data conv;
  ConvDescs descs;
  memory::desc weights;
  std::optional<dnnl::reorder> reorder;  // user -> weights, when they differ
  std::string impl;
};

struct BackwardWeightsEntry {
  dnnl::convolution_backward_weights conv;
  ConvDescs descs;
  memory::desc diff_weights;  // the primitive's format
  dnnl::reorder accumulate;   // user += diff_weights
  std::string impl;
};

ForwardEntry make_forward(const Conv2dShape& s, Layout layout, bool with_bias) {
  ForwardEntry e;
  e.descs = make_descs(s, layout);
  const auto pd = forward_pd(e.descs, with_bias);
  e.conv = dnnl::convolution_forward(pd);
  e.weights = pd.weights_desc();
  e.reorder = weights_reorder(e.descs.user_weights, e.weights, false);
  e.impl = pd.impl_info_str();
  return e;
}

BackwardDataEntry make_backward_data(const Conv2dShape& s, Layout layout) {
  BackwardDataEntry e;
  e.descs = make_descs(s, layout);
  const ConvDescs& d = e.descs;
  const auto hint = forward_pd(d, false);
  const dnnl::convolution_backward_data::desc desc(kAlgorithm, d.src, d.any_weights, d.dst,
                                                   d.strides, d.pad_l, d.pad_r);
  const dnnl::convolution_backward_data::primitive_desc pd(desc, dnnl_cpu_engine(), hint);
  e.conv = dnnl::convolution_backward_data(pd);
  e.weights = pd.weights_desc();
  e.reorder = weights_reorder(d.user_weights, e.weights, false);
  e.impl = pd.impl_info_str();
  return e;
}

BackwardWeightsEntry make_backward_weights(const Conv2dShape& s, Layout layout, bool with_bias) {
  BackwardWeightsEntry e;
  e.descs = make_descs(s, layout);
  const ConvDescs& d = e.descs;
  const auto hint = forward_pd(d, with_bias);
  const auto desc =
      with_bias ? dnnl::convolution_backward_weights::desc(kAlgorithm, d.src, d.any_weights, d.bias,
                                                           d.dst, d.strides, d.pad_l, d.pad_r)
                : dnnl::convolution_backward_weights::desc(kAlgorithm, d.src, d.any_weights, d.dst,
                                                           d.strides, d.pad_l, d.pad_r);
  const dnnl::convolution_backward_weights::primitive_desc pd(desc, dnnl_cpu_engine(), hint);
  e.conv = dnnl::convolution_backward_weights(pd);
  e.diff_weights = pd.diff_weights_desc();
  e.accumulate = *weights_reorder(e.diff_weights, d.user_weights, true);
  e.impl = pd.impl_info_str();
  return e;
}

// Scratch slots: reordered weights or the primitive's diff_weights, and the
// primitive's diff_bias.
constexpr int kWeightsSlot = 0;
constexpr int kBiasSlot = 1;

// The user's OIHW weights, or a copy in `format` when the primitive wants one.
memory packed_weights(const ConvDescs& d, const memory::desc& format,
                      const std::optional<dnnl::reorder>& reorder, const float* weights,
                      dnnl::stream& stream) {
  memory user = dnnl_wrap(d.user_weights, weights);
  if (!reorder) return user;
  memory packed(format, dnnl_cpu_engine(), dnnl_scratch(kWeightsSlot, format.get_size()));
  reorder->execute(stream, user, packed);
  return packed;
}

}  // namespace

void conv2d_forward_dnnl(float* dst, const float* src, const float* weights, const float* bias,
                         const Conv2dShape& s, Layout layout) {
  SPARSETRAIN_ASSERT(s.valid() && s.src_plane == 0 && s.dst_plane == 0);
  if (s.batch == 0) return;
  const bool with_bias = bias != nullptr;
  const auto e = dnnl_cached<ForwardEntry>(conv_key("fwd", s, layout, with_bias),
                                           [&] { return make_forward(s, layout, with_bias); });
  try {
    dnnl::stream& stream = dnnl_thread_stream();
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, dnnl_wrap(e->descs.src, src)},
        {DNNL_ARG_WEIGHTS, packed_weights(e->descs, e->weights, e->reorder, weights, stream)},
        {DNNL_ARG_DST, dnnl_wrap(e->descs.dst, dst)}};
    if (with_bias) args.emplace(DNNL_ARG_BIAS, dnnl_wrap(e->descs.bias, bias));
    e->conv.execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& error) {
    dnnl_fail(error, "conv2d forward");
  }
}

void conv2d_backward_data_dnnl(float* diff_src, const float* diff_dst, const float* weights,
                               const Conv2dShape& s, Layout layout) {
  SPARSETRAIN_ASSERT(s.valid() && s.src_plane == 0 && s.dst_plane == 0);
  if (s.batch == 0) return;
  const auto e = dnnl_cached<BackwardDataEntry>(conv_key("bwd_d", s, layout, false),
                                                [&] { return make_backward_data(s, layout); });
  try {
    dnnl::stream& stream = dnnl_thread_stream();
    e->conv.execute(stream, {{DNNL_ARG_DIFF_DST, dnnl_wrap(e->descs.dst, diff_dst)},
                             {DNNL_ARG_WEIGHTS,
                              packed_weights(e->descs, e->weights, e->reorder, weights, stream)},
                             {DNNL_ARG_DIFF_SRC, dnnl_wrap(e->descs.src, diff_src)}});
    stream.wait();
  } catch (const dnnl::error& error) {
    dnnl_fail(error, "conv2d backward-data");
  }
}

void conv2d_backward_weights_dnnl(float* diff_weights, float* diff_bias, const float* diff_dst,
                                  const float* src, const Conv2dShape& s, Layout layout) {
  SPARSETRAIN_ASSERT(s.valid() && s.src_plane == 0 && s.dst_plane == 0);
  if (s.batch == 0) return;
  const bool with_bias = diff_bias != nullptr;
  const auto e = dnnl_cached<BackwardWeightsEntry>(conv_key("bwd_w", s, layout, with_bias), [&] {
    return make_backward_weights(s, layout, with_bias);
  });
  try {
    dnnl::stream& stream = dnnl_thread_stream();
    const auto& engine = dnnl_cpu_engine();
    memory fresh(e->diff_weights, engine, dnnl_scratch(kWeightsSlot, e->diff_weights.get_size()));
    float* fresh_bias = with_bias
                            ? static_cast<float*>(dnnl_scratch(kBiasSlot, e->descs.bias.get_size()))
                            : nullptr;
    std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, dnnl_wrap(e->descs.dst, diff_dst)},
                                         {DNNL_ARG_SRC, dnnl_wrap(e->descs.src, src)},
                                         {DNNL_ARG_DIFF_WEIGHTS, fresh}};
    if (with_bias) args.emplace(DNNL_ARG_DIFF_BIAS, dnnl_wrap(e->descs.bias, fresh_bias));
    e->conv.execute(stream, args);
    memory user = dnnl_wrap(e->descs.user_weights, diff_weights);
    e->accumulate.execute(stream, fresh, user);
    stream.wait();
    if (with_bias) {
      for (int64_t o = 0; o < s.out_channels; ++o) diff_bias[o] += fresh_bias[o];
    }
  } catch (const dnnl::error& error) {
    dnnl_fail(error, "conv2d backward-weights");
  }
}

std::string conv2d_dnnl_impl_info(const Conv2dShape& s, Layout layout) {
  const auto fwd = dnnl_cached<ForwardEntry>(conv_key("fwd", s, layout, true),
                                             [&] { return make_forward(s, layout, true); });
  const auto bwd_d = dnnl_cached<BackwardDataEntry>(conv_key("bwd_d", s, layout, false),
                                                    [&] { return make_backward_data(s, layout); });
  const auto bwd_w = dnnl_cached<BackwardWeightsEntry>(
      conv_key("bwd_w", s, layout, true), [&] { return make_backward_weights(s, layout, true); });
  return "fwd=" + fwd->impl + " bwd_d=" + bwd_d->impl + " bwd_w=" + bwd_w->impl;
}

}  // namespace sparsetrain::kernels
