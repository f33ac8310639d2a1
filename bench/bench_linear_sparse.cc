// Sparse linear kernels against dense GEMM, per pass and for a whole
// training step (forward + backward-data + backward-weights).
//
// Cases, for each shape (batch x in -> out) and sparsity:
//   sparse/<kernel>/...      every registered micro-kernel this CPU runs, one
//                            pass each (kernel names say op, tile and ISA), on
//                            activations in the kBlocked layout
//   sparse_step/<isa>/<layout>/...  the three passes with that ISA's kernels,
//                            activations kBlocked or plain kCN (packed by the
//                            operator on every call)
//   dnnl_cn/<pass>/...       oneDNN matmul on the same features x batch
//                            (kCN) operands the sparse kernels use
//   dnnl_nc/<pass>/...       oneDNN matmul in its preferred batch x features
//                            (NC) layout
//   eigen_cn/<pass>/...      Eigen GEMM on the kCN operands
// <pass> is fwd, bwd_data, bwd_weights or step (all three). oneDNN
// primitives are created once per case, outside the timed loop; the label of
// each dense case names the oneDNN implementations that ran. The dense
// backward-weights computes the full (O, I) gradient and no bias gradient,
// and dnnl_cn's forward adds no bias (both favour the dense side).
//
// Counters: real_FLOPS = 2 * nnz * batch per pass (per step: times three),
// dense_FLOPS = 2 * O * I * batch likewise, both per second of wall time,
// so sparse and dense rows compare directly.
//
// Threads: SPARSETRAIN_BENCH_THREADS (default 2) for TBB, OpenMP (oneDNN)
// and Eigen alike. Typical use (medians of 10 repetitions, whole steps):
//   bench_linear_sparse --benchmark_repetitions=10
//       --benchmark_report_aggregates_only=true --benchmark_filter=step
#include <benchmark/benchmark.h>
#include <omp.h>
#include <oneapi/tbb/global_control.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "kernels/common/cpu.h"
#include "kernels/linear_sparse/linear_sparse.h"
#include "sparsetrain/tensor.h"

namespace sk = sparsetrain::kernels;
using sparsetrain::bench::random_floats;

namespace {

struct Shape {
  int64_t batch, in, out;
};
constexpr Shape kShapes[] = {{256, 768, 3072}, {128, 512, 512}};
constexpr double kSparsities[] = {0.5, 0.8, 0.9, 0.95, 0.98, 0.99};
constexpr int kDefaultThreads = 2;
constexpr uint32_t kSeed = 42;

int bench_threads() {
  const char* env = std::getenv("SPARSETRAIN_BENCH_THREADS");
  const int n = env != nullptr ? std::atoi(env) : kDefaultThreads;
  return n > 0 ? n : kDefaultThreads;
}

std::string shape_suffix(const Shape& s) {
  return "/N:" + std::to_string(s.batch) + "/I:" + std::to_string(s.in) +
         "/O:" + std::to_string(s.out);
}

std::string case_suffix(const Shape& s, double sparsity) {
  return shape_suffix(s) + "/sparsity:" + std::to_string(sparsity).substr(0, 4);
}

// Operands of one case. Activations are features x batch, in the kBlocked
// layout the sparse kernels run on or in the plain kCN layout (which the
// kernels pack per call); the dense baselines use plain buffers. Every
// buffer is a Tensor (64-byte aligned storage), as in the runtime.
struct Data {
  Shape shape;
  sk::BatchLayout layout;
  sparsetrain::Tensor dense_w;  // (O, I), pruned positions zero
  sk::LinearSparseWeights w;
  sparsetrain::Tensor src, dst, diff_dst, diff_src, bias;
  sparsetrain::Tensor diff_values, diff_bias, diff_w;

  // `sparse` false: only the dense operands (the dense baselines).
  Data(const Shape& s, double sparsity, bool sparse = true,
       sk::BatchLayout layout_ = sk::BatchLayout::kPlain)
      : shape(s), layout(layout_) {
    std::mt19937 rng(kSeed);
    std::vector<float> weights = random_floats(s.out * s.in, rng);
    std::vector<uint8_t> mask(weights.size());
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (std::size_t k = 0; k < mask.size(); ++k) {
      mask[k] = u(rng) >= sparsity ? 1 : 0;
      if (!mask[k]) weights[k] = 0.0f;
    }
    if (sparse) w = sk::linear_sparse_pack(weights.data(), mask.data(), s.out, s.in);
    dense_w = sparsetrain::Tensor::from({s.out, s.in}, weights);
    src = activation(random_floats(s.in * s.batch, rng), s.in);
    diff_dst = activation(random_floats(s.out * s.batch, rng), s.out);
    bias = flat(random_floats(s.out, rng));
    dst = activation(std::vector<float>(static_cast<std::size_t>(s.out * s.batch)), s.out);
    diff_src = activation(std::vector<float>(static_cast<std::size_t>(s.in * s.batch)), s.in);
    diff_values = sparsetrain::Tensor::zeros({std::max<int64_t>(w.nnz, 1)});
    diff_bias = sparsetrain::Tensor::zeros({s.out});
    diff_w = sparsetrain::Tensor::zeros({s.out, s.in});
  }

