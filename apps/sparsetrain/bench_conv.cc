// sparsetrain bench conv: one sparse 2-D convolution against the fastest dense
// oneDNN convolution on the same shape, per pass and for a whole training step
// (forward + backward-data + backward-weights), by the method of
// bench_common.h.
//
// The dense side runs kernels::conv2d_*_dnnl, the library's dense layer path
// (primitives cached per shape, weights reordered to the primitive's blocked
// format on every call, as they must be while they train), with activations
// in NHWC (oneDNN's brgemm / jit path, what the runtime keeps between dense
// layers) or NCHW, the faster per pass. The sparse side runs
// kernels::conv_sparse_* with activations in kCHWN (batch innermost), as a run
// of sparse layers keeps them, so no reorder is timed on either side. Both
// sides add a bias in forward and compute its gradient in backward-weights.
#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench_common.h"
#include "commands.h"
#include "kernels/common/cpu.h"
#include "kernels/common/threads.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv_sparse/conv_sparse.h"
#include "sparsetrain/error.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::cli {

namespace {

namespace sk = kernels;
using namespace bench;

// The dense activation layouts tried, the runtime's own (NHWC) first.
constexpr Layout kDenseLayouts[] = {Layout::kNHWC, Layout::kNCHW};
constexpr int kNumLayouts = 2;
constexpr const char* kLayoutNames[kNumLayouts] = {"nhwc", "nchw"};

struct Problem {
  sk::Conv2dShape shape;
  // Dense operands: activations (N, C, H, W) in either layout (random values,
  // so one buffer serves both), weights OIHW with the pruned entries zero.
  Tensor weights, bias, src, dst, diff_dst, diff_src, diff_weights, diff_bias;
  // Sparse operands, activations kCHWN.
  sk::ConvSparseWeights w;
  Tensor src_s, dst_s, diff_dst_s, diff_src_s, diff_values, diff_bias_s;
};

Tensor flat(const std::vector<float>& v) {
  return Tensor::from({static_cast<int64_t>(v.size())}, v);
}

sk::Conv2dShape conv_shape(const BenchConvCommand& cmd) {
  return sk::Conv2dShape::make(cmd.batch, cmd.cin, cmd.hw, cmd.hw, cmd.cout, cmd.k, cmd.stride,
                               cmd.padding, cmd.groups);
}

void build(Problem& p, const BenchConvCommand& cmd, double sparsity) {
  const sk::Conv2dShape& s = p.shape = conv_shape(cmd);
  const int64_t src_size = s.batch * s.in_channels * s.in_h * s.in_w;
  const int64_t dst_size = s.batch * s.out_channels * s.out_h() * s.out_w();
  std::mt19937 rng(cmd.seed);
  const Shape ws = s.weights_shape();
  std::vector<float> weights = random_floats(ws[0] * ws[1] * ws[2] * ws[3], rng);
  const std::vector<uint8_t> mask = magnitude_mask(weights, sparsity);
  p.w = sk::conv_sparse_pack(weights.data(), mask.data(), s.out_channels, s.in_channels, s.kernel_h,
                             s.kernel_w, s.groups);
  for (std::size_t k = 0; k < weights.size(); ++k)
    if (mask[k] == 0) weights[k] = 0.0f;
  const std::vector<float> src = random_floats(src_size, rng);
  const std::vector<float> diff_dst = random_floats(dst_size, rng);

  p.weights = Tensor::from(s.weights_shape(), weights);
  p.bias = flat(random_floats(s.out_channels, rng));
  p.src = flat(src);
  p.diff_dst = flat(diff_dst);
  p.dst = Tensor::zeros({dst_size});
  p.diff_src = Tensor::zeros({src_size});
  p.diff_weights = Tensor::zeros(s.weights_shape());
  p.diff_bias = Tensor::zeros({s.out_channels});

  p.src_s = flat(src);
  p.diff_dst_s = flat(diff_dst);
  p.dst_s = Tensor::zeros({dst_size});
  p.diff_src_s = Tensor::zeros({src_size});
  p.diff_values = Tensor::zeros({std::max<int64_t>(p.w.nnz, 1)});
  p.diff_bias_s = Tensor::zeros({s.out_channels});
}

void run_dense(Problem& p, int pass, Layout layout) {
  switch (pass) {
    case kFwd:
      sk::conv2d_forward_dnnl(p.dst.data(), p.src.data(), p.weights.data(), p.bias.data(), p.shape,
                              layout);
      break;
    case kBwdData:
      sk::conv2d_backward_data_dnnl(p.diff_src.data(), p.diff_dst.data(), p.weights.data(), p.shape,
                                    layout);
      break;
    default:
      sk::conv2d_backward_weights_dnnl(p.diff_weights.data(), p.diff_bias.data(), p.diff_dst.data(),
                                       p.src.data(), p.shape, layout);
      break;
  }
}

void run_sparse(Problem& p, int pass, sk::Isa isa) {
  switch (pass) {
    case kFwd:
      sk::conv_sparse_forward(p.dst_s.data(), p.src_s.data(), p.w, p.bias.data(), p.shape, isa);
      break;
    case kBwdData:
      sk::conv_sparse_backward_data(p.diff_src_s.data(), p.diff_dst_s.data(), p.w, p.shape,
                                    /*accumulate=*/false, isa);
      break;
    default:
      sk::conv_sparse_backward_weights(p.diff_values.data(), p.diff_bias_s.data(),
                                       p.diff_dst_s.data(), p.src_s.data(), p.w, p.shape, isa);
      break;
  }
}

// conv2d_dnnl_impl_info's "fwd=A bwd_d=B bwd_w=C" as {A, B, C}.
std::array<std::string, kNumKernelPasses> dense_impls(const sk::Conv2dShape& s, Layout layout) {
  const std::string info = sk::conv2d_dnnl_impl_info(s, layout);
  std::array<std::string, kNumKernelPasses> impl;
  std::size_t pos = 0;
  for (std::string& part : impl) {
    const std::size_t eq = info.find('=', pos);
    if (eq == std::string::npos) break;
    const std::size_t end = std::min(info.find(' ', eq), info.size());
    part = info.substr(eq + 1, end - eq - 1);
    pos = end;
  }
  return impl;
}

std::string conv_geometry(const BenchConvCommand& cmd) {
  std::string g = std::to_string(cmd.k) + "x" + std::to_string(cmd.k) + " s" +
                  std::to_string(cmd.stride) + " p" + std::to_string(cmd.padding);
  if (cmd.groups != 1) g += " g" + std::to_string(cmd.groups);
  return g;
}

LayerReport measure(const BenchConvCommand& cmd, double sparsity) {
  const sk::Isa isa = sk::active_isa();  // throws on a bad SPARSETRAIN_ISA
  const sk::ConvSparseKernelNames names = sk::conv_sparse_kernel_names(isa);
  sk::sync_openmp_threads();
  Problem p;
  build(p, cmd, sparsity);
  const sk::Conv2dShape& s = p.shape;

  LayerReport r = measure_layer(
      cmd, sparsity, sk::isa_name(isa), kNumLayouts,
      [&](int f, int pass) { run_dense(p, pass, kDenseLayouts[f]); },
      [&](int pass) { run_sparse(p, pass, isa); },
      [&](int f, int pass) {
        return std::string(kLayoutNames[f]) + ":" + dense_impls(s, kDenseLayouts[f])[pass];
      });
  r.command = "conv";
  r.shape = {{"cin", s.in_channels}, {"cout", s.out_channels}, {"hw", s.in_h},
             {"k", s.kernel_h},      {"stride", s.stride_h},   {"padding", s.pad_h},
             {"groups", s.groups},   {"batch", s.batch},       {"out_hw", s.out_h()}};
  r.shape_line = "batch " + std::to_string(s.batch) + " x " + std::to_string(s.in_channels) + "x" +
                 std::to_string(s.in_h) + "x" + std::to_string(s.in_w) + " -> " +
                 std::to_string(s.out_channels) + "x" + std::to_string(s.out_h()) + "x" +
                 std::to_string(s.out_w()) + ", " + conv_geometry(cmd);
  r.plot_title = "b" + std::to_string(s.batch) + " " + std::to_string(s.in_channels) + "->" +
                 std::to_string(s.out_channels) + " " + std::to_string(s.in_h) + "x" +
                 std::to_string(s.in_w) + " k" + std::to_string(cmd.k) + " s" +
                 std::to_string(cmd.stride);
  r.dense_name = "oneDNN convolution";
  r.nnz = p.w.nnz;
  r.dense_size = p.w.dense_size();
  r.dense_flop = static_cast<double>(s.flops());
  r.sparse_flop = 2.0 * static_cast<double>(p.w.nnz) * static_cast<double>(s.batch) *
                  static_cast<double>(s.out_h() * s.out_w());
  r.sparse_kernels = {names.fwd, names.bwd_data, names.bwd_weights};
  return r;
}

void validate(BenchConvCommand& cmd) {
  require_at_least(cmd.cin, 1, "--cin");
  require_at_least(cmd.cout, 1, "--cout");
  require_at_least(cmd.hw, 1, "--hw");
  require_at_least(cmd.k, 1, "--k");
  require_at_least(cmd.stride, 1, "--stride");
  if (cmd.padding == -1) cmd.padding = cmd.k / 2;
  require_at_least(cmd.padding, 0, "--padding");
  require_at_least(cmd.groups, 1, "--groups");
  check_layer_options(cmd);
  if (cmd.cin % cmd.groups != 0 || cmd.cout % cmd.groups != 0) {
    throw Error("--groups " + std::to_string(cmd.groups) + " must divide --cin " +
                std::to_string(cmd.cin) + " and --cout " + std::to_string(cmd.cout));
  }
  if (cmd.padding >= cmd.k) {
    throw Error("--padding " + std::to_string(cmd.padding) + " must be smaller than --k " +
                std::to_string(cmd.k) + " (a wider border only adds zeros)");
  }
  if (cmd.hw + 2 * cmd.padding < cmd.k) {
    throw Error("--k " + std::to_string(cmd.k) + " is larger than the padded image (--hw " +
                std::to_string(cmd.hw) + " + 2 x --padding " + std::to_string(cmd.padding) + ")");
  }
}

}  // namespace

int run_bench_conv(BenchConvCommand& cmd) {
  validate(cmd);
  sk::set_num_threads(cmd.threads);
  const std::string plot =
      !cmd.plot.empty()
          ? cmd.plot
          : "bench-conv-" + std::to_string(cmd.cin) + "x" + std::to_string(cmd.cout) + "-hw" +
                std::to_string(cmd.hw) + "-k" + std::to_string(cmd.k) + "-s" +
                std::to_string(cmd.stride) + "-b" + std::to_string(cmd.batch) + ".png";
  return report_layer(cmd.sweep, cmd.json, cmd.sparsity, plot,
                      [&](double s) { return measure(cmd, s); });
}

}  // namespace sparsetrain::cli
