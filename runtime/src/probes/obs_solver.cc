// The spade probe's layer solver (obs_solver.h): input second moments from
// a forward hook, and SparseGPT's OBS pruning with error compensation.
#include "probes/obs_solver.h"

#include <oneapi/dnnl/dnnl.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::detail {
namespace {

using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Unfolded columns gathered before one product into H: bounds the scratch
// of a conv layer's im2col to 16 MB of floats whatever the batch.
constexpr int64_t kGramChunkFloats = int64_t{4} << 20;

// H += X X^T for X (d, cols), row-major: one sgemm (oneDNN picks the
// ISA at run time) into float, summed into the double H.
void add_product(Gram& h, const float* x, int64_t cols, std::vector<float>& scratch) {
  const int64_t d = h.size;
  if (cols == 0 || d == 0) return;
  scratch.assign(static_cast<size_t>(d * d), 0.0f);
  const dnnl_status_t status =
      dnnl_sgemm('N', 'T', d, d, cols, 1.0f, x, cols, x, cols, 0.0f, scratch.data(), d);
  SPARSETRAIN_ASSERT(status == dnnl_success);
  for (int64_t i = 0; i < d * d; ++i) h.values[static_cast<size_t>(i)] += scratch[i];
  h.samples += cols;
}

}  // namespace

void add_linear_gram(Gram& h, const Tensor& x) {
  if (x.rank() != 2 || x.dim(1) != h.size) {
    throw Error("add_linear_gram: expected an input (N, " + std::to_string(h.size) + "), got " +
                x.shape_string());
  }
  // kCN is X itself, (F, N) row-major; a plain (N, F) input is transposed.
  const int64_t n = x.dim(0), f = x.dim(1);
  std::vector<float> scratch;
  if (x.layout() == Layout::kCN) {
    add_product(h, x.data(), n, scratch);
    return;
  }
  std::vector<float> xt(static_cast<size_t>(f * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < f; ++j) xt[static_cast<size_t>(j * n + i)] = x.data()[i * f + j];
  add_product(h, xt.data(), n, scratch);
}

void add_conv_gram(Gram& h, const Tensor& x, const ConvGeometry& g) {
  if (x.rank() != 4 || x.dim(1) * g.kernel * g.kernel != h.size) {
    throw Error("add_conv_gram: expected an input (N, C, H, W) with C*K*K = " +
                std::to_string(h.size) + ", got " + x.shape_string());
  }
  const Tensor src = to_layout(x, Layout::kNCHW);
  const int64_t n = src.dim(0), c = src.dim(1), ih = src.dim(2), iw = src.dim(3);
  const int64_t k = g.kernel, s = g.stride, p = g.padding;
  const int64_t oh = (ih + 2 * p - k) / s + 1, ow = (iw + 2 * p - k) / s + 1;
  const int64_t per_sample = oh * ow, d = h.size;
  const int64_t chunk =
      std::max<int64_t>(1, kGramChunkFloats / std::max<int64_t>(1, d * per_sample));
  std::vector<float> cols, scratch;
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t count = std::min(chunk, n - first);
    const int64_t width = count * per_sample;
    cols.assign(static_cast<size_t>(d * width), 0.0f);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t kh = 0; kh < k; ++kh)
        for (int64_t kw = 0; kw < k; ++kw) {
          float* row = cols.data() + ((ch * k + kh) * k + kw) * width;
          for (int64_t b = 0; b < count; ++b) {
            const float* plane = src.data() + ((first + b) * c + ch) * ih * iw;
            for (int64_t y = 0; y < oh; ++y) {
              const int64_t sy = y * s - p + kh;
              if (sy < 0 || sy >= ih) continue;  // stays zero: padding
              for (int64_t xo = 0; xo < ow; ++xo) {
                const int64_t sx = xo * s - p + kw;
                if (sx >= 0 && sx < iw) row[b * per_sample + y * ow + xo] = plane[sy * iw + sx];
              }
            }
          }
        }
    add_product(h, cols.data(), width, scratch);
  }
}