  static sparsetrain::Tensor flat(const std::vector<float>& v) {
    return sparsetrain::Tensor::from({static_cast<int64_t>(v.size())}, v);
  }
  sparsetrain::Tensor activation(const std::vector<float>& plain, int64_t features) const {
    if (layout == sk::BatchLayout::kPlain) return flat(plain);
    sparsetrain::Tensor b =
        sparsetrain::Tensor::zeros({sk::linear_sparse_blocked_size(features, shape.batch)});
    sk::linear_sparse_to_blocked(b.data(), plain.data(), features, shape.batch);
    return b;
  }
};

const char* layout_name(sk::BatchLayout layout) {
  return layout == sk::BatchLayout::kBlocked ? "blocked" : "plain";
}

enum class Pass { kFwd, kBwdData, kBwdWeights, kStep };
const char* pass_name(Pass p) {
  // Indexed by the enumerator, in declaration order.
  constexpr const char* kNames[] = {"fwd", "bwd_data", "bwd_weights", "step"};
  return kNames[static_cast<int>(p)];
}

void set_counters(benchmark::State& state, const Data& d, Pass pass, bool sparse = true) {
  const double passes = pass == Pass::kStep ? 3.0 : 1.0;
  const double dense = 2.0 * static_cast<double>(d.shape.out) * static_cast<double>(d.shape.in) *
                       static_cast<double>(d.shape.batch);
  const double real =
      sparse ? 2.0 * static_cast<double>(d.w.nnz) * static_cast<double>(d.shape.batch) : dense;
  state.counters["real_FLOPS"] =
      benchmark::Counter(passes * real, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["dense_FLOPS"] =
      benchmark::Counter(passes * dense, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["density"] = sparse ? d.w.density() : 1.0;
}

// --- sparse ------------------------------------------------------------------------

void sparse_fwd(benchmark::State& state, const sk::SpmmKernel* k, Shape s, double sparsity) {
  Data d(s, sparsity, true, sk::BatchLayout::kBlocked);
  for (auto _ : state) {
    sk::linear_sparse_forward(d.dst.data(), d.src.data(), d.w, d.bias.data(), s.batch, d.layout, k);
    benchmark::ClobberMemory();
  }
  set_counters(state, d, Pass::kFwd);
}

void sparse_bwd_data(benchmark::State& state, const sk::SpmmKernel* k, Shape s, double sparsity) {
  Data d(s, sparsity, true, sk::BatchLayout::kBlocked);
  for (auto _ : state) {
    sk::linear_sparse_backward_data(d.diff_src.data(), d.diff_dst.data(), d.w, s.batch, d.layout,
                                    false, k);
    benchmark::ClobberMemory();
  }
  set_counters(state, d, Pass::kBwdData);
}

void sparse_bwd_weights(benchmark::State& state, const sk::SddmmKernel* k, Shape s,
                        double sparsity) {
  Data d(s, sparsity, true, sk::BatchLayout::kBlocked);
  for (auto _ : state) {
    sk::linear_sparse_backward_weights(d.diff_values.data(), d.diff_bias.data(), d.diff_dst.data(),
                                       d.src.data(), d.w, s.batch, d.layout, k);
    benchmark::ClobberMemory();
  }
  set_counters(state, d, Pass::kBwdWeights);
}

void sparse_step(benchmark::State& state, sk::LinearSparseKernels k, sk::BatchLayout layout,
                 Shape s, double sparsity) {
  Data d(s, sparsity, true, layout);
  for (auto _ : state) {
    sk::linear_sparse_forward(d.dst.data(), d.src.data(), d.w, d.bias.data(), s.batch, layout,
                              k.fwd);
    sk::linear_sparse_backward_data(d.diff_src.data(), d.diff_dst.data(), d.w, s.batch, layout,
                                    false, k.bwd_data);
    sk::linear_sparse_backward_weights(d.diff_values.data(), d.diff_bias.data(), d.diff_dst.data(),
                                       d.src.data(), d.w, s.batch, layout, k.bwd_weights);
    benchmark::ClobberMemory();
  }
  set_counters(state, d, Pass::kStep);
}

// --- oneDNN matmul -------------------------------------------------------------------

using dnnl::memory;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;

// C (M, N) = A (M, K) * B (K, N) [+ bias], with A and B given as plain
// row-major arrays that may be read transposed (their tag says how).
struct Matmul {
  dnnl::matmul prim;
  memory a, b, c, bias;
  std::string impl;

  Matmul(const dnnl::engine& eng, memory::dims a_dims, tag a_tag, float* a_data,
         memory::dims b_dims, tag b_tag, float* b_data, memory::dims c_dims, float* c_data,
         memory::dims bias_dims = {}, float* bias_data = nullptr) {
    const memory::desc ad(a_dims, f32, a_tag), bd(b_dims, f32, b_tag), cd(c_dims, f32, tag::ab);
    a = memory(ad, eng, a_data);
    b = memory(bd, eng, b_data);
    c = memory(cd, eng, c_data);
    if (bias_data != nullptr) {
      const memory::desc biasd(bias_dims, f32, tag::ab);
      bias = memory(biasd, eng, bias_data);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, biasd, cd), eng);
      impl = pd.impl_info_str();
      prim = dnnl::matmul(pd);
    } else {
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, cd), eng);
      impl = pd.impl_info_str();
      prim = dnnl::matmul(pd);
    }
  }
  void run(dnnl::stream& s) {
    if (bias) {
      prim.execute(
          s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, c}});
    } else {
      prim.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    }
  }
};

