// BatchNorm2d kernels on ResNet-20's activation shapes (batch 128), training
// forward and backward, with and without a fused ReLU, for every registered
// implementation that supports the layout. Each iteration walks `kCopies`
// separate tensor sets in turn, so the data come from memory as they do in a
// training step rather than from a cache the previous iteration warmed.
//
//   build/release/bench/bench_batchnorm --threads=2 --benchmark_filter=chwn
#include <tbb/global_control.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "kernels/batchnorm/batchnorm.h"
#include "sparsetrain/tensor.h"
#include "tests/tensor_fill.h"

namespace sparsetrain::kernels {
namespace {

constexpr int kCopies = 4;

struct Shape4 {
  int64_t c, hw;
};
constexpr Shape4 kShapes[] = {{16, 32}, {32, 16}, {64, 8}};

struct Buffers {
  Tensor src, dst, diff_dst, diff_src;
};

void run(benchmark::State& state, const BatchNormKernel& kernel, BatchNormDesc d, bool backward) {
  std::vector<Buffers> sets(kCopies);
  for (int k = 0; k < kCopies; ++k) {
    sets[k].src = testing::normals({d.numel()}, 100 + k);
    sets[k].diff_dst = testing::normals({d.numel()}, 200 + k);
    sets[k].dst = Tensor::zeros({d.numel()});
    sets[k].diff_src = Tensor::zeros({d.numel()});
  }
  const auto C = static_cast<std::size_t>(d.c);
  std::vector<float> gamma(C, 1.1f), beta(C, 0.1f), mean(C), rstd(C), dgamma(C), dbeta(C);
  kernel.forward_training(sets[0].dst.data(), mean.data(), rstd.data(), sets[0].src.data(),
                          gamma.data(), beta.data(), d);
  int k = 0;
  for (auto _ : state) {
    Buffers& b = sets[k];
    k = (k + 1) % kCopies;
    if (backward) {
      kernel.backward(b.diff_src.data(), dgamma.data(), dbeta.data(), b.diff_dst.data(),
                      b.src.data(), gamma.data(), beta.data(), mean.data(), rstd.data(), d);
    } else {
      kernel.forward_training(b.dst.data(), mean.data(), rstd.data(), b.src.data(), gamma.data(),
                              beta.data(), d);
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * d.numel() * 4 * (backward ? 5 : 3));
}

void register_all() {
  for (const Shape4& s : kShapes) {
    for (const Layout layout : {Layout::kCHWN, Layout::kNHWC}) {
      for (const bool relu : {false, true}) {
        BatchNormDesc d{128, s.c, s.hw, s.hw, layout, 1e-5f, relu};
        for (const BatchNormKernel& kernel : batchnorm_kernels()) {
          if (std::string(kernel.name) == "ref" || !kernel.supports(d)) continue;
          for (const bool backward : {false, true}) {
            const std::string name = std::string(kernel.name) + "/" + layout_name(layout) + "/" +
                                     std::to_string(s.c) + "x" + std::to_string(s.hw) +
                                     (relu ? "/relu" : "") + (backward ? "/bwd" : "/fwd");
            benchmark::RegisterBenchmark(
                name.c_str(),
                [&kernel, d, backward](benchmark::State& st) { run(st, kernel, d, backward); })
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace sparsetrain::kernels

int main(int argc, char** argv) {
  const int threads = sparsetrain::bench::take_threads_flag(argc, argv, 2);
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  sparsetrain::kernels::register_all();
  return sparsetrain::bench::run_benchmarks(argc, argv);
}
