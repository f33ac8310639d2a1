// Dense conv2d per activation layout: forward, backward-data and
// backward-weights of the ResNet-20 (CIFAR) convolutions at batch 128, with
// NCHW and NHWC activations through kernels/conv2d (the layer's code path,
// weight reorders included), and with oneDNN's blocked nChw16c activations
// straight on the primitives (no reorders at all) to show what a blocked
// activation layout would gain. Also the sum over all 21 convolutions of one
// ResNet-20 training step, the two 1x1 projection shortcuts included (the
// first conv skips backward-data).
//
//   bench_conv_layout [--threads=N] [google-benchmark flags]
//
// Counters: GFLOPS is the real rate (2 x MACs per pass); the label names the
// oneDNN implementations that ran.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_main.h"
#include "bench/conv_passes.h"
#include "bench/resnet20_convs.h"
#include "kernels/common/dnnl_context.h"
#include "kernels/conv2d/conv2d.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
namespace {

using kernels::Conv2dShape;
using namespace bench::passes;  // kFwd, ..., pass_name, pass_count

constexpr int64_t kBatch = 128;
constexpr int kDefaultThreads = 2;

using bench::kResNet20Convs;
using bench::ResNet20Conv;

Conv2dShape shape_of(const ResNet20Conv& l) { return l.shape(kBatch); }

Tensor random_tensor(const Shape& shape, Layout layout, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape, layout);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
  return t;
}

// Buffers for one convolution through the kernels/conv2d entry points.
struct LayerBuffers {
  Conv2dShape shape;
  Layout layout;
  Tensor src, dst, weights, bias, diff_src, diff_dst, diff_weights, diff_bias;

  LayerBuffers(const Conv2dShape& s, Layout l, uint64_t seed) : shape(s), layout(l) {
    src = random_tensor(s.src_shape(), l, seed);
    dst = Tensor::empty(s.dst_shape(), l);
    weights = random_tensor(s.weights_shape(), Layout::kPlain, seed + 1);
    bias = random_tensor({s.out_channels}, Layout::kPlain, seed + 2);
    diff_src = Tensor::empty(s.src_shape(), l);
    diff_dst = random_tensor(s.dst_shape(), l, seed + 3);
    diff_weights = Tensor::zeros(s.weights_shape());
    diff_bias = Tensor::zeros({s.out_channels});
  }

  void run(int passes) {
    if (passes & kFwd) {
      kernels::conv2d_forward_dnnl(dst.data(), src.data(), weights.data(), bias.data(), shape,
                                   layout);
    }
    if (passes & kBwdData) {
      kernels::conv2d_backward_data_dnnl(diff_src.data(), diff_dst.data(), weights.data(), shape,
                                         layout);
    }
    if (passes & kBwdWeights) {
      kernels::conv2d_backward_weights_dnnl(diff_weights.data(), diff_bias.data(), diff_dst.data(),
                                            src.data(), shape, layout);
    }
  }
};

