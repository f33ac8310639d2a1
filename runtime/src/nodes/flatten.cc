// Flatten: (N, C, H, W) in any layout, or (N, ...) plain, to (N, C*H*W)
// with the features in CHW order (what a linear layer after it, and a
// checkpoint from another framework, expect). NCHW input gives a plain
// (N, F) view, and CHWN input (the sparse conv domain) a kCN (F, N) view:
// (C, H, W, N) memory is exactly (C*H*W, N), what a sparse linear layer
// reads. Other layouts (NHWC) are reordered to plain. Backward returns the
// gradient in the input's layout.
#include <string>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

class Flatten final : public UnaryNode {
 public:
  using UnaryNode::UnaryNode;

  const char* type() const override { return "flatten"; }

  Shape unary_shape(const Shape& x) const override {
    if (x.size() < 2) fail_input_shape("an input (N, ...) of rank >= 2", x);
    return {x[0], Tensor::count(Shape(x.begin() + 1, x.end()))};
  }

  Tensor unary_forward(const Tensor& x, const ForwardArgs& /*args*/) override {
    SPARSETRAIN_ASSERT(x.rank() >= 2);
    const Shape out = unary_shape(x.shape());
    if (x.layout() == Layout::kCHWN) return x.reshaped(out, Layout::kCN);
    // to_layout returns x itself (a view) when it is already in NCHW order.
    const Layout order = x.rank() == 4 ? Layout::kNCHW : Layout::kPlain;
    return to_layout(x, order).reshaped(out, Layout::kPlain);
  }

  Tensor unary_backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(!input_shape_.empty());
    if (input_layout_ == Layout::kCHWN) {
      return to_layout(*args.diff_dst, Layout::kCN).reshaped(input_shape_, Layout::kCHWN);
    }
    const Tensor dy = to_layout(*args.diff_dst, Layout::kPlain);
    const Layout order = input_shape_.size() == 4 ? Layout::kNCHW : Layout::kPlain;
    return to_layout(dy.reshaped(input_shape_, order), input_layout_);
  }

  Saves saves() const override { return {}; }
};

}  // namespace

std::unique_ptr<Node> make_flatten(const std::string& name) {
  return std::make_unique<Flatten>(name);
}

}  // namespace sparsetrain::nodes
