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

Tensor dense_value(const Parameter& p) {
  const Tensor plain = to_layout(p.value, Layout::kPlain);
  if (!p.compressed()) return plain;
  Tensor dense = Tensor::zeros(p.dense_shape);
  for (std::size_t k = 0; k < p.dense_index.size(); ++k)
    dense[p.dense_index[k]] = plain[static_cast<int64_t>(k)];
  return dense;
}

Tensor kept_mask(const Parameter& p) {
  if (p.masked()) {
    const Tensor m = to_layout(p.mask, Layout::kPlain);
    Tensor out = Tensor::zeros(m.shape());
    for (int64_t i = 0; i < m.numel(); ++i) out[i] = m[i] != 0.0f ? 1.0f : 0.0f;
    return out;
  }
  if (!p.compressed()) return Tensor::full(p.value.shape(), 1.0f);
  Tensor mask = Tensor::zeros(p.dense_shape);
  for (const int64_t i : p.dense_index) mask[i] = 1.0f;
  return mask;
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
