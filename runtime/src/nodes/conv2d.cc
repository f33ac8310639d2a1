// The dense conv2d node: oneDNN convolutions over activations in
// dense_conv_layout(), weights stored plain OIHW, (O, C/G, KH, KW).
#include "kernels/conv2d/conv2d.h"

#include <cmath>
#include <string>
#include <vector>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {

// NHWC, measured with bench/bench_conv_layout (ResNet-20 convolutions, batch
// 128, 2 threads, oneDNN 2.6): with channels innermost oneDNN runs its AVX-512
// JIT kernels on the activations as they are (brgconv forward, jit
// backward-data and backward-weights), about 80 ms for all convolutions of a
// training step; with NCHW it falls back to im2col + GEMM for every pass,
// about 300 ms.
Layout dense_conv_layout() { return Layout::kNHWC; }

namespace {

class Conv2dNode final : public Node {
 public:
  Conv2dNode(const std::string& name, int64_t in_channels, const Conv2dOptions& options)
      : Node(name), in_channels_(in_channels), options_(options) {
    weight_.name = name + ".weight";
    weight_.kind = ParamKind::kWeight;
    const Shape weight_shape{options.out_channels, in_channels / options.groups, options.kernel,
                             options.kernel};
    weight_.value = Tensor::zeros(weight_shape);
    weight_.grad = Tensor::zeros(weight_shape);
    if (options.bias) {
      bias_.name = name + ".bias";
      bias_.kind = ParamKind::kBias;
      bias_.value = Tensor::zeros({options.out_channels});
      bias_.grad = Tensor::zeros({options.out_channels});
    }
  }

  const char* type() const override { return "conv2d"; }

  Shape output_shape(const std::vector<Shape>& inputs) const override {
    if (inputs.size() != 1) {
      throw Error(prefix() + "expects 1 input, got " + std::to_string(inputs.size()));
    }
    const Shape& in = inputs[0];
    if (in.size() != 4) {
      throw Error(prefix() + "expects a 4-D input (N, " + std::to_string(in_channels_) +
                  ", H, W), got " + shape_to_string(in));
    }
    if (in[1] != in_channels_) {
      throw Error(prefix() + "expects " + std::to_string(in_channels_) + " input channels, got " +
                  std::to_string(in[1]) + " (input shape " + shape_to_string(in) + ")");
    }
    const int64_t k = options_.kernel, p = options_.padding;
    if (in[2] + 2 * p < k || in[3] + 2 * p < k) {
      throw Error(prefix() + "a " + std::to_string(k) + "x" + std::to_string(k) +
                  " kernel with padding " + std::to_string(p) + " does not fit the " +
                  std::to_string(in[2]) + "x" + std::to_string(in[3]) + " input (input shape " +
                  shape_to_string(in) + ")");
    }
    return kernel_shape(in).dst_shape();
  }

  Tensor forward(const ForwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1);
    const Layout layout = dense_conv_layout();
    const Tensor src = to_layout(args.inputs[0], layout);
    const Shape dst_shape = output_shape({src.shape()});
    const kernels::Conv2dShape s = kernel_shape(src.shape());
    Tensor dst = Tensor::empty(dst_shape, layout);
    kernels::conv2d_forward_dnnl(dst.data(), src.data(), weight_.value.data(), bias_data(), s,
                                 layout);
    return dst;
  }

