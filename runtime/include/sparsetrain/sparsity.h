// Sparsity methods (DESIGN.md "Sparsity methods"): which weights to keep
// (mask selection over the prunable layers), and how a run reports its
// sparsity. The schedules that decide when masks change (static, AC/DC,
// gradual magnitude pruning, RigL) drive these from the trainer.
//
// Prunable layers are the conv2d and linear nodes; their weight is the only
// prunable parameter (ParamKind::kWeight). Biases and BatchNorm are never
// pruned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/tensor.h"

namespace sparsetrain {

class Graph;
class Optimizer;

// How a target sparsity is spread over the layers:
// - global:  one magnitude threshold over all chosen layers together;
// - uniform: every chosen layer at the target sparsity;
// - erk:     Erdos-Renyi-Kernel, density of a layer proportional to
//            (sum of its weight's dims) / (product of its dims), scaled so
//            the kept count over all chosen layers meets the target; layers
//            whose density would exceed 1 are made dense and the rest
//            re-solved.
enum class Distribution : uint8_t { kGlobal, kUniform, kErk };
// "global" | "uniform" | "erk"; throws Error naming --distribution otherwise.
Distribution parse_distribution(const std::string& name);
const char* distribution_name(Distribution distribution);

struct PrunableLayer {
  std::string node;   // node name
  std::string param;  // "<node>.weight"
  Shape shape;        // dense weight shape: (O, I) or (O, C/G, KH, KW)
};
// The prunable layers in node order; with `dense_first_last` the first and
// the last of them are left out (when there are more than two).
std::vector<PrunableLayer> prunable_layers(Graph& graph, bool dense_first_last);

// Per-layer densities (kept fraction) for uniform and ERK: the kept counts,
// rounded per layer, sum to (1 - sparsity) * total within one weight per
// layer. Throws Error for kGlobal (which depends on the magnitudes) and for
// a sparsity outside [0, 1).
std::vector<double> layer_densities(const std::vector<PrunableLayer>& layers, float sparsity,
                                    Distribution distribution);

// 0/1 masks (one per layer, the weight's dense shape) keeping the largest
// magnitudes at `sparsity` spread by `distribution`. A compressed weight's
// pruned entries count as zeros. Ties: the lower flat index (global: the
// earlier layer) wins, so the result does not depend on threads.
std::vector<Tensor> magnitude_masks(Graph& graph, const std::vector<PrunableLayer>& layers,
                                    float sparsity, Distribution distribution);

// Sparsity over the prunable weights (all conv and linear weights, chosen or
// not) and over every trainable parameter, counting stored entries of
// compressed weights and nonzeros elsewhere.
struct SparsityReport {
  int64_t prunable_total = 0;
  int64_t prunable_nonzero = 0;
  int64_t params_total = 0;
  int64_t params_nonzero = 0;
  double prunable_sparsity() const;
  double params_sparsity() const;
};
SparsityReport sparsity_report(Graph& graph);

// Gradual magnitude pruning (Zhu & Gupta): the target at step t,
//   s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 for t0 <= t <= t0 + n dt,
// s_i before t0 and s_f after.
double gmp_sparsity(int64_t step, double initial, double final_sparsity, int64_t start_step,
                    int64_t end_step);

}  // namespace sparsetrain
