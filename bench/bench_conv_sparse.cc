// Sparse convolution kernels against oneDNN's dense convolution, per pass and
// for a whole training step (forward + backward-data + backward-weights).
//
// Cases, for each shape (a label, then C->O, image, kernel, stride, batch) and
// sparsity:
//   sparse/<kernel>/...          every registered micro-kernel this CPU runs,
//                                one pass each (the name says pass, tile, ISA)
//   sparse_fwd_stats/<kernel>/...  the forward kernel forming its output's
//                                batch statistics in its epilogue
//   sparse_step/<isa>/...        the three passes with that ISA's kernels
//   sparse_step_padded/<isa>/... the same on activations whose channel
//                                planes are kPlanePad floats (one cache
//                                line) further apart than a plane
//                                (Conv2dShape::src_plane, dst_plane)
//   dnnl_nhwc/<pass>/...         oneDNN convolution (kernels/conv2d dnnl) on
//                                NHWC activations, its fastest layout here;
//                                only its own time (the sparse side runs on
//                                kCHWN buffers of its own, no reorders timed)
//   resnet20_step/<sparse isa|dnnl_nhwc>  all 21 convolutions of one
//                                training step of sparsetrain's ResNet-20 at
//                                batch 128 (graphs/models.cc: 19 3x3 and the
//                                two 1x1 projection shortcuts; the stem dense
//                                and without backward-data on both sides;
//                                sparse_<isa>_padded: on padded planes)
// <pass> is fwd, bwd_data, bwd_weights or step. Activations are filled once;
// every iteration runs on warm buffers, for both sides alike.
//
// Counters: real_FLOPS = 2 x (multiply-adds the stored taps actually do, the
// padding excluded) x batch per pass, dense_FLOPS = Conv2dShape::flops() per
// pass (both per second of wall time, so sparse and dense rows compare
// directly), and the density.
//
// Threads: --threads=N (default 2) for TBB and OpenMP (oneDNN) alike. The
// machine this was tuned on is shared and noisy; compare with interleaved
// repetitions and medians:
//   bench_conv_sparse --benchmark_filter='step' --benchmark_repetitions=10
//       --benchmark_enable_random_interleaving=true
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/conv_passes.h"
#include "bench/resnet20_convs.h"
#include "kernels/common/cpu.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv_sparse/conv_sparse.h"
#include "kernels/conv_sparse/conv_sparse_ukernels.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
namespace {

namespace sk = kernels;
using bench::random_floats;
using namespace bench::passes;  // kFwd, ..., pass_name, pass_count
using kernels::Conv2dShape;

constexpr int kDefaultThreads = 2;
constexpr uint32_t kSeed = 42;

// A benchmarked convolution: its label in the benchmark names and its shape.
struct Case {
  std::string label;
  Conv2dShape shape;
};

constexpr int64_t kResNetBatch = 128;
// Padding between channel planes for the *_padded cases: one cache line, so
// the same position of consecutive channels falls into consecutive cache
// sets instead of one (CIFAR's planes are powers of two).
constexpr int64_t kPlanePad = 16;

// The target shapes (3x3 at 64 and 256 channels, batch 32) and the ResNet-20
// (CIFAR) convolutions at batch 128 but the stem (dense in both), the
// projections included.
std::vector<Case> cases() {
  std::vector<Case> v = {
      {"c64_32x32_k3_n32", Conv2dShape::make(32, 64, 32, 32, 64, 3, 1, 1, 1)},
      {"c256_14x14_k3_n32", Conv2dShape::make(32, 256, 14, 14, 256, 3, 1, 1, 1)},
  };
  for (const bench::ResNet20Conv& l : bench::kResNet20Convs) {
    if (l.in_channels == 3) continue;  // the stem
    // "r20_16to32_32x32_s2_n128", "r20_1x1_16to32_s2_n128"
    std::string label = "r20_";
    if (l.kernel == 1) label += "1x1_";
    label += std::to_string(l.in_channels) + "to" + std::to_string(l.out_channels);
    if (l.kernel != 1) label += "_" + std::to_string(l.side) + "x" + std::to_string(l.side);
    if (l.stride != 1) label += "_s" + std::to_string(l.stride);
    v.push_back({label + "_n" + std::to_string(kResNetBatch), l.shape(kResNetBatch)});
  }
  return v;
}
constexpr double kSparsities[] = {0.9, 0.95, 0.98};

// A 64-byte aligned float array (as Tensor storage is in the runtime).
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(const std::vector<float>& v)
      : data_(static_cast<float*>(std::aligned_alloc(kAlign, bytes(v.size())))) {
    std::memcpy(data_.get(), v.data(), v.size() * sizeof(float));
  }
  float* data() const { return data_.get(); }