void set_counters(benchmark::State& state, int64_t flops_per_iteration) {
  state.counters["GFLOPS"] = benchmark::Counter(static_cast<double>(flops_per_iteration) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void bm_layer(benchmark::State& state, const ResNet20Conv& layer, Layout layout, int passes) {
  LayerBuffers buffers(shape_of(layer), layout, 1);
  buffers.run(passes);  // creates and caches the primitives
  for (auto _ : state) {
    buffers.run(passes);
    benchmark::ClobberMemory();
  }
  set_counters(state, pass_count(passes) * buffers.shape.flops());
  state.SetLabel(kernels::conv2d_dnnl_impl_info(buffers.shape, layout));
}

// All convolutions of one ResNet-20 training step: forward, backward-weights,
// and backward-data except for the stem (its input needs no gradient).
void bm_resnet20_step(benchmark::State& state, Layout layout) {
  std::vector<LayerBuffers> layers;
  std::vector<int> passes;
  int64_t flops = 0;
  uint64_t seed = 1;
  for (const ResNet20Conv& l : kResNet20Convs)
    for (int i = 0; i < l.count; ++i) {
      layers.emplace_back(shape_of(l), layout, seed += 10);
      passes.push_back(layers.size() == 1 ? kFwd | kBwdWeights : kStep);
      flops += pass_count(passes.back()) * layers.back().shape.flops();
    }
  for (std::size_t i = 0; i < layers.size(); ++i) layers[i].run(passes[i]);
  for (auto _ : state) {
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i].run(passes[i]);
    benchmark::ClobberMemory();
  }
  set_counters(state, flops);
}

// --- blocked activations, straight on the oneDNN primitives --------------------

using dnnl::memory;

// The three primitives with every format left to oneDNN (nChw16c activations
// and blocked weights on AVX-512), and buffers in those formats.
struct BlockedConv {
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_d;
  dnnl::convolution_backward_weights bwd_w;
  std::unordered_map<int, memory> fwd_args, bwd_d_args, bwd_w_args;
  std::string label;
  int64_t flops = 0;

  explicit BlockedConv(const ResNet20Conv& l) {
    const Conv2dShape s = shape_of(l);
    flops = s.flops();
    const auto& engine = kernels::dnnl_cpu_engine();
    const auto f32 = memory::data_type::f32;
    const auto any = memory::format_tag::any;
    const memory::desc src({s.batch, s.in_channels, s.in_h, s.in_w}, f32, any);
    const memory::desc dst({s.batch, s.out_channels, s.out_h(), s.out_w()}, f32, any);
    const memory::desc weights({s.out_channels, s.in_channels, s.kernel_h, s.kernel_w}, f32, any);
    const memory::desc bias({s.out_channels}, f32, memory::format_tag::x);
    const memory::dims strides{s.stride_h, s.stride_w}, pad{s.pad_h, s.pad_w};
    const auto algo = dnnl::algorithm::convolution_direct;
    const dnnl::convolution_forward::primitive_desc fwd_pd(
        {dnnl::prop_kind::forward_training, algo, src, weights, bias, dst, strides, pad, pad},
        engine);
    const dnnl::convolution_backward_data::primitive_desc bwd_d_pd(
        {algo, src, weights, dst, strides, pad, pad}, engine, fwd_pd);
    const dnnl::convolution_backward_weights::primitive_desc bwd_w_pd(
        {algo, src, weights, bias, dst, strides, pad, pad}, engine, fwd_pd);
    fwd = dnnl::convolution_forward(fwd_pd);
    bwd_d = dnnl::convolution_backward_data(bwd_d_pd);
    bwd_w = dnnl::convolution_backward_weights(bwd_w_pd);
    auto filled = [&](const memory::desc& d) {
      memory m(d, engine);
      auto* p = static_cast<float*>(m.get_data_handle());
      const std::size_t n = d.get_size() / sizeof(float);
      for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<float>(i % 7) * 0.25f - 0.75f;
      return m;
    };
    fwd_args = {{DNNL_ARG_SRC, filled(fwd_pd.src_desc())},
                {DNNL_ARG_WEIGHTS, filled(fwd_pd.weights_desc())},
                {DNNL_ARG_BIAS, filled(fwd_pd.bias_desc())},
                {DNNL_ARG_DST, filled(fwd_pd.dst_desc())}};
    bwd_d_args = {{DNNL_ARG_DIFF_DST, filled(bwd_d_pd.diff_dst_desc())},
                  {DNNL_ARG_WEIGHTS, filled(bwd_d_pd.weights_desc())},
                  {DNNL_ARG_DIFF_SRC, filled(bwd_d_pd.diff_src_desc())}};
    bwd_w_args = {{DNNL_ARG_SRC, filled(bwd_w_pd.src_desc())},
                  {DNNL_ARG_DIFF_DST, filled(bwd_w_pd.diff_dst_desc())},
                  {DNNL_ARG_DIFF_WEIGHTS, filled(bwd_w_pd.diff_weights_desc())},
                  {DNNL_ARG_DIFF_BIAS, filled(bwd_w_pd.diff_bias_desc())}};
    label = std::string("fwd=") + fwd_pd.impl_info_str() + " bwd_d=" + bwd_d_pd.impl_info_str() +
            " bwd_w=" + bwd_w_pd.impl_info_str();
  }

  void run(int passes) {
    dnnl::stream& stream = kernels::dnnl_thread_stream();
    if (passes & kFwd) fwd.execute(stream, fwd_args);
    if (passes & kBwdData) bwd_d.execute(stream, bwd_d_args);
    if (passes & kBwdWeights) bwd_w.execute(stream, bwd_w_args);
    stream.wait();
  }
};

void bm_blocked_layer(benchmark::State& state, const ResNet20Conv& layer, int passes) {
  BlockedConv conv(layer);
  conv.run(passes);
  for (auto _ : state) {
    conv.run(passes);
    benchmark::ClobberMemory();
  }
  set_counters(state, pass_count(passes) * conv.flops);
  state.SetLabel(conv.label);
}

void bm_blocked_resnet20_step(benchmark::State& state) {
  std::vector<std::unique_ptr<BlockedConv>> layers;
  std::vector<int> passes;
  int64_t flops = 0;
  for (const ResNet20Conv& l : kResNet20Convs)
    for (int i = 0; i < l.count; ++i) {
      layers.push_back(std::make_unique<BlockedConv>(l));
      passes.push_back(layers.size() == 1 ? kFwd | kBwdWeights : kStep);
      flops += pass_count(passes.back()) * layers.back()->flops;
    }
  for (std::size_t i = 0; i < layers.size(); ++i) layers[i]->run(passes[i]);
  for (auto _ : state) {
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i]->run(passes[i]);
    benchmark::ClobberMemory();
  }
  set_counters(state, flops);
}

// Wall time: oneDNN's OpenMP threads do the work, not the calling thread. On a
// shared machine, run with --benchmark_repetitions=N and read the medians.
benchmark::internal::Benchmark* configure(benchmark::internal::Benchmark* b) {
  return b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void register_all() {
  for (const ResNet20Conv& layer : kResNet20Convs)
    for (int passes : {kFwd, kBwdData, kBwdWeights, kStep}) {
      for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
        const std::string name = std::string("conv/") + layer.name() + "/" + pass_name(passes) +
                                 "/" + layout_name(layout);
        configure(benchmark::RegisterBenchmark(name.c_str(), bm_layer, layer, layout, passes));
      }
      const std::string name =
          std::string("conv/") + layer.name() + "/" + pass_name(passes) + "/nChw16c_primitive_only";
      configure(benchmark::RegisterBenchmark(name.c_str(), bm_blocked_layer, layer, passes));
    }
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    const std::string name = std::string("resnet20_all_convs_step/") + layout_name(layout);
    configure(benchmark::RegisterBenchmark(name.c_str(), bm_resnet20_step, layout));
  }
  configure(benchmark::RegisterBenchmark("resnet20_all_convs_step/nChw16c_primitive_only",
                                         bm_blocked_resnet20_step));
}

}  // namespace
}  // namespace sparsetrain

int main(int argc, char** argv) {
  sparsetrain::bench::set_threads_from_flag(argc, argv, sparsetrain::kDefaultThreads);
  benchmark::AddCustomContext("batch", std::to_string(sparsetrain::kBatch));
  sparsetrain::register_all();
  return sparsetrain::bench::run_benchmarks(argc, argv);
}
