#include "sparsetrain/core/layout.h"

#include <sstream>

namespace sparsetrain {

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::kPlain:
      return "plain";
    case Layout::kNCHW:
      return "NCHW";
    case Layout::kNHWC:
      return "NHWC";
    case Layout::kCN:
      return "CN";
    case Layout::kCHWN:
      return "CHWN";
  }
  return "?";
}

std::string shape_to_string(const Shape& shape) {
  std::ostringstream os;
  os << '(';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ')';
  return os.str();
}

}  // namespace sparsetrain
