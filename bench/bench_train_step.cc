// One whole training step (forward, softmax cross-entropy, backward, SGD
// with momentum and weight decay) of the model zoo's networks on synthetic
// data, dense path. This is the baseline every sparse speed-up is measured
// against; bench/compare_pytorch.py runs it side by side with PyTorch.
//
//   build/release/bench_train_step --benchmark_filter=resnet20 --threads=2
//
// resnet20_sparse90/padded and /packed: ResNet-20 with every convolution but
// the stem compressed at 90% (uniformly at random) on the sparse kernels,
// with and without padded channel planes (Graph::set_padded_planes): run
// them side by side,
//   --benchmark_filter=sparse90 --benchmark_repetitions=10
//   --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>

#include "bench/bench_main.h"
#include "kernels/common/threads.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/rng.h"

namespace {

using namespace sparsetrain;

int g_threads = 2;

// sparse_padding: 0 dense; 1 compressed at 90% with padded planes; 2 the
// same with packed planes.
void train_step(benchmark::State& state, const char* model, ModelOptions shape,
                int sparse_padding = 0) {
  kernels::set_num_threads(g_threads);
  const int64_t batch = state.range(0);
  Graph g = build_model(model, shape);
  g.initialize(0);
  SGD sgd(0.9f, false, 5e-4f);
  if (sparse_padding > 0) {
    Rng masks(7);
    for (Parameter* p : g.parameters()) {
      if (p->value.rank() != 4 || p->name == "conv1.weight") continue;
      Tensor keep = Tensor::empty(p->value.shape());
      for (int64_t i = 0; i < keep.numel(); ++i) keep[i] = masks.uniform() < 0.1f ? 1.0f : 0.0f;
      g.compress(p->name.substr(0, p->name.rfind('.')), keep, &sgd);
    }
    g.set_padded_planes(sparse_padding == 1);
  }
  std::vector<Parameter*> params = g.parameters();
  Tensor x = Tensor::empty({batch, shape.channels, shape.height, shape.width}, Layout::kNCHW);
  Rng rng(1);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
  std::vector<int32_t> labels(batch);
  for (auto& l : labels) l = static_cast<int32_t>(rng.below(shape.num_classes));
  Tensor diff;
  auto step = [&]() {
    Optimizer::zero_grad(params);
    const Tensor logits = g.forward(x, true);
    if (!diff.defined()) diff = Tensor::empty(logits.shape());
    softmax_cross_entropy(logits, labels, &diff);
    g.backward(diff);
    sgd.step(params, 0.01f);
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up: primitive creation, caches
  for (auto _ : state) step();
  state.counters["threads"] = static_cast<double>(kernels::num_threads());
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_resnet20(benchmark::State& s) { train_step(s, "resnet20", {3, 32, 32, 10}); }
void BM_resnet20_sparse90_padded(benchmark::State& s) {
  train_step(s, "resnet20", {3, 32, 32, 10}, 1);
}
void BM_resnet20_sparse90_packed(benchmark::State& s) {
  train_step(s, "resnet20", {3, 32, 32, 10}, 2);
}
void BM_lenet5(benchmark::State& s) { train_step(s, "lenet5", {1, 28, 28, 10}); }
void BM_mlp(benchmark::State& s) { train_step(s, "mlp", {1, 28, 28, 10}); }

BENCHMARK(BM_resnet20)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_resnet20_sparse90_padded)
    ->Name("resnet20_sparse90/padded")
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_resnet20_sparse90_packed)
    ->Name("resnet20_sparse90/packed")
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_lenet5)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mlp)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  g_threads = sparsetrain::bench::take_threads_flag(argc, argv, g_threads);
  return sparsetrain::bench::run_benchmarks(argc, argv);
}
