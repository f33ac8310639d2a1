#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace sparsetrain::detail {

// The median of the values (the mean of the middle two for an even count);
// 0 for none.
inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  const std::size_t mid = v.size() / 2;
  const auto at = v.begin() + static_cast<std::ptrdiff_t>(mid);
  std::nth_element(v.begin(), at, v.end());
  if (v.size() % 2 == 1) return v[mid];
  return 0.5 * (v[mid] + *std::max_element(v.begin(), at));
}

}  // namespace sparsetrain::detail
