// Seeded tensors and the weighted-sum loss L = sum(out * r) (dL/dout = r)
// that the graph tests check gradients with.
#pragma once

#include <cstdint>
#include <vector>

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

// Class labels in [0, 10), from a generator seeded with `seed`.
inline std::vector<int32_t> labels_for(int64_t batch, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (auto& l : labels) l = static_cast<int32_t>(rng.uniform(0.0f, 9.999f));
  return labels;
}

// The values of t in NCHW (4-D) or plain order.
inline std::vector<float> values(const Tensor& t) {
  const Tensor c = t.layout() == Layout::kPlain || t.layout() == Layout::kNCHW
                       ? t
                       : to_layout(t, t.rank() == 4 ? Layout::kNCHW : Layout::kPlain);
  return std::vector<float>(c.data(), c.data() + c.numel());
}

// L = sum(out * r), in double.
inline double weighted_sum(const Tensor& out, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < out.numel(); ++i) s += static_cast<double>(out[i]) * r[i];
  return s;
}

}  // namespace sparsetrain::testing