  // diff_src = conv^T(diff_dst), in the layout of the input; weight and bias
  // gradients accumulate.
  std::vector<Tensor> backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1 && args.inputs[0].defined());
    SPARSETRAIN_ASSERT(args.diff_dst != nullptr && args.diff_dst->defined());
    const Layout layout = dense_conv_layout();
    const Tensor& input = args.inputs[0];
    const Tensor src = to_layout(input, layout);
    const Tensor diff_dst = to_layout(*args.diff_dst, layout);
    const kernels::Conv2dShape s = kernel_shape(src.shape());
    SPARSETRAIN_ASSERT(diff_dst.shape() == s.dst_shape());

    kernels::conv2d_backward_weights_dnnl(weight_.grad.data(),
                                          options_.bias ? bias_.grad.data() : nullptr,
                                          diff_dst.data(), src.data(), s, layout);
    std::vector<Tensor> diff_src(1);
    if (args.need_diff_src.empty() || args.need_diff_src[0]) {
      Tensor grad = Tensor::empty(src.shape(), layout);
      kernels::conv2d_backward_data_dnnl(grad.data(), diff_dst.data(), weight_.value.data(), s,
                                         layout);
      diff_src[0] = to_layout(grad, input.layout());
    }
    return diff_src;
  }

  Saves saves() const override { return {.inputs = true, .output = false}; }

  std::vector<Parameter*> parameters() override {
    if (options_.bias) return {&weight_, &bias_};
    return {&weight_};
  }

  // He-normal (He et al. 2015, "Delving Deep into Rectifiers", sec. 2.2):
  // std = sqrt(2 / fan_in) with fan_in = C/G * KH * KW.
  void reset_parameters(Rng& rng) override {
    const int64_t fan_in = in_channels_ / options_.groups * options_.kernel * options_.kernel;
    const float stddev = static_cast<float>(std::sqrt(2.0 / static_cast<double>(fan_in)));
    float* w = weight_.value.data();
    for (int64_t i = 0; i < weight_.value.numel(); ++i) w[i] = stddev * rng.normal();
    if (options_.bias) bias_.value.zero();
  }

  std::string describe() const override {
    const std::string k = std::to_string(options_.kernel);
    std::string text = k + "x" + k + " s" + std::to_string(options_.stride) + " p" +
                       std::to_string(options_.padding) + " " + std::to_string(in_channels_) +
                       "->" + std::to_string(options_.out_channels);
    if (options_.groups > 1) {
      const bool depthwise =
          options_.groups == in_channels_ && options_.groups == options_.out_channels;
      text += depthwise ? " depthwise" : " g" + std::to_string(options_.groups);
    }
    if (!options_.bias) text += " no-bias";
    return text;
  }

 private:
  std::string prefix() const { return "conv2d '" + name() + "': "; }

  kernels::Conv2dShape kernel_shape(const Shape& in) const {
    kernels::Conv2dShape s;
    s.batch = in[0];
    s.in_channels = in[1];
    s.in_h = in[2];
    s.in_w = in[3];
    s.out_channels = options_.out_channels;
    s.kernel_h = s.kernel_w = options_.kernel;
    s.stride_h = s.stride_w = options_.stride;
    s.pad_h = s.pad_w = options_.padding;
    s.groups = options_.groups;
    return s;
  }

  const float* bias_data() const { return options_.bias ? bias_.value.data() : nullptr; }

  int64_t in_channels_;
  Conv2dOptions options_;
  Parameter weight_;
  Parameter bias_;  // unused without a bias
};

}  // namespace

std::unique_ptr<Node> make_conv2d(const std::string& name, int64_t in_channels,
                                  const Conv2dOptions& options) {
  const std::string where = "conv2d '" + name + "': ";
  auto require_positive = [&](int64_t value, const char* what) {
    if (value <= 0) {
      throw Error(where + what + " must be positive, got " + std::to_string(value));
    }
  };
  require_positive(in_channels, "in_channels");
  require_positive(options.out_channels, "out_channels");
  require_positive(options.kernel, "kernel");
  require_positive(options.stride, "stride");
  require_positive(options.groups, "groups");
  if (options.padding < 0) {
    throw Error(where + "padding must be >= 0, got " + std::to_string(options.padding));
  }
  if (in_channels % options.groups != 0 || options.out_channels % options.groups != 0) {
    throw Error(where + "groups (" + std::to_string(options.groups) +
                ") must divide both in_channels (" + std::to_string(in_channels) +
                ") and out_channels (" + std::to_string(options.out_channels) + ")");
  }
  return std::make_unique<Conv2dNode>(name, in_channels, options);
}

}  // namespace sparsetrain::nodes
