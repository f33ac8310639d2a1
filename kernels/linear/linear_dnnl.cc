// The oneDNN baseline: the three passes are three matmuls over plain
// row-major buffers; transposes are expressed as strides, never copied.
//
//   forward          (N, I) x (I, O)  with weights^T = W viewed with strides (1, I)
//   backward-data    (N, O) x (O, I)
//   backward-weights (O, N) x (N, I)  with diff_dst^T viewed with strides (1, O),
//                                     accumulated by a sum post-op
#include <unordered_map>

#include "kernels/common/dnnl_context.h"
#include "kernels/linear/linear.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr memory::data_type kF32 = memory::data_type::f32;

memory::desc row_major(int64_t rows, int64_t cols) {
  return memory::desc({rows, cols}, kF32, Tag::ab);
}

// The (rows, cols) transpose of a row-major (cols, rows) matrix.
memory::desc transposed(int64_t rows, int64_t cols) {
  return memory::desc({rows, cols}, kF32, memory::dims{1, rows});
}

struct MatmulEntry {
  dnnl::matmul matmul;
  memory::desc src, weights, bias, dst;
  std::string impl;
};

MatmulEntry make_matmul(const memory::desc& src, const memory::desc& weights,
                        const memory::desc& bias, const memory::desc& dst, bool accumulate) {
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::desc desc = bias.is_zero() ? dnnl::matmul::desc(src, weights, dst)
                                                 : dnnl::matmul::desc(src, weights, bias, dst);
  const dnnl::matmul::primitive_desc pd(desc, attr, dnnl_cpu_engine());
  return MatmulEntry{dnnl::matmul(pd), src, weights, bias, dst, pd.impl_info_str()};
}

DnnlKey linear_key(const char* pass, const LinearShape& s, bool with_bias) {
  DnnlKey key("linear", pass);
  key.add(s.batch).add(s.in_features).add(s.out_features).add(with_bias);
  return key;
}

std::shared_ptr<const MatmulEntry> forward_entry(const LinearShape& s, bool with_bias) {
  return dnnl_cached<MatmulEntry>(linear_key("fwd", s, with_bias), [&] {
    const memory::desc bias = with_bias ? row_major(1, s.out_features) : memory::desc();
    return make_matmul(row_major(s.batch, s.in_features), transposed(s.in_features, s.out_features),
                       bias, row_major(s.batch, s.out_features), false);
  });
}

std::shared_ptr<const MatmulEntry> backward_data_entry(const LinearShape& s) {
  return dnnl_cached<MatmulEntry>(linear_key("bwd_d", s, false), [&] {
    return make_matmul(row_major(s.batch, s.out_features), row_major(s.out_features, s.in_features),
                       memory::desc(), row_major(s.batch, s.in_features), false);
  });
}

std::shared_ptr<const MatmulEntry> backward_weights_entry(const LinearShape& s) {
  return dnnl_cached<MatmulEntry>(linear_key("bwd_w", s, false), [&] {
    return make_matmul(transposed(s.out_features, s.batch), row_major(s.batch, s.in_features),
                       memory::desc(), row_major(s.out_features, s.in_features), true);
  });
}

void run(const MatmulEntry& e, const float* src, const float* weights, const float* bias,
         float* dst, const char* what) {
  try {
    dnnl::stream& stream = dnnl_thread_stream();
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, dnnl_wrap(e.src, src)},
                                         {DNNL_ARG_WEIGHTS, dnnl_wrap(e.weights, weights)},
                                         {DNNL_ARG_DST, dnnl_wrap(e.dst, dst)}};
    if (bias != nullptr) args.emplace(DNNL_ARG_BIAS, dnnl_wrap(e.bias, bias));
    e.matmul.execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& error) {
    dnnl_fail(error, what);
  }
}

}  // namespace

void linear_forward_dnnl(float* dst, const float* src, const float* weights, const float* bias,
                         const LinearShape& s) {
  SPARSETRAIN_ASSERT(s.valid());
  if (s.batch == 0) return;
  run(*forward_entry(s, bias != nullptr), src, weights, bias, dst, "linear forward");
}

void linear_backward_data_dnnl(float* diff_src, const float* diff_dst, const float* weights,
                               const LinearShape& s) {
  SPARSETRAIN_ASSERT(s.valid());
  if (s.batch == 0) return;
  run(*backward_data_entry(s), diff_dst, weights, nullptr, diff_src, "linear backward-data");
}

void linear_backward_weights_dnnl(float* diff_weights, float* diff_bias, const float* diff_dst,
                                  const float* src, const LinearShape& s) {
  SPARSETRAIN_ASSERT(s.valid());
  if (s.batch == 0) return;
  run(*backward_weights_entry(s), diff_dst, src, nullptr, diff_weights, "linear backward-weights");
  if (diff_bias != nullptr) {
    // Column sums of diff_dst, row by row so the inner loop is contiguous.
    for (int64_t n = 0; n < s.batch; ++n) {
      const float* row = diff_dst + n * s.out_features;
      for (int64_t o = 0; o < s.out_features; ++o) diff_bias[o] += row[o];
    }
  }
}

std::string linear_dnnl_impl_info(const LinearShape& s) {
  return "fwd=" + forward_entry(s, true)->impl + " bwd_d=" + backward_data_entry(s)->impl +
         " bwd_w=" + backward_weights_entry(s)->impl;
}

}  // namespace sparsetrain::kernels
