// sparsetrain bench linear: one sparse linear layer against the fastest dense
// oneDNN matmul on the same shape, per pass and for a whole training step
// (forward + backward-data + backward-weights), by the method of
// bench_common.h. The dense side's forms are oneDNN's two operand layouts,
// NC (batch x features, its own convention) and CN (features x batch, the
// layout the sparse kernels use), the faster one per pass.
//
// Where the comparison favours the dense side: its backward-weights writes
// the (O, I) gradient without a bias gradient, and its CN forward adds no
// bias (oneDNN 2.6 has no optimised matmul with a per-row bias). The sparse
// side runs the dispatcher's kernels on activations kept in the kBlocked
// batch layout (no per-call packing), as a run of sparse layers does.
#include <algorithm>
#include <array>
#include <cstdint>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_common.h"
#include "commands.h"
#include "kernels/common/cpu.h"
#include "kernels/common/dnnl_context.h"
#include "kernels/common/threads.h"
#include "kernels/linear_sparse/linear_sparse.h"
#include "sparsetrain/error.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::cli {

namespace {

namespace sk = kernels;
using namespace bench;
using dnnl::memory;
using Tag = memory::format_tag;

// C (M, N) = A (M, K) * B (K, N) [+ bias] over caller-owned plain arrays; the
// tags say whether A and B are read transposed.
struct DenseMatmul {
  dnnl::matmul prim;
  std::unordered_map<int, memory> args;
  std::string impl;

  void run(dnnl::stream& stream) const {
    prim.execute(stream, args);
    stream.wait();
  }
};

DenseMatmul make_matmul(memory::dims a_dims, Tag a_tag, float* a, memory::dims b_dims, Tag b_tag,
                        float* b, memory::dims c_dims, float* c, float* bias = nullptr) {
  constexpr auto f32 = memory::data_type::f32;
  const dnnl::engine& eng = sk::dnnl_cpu_engine();
  const memory::desc ad(a_dims, f32, a_tag), bd(b_dims, f32, b_tag), cd(c_dims, f32, Tag::ab);
  DenseMatmul m;
  m.args = {{DNNL_ARG_SRC, memory(ad, eng, a)},
            {DNNL_ARG_WEIGHTS, memory(bd, eng, b)},
            {DNNL_ARG_DST, memory(cd, eng, c)}};
  if (bias != nullptr) {
    const memory::desc biasd({1, c_dims[1]}, f32, Tag::ab);
    m.args.emplace(DNNL_ARG_BIAS, memory(biasd, eng, bias));
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, biasd, cd), eng);
    m.impl = pd.impl_info_str();
    m.prim = dnnl::matmul(pd);
  } else {
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, cd), eng);
    m.impl = pd.impl_info_str();
    m.prim = dnnl::matmul(pd);
  }
  return m;
}

enum Form { kNC = 0, kCN = 1, kNumForms = 2 };
constexpr const char* kFormNames[kNumForms] = {"nc", "cn"};

struct Problem {
  int64_t in = 0, out = 0, batch = 0;
  // Dense operands, plain row-major; each form reads them with its own shape.
  Tensor dense_w, bias, src, dst, diff_dst, diff_src, diff_w;  // w, diff_w (O, I)
  // Sparse operands, activations kBlocked (features x batch).
  sk::LinearSparseWeights w;
  Tensor src_b, dst_b, diff_dst_b, diff_src_b, diff_values, diff_bias;
  // The dense passes in each form: [form][pass].
  std::array<std::array<DenseMatmul, kNumKernelPasses>, kNumForms> dense;
};

Tensor flat(const std::vector<float>& v) {
  return Tensor::from({static_cast<int64_t>(v.size())}, v);
}

Tensor blocked(const std::vector<float>& plain, int64_t features, int64_t batch) {
  Tensor t = Tensor::zeros({sk::linear_sparse_blocked_size(features, batch)});
  sk::linear_sparse_to_blocked(t.data(), plain.data(), features, batch);
  return t;
}