// The three passes as matmuls, in the kCN layout (features x batch):
//   fwd          dst (O, N)  = W (O, I) * src (I, N)   (no bias, see below)
//   bwd_data     diff_src (I, N) = W^T (I, O) * diff_dst (O, N)
//   bwd_weights  diff_W (O, I) = diff_dst (O, N) * src^T (N, I)
// or in the NC layout (batch x features), oneDNN's own convention:
//   fwd          dst (N, O)  = src (N, I) * W^T (I, O) + bias (1, O)
//   bwd_data     diff_src (N, I) = diff_dst (N, O) * W (O, I)
//   bwd_weights  diff_W (O, I) = diff_dst^T (O, N) * src (N, I)
struct DnnlPasses {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::unique_ptr<Matmul> fwd, bwd_data, bwd_weights;

  DnnlPasses(Data& d, bool nc) {
    const memory::dim n = d.shape.batch, i = d.shape.in, o = d.shape.out;
    float* w = d.dense_w.data();
    if (!nc) {
      // No bias here: oneDNN 2.6 has no optimised matmul for a per-row
      // (O, 1) bias and would fall back to its reference code.
      fwd = std::make_unique<Matmul>(eng, memory::dims{o, i}, tag::ab, w, memory::dims{i, n},
                                     tag::ab, d.src.data(), memory::dims{o, n}, d.dst.data());
      bwd_data =
          std::make_unique<Matmul>(eng, memory::dims{i, o}, tag::ba, w, memory::dims{o, n}, tag::ab,
                                   d.diff_dst.data(), memory::dims{i, n}, d.diff_src.data());
      bwd_weights = std::make_unique<Matmul>(eng, memory::dims{o, n}, tag::ab, d.diff_dst.data(),
                                             memory::dims{n, i}, tag::ba, d.src.data(),
                                             memory::dims{o, i}, d.diff_w.data());
    } else {
      // The same buffers reinterpreted as (N, features): the values differ
      // but the work does not.
      fwd = std::make_unique<Matmul>(eng, memory::dims{n, i}, tag::ab, d.src.data(),
                                     memory::dims{i, o}, tag::ba, w, memory::dims{n, o},
                                     d.dst.data(), memory::dims{1, o}, d.bias.data());
      bwd_data = std::make_unique<Matmul>(eng, memory::dims{n, o}, tag::ab, d.diff_dst.data(),
                                          memory::dims{o, i}, tag::ab, w, memory::dims{n, i},
                                          d.diff_src.data());
      bwd_weights = std::make_unique<Matmul>(eng, memory::dims{o, n}, tag::ba, d.diff_dst.data(),
                                             memory::dims{n, i}, tag::ab, d.src.data(),
                                             memory::dims{o, i}, d.diff_w.data());
    }
  }
};

void dnnl_case(benchmark::State& state, Pass pass, bool nc, Shape s) {
  Data d(s, 0.0, false);
  DnnlPasses m(d, nc);
  // Which oneDNN implementation runs (e.g. brg:avx512_core, or ref:any when
  // the problem falls off the optimised paths).
  std::string impl;
  for (const auto* mm : {m.fwd.get(), m.bwd_data.get(), m.bwd_weights.get()}) {
    const bool used =
        (mm == m.fwd.get() && (pass == Pass::kFwd || pass == Pass::kStep)) ||
        (mm == m.bwd_data.get() && (pass == Pass::kBwdData || pass == Pass::kStep)) ||
        (mm == m.bwd_weights.get() && (pass == Pass::kBwdWeights || pass == Pass::kStep));
    if (used) impl += (impl.empty() ? "" : " ") + mm->impl;
  }
  state.SetLabel(impl);
  for (auto _ : state) {
    if (pass == Pass::kFwd || pass == Pass::kStep) m.fwd->run(m.strm);
    if (pass == Pass::kBwdData || pass == Pass::kStep) m.bwd_data->run(m.strm);
    if (pass == Pass::kBwdWeights || pass == Pass::kStep) m.bwd_weights->run(m.strm);
    m.strm.wait();
    benchmark::ClobberMemory();
  }
  set_counters(state, d, pass, false);
}

