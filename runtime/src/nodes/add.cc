// Element-wise sum of two inputs of the same shape (residual connections).
// The output takes the layout of the first input; the second is reordered to
// it when the layouts differ. Saves nothing.
//
// Why the first: in a residual block the first input is the branch (conv ->
// BN), whose layout is the domain the block computes in (kCHWN when its
// convolutions run sparse, NHWC when dense), and the next block's
// convolutions read the sum in that same domain. The second is the shortcut,
// and where the two differ (the first sparse block after a dense stem) the
// shortcut is the block input that the branch's first convolution has just
// reordered to the same layout: the executor hands Add that shared copy
// (nodes::preferred_input_layout), so the choice costs no reorder at all,
// while following the shortcut would reorder the branch and then the next
// block's input again.
#include <string>

#include "kernels/eltwise/eltwise.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

// Whether two layouts put the elements of a tensor in the same memory order.
bool same_order(Layout a, Layout b) {
  const auto nchw_like = [](Layout l) { return l == Layout::kPlain || l == Layout::kNCHW; };
  return a == b || (nchw_like(a) && nchw_like(b));
}

class Add final : public Node, public ReluFusable, public SumFoldable {
 public:
  explicit Add(const std::string& name) : Node(name) {}

  const char* type() const override { return "add"; }

  Shape output_shape(const std::vector<Shape>& inputs) const override {
    expect_inputs(inputs, 2);
    if (inputs[0] != inputs[1]) {
      throw Error("add '" + name() + "': input shapes " + shape_to_string(inputs[0]) + " and " +
                  shape_to_string(inputs[1]) + " differ");
    }
    return inputs[0];
  }

  Tensor forward(const ForwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 2);
    const Tensor& a = args.inputs[0];
    SPARSETRAIN_ASSERT(a.shape() == args.inputs[1].shape());
    second_layout_ = args.inputs[1].layout();
    Tensor first = a, b = to_layout(args.inputs[1], a.layout());
    // Padded channel planes (Tensor::plane): the sum keeps them when both
    // inputs have the same, and runs over the values between planes too.
    if (first.plane() != b.plane()) {
      first = first.packed();
      b = b.packed();
    }
    Tensor y = Tensor::empty_like(first);
    relu_fused_ = fuse_relu_ && args.training;
    if (relu_fused_) {
      kernels::eltwise_kernels().pick().add_relu_forward(y.data(), first.data(), b.data(),
                                                         first.span());
    } else {
      kernels::eltwise_kernels().pick().add_forward(y.data(), first.data(), b.data(), first.span());
    }
    return y;
  }

  // diff_a is diff_dst itself (shared storage, no copy); so is diff_b when
  // the executor allows the two to share (args.diffs_may_share) and the
  // second input's layout orders the values the same, else it is a copy in
  // that layout.
  std::vector<Tensor> backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.diff_dst != nullptr);
    const Tensor& dy = *args.diff_dst;
    const auto need = [&](size_t i) {
      return args.need_diff_src.size() <= i || args.need_diff_src[i] != 0;
    };
    std::vector<Tensor> diff(2);
    if (need(0)) diff[0] = dy;
    if (need(1)) {
      // A padded gradient keeps its planes (the input's producer takes it
      // in its own, to_layout_of).
      if (same_order(dy.layout(), second_layout_) && args.diffs_may_share) {
        diff[1] = dy.layout() == second_layout_ ? dy : dy.reshaped(dy.shape(), second_layout_);
      } else if (same_order(dy.layout(), second_layout_)) {
        diff[1] = dy.layout() == second_layout_ ? Tensor::empty_like(dy)
                                                : Tensor::empty(dy.shape(), second_layout_);
        kernels::eltwise_kernels().pick().add_backward(nullptr, diff[1].data(), dy.data(),
                                                       dy.span());
      } else {
        diff[1] = to_layout(dy, second_layout_);
      }
    }
    return diff;
  }

  Saves saves() const override { return {}; }
  NodeTraits traits() const override { return {.sums_inputs = true, .padded_planes = true}; }

  // The backward is the same either way: the ReLU's backward has masked the
  // gradient already (nodes.h).
  void set_relu_fusion(bool on) override { fuse_relu_ = on; }
  bool relu_fused() const override { return relu_fused_; }

  // The sum came from the BatchNorm before it (nodes::ResidualFusable).
  void record_folded_forward(Layout second, bool relu) override {
    second_layout_ = second;
    relu_fused_ = relu;
  }

 private:
  Layout second_layout_ = Layout::kPlain;  // of the last forward
  bool fuse_relu_ = false;                 // what the executor asks
  bool relu_fused_ = false;                // whether the last forward returned max(0, a + b)
};

}  // namespace

std::unique_ptr<Node> make_add(const std::string& name) { return std::make_unique<Add>(name); }

}  // namespace sparsetrain::nodes