void build(Problem& p, const BenchLinearCommand& cmd, double sparsity) {
  p.in = cmd.in;
  p.out = cmd.out;
  p.batch = cmd.batch;
  const int64_t i = p.in, o = p.out, n = p.batch;
  std::mt19937 rng(cmd.seed);
  std::vector<float> weights = random_floats(o * i, rng);
  const std::vector<uint8_t> mask = magnitude_mask(weights, sparsity);
  p.w = sk::linear_sparse_pack(weights.data(), mask.data(), o, i);
  for (std::size_t k = 0; k < weights.size(); ++k)
    if (mask[k] == 0) weights[k] = 0.0f;
  const std::vector<float> src = random_floats(i * n, rng);
  const std::vector<float> diff_dst = random_floats(o * n, rng);
  p.dense_w = Tensor::from({o, i}, weights);
  p.bias = flat(random_floats(o, rng));
  p.src = flat(src);
  p.diff_dst = flat(diff_dst);
  p.dst = Tensor::zeros({o * n});
  p.diff_src = Tensor::zeros({i * n});
  p.diff_w = Tensor::zeros({o, i});
  p.src_b = blocked(src, i, n);
  p.diff_dst_b = blocked(diff_dst, o, n);
  p.dst_b = Tensor::zeros({sk::linear_sparse_blocked_size(o, n)});
  p.diff_src_b = Tensor::zeros({sk::linear_sparse_blocked_size(i, n)});
  p.diff_values = Tensor::zeros({std::max<int64_t>(p.w.nnz, 1)});
  p.diff_bias = Tensor::zeros({o});

  float* w = p.dense_w.data();
  try {
    // NC (batch x features):
    //   fwd          dst (N, O) = src (N, I) * W^T (I, O) + bias
    //   bwd_data     diff_src (N, I) = diff_dst (N, O) * W (O, I)
    //   bwd_weights  diff_W (O, I) = diff_dst^T (O, N) * src (N, I)
    p.dense[kNC] = {make_matmul({n, i}, Tag::ab, p.src.data(), {i, o}, Tag::ba, w, {n, o},
                                p.dst.data(), p.bias.data()),
                    make_matmul({n, o}, Tag::ab, p.diff_dst.data(), {o, i}, Tag::ab, w, {n, i},
                                p.diff_src.data()),
                    make_matmul({o, n}, Tag::ba, p.diff_dst.data(), {n, i}, Tag::ab, p.src.data(),
                                {o, i}, p.diff_w.data())};
    // CN (features x batch):
    //   fwd          dst (O, N) = W (O, I) * src (I, N)
    //   bwd_data     diff_src (I, N) = W^T (I, O) * diff_dst (O, N)
    //   bwd_weights  diff_W (O, I) = diff_dst (O, N) * src^T (N, I)
    p.dense[kCN] = {
        make_matmul({o, i}, Tag::ab, w, {i, n}, Tag::ab, p.src.data(), {o, n}, p.dst.data()),
        make_matmul({i, o}, Tag::ba, w, {o, n}, Tag::ab, p.diff_dst.data(), {i, n},
                    p.diff_src.data()),
        make_matmul({o, n}, Tag::ab, p.diff_dst.data(), {n, i}, Tag::ba, p.src.data(), {o, i},
                    p.diff_w.data())};
  } catch (const dnnl::error& e) {
    throw Error(std::string("bench linear: oneDNN matmul could not be created: ") + e.what());
  }
}

void run_sparse(Problem& p, int pass, const sk::LinearSparseKernels& k) {
  constexpr auto kBlocked = sk::BatchLayout::kBlocked;
  switch (pass) {
    case kFwd:
      sk::linear_sparse_forward(p.dst_b.data(), p.src_b.data(), p.w, p.bias.data(), p.batch,
                                kBlocked, k.fwd);
      break;
    case kBwdData:
      sk::linear_sparse_backward_data(p.diff_src_b.data(), p.diff_dst_b.data(), p.w, p.batch,
                                      kBlocked, false, k.bwd_data);
      break;
    default:
      sk::linear_sparse_backward_weights(p.diff_values.data(), p.diff_bias.data(),
                                         p.diff_dst_b.data(), p.src_b.data(), p.w, p.batch,
                                         kBlocked, k.bwd_weights);
      break;
  }
}

LayerReport measure(const BenchLinearCommand& cmd, double sparsity) {
  const sk::Isa isa = sk::active_isa();  // throws on a bad SPARSETRAIN_ISA
  const sk::LinearSparseKernels kernels = sk::linear_sparse_kernels(isa);
  sk::sync_openmp_threads();
  Problem p;
  build(p, cmd, sparsity);
  dnnl::stream& stream = sk::dnnl_thread_stream();

  LayerReport r = measure_layer(
      cmd, sparsity, sk::isa_name(isa), kNumForms,
      [&](int f, int pass) { p.dense[f][pass].run(stream); },
      [&](int pass) { run_sparse(p, pass, kernels); },
      [&](int f, int pass) { return std::string(kFormNames[f]) + ":" + p.dense[f][pass].impl; });
  r.command = "linear";
  r.shape = {{"in", p.in}, {"out", p.out}, {"batch", p.batch}};
  r.shape_line = "batch " + std::to_string(p.batch) + " x " + std::to_string(p.in) + " -> " +
                 std::to_string(p.out);
  r.plot_title =
      "b" + std::to_string(p.batch) + " " + std::to_string(p.in) + "->" + std::to_string(p.out);
  r.dense_name = "oneDNN matmul";
  r.nnz = p.w.nnz;
  r.dense_size = p.in * p.out;
  r.dense_flop = 2.0 * static_cast<double>(p.in * p.out * p.batch);
  r.sparse_flop = 2.0 * static_cast<double>(p.w.nnz * p.batch);
  r.sparse_kernels = {kernels.fwd->name, kernels.bwd_data->name, kernels.bwd_weights->name};
  return r;
}

}  // namespace

int run_bench_linear(BenchLinearCommand& cmd) {
  require_at_least(cmd.in, 1, "--in");
  require_at_least(cmd.out, 1, "--out");
  check_layer_options(cmd);
  sk::set_num_threads(cmd.threads);
  const std::string plot = !cmd.plot.empty() ? cmd.plot
                                             : "bench-linear-" + std::to_string(cmd.in) + "x" +
                                                   std::to_string(cmd.out) + "-b" +
                                                   std::to_string(cmd.batch) + ".png";
  return report_layer(cmd.sweep, cmd.json, cmd.sparsity, plot,
                      [&](double s) { return measure(cmd, s); });
}

}  // namespace sparsetrain::cli
