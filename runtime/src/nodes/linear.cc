// The linear node: y = x W^T + b.
//
// Dense weight: plain (N, F) activations, oneDNN matmuls, weights plain (O, I).
//
// Compressed weight (Graph::compress): the Parameter holds only the nonzeros
// in the order of kernels/linear_sparse (its `values`), and the node keeps the
// packed index. Each forward first copies the parameter into the packed
// values (the optimizer updated the parameter in place) and syncs the
// transposed copy: one pass over nnz floats, small next to the nnz x batch
// FMAs of a pass. On the sparse kernels the node takes its input in kPlain or
// kCN, produces kCN (features x batch) and returns diff_src in the input's
// layout, so a chain of sparse linears and ReLUs never transposes. In dense
// mode the nonzeros are scattered into a dense weight for the oneDNN kernels
// and the weight gradient is gathered back at the nonzeros.
//
// Auto modes ask the graph's kernel-choice book once per (shape, batch,
// stored count): timed or by the fixed rule, or replayed from a record
// (kernel_choice.h, sparsetrain/kernel_choices.h).
#include "kernels/linear/linear.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/linear_sparse/linear_sparse.h"
#include "nodes/nodes.h"
#include "nodes/prunable_layer.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

class LinearNode final : public PrunableLayer<kernels::LinearSparseWeights, int64_t> {
 public:
  LinearNode(const std::string& name, int64_t in_features, const LinearOptions& options)
      : PrunableLayer(name, options.bias), in_features_(in_features), options_(options) {
    weight_ =
        zero_parameter(name + ".weight", ParamKind::kWeight, {options.out_features, in_features});
    if (options.bias)
      bias_ = zero_parameter(name + ".bias", ParamKind::kBias, {options.out_features});
  }

  const char* type() const override { return "linear"; }

  Shape output_shape(const std::vector<Shape>& inputs) const override {
    const std::string where = "linear '" + name() + "': ";
    expect_inputs(inputs, 1);
    const Shape& in = inputs[0];
    if (in.empty()) throw Error(where + "expects a 2-D input (N, F), got a scalar");
    int64_t features = 1;
    for (std::size_t i = 1; i < in.size(); ++i) features *= in[i];
    if (features != in_features_) {
      throw Error(where + "expects " + std::to_string(in_features_) + " input features, got " +
                  std::to_string(features) + " (input shape " + shape_to_string(in) + ")");
    }
    if (in.size() != 2) {
      throw Error(where + "expects a 2-D input (N, " + std::to_string(in_features_) + "), got " +
                  shape_to_string(in) + "; add a flatten node before it");
    }
    return {in[0], options_.out_features};
  }

