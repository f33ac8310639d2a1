// Max pooling 2d. Saves its input: backward recomputes each window's argmax,
// which costs no memory when the input is kept anyway (the output of a ReLU).
#include <string>

#include "kernels/pooling/pooling.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

class MaxPool2d final : public Node {
 public:
  MaxPool2d(const std::string& name, const PoolOptions& options) : Node(name), options_(options) {
    if (options.kernel < 1 || options.stride < 1 || options.padding < 0 ||
        options.padding > options.kernel / 2) {
      throw Error("maxpool2d '" + name + "': kernel " + std::to_string(options.kernel) +
                  ", stride " + std::to_string(options.stride) + ", padding " +
                  std::to_string(options.padding) +
                  " is invalid: need kernel >= 1, stride >= 1, 0 <= padding <= kernel / 2");
    }
  }

  const char* type() const override { return "maxpool2d"; }

  Shape output_shape(const std::vector<Shape>& inputs) const override {
    if (inputs.size() != 1) {
      throw Error("maxpool2d '" + name() + "' takes one input, got " +
                  std::to_string(inputs.size()));
    }
    const Shape& x = inputs[0];
    if (x.size() != 4) {
      throw Error("maxpool2d '" + name() + "' expects a 4-D input (N, C, H, W), got " +
                  shape_to_string(x));
    }
    const kernels::PoolDesc d = make_desc(x, Layout::kNCHW);
    if (x[2] + 2 * d.padding < d.kernel || x[3] + 2 * d.padding < d.kernel) {
      throw Error("maxpool2d '" + name() + "': input " + shape_to_string(x) +
                  " is smaller than the " + std::to_string(d.kernel) + "x" +
                  std::to_string(d.kernel) + " window");
    }
    return {x[0], x[1], d.out_h(), d.out_w()};
  }

  Tensor forward(const ForwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1);
    const Tensor& x = args.inputs[0];
    SPARSETRAIN_ASSERT(x.rank() == 4);
    const kernels::PoolDesc d = make_desc(x.shape(), x.layout());
    Tensor y = Tensor::empty({d.n, d.c, d.out_h(), d.out_w()}, x.layout());
    kernels::pool_kernel(d).max_forward(y.data(), x.data(), d);
    return y;
  }

  std::vector<Tensor> backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1 && args.diff_dst != nullptr);
    if (!args.need_diff_src.empty() && args.need_diff_src[0] == 0) return {Tensor()};
    const Tensor& x = args.inputs[0];
    const Tensor dy = to_layout(*args.diff_dst, x.layout());
    const kernels::PoolDesc d = make_desc(x.shape(), x.layout());
    SPARSETRAIN_ASSERT(dy.numel() == d.dst_numel());
    Tensor dx = Tensor::empty(x.shape(), x.layout());
    kernels::pool_kernel(d).max_backward(dx.data(), dy.data(), x.data(), d);
    return {dx};
  }

  Saves saves() const override { return {.inputs = true, .output = false}; }

  std::string describe() const override {
    return std::to_string(options_.kernel) + "x" + std::to_string(options_.kernel) + " s" +
           std::to_string(options_.stride) + " p" + std::to_string(options_.padding);
  }

 private:
  kernels::PoolDesc make_desc(const Shape& x, Layout layout) const {
    return {x[0], x[1], x[2], x[3], options_.kernel, options_.stride, options_.padding, layout};
  }

  PoolOptions options_;
};

}  // namespace

std::unique_ptr<Node> make_maxpool2d(const std::string& name, const PoolOptions& options) {
  return std::make_unique<MaxPool2d>(name, options);
}

}  // namespace sparsetrain::nodes