// --- Eigen GEMM ------------------------------------------------------------------------

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Map = Eigen::Map<RowMajor>;

void eigen_case(benchmark::State& state, Pass pass, Shape s) {
  Data d(s, 0.0, false);
  const Eigen::Index n = s.batch, i = s.in, o = s.out;
  Map w(d.dense_w.data(), o, i), src(d.src.data(), i, n), dst(d.dst.data(), o, n);
  Map dd(d.diff_dst.data(), o, n), ds(d.diff_src.data(), i, n), dw(d.diff_w.data(), o, i);
  Eigen::Map<Eigen::VectorXf> bias(d.bias.data(), o);
  for (auto _ : state) {
    if (pass == Pass::kFwd || pass == Pass::kStep) {
      dst.noalias() = w * src;
      dst.colwise() += bias;
    }
    if (pass == Pass::kBwdData || pass == Pass::kStep) ds.noalias() = w.transpose() * dd;
    if (pass == Pass::kBwdWeights || pass == Pass::kStep) dw.noalias() = dd * src.transpose();
    benchmark::ClobberMemory();
  }
  set_counters(state, d, pass, false);
}

// --- registration -----------------------------------------------------------------------

void reg(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::move(fn))
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

// Per shape: the dense baselines once (they do not depend on the sparsity),
// then every sparse kernel and step at each sparsity.
void register_all() {
  constexpr Pass kPasses[] = {Pass::kFwd, Pass::kBwdData, Pass::kBwdWeights, Pass::kStep};
  for (const Shape& s : kShapes) {
    const std::string dense_suffix = shape_suffix(s);
    for (Pass p : kPasses) {
      reg(std::string("dnnl_cn/") + pass_name(p) + dense_suffix,
          [p, s](benchmark::State& st) { dnnl_case(st, p, false, s); });
      reg(std::string("dnnl_nc/") + pass_name(p) + dense_suffix,
          [p, s](benchmark::State& st) { dnnl_case(st, p, true, s); });
      reg(std::string("eigen_cn/") + pass_name(p) + dense_suffix,
          [p, s](benchmark::State& st) { eigen_case(st, p, s); });
    }
    for (double sp : kSparsities) {
      const std::string suffix = case_suffix(s, sp);
      for (const sk::SpmmKernel& k : sk::linear_sparse_kernel_lists().fwd) {
        if (!sk::isa_supported(k.isa)) continue;
        reg(std::string("sparse/") + k.name + suffix,
            [&k, s, sp](benchmark::State& st) { sparse_fwd(st, &k, s, sp); });
      }
      for (const sk::SpmmKernel& k : sk::linear_sparse_kernel_lists().bwd_data) {
        if (!sk::isa_supported(k.isa)) continue;
        reg(std::string("sparse/") + k.name + suffix,
            [&k, s, sp](benchmark::State& st) { sparse_bwd_data(st, &k, s, sp); });
      }
      for (const sk::SddmmKernel& k : sk::linear_sparse_kernel_lists().bwd_weights) {
        if (!sk::isa_supported(k.isa)) continue;
        reg(std::string("sparse/") + k.name + suffix,
            [&k, s, sp](benchmark::State& st) { sparse_bwd_weights(st, &k, s, sp); });
      }
      for (sk::Isa isa : {sk::Isa::kAvx512, sk::Isa::kAvx2, sk::Isa::kRef}) {
        if (!sk::isa_supported(isa)) continue;
        for (sk::BatchLayout layout : {sk::BatchLayout::kBlocked, sk::BatchLayout::kPlain}) {
          reg(std::string("sparse_step/") + sk::isa_name(isa) + "/" + layout_name(layout) + suffix,
              [isa, layout, s, sp](benchmark::State& st) {
                sparse_step(st, sk::linear_sparse_kernels(isa), layout, s, sp);
              });
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = bench_threads();
  const oneapi::tbb::global_control tbb_threads(
      oneapi::tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  omp_set_num_threads(threads);
  Eigen::setNbThreads(threads);
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("isa", sk::isa_name(sk::best_isa()));
  benchmark::AddCustomContext("cpu", sk::cpu_info().model);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
