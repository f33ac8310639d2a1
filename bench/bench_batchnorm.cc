// BatchNorm2d kernels on ResNet-20's activation shapes (batch 128), training
// forward (also with a fused residual sum, and with the batch statistics
// given, /fwd_given) and backward, with and without a fused ReLU, for every registered
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
  Tensor src, dst, diff_dst, diff_src, residual;
};

// The pass timed: forward (d.residual: with the residual sum), forward with
// the batch statistics given (what a BatchNorm after a sparse convolution
// runs: forward_training_given), backward.
enum class Pass { kFwd, kFwdGiven, kBwd };

void run(benchmark::State& state, const BatchNormKernel& kernel, BatchNormDesc d, Pass pass) {
  std::vector<Buffers> sets(kCopies);
  for (int k = 0; k < kCopies; ++k) {
    sets[k].src = testing::normals({d.numel()}, 100 + k);
    sets[k].diff_dst = testing::normals({d.numel()}, 200 + k);
    sets[k].dst = Tensor::zeros({d.numel()});
    sets[k].diff_src = Tensor::zeros({d.numel()});
    if (d.residual) sets[k].residual = testing::normals({d.numel()}, 300 + k);
  }
  const auto C = static_cast<std::size_t>(d.c);
  std::vector<float> gamma(C, 1.1f), beta(C, 0.1f), mean(C), rstd(C), dgamma(C), dbeta(C);
  const std::vector<double> given_mean(C, 0.0), given_var(C, 1.0);
  kernels::BatchNormDesc plain = d;
  plain.residual = false;
  kernel.forward_training(sets[0].dst.data(), mean.data(), rstd.data(), sets[0].src.data(),
                          gamma.data(), beta.data(), plain);
  int k = 0;
  for (auto _ : state) {
    Buffers& b = sets[k];
    k = (k + 1) % kCopies;
    const float* residual = d.residual ? b.residual.data() : nullptr;
    if (pass == Pass::kBwd) {
      kernel.backward(b.diff_src.data(), dgamma.data(), dbeta.data(), b.diff_dst.data(),
                      b.src.data(), gamma.data(), beta.data(), mean.data(), rstd.data(), plain);
    } else if (pass == Pass::kFwdGiven) {
      kernel.forward_training_given(b.dst.data(), mean.data(), rstd.data(), b.src.data(), residual,
                                    gamma.data(), beta.data(), given_mean.data(), given_var.data(),
                                    d);
    } else if (d.residual) {
      kernel.forward_training_add(b.dst.data(), mean.data(), rstd.data(), b.src.data(), residual,
                                  gamma.data(), beta.data(), d);
    } else {
      kernel.forward_training(b.dst.data(), mean.data(), rstd.data(), b.src.data(), gamma.data(),
                              beta.data(), d);
    }
    benchmark::ClobberMemory();
  }
  const int64_t streams = pass == Pass::kBwd ? 5 : pass == Pass::kFwdGiven ? 2 : 3;
  state.SetBytesProcessed(state.iterations() * d.numel() * 4 * (streams + (d.residual ? 1 : 0)));
}

void register_all() {
  for (const Shape4& s : kShapes) {
    for (const Layout layout : {Layout::kCHWN, Layout::kNHWC}) {
      for (const bool relu : {false, true})
        for (const bool residual : {false, true}) {
          const BatchNormDesc d{128, s.c, s.hw, s.hw, layout, 1e-5f, relu, residual};
          for (const BatchNormKernel& kernel : batchnorm_kernels()) {
            if (std::string(kernel.name) == "ref" || !kernel.supports(d)) continue;
            for (const Pass pass : {Pass::kFwd, Pass::kFwdGiven, Pass::kBwd}) {
              if (pass == Pass::kFwdGiven && kernel.forward_training_given == nullptr) continue;
              if (pass == Pass::kBwd && residual) continue;  // the residual is forward only
              const std::string name = std::string(kernel.name) + "/" + layout_name(layout) + "/" +
                                       std::to_string(s.c) + "x" + std::to_string(s.hw) +
                                       (relu ? "/relu" : "") + (residual ? "/residual" : "") +
                                       (pass == Pass::kBwd        ? "/bwd"
                                        : pass == Pass::kFwdGiven ? "/fwd_given"
                                                                  : "/fwd");
              benchmark::RegisterBenchmark(
                  name.c_str(),
                  [&kernel, d, pass](benchmark::State& st) { run(st, kernel, d, pass); })
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