Gram layer_input_gram(Graph& graph, const std::string& node, const Tensor& batch) {
  const NodeId id = graph.find(node);
  if (id.index < 0) throw Error("no node '" + node + "' in the model");
  Node& n = graph.node(id);
  if (nodes::as_prunable(n) == nullptr)
    throw Error("node '" + node + "' is not a conv2d or linear layer");
  const Parameter& weight = graph.parameter(node + ".weight");
  const Shape shape = weight.compressed() ? weight.dense_shape : weight.value.shape();
  const Conv2dOptions* conv = nodes::conv2d_options(n);
  if (conv != nullptr && conv->groups != 1) {
    throw Error("conv2d '" + node + "' has " + std::to_string(conv->groups) +
                " groups: spade prunes only convolutions with groups 1");
  }
  ConvGeometry geometry;
  if (conv != nullptr) geometry = {conv->kernel, conv->stride, conv->padding};
  int64_t columns = 1;
  for (size_t i = 1; i < shape.size(); ++i) columns *= shape[i];
  Gram h(columns);
  HookHandle hook = graph.add_hook(HookPoint::kBeforeForward, node, [&](HookEvent& ev) {
    if (ev.node != node || ev.inputs.empty()) return;
    if (conv != nullptr)
      add_conv_gram(h, ev.inputs[0], geometry);
    else
      add_linear_gram(h, ev.inputs[0]);
  });
  graph.forward(batch, ExecMode::kInference);
  graph.release();
  hook.remove();
  return h;
}