 private:
  static constexpr std::size_t kAlign = 64;
  static std::size_t bytes(std::size_t floats) {
    return (std::max<std::size_t>(floats, 1) * sizeof(float) + kAlign - 1) / kAlign * kAlign;
  }
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
};

Buffer flat(const std::vector<float>& v) { return Buffer(v); }
Buffer zeros(int64_t count) { return Buffer(std::vector<float>(static_cast<std::size_t>(count))); }

// Operands of one case: a weight with `sparsity` of its positions pruned
// (uniformly at random), its compressed form, and activations for both
// sides (kCHWN for sparse, NHWC for oneDNN; the values differ, not the work).
struct Data {
  Conv2dShape shape;
  sk::ConvSparseWeights w;
  Buffer dense_w, bias, src, dst, diff_dst, diff_src, diff_values, diff_bias, diff_w;
  double real_macs = 0;  // multiply-adds per pass, padding excluded

  // plane_pad > 0: the kCHWN activations' channel planes that many floats
  // apart beyond a plane (the sparse side only).
  Data(Conv2dShape s, double sparsity, int64_t plane_pad = 0) : shape(s) {
    if (plane_pad > 0) {
      shape.src_plane = s.in_h * s.in_w * s.batch + plane_pad;
      shape.dst_plane = s.out_h() * s.out_w() * s.batch + plane_pad;
      s = shape;
    }
    std::mt19937 rng(kSeed);
    const int64_t wsize = s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
    std::vector<float> weights = random_floats(wsize, rng);
    std::vector<uint8_t> mask(weights.size());
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (std::size_t k = 0; k < mask.size(); ++k) {
      mask[k] = u(rng) >= sparsity ? 1 : 0;
      if (!mask[k]) weights[k] = 0.0f;
    }
    w = sk::conv_sparse_pack(weights.data(), mask.data(), s.out_channels, s.in_channels, s.kernel_h,
                             s.kernel_w, s.groups);
    dense_w = flat(weights);
    bias = flat(random_floats(s.out_channels, rng));
    const int64_t src_size = s.in_channels * s.src_plane_stride();
    const int64_t dst_size = s.out_channels * s.dst_plane_stride();
    src = flat(random_floats(src_size, rng));
    diff_dst = flat(random_floats(dst_size, rng));
    dst = zeros(dst_size);
    diff_src = zeros(src_size);
    diff_values = zeros(w.nnz);
    diff_bias = zeros(s.out_channels);
    diff_w = zeros(wsize);
    // Each stored tap (i, j) runs at the output positions where it reads
    // inside the image.
    const auto valid = [](int64_t out, int64_t in, int64_t stride, int64_t pad, int64_t k) {
      int64_t n = 0;
      for (int64_t y = 0; y < out; ++y)
        n += (y * stride - pad + k >= 0 && y * stride - pad + k < in);
      return n;
    };
    const int64_t khw = s.kernel_h * s.kernel_w;
    for (uint32_t p : w.position) {
      const int64_t i = p % khw / s.kernel_w, j = p % s.kernel_w;
      real_macs += static_cast<double>(valid(s.out_h(), s.in_h, s.stride_h, s.pad_h, i) *
                                       valid(s.out_w(), s.in_w, s.stride_w, s.pad_w, j));
    }
    real_macs *= static_cast<double>(s.batch);
  }
};

