// Max and average pooling 2d: one node, two rules.
// - max: saves its input; backward recomputes each window's argmax, which
//   costs no memory when the input is kept anyway (the output of a ReLU).
// - average: padding counted in the divisor (PyTorch's default
//   count_include_pad = true); saves nothing, backward needs only the shape.
#include <string>

#include "kernels/pooling/pooling.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

enum class PoolKind { kMax, kAvg };

class Pool2d final : public UnaryNode {
 public:
  Pool2d(const std::string& name, PoolKind kind, const PoolOptions& options)
      : UnaryNode(name), kind_(kind), options_(options) {
    if (options.kernel < 1 || options.stride < 1 || options.padding < 0 ||
        options.padding > options.kernel / 2) {
      throw Error(std::string(type()) + " '" + name + "': kernel " +
                  std::to_string(options.kernel) + ", stride " + std::to_string(options.stride) +
                  ", padding " + std::to_string(options.padding) +
                  " is invalid: need kernel >= 1, stride >= 1, 0 <= padding <= kernel / 2");
    }
  }

  const char* type() const override { return kind_ == PoolKind::kMax ? "maxpool2d" : "avgpool2d"; }

  Shape unary_shape(const Shape& x) const override {
    const std::string where = std::string(type()) + " '" + name() + "'";
    if (x.size() != 4) fail_input_shape("a 4-D input (N, C, H, W)", x);
    const kernels::PoolDesc d = make_desc(x, Layout::kNCHW);
    if (x[2] + 2 * d.padding < d.kernel || x[3] + 2 * d.padding < d.kernel) {
      throw Error(where + ": input " + shape_to_string(x) + " is smaller than the " +
                  std::to_string(d.kernel) + "x" + std::to_string(d.kernel) + " window");
    }
    return {x[0], x[1], d.out_h(), d.out_w()};
  }

  Tensor unary_forward(const Tensor& x, const ForwardArgs& /*args*/) override {
    SPARSETRAIN_ASSERT(x.rank() == 4);
    const kernels::PoolDesc d = make_desc(x.shape(), x.layout());
    Tensor y = Tensor::empty({d.n, d.c, d.out_h(), d.out_w()}, x.layout());
    if (kind_ == PoolKind::kMax) {
      kernels::pool_kernels().pick_for(d).max_forward(y.data(), x.data(), d);
    } else {
      kernels::pool_kernels().pick_for(d).avg_forward(y.data(), x.data(), d);
    }
    return y;
  }

  Tensor unary_backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(input_shape_.size() == 4);
    const Tensor dy = to_layout(*args.diff_dst, input_layout_);
    const kernels::PoolDesc d = make_desc(input_shape_, input_layout_);
    SPARSETRAIN_ASSERT(dy.numel() == d.dst_numel());
    Tensor dx = Tensor::empty(input_shape_, input_layout_);
    if (kind_ == PoolKind::kMax) {
      SPARSETRAIN_ASSERT(args.inputs.size() == 1 && args.inputs[0].defined());
      kernels::pool_kernels().pick_for(d).max_backward(dx.data(), dy.data(), args.inputs[0].data(),
                                                       d);
    } else {
      kernels::pool_kernels().pick_for(d).avg_backward(dx.data(), dy.data(), d);
    }
    return dx;
  }

  Saves saves() const override { return {.inputs = kind_ == PoolKind::kMax, .output = false}; }

  std::string describe() const override {
    return std::to_string(options_.kernel) + "x" + std::to_string(options_.kernel) + " s" +
           std::to_string(options_.stride) + " p" + std::to_string(options_.padding);
  }

 private:
  kernels::PoolDesc make_desc(const Shape& x, Layout layout) const {
    return {x[0], x[1], x[2], x[3], options_.kernel, options_.stride, options_.padding, layout};
  }

  PoolKind kind_;
  PoolOptions options_;
};

}  // namespace

std::unique_ptr<Node> make_maxpool2d(const std::string& name, const PoolOptions& options) {
  return std::make_unique<Pool2d>(name, PoolKind::kMax, options);
}

std::unique_ptr<Node> make_avgpool2d(const std::string& name, const PoolOptions& options) {
  return std::make_unique<Pool2d>(name, PoolKind::kAvg, options);
}

}  // namespace sparsetrain::nodes