ObsResult obs_prune(std::span<const float> w, int64_t rows, int64_t columns, const Gram& h,
                    const ObsOptions& options, std::span<const uint8_t> forced_pruned) {
  if (!(options.sparsity >= 0.0 && options.sparsity < 1.0)) {
    throw Error("obs_prune: the sparsity must be in [0, 1), got " +
                std::to_string(options.sparsity));
  }
  const int64_t d = columns;
  if (static_cast<int64_t>(w.size()) != rows * d || h.size != d ||
      (!forced_pruned.empty() && static_cast<int64_t>(forced_pruned.size()) != rows * d)) {
    throw Error("obs_prune: sizes do not fit (weight " + std::to_string(w.size()) + " for " +
                std::to_string(rows) + " x " + std::to_string(d) + ", H " + std::to_string(h.size) +
                ")");
  }
  const int64_t block = std::max<int64_t>(1, options.block);

  // Hinv = (H + lambda I)^-1, and U with Hinv = U^T U (SparseGPT, sec. 3.3:
  // row j of U from column j on is the row of the inverse Hessian of the
  // columns not yet visited, scaled by its diagonal's square root).
  const Eigen::Map<const MatrixD> hm(h.values.data(), d, d);
  const double mean_diag = d > 0 ? hm.diagonal().mean() : 0.0;
  double lambda = options.dampening * mean_diag;
  if (!(mean_diag > 0.0)) lambda = 1.0;  // no input at all: any damping gives U
  MatrixD damped = hm;
  damped.diagonal().array() += lambda;
  const Eigen::LLT<MatrixD> factor(damped);
  if (factor.info() != Eigen::Success)
    throw Error("obs_prune: H + lambda I is not positive definite (raise --dampening)");
  MatrixD hinv = factor.solve(MatrixD::Identity(d, d));
  hinv = 0.5 * (hinv + hinv.transpose()).eval();
  const Eigen::LLT<MatrixD> inverse_factor(hinv);
  if (inverse_factor.info() != Eigen::Success)
    throw Error("obs_prune: the inverse of H + lambda I is not positive definite");
  const MatrixD u = inverse_factor.matrixU();

  MatrixD wm(rows, d);
  for (int64_t i = 0; i < rows * d; ++i) wm.data()[i] = w[static_cast<size_t>(i)];
  std::vector<uint8_t> kept(static_cast<size_t>(rows * d), 1);
  const auto forced = [&](int64_t r, int64_t j) {
    return !forced_pruned.empty() && forced_pruned[static_cast<size_t>(r * d + j)] != 0;
  };

  // Per row: the prunings beyond the forced ones (`extra`), spread over the
  // blocks by cumulative rounding over the free (not forced) columns.
  const int64_t target = std::llround(options.sparsity * static_cast<double>(d));
  std::vector<int64_t> free_total(static_cast<size_t>(rows), d), extra(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < d; ++j) free_total[r] -= forced(r, j) ? 1 : 0;
    extra[r] = std::max<int64_t>(0, target - (d - free_total[r]));
  }
  const auto share = [&](int64_t r, int64_t free_columns) {  // round(extra * x / free_total)
    if (free_total[r] == 0) return int64_t{0};
    return (2 * extra[r] * free_columns + free_total[r]) / (2 * free_total[r]);
  };
  std::vector<int64_t> free_before(static_cast<size_t>(rows), 0);

  std::vector<int64_t> candidates;
  MatrixD err(rows, block);
  Eigen::VectorXd e(rows);
  for (int64_t b0 = 0; b0 < d; b0 += block) {
    const int64_t b1 = std::min(d, b0 + block), width = b1 - b0;
    // Mask of this block, from the weights as compensated so far.
    for (int64_t r = 0; r < rows; ++r) {
      candidates.clear();
      for (int64_t j = b0; j < b1; ++j) {
        if (forced(r, j))
          kept[static_cast<size_t>(r * d + j)] = 0;
        else
          candidates.push_back(j);
      }
      const int64_t through = free_before[r] + static_cast<int64_t>(candidates.size());
      const int64_t count = std::min<int64_t>(share(r, through) - share(r, free_before[r]),
                                              static_cast<int64_t>(candidates.size()));
      free_before[r] = through;
      if (count <= 0) continue;
      const auto score = [&](int64_t j) {
        const double q = wm(r, j) / u(j, j);
        return q * q;
      };
      std::nth_element(candidates.begin(), candidates.begin() + (count - 1), candidates.end(),
                       [&](int64_t a, int64_t b) {
                         const double sa = score(a), sb = score(b);
                         return sa < sb || (sa == sb && a < b);
                       });
      for (int64_t i = 0; i < count; ++i) kept[static_cast<size_t>(r * d + candidates[i])] = 0;
    }
    // Prune column by column, compensating inside the block now and in the
    // later columns lazily (one product per block, SparseGPT sec. 3.4).
    err.setZero();
    for (int64_t j = b0; j < b1; ++j) {
      bool any = false;
      for (int64_t r = 0; r < rows; ++r) {
        const bool prune = kept[static_cast<size_t>(r * d + j)] == 0;
        e(r) = prune ? wm(r, j) / u(j, j) : 0.0;
        any = any || prune;
      }
      if (!any) continue;
      wm.block(0, j, rows, b1 - j).noalias() -= e * u.row(j).segment(j, b1 - j);
      err.col(j - b0) = e;
      for (int64_t r = 0; r < rows; ++r)
        if (kept[static_cast<size_t>(r * d + j)] == 0) wm(r, j) = 0.0;
    }
    if (b1 < d && width > 0) {
      wm.rightCols(d - b1).noalias() -= err.leftCols(width) * u.block(b0, b1, width, d - b1);
    }
  }

  ObsResult out;
  out.weight.resize(static_cast<size_t>(rows * d));
  for (int64_t i = 0; i < rows * d; ++i) {
    out.weight[static_cast<size_t>(i)] =
        kept[static_cast<size_t>(i)] != 0 ? static_cast<float>(wm.data()[i]) : 0.0f;
    out.pruned += kept[static_cast<size_t>(i)] == 0 ? 1 : 0;
  }
  out.kept = std::move(kept);
  out.reconstruction_error = relative_reconstruction_error(w, out.weight, rows, d, h);
  return out;
}

double relative_reconstruction_error(std::span<const float> w, std::span<const float> w_new,
                                     int64_t rows, int64_t columns, const Gram& h) {
  const int64_t d = columns;
  SPARSETRAIN_ASSERT(static_cast<int64_t>(w.size()) == rows * d &&
                     static_cast<int64_t>(w_new.size()) == rows * d && h.size == d);
  const Eigen::Map<const MatrixD> hm(h.values.data(), d, d);
  MatrixD a(rows, d), diff(rows, d);
  for (int64_t i = 0; i < rows * d; ++i) {
    a.data()[i] = w[static_cast<size_t>(i)];
    diff.data()[i] = static_cast<double>(w[static_cast<size_t>(i)]) - w_new[static_cast<size_t>(i)];
  }
  const double total = (a * hm).cwiseProduct(a).sum();
  const double lost = (diff * hm).cwiseProduct(diff).sum();
  return total > 0.0 ? lost / total : 0.0;
}

}  // namespace sparsetrain::detail
