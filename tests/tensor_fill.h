// Seeded test tensors shared by the test files: normal values and irregular
// 0/1 masks, the same for a given seed on every run and machine.
#pragma once

#include <cstdint>
#include <utility>

#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::testing {

// Standard normal values, plain layout.
inline Tensor normals(Shape shape, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::zeros(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
  return t;
}

// A 0/1 mask keeping each position with probability `density`, irregularly.
inline Tensor random_mask(Shape shape, uint64_t seed, float density = 0.5f) {
  Rng rng(seed);
  Tensor mask = Tensor::zeros(std::move(shape));
  for (int64_t i = 0; i < mask.numel(); ++i) mask[i] = rng.uniform() < density ? 1.0f : 0.0f;
  return mask;
}

}  // namespace sparsetrain::testing