  Tensor forward(const ForwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1);
    if (packed_) return forward_compressed(args.inputs[0], args.keep_for_backward);
    const Tensor src = to_layout(args.inputs[0], Layout::kPlain);
    const Shape dst_shape = output_shape({src.shape()});
    Tensor dst = Tensor::empty(dst_shape);
    kernels::linear_dense().forward(dst.data(), src.data(), weight_.value.data(), bias_data(),
                                    kernel_shape(src.dim(0)));
    return dst;
  }

  // diff_src = diff_dst W, in the layout of the input; weight and bias
  // gradients accumulate.
  std::vector<Tensor> backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1 && args.inputs[0].defined());
    SPARSETRAIN_ASSERT(args.diff_dst != nullptr && args.diff_dst->defined());
    const Tensor& input = args.inputs[0];
    if (packed_) return backward_compressed(args);
    const Tensor src = to_layout(input, Layout::kPlain);
    const Tensor diff_dst = to_layout(*args.diff_dst, Layout::kPlain);
    const kernels::LinearShape s = kernel_shape(src.dim(0));
    SPARSETRAIN_ASSERT(diff_dst.shape() == (Shape{s.batch, s.out_features}));

    const GradTargets grads = grad_targets(args, weight_, bias_param());
    if (grads.run()) {
      kernels::linear_dense().backward_weights(grads.weight, grads.bias, diff_dst.data(),
                                               src.data(), s);
      ++weight_grad_passes_;
    }
    std::vector<Tensor> diff_src(1);
    if (args.need_diff_src.empty() || args.need_diff_src[0]) {
      Tensor grad = Tensor::empty(src.shape());
      kernels::linear_dense().backward_data(grad.data(), diff_dst.data(), weight_.value.data(), s);
      diff_src[0] = to_layout(grad, input.layout());
    }
    return diff_src;
  }

  Saves saves() const override { return {.inputs = true, .output = false}; }
  // He-normal with fan_in = I.
  void reset_parameters(Rng& rng) override { reset_he_normal(rng, in_features_); }

  void compress(const Tensor& mask) override {
    const int64_t O = options_.out_features, I = in_features_;
    if (mask.numel() != O * I) {
      throw Error("linear '" + name() + "': compress: the mask has shape " + mask.shape_string() +
                  ", expected (" + std::to_string(O) + ", " + std::to_string(I) + ")");
    }
    const Tensor dense = dense_weight();
    const Tensor m = to_layout(mask, Layout::kPlain);
    std::vector<uint8_t> keep(static_cast<std::size_t>(O * I));
    for (int64_t i = 0; i < O * I; ++i) keep[i] = m[i] != 0.0f ? 1 : 0;
    auto packed = std::make_unique<kernels::LinearSparseWeights>(
        kernels::linear_sparse_pack(dense.data(), keep.data(), O, I));
    const int64_t nnz = packed->nnz;
    std::vector<int64_t> index(static_cast<std::size_t>(nnz));
    const kernels::SparsePanels& f = packed->fwd;
    for (int64_t p = 0; p < f.num_panels; ++p) {
      const uint32_t* ptr = f.row_ptr(p);
      for (int64_t r = 0; r < f.rows; ++r) {
        for (uint32_t k = ptr[r]; k < ptr[r + 1]; ++k) {
          index[k] = r * I + f.panel_begin(p) + f.col[k];
        }
      }
    }
    Tensor value = Tensor::empty({nnz});
    for (int64_t k = 0; k < nnz; ++k) value[k] = packed->values[k];
    weight_.value = value;
    weight_.grad = Tensor::zeros({nnz});
    weight_.dense_shape = {O, I};
    weight_.dense_index = std::move(index);
    packed_ = std::move(packed);
    dense_scratch_ = Tensor();
    dense_grad_scratch_ = Tensor();
  }

  void decompress() override {
    if (!packed_) return;
    weight_.value = dense_weight();
    weight_.grad = Tensor::zeros({options_.out_features, in_features_});
    weight_.dense_shape.clear();
    weight_.dense_index.clear();
    packed_.reset();
    dense_scratch_ = Tensor();
    dense_grad_scratch_ = Tensor();
  }

  // kCN (features x batch) on the sparse kernels, else plain (N, F).
  Layout input_layout(const Shape& input) override {
    return packed_ && use_sparse(input[0]) ? Layout::kCN : Layout::kPlain;
  }

  std::string describe() const override {
    std::string text = std::to_string(in_features_) + "->" + std::to_string(options_.out_features);
    if (!options_.bias) text += " no-bias";
    return text + density_note();
  }

 private:
  // The (O, I) weight: the parameter itself when dense, else the nonzeros
  // scattered into zeros (a new tensor).
  Tensor dense_weight() const {
    if (!packed_) return weight_.value;
    Tensor dense = Tensor::zeros({options_.out_features, in_features_});
    const float* v = weight_.value.data();
    for (std::size_t k = 0; k < weight_.dense_index.size(); ++k)
      dense[weight_.dense_index[k]] = v[k];
    return dense;
  }

  // Copies the parameter (updated in place by the optimizer) into the packed
  // values and the transposed copy.
  void refresh_packed() {
    std::memcpy(packed_->values.data(), weight_.value.data(),
                static_cast<std::size_t>(packed_->nnz) * sizeof(float));
    kernels::linear_sparse_sync_transposed(*packed_);
  }

  bool choose_sparse(const int64_t& batch) override;

  // keep: save the input (in the layout backward reads) for backward.
  Tensor forward_compressed(const Tensor& x, bool keep) {
    const Shape dst_shape = output_shape({x.shape()});
    const int64_t batch = x.dim(0);
    refresh_packed();
    sparse_step_ = use_sparse(batch);
    last_sparse_ = sparse_step_;
    const float* bias = bias_data();
    if (sparse_step_) {
      const Tensor src = to_layout(x, Layout::kCN);
      Tensor dst = Tensor::empty(dst_shape, Layout::kCN);
      kernels::linear_sparse_forward(dst.data(), src.data(), *packed_, bias, batch);
      if (keep) saved_src_ = src;
      return dst;
    }
    if (!dense_scratch_.defined()) {
      dense_scratch_ = Tensor::zeros({options_.out_features, in_features_});
    }
    kernels::linear_sparse_scatter(*packed_, packed_->values.data(), dense_scratch_.data());
    const Tensor src = to_layout(x, Layout::kPlain);
    Tensor dst = Tensor::empty(dst_shape);
    kernels::linear_dense().forward(dst.data(), src.data(), dense_scratch_.data(), bias,
                                    kernel_shape(batch));
    if (keep) saved_src_ = src;
    return dst;
  }

  std::vector<Tensor> backward_compressed(const BackwardArgs& args) {
    const Tensor& input = args.inputs[0];
    const int64_t batch = input.dim(0);
    const bool need = args.need_diff_src.empty() || args.need_diff_src[0];
    const GradTargets grads = grad_targets(args, weight_, bias_param());
    std::vector<Tensor> diff_src(1);
    const Layout layout = sparse_step_ ? Layout::kCN : Layout::kPlain;
    const Tensor src = saved_src_.defined() && saved_src_.layout() == layout
                           ? saved_src_
                           : to_layout(input, layout);
    const Tensor diff_dst = to_layout(*args.diff_dst, layout);
    if (sparse_step_) {
      if (grads.run()) {
        kernels::linear_sparse_backward_weights(grads.weight, grads.bias, diff_dst.data(),
                                                src.data(), *packed_, batch);
        ++weight_grad_passes_;
      }
      if (need) {
        Tensor grad = Tensor::empty(input.shape(), Layout::kCN);
        kernels::linear_sparse_backward_data(grad.data(), diff_dst.data(), *packed_, batch);
        diff_src[0] = to_layout(grad, input.layout());
      }
    } else {
      const kernels::LinearShape s = kernel_shape(batch);
      if (grads.run()) {
        if (!dense_grad_scratch_.defined()) {
          dense_grad_scratch_ = Tensor::empty({options_.out_features, in_features_});
        }
        dense_grad_scratch_.zero();
        kernels::linear_dense().backward_weights(dense_grad_scratch_.data(), grads.bias,
                                                 diff_dst.data(), src.data(), s);
        ++weight_grad_passes_;
      }
      if (grads.weight_learns) {
        float* g = weight_.grad.data();
        const float* dense = dense_grad_scratch_.data();
        for (std::size_t k = 0; k < weight_.dense_index.size(); ++k) {
          g[k] += dense[weight_.dense_index[k]];
        }
      }
      if (need) {
        Tensor grad = Tensor::empty(input.shape());
        kernels::linear_dense().backward_data(grad.data(), diff_dst.data(), dense_scratch_.data(),
                                              s);
        diff_src[0] = to_layout(grad, input.layout());
      }
    }
    saved_src_ = Tensor();
    return diff_src;
  }

  kernels::LinearShape kernel_shape(int64_t batch) const {
    return {.batch = batch, .in_features = in_features_, .out_features = options_.out_features};
  }

  int64_t in_features_;
  LinearOptions options_;
};

