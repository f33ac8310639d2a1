// Mask selection (DESIGN.md "Sparsity methods"): which weights of the
// prunable layers to keep, apart from when a method changes them
// (sparsetrain/sparsity_method.h). How a target is spread over the layers,
// the kept counts, masks by magnitude or at random, and how sparse a graph
// is now. Defined in runtime/src/sparsity/masks.cc; sparsetrain/sparsity.h
// includes this header.
//
// Prunable layers are the conv2d and linear nodes; their weight is the only
// prunable parameter (ParamKind::kWeight). Biases and BatchNorm are never
// pruned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

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
// Whether the graph has a conv2d node (TrainOptions::dense_first_last = -1
// keeps the first and last layer dense exactly then).
bool has_convolutions(Graph& graph);
// What dense_first_last = -1 (auto) means for `graph`: true when it has a
// conv2d node and none of its conv2d or linear layers is marked not
// prunable (Graph::set_prunable; a model file that marks its layers decides
// alone which stay dense).
bool auto_dense_first_last(Graph& graph);

// Kept weights per layer for uniform and ERK: the counts sum to exactly
// round((1 - sparsity) * total), and each is within one weight of its real
// share (largest remainders get the rounding). Throws Error for kGlobal
// (which depends on the magnitudes) and for a sparsity outside [0, 1).
std::vector<int64_t> layer_keep_counts(const std::vector<PrunableLayer>& layers, float sparsity,
                                       Distribution distribution);
// The same as densities (kept fraction per layer).
std::vector<double> layer_densities(const std::vector<PrunableLayer>& layers, float sparsity,
                                    Distribution distribution);

// 0/1 masks (one per layer, the weight's dense shape) keeping the largest
// magnitudes at `sparsity` spread by `distribution`. A compressed weight's
// pruned entries count as zeros. Ties: the lower flat index (global: the
// earlier layer) wins, so the result does not depend on threads.
std::vector<Tensor> magnitude_masks(Graph& graph, const std::vector<PrunableLayer>& layers,
                                    float sparsity, Distribution distribution);
// 0/1 masks with the same kept counts chosen uniformly at random (global:
// over all chosen weights together), from `seed` alone. RigL's initial
// masks (Evci et al. 2020, sec. 3: random ERK masks at initialisation).
std::vector<Tensor> random_masks(const std::vector<PrunableLayer>& layers, float sparsity,
                                 Distribution distribution, uint64_t seed);

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

// Bytes held by the trainable parameters and the optimizer state: stored
// values (all of them for a dense weight, the nonzeros of a compressed
// one), the index of each stored entry of a compressed weight (int64) and
// the mask of a masked one, plus every optimizer state tensor (`optimizer`
// may be null). Gradients and activations are not counted.
int64_t parameter_memory_bytes(Graph& graph, Optimizer* optimizer);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
