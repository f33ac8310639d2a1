// Seeded tensors and the weighted-sum loss L = sum(out * r) (dL/dout = r)
// that the graph tests check gradients with.
#pragma once

#include <cstdint>

#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::testing {

// Uniform in [-scale, scale), from a generator seeded with `seed`.
inline Tensor random_tensor(Shape shape, uint64_t seed, float scale = 1.0f) {
  Tensor t(shape);
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = scale * rng.uniform(-1.0f, 1.0f);
  return t;
}

// L = sum(out * r), in double.
inline double weighted_sum(const Tensor& out, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < out.numel(); ++i) s += static_cast<double>(out[i]) * r[i];
  return s;
}

}  // namespace sparsetrain::testing