void set_counters(benchmark::State& state, const Data& d, int passes, bool sparse) {
  const double n = pass_count(passes);
  const double dense = static_cast<double>(d.shape.flops());
  state.counters["real_FLOPS"] = benchmark::Counter(n * (sparse ? 2.0 * d.real_macs : dense),
                                                    benchmark::Counter::kIsIterationInvariantRate);
  state.counters["dense_FLOPS"] =
      benchmark::Counter(n * dense, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["density"] = sparse ? d.w.density() : 1.0;
}

// --- sparse ------------------------------------------------------------------------

struct SparseKernels {
  const sk::ConvGatherKernel* fwd = nullptr;
  const sk::ConvGatherKernel* bwd_data = nullptr;
  const sk::ConvSddmmKernel* bwd_weights = nullptr;
};

void run_sparse(Data& d, const SparseKernels& k, int passes) {
  if (k.fwd != nullptr && (passes & kFwd))
    sk::conv_sparse_forward_with(*k.fwd, d.dst.data(), d.src.data(), d.w, d.bias.data(), d.shape);
  if (k.bwd_data != nullptr && (passes & kBwdData))
    sk::conv_sparse_backward_data_with(*k.bwd_data, d.diff_src.data(), d.diff_dst.data(), d.w,
                                       d.shape, false);
  if (k.bwd_weights != nullptr && (passes & kBwdWeights))
    sk::conv_sparse_backward_weights_with(*k.bwd_weights, d.diff_values.data(), d.diff_bias.data(),
                                          d.diff_dst.data(), d.src.data(), d.w, d.shape);
}

void bm_sparse(benchmark::State& state, Conv2dShape s, double sparsity, SparseKernels k, int passes,
               int64_t plane_pad = 0) {
  Data d(s, sparsity, plane_pad);
  run_sparse(d, k, passes);
  for (auto _ : state) {
    run_sparse(d, k, passes);
    benchmark::ClobberMemory();
  }
  set_counters(state, d, passes, true);
}

// The forward that also forms its output's batch statistics
// (conv_sparse_forward_stats, what the executor runs before a BatchNorm):
// against sparse/<kernel> it measures the epilogue's cost.
void bm_fwd_stats(benchmark::State& state, Conv2dShape s, double sparsity,
                  const sk::ConvGatherKernel& k) {
  Data d(s, sparsity);
  std::vector<double> mean(static_cast<std::size_t>(s.out_channels)), var(mean.size());
  const auto run = [&] {
    sk::conv_sparse_forward_stats_with(k, d.dst.data(), mean.data(), var.data(), d.src.data(), d.w,
                                       d.bias.data(), d.shape);
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  set_counters(state, d, kFwd, true);
}

// --- oneDNN ------------------------------------------------------------------------

void run_dense(Data& d, int passes) {
  const Layout l = Layout::kNHWC;
  if (passes & kFwd)
    sk::conv2d_forward_dnnl(d.dst.data(), d.src.data(), d.dense_w.data(), d.bias.data(), d.shape,
                            l);
  if (passes & kBwdData)
    sk::conv2d_backward_data_dnnl(d.diff_src.data(), d.diff_dst.data(), d.dense_w.data(), d.shape,
                                  l);
  if (passes & kBwdWeights)
    sk::conv2d_backward_weights_dnnl(d.diff_w.data(), d.diff_bias.data(), d.diff_dst.data(),
                                     d.src.data(), d.shape, l);
}

void bm_dense(benchmark::State& state, Conv2dShape s, int passes) {
  Data d(s, 0.0);
  run_dense(d, passes);  // creates and caches the primitives
  for (auto _ : state) {
    run_dense(d, passes);
    benchmark::ClobberMemory();
  }
  set_counters(state, d, passes, false);
  state.SetLabel(sk::conv2d_dnnl_impl_info(s, Layout::kNHWC));
}

// --- ResNet-20: all convolutions of one training step ---------------------------------

// sparse: the stem stays dense (oneDNN, NHWC) on both sides, as pruning
// recipes usually keep it; it runs without backward-data (its input is the
// image).
void bm_resnet20(benchmark::State& state, double sparsity, bool sparse, sk::Isa isa,
                 int64_t plane_pad = 0) {
  std::vector<std::unique_ptr<Data>> layers;
  double dense_flops = 0, real_flops = 0;
  for (const bench::ResNet20Conv& l : bench::kResNet20Convs)
    for (int i = 0; i < l.count; ++i) {
      layers.push_back(std::make_unique<Data>(l.shape(kResNetBatch),
                                              layers.empty() ? 0.0 : sparsity,
                                              layers.empty() || !sparse ? 0 : plane_pad));
      const double passes = layers.size() == 1 ? 2.0 : 3.0;
      dense_flops += passes * static_cast<double>(layers.back()->shape.flops());
      real_flops += passes * (layers.size() == 1 || !sparse
                                  ? static_cast<double>(layers.back()->shape.flops())
                                  : 2.0 * layers.back()->real_macs);
    }
  const sk::ConvSparseKernels ks = sk::conv_sparse_kernels(isa);
  const SparseKernels k{ks.fwd, ks.bwd_data, ks.bwd_weights};
  const auto step = [&] {
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const int passes = i == 0 ? kFwd | kBwdWeights : kStep;
      if (i == 0 || !sparse) {
        run_dense(*layers[i], passes);
      } else {
        run_sparse(*layers[i], k, passes);
      }
    }
  };
  step();
  for (auto _ : state) {
    step();
    benchmark::ClobberMemory();
  }
  state.counters["real_FLOPS"] =
      benchmark::Counter(real_flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["dense_FLOPS"] =
      benchmark::Counter(dense_flops, benchmark::Counter::kIsIterationInvariantRate);
}

// --- registration ------------------------------------------------------------------------

std::string case_name(const Case& c) { return std::string("/") + c.label; }

std::string sparsity_name(double sp) { return "/sparsity:" + std::to_string(sp).substr(0, 4); }

void reg(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::move(fn))
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void register_all() {
  for (const Case& c : cases()) {
    const Conv2dShape s = c.shape;
    for (int p : {kFwd, kBwdData, kBwdWeights, kStep})
      reg(std::string("dnnl_nhwc/") + pass_name(p) + case_name(c),
          [s, p](benchmark::State& st) { bm_dense(st, s, p); });
    for (double sp : kSparsities) {
      const std::string suffix = case_name(c) + sparsity_name(sp);
      for (const sk::ConvGatherKernel& k : sk::conv_sparse_kernel_lists().fwd) {
        if (!sk::isa_supported(k.isa)) continue;
        reg(std::string("sparse/") + k.name + suffix, [s, sp, &k](benchmark::State& st) {
          bm_sparse(st, s, sp, {&k, nullptr, nullptr}, kFwd);
        });
        reg(std::string("sparse_fwd_stats/") + k.name + suffix,
            [s, sp, &k](benchmark::State& st) { bm_fwd_stats(st, s, sp, k); });
      }
      for (const sk::ConvGatherKernel& k : sk::conv_sparse_kernel_lists().bwd_data) {
        if (!sk::isa_supported(k.isa)) continue;
        reg(std::string("sparse/") + k.name + suffix, [s, sp, &k](benchmark::State& st) {
          bm_sparse(st, s, sp, {nullptr, &k, nullptr}, kBwdData);
        });
      }
      for (const sk::ConvSddmmKernel& k : sk::conv_sparse_kernel_lists().bwd_weights) {
        if (!sk::isa_supported(k.isa)) continue;
        reg(std::string("sparse/") + k.name + suffix, [s, sp, &k](benchmark::State& st) {
          bm_sparse(st, s, sp, {nullptr, nullptr, &k}, kBwdWeights);
        });
      }
      for (sk::Isa isa : {sk::Isa::kAvx512, sk::Isa::kAvx2, sk::Isa::kRef}) {
        if (!sk::isa_supported(isa)) continue;
        const sk::ConvSparseKernels k = sk::conv_sparse_kernels(isa);
        reg(std::string("sparse_step/") + sk::isa_name(isa) + suffix,
            [s, sp, k](benchmark::State& st) {
              bm_sparse(st, s, sp, {k.fwd, k.bwd_data, k.bwd_weights}, kStep);
            });
        reg(std::string("sparse_step_padded/") + sk::isa_name(isa) + suffix,
            [s, sp, k](benchmark::State& st) {
              bm_sparse(st, s, sp, {k.fwd, k.bwd_data, k.bwd_weights}, kStep, kPlanePad);
            });
      }
    }
  }
  reg("resnet20_step/dnnl_nhwc",
      [](benchmark::State& st) { bm_resnet20(st, 0.0, false, sk::Isa::kRef); });
  for (double sp : kSparsities)
    for (sk::Isa isa : {sk::Isa::kAvx512, sk::Isa::kAvx2}) {
      if (!sk::isa_supported(isa)) continue;
      reg(std::string("resnet20_step/sparse_") + sk::isa_name(isa) + sparsity_name(sp),
          [sp, isa](benchmark::State& st) { bm_resnet20(st, sp, true, isa); });
      reg(std::string("resnet20_step/sparse_") + sk::isa_name(isa) + "_padded" + sparsity_name(sp),
          [sp, isa](benchmark::State& st) { bm_resnet20(st, sp, true, isa, kPlanePad); });
    }
}

}  // namespace
}  // namespace sparsetrain

int main(int argc, char** argv) {
  sparsetrain::bench::set_threads_from_flag(argc, argv, sparsetrain::kDefaultThreads);
  benchmark::AddCustomContext("isa",
                              sparsetrain::kernels::isa_name(sparsetrain::kernels::best_isa()));
  benchmark::AddCustomContext("cpu", sparsetrain::kernels::cpu_info().model);
  sparsetrain::register_all();
  return sparsetrain::bench::run_benchmarks(argc, argv);
}
