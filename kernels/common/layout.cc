#include "sparsetrain/core/layout.h"

#include <sstream>

namespace sparsetrain {

const char* layout_name(Layout layout) {
  // Indexed by the enumerator, in declaration order.
  constexpr const char* kNames[] = {"plain", "NCHW", "NHWC", "CN", "CHWN"};
  return kNames[static_cast<int>(layout)];
}

std::string shape_to_string(const Shape& shape) {
  std::ostringstream os;
  os << '(';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ')';
  return os.str();
}

}  // namespace sparsetrain
