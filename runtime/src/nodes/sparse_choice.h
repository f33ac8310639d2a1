// Sparse or dense kernels for a compressed layer, measured rather than
// guessed (DESIGN.md "Choosing sparse or dense per layer"): the first time a
// problem (shape, batch, number of stored weights, stride ...) is seen in the
// process, one whole training step of the layer (forward, backward-data,
// backward-weights) is timed on the sparse kernels and on the dense ones, and
// the faster is cached for the process and logged (kernels/common/log.h, LogLevel::kInfo). Shared
// by the linear and conv2d nodes.
#pragma once

#include <functional>
#include <string>

namespace sparsetrain::nodes {

// The two candidate steps of one layer, on buffers the closures own.
struct TimedSteps {
  std::function<void()> sparse;
  std::function<void()> dense;
};

// Whether the sparse kernels win for `key` (a string that names the problem
// uniquely). On the first call for a key, `prepare` builds the two steps;
// each is run once to warm up and then timed kTimingReps times, and the best
// times decide. The line "<label>: sparse|dense kernels (sparse X ms, dense
// Y ms per step)" is logged (kernels/common/log.h). Thread-safe: timings of different
// layers never overlap, so they do not disturb each other.
bool choose_sparse_kernels(const std::string& key, const std::string& label,
                           const std::function<TimedSteps()>& prepare);

}  // namespace sparsetrain::nodes
