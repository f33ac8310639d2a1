// Text shared by the settings schema's messages and the recipe reader and
// writer.
#pragma once

#include <string>
#include <vector>

namespace sparsetrain::detail {

// The shortest decimal text that reads back as the same value (as a float
// when `single`), with a ".0" before an exponent so YAML 1.1 reads a number.
std::string float_text(double value, bool single);

// "a, b, c"
std::string join(const std::vector<std::string>& items);

}  // namespace sparsetrain::detail