// Auto mode: the forward + backward-data + backward-weights time of the sparse
// kernels against oneDNN, once per (O, I, batch, nnz) in the graph (a batch
// of at least kKernelChoiceSharedMinBatch takes the decision of another).
bool LinearNode::choose_sparse(const int64_t& batch) {
  const kernels::LinearSparseWeights& w = *packed_;
  const int64_t O = w.out_features, I = w.in_features;
  char key[128], family[128], label[128];
  std::snprintf(key, sizeof key, "linear %lld %lld %lld %lld", static_cast<long long>(O),
                static_cast<long long>(I), static_cast<long long>(batch),
                static_cast<long long>(w.nnz));
  std::snprintf(family, sizeof family, "linear %lld %lld %lld", static_cast<long long>(O),
                static_cast<long long>(I), static_cast<long long>(w.nnz));
  std::snprintf(label, sizeof label, "%lld->%lld batch %lld density %.3f",
                static_cast<long long>(I), static_cast<long long>(O), static_cast<long long>(batch),
                w.density());
  const kernels::LinearShape s = kernel_shape(batch);
  KernelChoice problem;
  problem.layer = name();
  problem.op = "linear";
  problem.problem = key;
  problem.family = family;
  problem.shape = label;
  problem.batch = batch;
  problem.nnz = w.nnz;
  problem.density = w.density();
  return decide_sparse(kernels_, std::move(problem), [&] {
    Tensor src = Tensor::full({I, batch}, 0.5f);
    Tensor dst = Tensor::empty({O, batch});
    Tensor dsrc = Tensor::empty({I, batch});
    Tensor dvalues = Tensor::zeros({std::max<int64_t>(w.nnz, 1)});
    Tensor dense = Tensor::empty({O, I});
    Tensor ddense = Tensor::zeros({O, I});
    kernels::linear_sparse_unpack(w, dense.data());
    TimedSteps steps;
    steps.sparse = [=, &w]() mutable {
      kernels::linear_sparse_forward(dst.data(), src.data(), w, nullptr, batch);
      kernels::linear_sparse_backward_data(dsrc.data(), dst.data(), w, batch);
      kernels::linear_sparse_backward_weights(dvalues.data(), nullptr, dst.data(), src.data(), w,
                                              batch);
    };
    steps.dense = [=]() mutable {
      kernels::linear_dense().forward(dst.data(), src.data(), dense.data(), nullptr, s);
      kernels::linear_dense().backward_data(dsrc.data(), dst.data(), dense.data(), s);
      kernels::linear_dense().backward_weights(ddense.data(), nullptr, dst.data(), src.data(), s);
    };
    return steps;
  });
}

}  // namespace

std::unique_ptr<Node> make_linear(const std::string& name, int64_t in_features,
                                  const LinearOptions& options) {
  const std::string where = "linear '" + name + "': ";
  if (in_features <= 0) {
    throw Error(where + "in_features must be positive, got " + std::to_string(in_features));
  }
  if (options.out_features <= 0) {
    throw Error(where + "out_features must be positive, got " +
                std::to_string(options.out_features));
  }
  return std::make_unique<LinearNode>(name, in_features, options);
}

}  // namespace sparsetrain::nodes
