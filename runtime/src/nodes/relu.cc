// ReLU: any shape and layout; backward reads the saved output only.
#include <string>

#include "kernels/eltwise/eltwise.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

class Relu final : public UnaryNode {
 public:
  using UnaryNode::UnaryNode;

  const char* type() const override { return "relu"; }

  // Padded planes (Tensor::plane) pass through: the values between planes
  // are mapped too, and belong to no element.
  Tensor unary_forward(const Tensor& x, const ForwardArgs& /*args*/) override {
    Tensor y = Tensor::empty_like(x);
    kernels::eltwise_kernels().pick().relu_forward(y.data(), x.data(), x.span());
    return y;
  }

  Tensor unary_backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.output != nullptr);
    const Tensor& y = *args.output;
    const Tensor dy = to_layout_of(*args.diff_dst, y);
    SPARSETRAIN_ASSERT(dy.shape() == y.shape());
    Tensor dx = Tensor::empty_like(y);
    kernels::eltwise_kernels().pick().relu_backward(dx.data(), dy.data(), y.data(), y.span());
    return dx;
  }

  Saves saves() const override { return {.inputs = false, .output = true}; }
  NodeTraits traits() const override {
    return {.relu = true, .layout_transparent = true, .padded_planes = true};
  }
};

}  // namespace

std::unique_ptr<Node> make_relu(const std::string& name) { return std::make_unique<Relu>(name); }

}  // namespace sparsetrain::nodes
