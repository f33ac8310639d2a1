// What every node shares: the check of its input count, and zeroed
// parameters; the frame of the one-input nodes (nodes::UnaryNode).
#include "sparsetrain/node.h"

#include <string>
#include <utility>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/parameter.h"

namespace sparsetrain {

void Node::expect_inputs(const std::vector<Shape>& inputs, std::size_t count) const {
  if (inputs.size() == count) return;
  static const char* const kCounts[] = {"no inputs", "one input", "two inputs"};
  const std::string wanted =
      count < std::size(kCounts) ? kCounts[count] : std::to_string(count) + " inputs";
  throw Error(std::string(type()) + " '" + name() + "' takes " + wanted + ", got " +
              std::to_string(inputs.size()));
}

void Node::fail_input_shape(const std::string& expected, const Shape& input) const {
  throw Error(std::string(type()) + " '" + name() + "' expects " + expected + ", got " +
              shape_to_string(input));
}

Parameter zero_parameter(std::string name, ParamKind kind, const Shape& shape) {
  Parameter p;
  p.name = std::move(name);
  p.kind = kind;
  p.value = Tensor::zeros(shape);
  p.grad = Tensor::zeros(shape);
  return p;
}

namespace nodes {

Shape UnaryNode::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  return unary_shape(inputs[0]);
}

Tensor UnaryNode::forward(const ForwardArgs& args) {
  SPARSETRAIN_ASSERT(args.inputs.size() == 1);
  const Tensor& x = args.inputs[0];
  input_shape_ = x.shape();
  input_layout_ = x.layout();
  return unary_forward(x, args);
}

std::vector<Tensor> UnaryNode::backward(const BackwardArgs& args) {
  SPARSETRAIN_ASSERT(args.diff_dst != nullptr);
  if (!args.need_diff_src.empty() && args.need_diff_src[0] == 0) return {Tensor()};
  return {unary_backward(args)};
}

}  // namespace nodes
}  // namespace sparsetrain
