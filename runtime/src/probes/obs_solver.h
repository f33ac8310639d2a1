// The layer solver of the spade probe: the second moment H = X X^T of a
// conv2d or linear layer's input, gathered by a forward hook, and an Optimal
// Brain Surgeon pruning of the layer's weight against it, the way SparseGPT
// does it (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can
// Be Accurately Pruned in One-Shot", Algorithm 1), which SPADE applies to
// one sample's augmentations (Moakhar et al. 2023, sec. 3).
//
// The objective of a layer with weight W (rows, columns) and inputs X
// (columns, samples) is ||W X - W' X||_F^2 over the weights W' with the
// requested zeros; it only depends on X through H = X X^T.
// Internal: the tests call these directly.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparsetrain/graph.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::detail {

// A symmetric (size, size) matrix, row-major, in double.
struct Gram {
  int64_t size = 0;
  int64_t samples = 0;         // the columns of X summed over
  std::vector<double> values;  // (size, size)

  explicit Gram(int64_t n = 0) : size(n), values(static_cast<size_t>(n * n), 0.0) {}
  double operator()(int64_t i, int64_t j) const {
    return values[static_cast<size_t>(i * size + j)];
  }
};

// How a conv2d reads its input: square kernel, stride, zero padding.
struct ConvGeometry {
  int64_t kernel = 1;
  int64_t stride = 1;
  int64_t padding = 0;
};

// H += X X^T for a linear layer's input x (N, F) in any 2-D layout (kPlain
// or kCN): X = x^T is (F, N).
void add_linear_gram(Gram& h, const Tensor& x);
// H += X X^T for a conv2d's input x (N, C, H, W) in any 4-D layout: X is
// the unfolded input (im2col), (C*K*K, N*OH*OW), its row c*K*K + kh*K + kw
// the input pixel (c, oh*stride - padding + kh, ow*stride - padding + kw)
// (zero outside the image), so that row order is the flattened OIHW
// weight's column order.
void add_conv_gram(Gram& h, const Tensor& x, const ConvGeometry& g);

// The H of layer `node`'s input (a conv2d with groups 1, or a linear node)
// when `graph` runs `batch` in ExecMode::kInference: a kBeforeForward hook
// on the node adds each input it sees. Throws Error naming the node when it
// is not such a layer (grouped convolutions are refused).
Gram layer_input_gram(Graph& graph, const std::string& node, const Tensor& batch);

struct ObsOptions {
  double sparsity = 0.0;    // the fraction of each row to prune, in [0, 1)
  double dampening = 0.01;  // lambda = dampening * mean(diag H), added to diag H
  // Columns per mask-selection block (SparseGPT's B_s, "adaptive mask
  // selection"): each row's mask inside a block is chosen from the weights
  // as updated by the blocks before it.
  int64_t block = 128;
};

struct ObsResult {
  std::vector<float> weight;          // (rows, columns) the pruned, compensated weight
  std::vector<uint8_t> kept;          // (rows, columns) 1 where a weight is kept
  int64_t pruned = 0;                 // zeros of the mask, forced ones included
  double reconstruction_error = 0.0;  // relative_reconstruction_error(w, weight, h)
};

// OBS / SparseGPT pruning of the weight w (rows, columns) against the H of
// its inputs. Hinv = (H + lambda I)^-1 and its upper Cholesky factor U
// (Hinv = U^T U); columns are pruned left to right: within each block of
// `block` columns, every row prunes its weights with the smallest
// w^2 / U_jj^2 (the OBS saliency), and pruning w_rj = e adds
// -e / U_jj * U_j,k to every later weight w_rk of the row (the optimal
// compensation given the columns not yet visited). Each row prunes exactly
// round(sparsity * columns) weights, its forced ones (`forced_pruned`,
// (rows, columns), nonzero = must be pruned; empty: none) included, or all
// its forced ones when there are more; the row's other prunings are spread
// over the blocks in proportion to their free columns (cumulative rounding).
// Throws Error on a sparsity outside [0, 1), a size mismatch or an H that
// is not positive definite after dampening.
ObsResult obs_prune(std::span<const float> w, int64_t rows, int64_t columns, const Gram& h,
                    const ObsOptions& options, std::span<const uint8_t> forced_pruned = {});

// ||W X - W' X||_F^2 / ||W X||_F^2 = tr(D H D^T) / tr(W H W^T) with D = W - W'
// (0 when W X is 0), for weights (rows, columns).
double relative_reconstruction_error(std::span<const float> w, std::span<const float> w_new,
                                     int64_t rows, int64_t columns, const Gram& h);

}  // namespace sparsetrain::detail
