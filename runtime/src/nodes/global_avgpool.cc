// Global average pooling: (N, C, H, W) in any layout -> (N, C) plain.
#include <string>

#include "kernels/pooling/pooling.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

class GlobalAvgPool final : public UnaryNode {
 public:
  using UnaryNode::UnaryNode;

  const char* type() const override { return "global_avgpool"; }

  Shape unary_shape(const Shape& x) const override {
    if (x.size() != 4 || x[2] < 1 || x[3] < 1) fail_input_shape("a 4-D input (N, C, H, W)", x);
    return {x[0], x[1]};
  }

  Tensor unary_forward(const Tensor& x, const ForwardArgs& /*args*/) override {
    SPARSETRAIN_ASSERT(x.rank() == 4);
    const kernels::PoolDesc d = make_desc();
    Tensor y = Tensor::empty({d.n, d.c});
    kernels::pool_kernels().pick_for(d).global_avg_forward(y.data(), x.data(), d);
    return y;
  }

  Tensor unary_backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(input_shape_.size() == 4);
    const Tensor dy = to_layout(*args.diff_dst, Layout::kPlain);
    const kernels::PoolDesc d = make_desc();
    SPARSETRAIN_ASSERT(dy.numel() == d.n * d.c);
    Tensor dx = Tensor::empty(input_shape_, input_layout_);
    kernels::pool_kernels().pick_for(d).global_avg_backward(dx.data(), dy.data(), d);
    return dx;
  }

  Saves saves() const override { return {}; }

 private:
  kernels::PoolDesc make_desc() const {
    const Shape& x = input_shape_;
    return {x[0], x[1], x[2], x[3], 1, 1, 0, input_layout_};
  }
};

}  // namespace

std::unique_ptr<Node> make_global_avgpool(const std::string& name) {
  return std::make_unique<GlobalAvgPool>(name);
}

}  // namespace sparsetrain::nodes
