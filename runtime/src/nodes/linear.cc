// The dense linear node: y = x W^T + b over plain (N, F) activations with
// oneDNN matmuls; weights stored plain (O, I).
#include "kernels/linear/linear.h"

#include <cmath>
#include <string>
#include <vector>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

class LinearNode final : public Node {
 public:
  LinearNode(const std::string& name, int64_t in_features, const LinearOptions& options)
      : Node(name), in_features_(in_features), options_(options) {
    weight_.name = name + ".weight";
    weight_.kind = ParamKind::kWeight;
    weight_.value = Tensor::zeros({options.out_features, in_features});
    weight_.grad = Tensor::zeros({options.out_features, in_features});
    if (options.bias) {
      bias_.name = name + ".bias";
      bias_.kind = ParamKind::kBias;
      bias_.value = Tensor::zeros({options.out_features});
      bias_.grad = Tensor::zeros({options.out_features});
    }
  }

  const char* type() const override { return "linear"; }

  Shape output_shape(const std::vector<Shape>& inputs) const override {
    const std::string where = "linear '" + name() + "': ";
    if (inputs.size() != 1) {
      throw Error(where + "expects 1 input, got " + std::to_string(inputs.size()));
    }
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
    const Tensor src = to_layout(args.inputs[0], Layout::kPlain);
    const Shape dst_shape = output_shape({src.shape()});
    Tensor dst = Tensor::empty(dst_shape);
    kernels::linear_forward_dnnl(dst.data(), src.data(), weight_.value.data(),
                                 options_.bias ? bias_.value.data() : nullptr,
                                 kernel_shape(src.dim(0)));
    return dst;
  }

  // diff_src = diff_dst W, in the layout of the input; weight and bias
  // gradients accumulate.
  std::vector<Tensor> backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1 && args.inputs[0].defined());
    SPARSETRAIN_ASSERT(args.diff_dst != nullptr && args.diff_dst->defined());
    const Tensor& input = args.inputs[0];
    const Tensor src = to_layout(input, Layout::kPlain);
    const Tensor diff_dst = to_layout(*args.diff_dst, Layout::kPlain);
    const kernels::LinearShape s = kernel_shape(src.dim(0));
    SPARSETRAIN_ASSERT(diff_dst.shape() == (Shape{s.batch, s.out_features}));

    kernels::linear_backward_weights_dnnl(weight_.grad.data(),
                                          options_.bias ? bias_.grad.data() : nullptr,
                                          diff_dst.data(), src.data(), s);
    std::vector<Tensor> diff_src(1);
    if (args.need_diff_src.empty() || args.need_diff_src[0]) {
      Tensor grad = Tensor::empty(src.shape());
      kernels::linear_backward_data_dnnl(grad.data(), diff_dst.data(), weight_.value.data(), s);
      diff_src[0] = to_layout(grad, input.layout());
    }
    return diff_src;
  }

  Saves saves() const override { return {.inputs = true, .output = false}; }

  std::vector<Parameter*> parameters() override {
    if (options_.bias) return {&weight_, &bias_};
    return {&weight_};
  }

  // He-normal (He et al. 2015, sec. 2.2): std = sqrt(2 / fan_in), fan_in = I.
  void reset_parameters(Rng& rng) override {
    const float stddev = static_cast<float>(std::sqrt(2.0 / static_cast<double>(in_features_)));
    float* w = weight_.value.data();
    for (int64_t i = 0; i < weight_.value.numel(); ++i) w[i] = stddev * rng.normal();
    if (options_.bias) bias_.value.zero();
  }

  std::string describe() const override {
    std::string text = std::to_string(in_features_) + "->" + std::to_string(options_.out_features);
    if (!options_.bias) text += " no-bias";
    return text;
  }

 private:
  kernels::LinearShape kernel_shape(int64_t batch) const {
    return {.batch = batch, .in_features = in_features_, .out_features = options_.out_features};
  }

  int64_t in_features_;
  LinearOptions options_;
  Parameter weight_;
  Parameter bias_;  // unused without a bias
};

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
