// Max and average pooling on oneDNN 2.6 pooling primitives, created once per
// problem (and thread count) and kept in the shared primitive cache. (Global
// average pooling is not here: oneDNN's pooling with an H x W window runs a
// reference loop on NHWC, 100x slower than the TBB kernel, and is slower on
// NCHW too.)
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "kernels/common/dnnl_context.h"
#include "kernels/pooling/pooling.h"

namespace sparsetrain::kernels {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using PoolForward = dnnl::pooling_forward;
using PoolBackward = dnnl::pooling_backward;

enum class Kind : uint8_t { kMax, kAvg };

// Scratch slots of one max-pool backward call.
enum ScratchSlot { kDst = 0, kWorkspace = 1 };

struct Primitives {
  memory::desc src, dst, workspace;
  PoolForward forward_inference, forward_training;  // training: max only (workspace)
  PoolBackward backward;
};

Primitives make_primitives(const PoolDesc& d, Kind kind) {
  const algorithm alg =
      kind == Kind::kMax ? algorithm::pooling_max : algorithm::pooling_avg_include_padding;
  Primitives p;
  const memory::format_tag tag = dnnl_activation_tag(d.layout);
  p.src = memory::desc({d.n, d.c, d.h, d.w}, memory::data_type::f32, tag);
  p.dst = memory::desc({d.n, d.c, d.out_h(), d.out_w()}, memory::data_type::f32, tag);
  const memory::dims strides = {d.stride, d.stride}, kernel = {d.kernel, d.kernel},
                     padding = {d.padding, d.padding};
  const dnnl::engine& engine = dnnl_cpu_engine();
  const PoolForward::primitive_desc infer_pd(
      {prop_kind::forward_inference, alg, p.src, p.dst, strides, kernel, padding, padding}, engine);
  const PoolForward::primitive_desc train_pd(
      {prop_kind::forward_training, alg, p.src, p.dst, strides, kernel, padding, padding}, engine);
  const PoolBackward::primitive_desc back_pd({alg, p.src, p.dst, strides, kernel, padding, padding},
                                             engine, train_pd);
  p.workspace = train_pd.workspace_desc();
  p.forward_inference = PoolForward(infer_pd);
  p.forward_training = PoolForward(train_pd);
  p.backward = PoolBackward(back_pd);
  return p;
}

std::shared_ptr<const Primitives> primitives(const PoolDesc& d, Kind kind) {
  DnnlKey key("pooling", kind == Kind::kMax ? "max" : "avg");
  key.add(d.n).add(d.c).add(d.h).add(d.w).add(d.kernel).add(d.stride).add(d.padding);
  key.add(static_cast<int64_t>(d.layout));
  return dnnl_cached<Primitives>(key, [&] { return make_primitives(d, kind); });
}

}  // namespace

bool pool_dnnl_supports(const PoolDesc& d) { return d.layout != Layout::kCHWN; }

void maxpool_forward_dnnl(float* dst, const float* src, const PoolDesc& d) {
  const auto p = primitives(d, Kind::kMax);
  dnnl_run(p->forward_inference,
           {{DNNL_ARG_SRC, dnnl_wrap(p->src, src)}, {DNNL_ARG_DST, dnnl_wrap(p->dst, dst)}},
           "max pooling forward");
}

void maxpool_backward_dnnl(float* diff_src, const float* diff_dst, const float* src,
                           const PoolDesc& d) {
  const auto p = primitives(d, Kind::kMax);
  float* dst = static_cast<float*>(dnnl_scratch(kDst, p->dst.get_size()));
  const memory workspace(p->workspace, dnnl_cpu_engine(),
                         dnnl_scratch(kWorkspace, p->workspace.get_size()));
  dnnl_run(p->forward_training,
           {{DNNL_ARG_SRC, dnnl_wrap(p->src, src)},
            {DNNL_ARG_DST, dnnl_wrap(p->dst, dst)},
            {DNNL_ARG_WORKSPACE, workspace}},
           "max pooling forward (for the workspace)");
  dnnl_run(p->backward,
           {{DNNL_ARG_DIFF_DST, dnnl_wrap(p->dst, diff_dst)},
            {DNNL_ARG_DIFF_SRC, dnnl_wrap(p->src, diff_src)},
            {DNNL_ARG_WORKSPACE, workspace}},
           "max pooling backward");
}

void avgpool_forward_dnnl(float* dst, const float* src, const PoolDesc& d) {
  const auto p = primitives(d, Kind::kAvg);
  dnnl_run(p->forward_inference,
           {{DNNL_ARG_SRC, dnnl_wrap(p->src, src)}, {DNNL_ARG_DST, dnnl_wrap(p->dst, dst)}},
           "average pooling forward");
}

void avgpool_backward_dnnl(float* diff_src, const float* diff_dst, const PoolDesc& d) {
  const auto p = primitives(d, Kind::kAvg);
  dnnl_run(p->backward,
           {{DNNL_ARG_DIFF_DST, dnnl_wrap(p->dst, diff_dst)},
            {DNNL_ARG_DIFF_SRC, dnnl_wrap(p->src, diff_src)}},
           "average pooling backward");
}

}  // namespace sparsetrain::kernels
