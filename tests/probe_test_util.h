// What the probe tests share: models with compressed layers, and a model's
// whole state as bytes (a probe must leave it bit for bit as it was).
#pragma once

#include <cstdint>
#include <vector>

#include "sparsetrain/graph.h"
#include "sparsetrain/models.h"
#include "sparsetrain/sparsity.h"

namespace sparsetrain::testing {

// Compresses every conv and linear layer to its largest-magnitude weights.
inline void compress_all(Graph& g, float sparsity) {
  for (const PrunableLayer& l : prunable_layers(g, /*dense_first_last=*/false))
    g.compress(l.node, magnitude_mask(g.parameter(l.param).value, sparsity));
}

// An initialised LeNet-5 for 28x28 digits, compressed when sparsity > 0.
inline Graph lenet5(uint64_t seed, float sparsity) {
  Graph g = build_model("lenet5", {.channels = 1, .height = 28, .width = 28});
  g.initialize(seed);
  if (sparsity > 0) compress_all(g, sparsity);
  return g;
}

// Every parameter's value and gradient (buffers included), as raw bytes.
inline std::vector<char> state_bytes(Graph& g) {
  std::vector<char> out;
  for (Parameter* p : g.parameters())
    for (const Tensor* t : {&p->value, &p->grad}) {
      if (!t->defined()) continue;
      const char* b = reinterpret_cast<const char*>(t->data());
      out.insert(out.end(), b, b + t->bytes());
    }
  return out;
}

}  // namespace sparsetrain::testing
