// What every node shares: the check of its input count, and zeroed
// parameters.
#include "sparsetrain/node.h"

#include <string>
#include <utility>

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

Parameter zero_parameter(std::string name, ParamKind kind, const Shape& shape) {
  Parameter p;
  p.name = std::move(name);
  p.kind = kind;
  p.value = Tensor::zeros(shape);
  p.grad = Tensor::zeros(shape);
  return p;
}

}  // namespace sparsetrain
