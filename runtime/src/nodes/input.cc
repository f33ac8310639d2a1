// The graph input: passes the batch through and checks that its samples have
// the shape the model was built for.
#include <string>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

class Input final : public Node {
 public:
  Input(const std::string& name, Shape sample_shape)
      : Node(name), sample_shape_(std::move(sample_shape)) {
    if (sample_shape_.empty()) {
      throw Error("input '" + name + "': the sample shape is empty; give {C, H, W} or {F}");
    }
    for (int64_t d : sample_shape_) {
      if (d <= 0) {
        throw Error("input '" + name + "': sample shape " + shape_to_string(sample_shape_) +
                    " has a dimension < 1");
      }
    }
  }

  const char* type() const override { return "input"; }

  // inputs: the one batch shape (N, sample...).
  Shape output_shape(const std::vector<Shape>& inputs) const override {
    expect_inputs(inputs, 1);
    const Shape& x = inputs[0];
    const Shape sample(x.begin() + (x.empty() ? 0 : 1), x.end());
    if (x.empty() || sample != sample_shape_) {
      const char* what = sample_shape_.size() == 3 ? "images" : "samples";
      const std::string got = x.empty() ? std::string("a scalar") : shape_to_string(sample);
      throw Error("model input '" + name() + "' expects " + what + " of shape " +
                  shape_to_string(sample_shape_) + ", got " + got +
                  ": the dataset does not fit the model");
    }
    if (x[0] < 1) throw Error("model input '" + name() + "' got an empty batch");
    return x;
  }

  Tensor forward(const ForwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1);
    const Tensor& x = args.inputs[0];
    output_shape({x.shape()});  // user data: a mismatch throws Error
    // Graph inputs are NCHW; tag plain 4-D batches so (view, no copy).
    if (x.rank() == 4 && x.layout() == Layout::kPlain) return x.reshaped(x.shape(), Layout::kNCHW);
    return x;
  }

  std::vector<Tensor> backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.diff_dst != nullptr);
    const bool need = args.need_diff_src.empty() || args.need_diff_src[0] != 0;
    return {need ? *args.diff_dst : Tensor()};
  }

  Saves saves() const override { return {}; }

  std::string describe() const override { return "sample " + shape_to_string(sample_shape_); }

 private:
  Shape sample_shape_;
};

}  // namespace

std::unique_ptr<Node> make_input(const std::string& name, Shape sample_shape) {
  return std::make_unique<Input>(name, std::move(sample_shape));
}

}  // namespace sparsetrain::nodes
