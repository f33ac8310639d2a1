// The embedding measurements of sparsetrain/compare.h: k nearest neighbours
// from blocked GEMMs (oneDNN's sgemm), Jaccard overlap of neighbour sets,
// the first two principal components.

#include <oneapi/dnnl/dnnl.h>
#include <tbb/parallel_for.h>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "sparsetrain/compare.h"
#include "sparsetrain/error.h"

namespace sparsetrain {

namespace {

constexpr int64_t kBlockRows = 512;

}  // namespace

std::vector<int64_t> nearest_neighbours(std::span<const float> x, int64_t n, int64_t d, int64_t k,
                                        const std::string& metric) {
  const bool cosine = metric == "cosine";
  if (!cosine && metric != "euclidean")
    throw Error("--metric must be cosine or euclidean, got '" + metric + "'");
  if (n < 2 || d < 1) throw Error("nearest neighbours need at least 2 samples of 1 feature");
  if (k < 1 || k >= n) {
    throw Error("--k must be in [1, " + std::to_string(n - 1) + "] for " + std::to_string(n) +
                " samples, got " + std::to_string(k));
  }
  if (static_cast<int64_t>(x.size()) != n * d)
    throw Error("nearest neighbours: the embedding has the wrong size");
  // Rows normalised for cosine; squared norms for Euclidean.
  std::vector<float> rows(x.begin(), x.end());
  std::vector<float> norm2(static_cast<std::size_t>(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t j = 0; j < d; ++j) s += static_cast<double>(rows[i * d + j]) * rows[i * d + j];
    norm2[i] = static_cast<float>(s);
    if (cosine && s > 0.0) {
      const float inv = static_cast<float>(1.0 / std::sqrt(s));
      for (int64_t j = 0; j < d; ++j) rows[i * d + j] *= inv;
    }
  }
  std::vector<int64_t> out(static_cast<std::size_t>(n * k));
  std::vector<float> scores(static_cast<std::size_t>(std::min(n, kBlockRows) * n));
  for (int64_t r0 = 0; r0 < n; r0 += kBlockRows) {
    const int64_t rb = std::min(kBlockRows, n - r0);
    // scores (rb, n) = rows[r0 .. r0 + rb) * rows^T
    const dnnl_status_t st = dnnl_sgemm('N', 'T', rb, n, d, 1.0f, rows.data() + r0 * d, d,
                                        rows.data(), d, 0.0f, scores.data(), n);
    if (st != dnnl_success) throw Error("nearest neighbours: oneDNN sgemm failed");
    tbb::parallel_for(int64_t{0}, rb, [&](int64_t r) {
      const int64_t i = r0 + r;
      float* s = scores.data() + r * n;
      for (int64_t j = 0; j < n; ++j) {
        // Larger is nearer: the similarity, or minus the squared distance.
        float v = cosine ? s[j] : 2.0f * s[j] - norm2[i] - norm2[j];
        if (std::isnan(v)) v = -std::numeric_limits<float>::infinity();
        s[j] = v;
      }
      std::vector<int64_t> idx(static_cast<std::size_t>(n - 1));
      for (int64_t j = 0, m = 0; j < n; ++j)
        if (j != i) idx[m++] = j;
      auto nearer = [s](int64_t a, int64_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); };
      std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), nearer);
      std::sort(idx.begin(), idx.begin() + k, nearer);
      std::copy(idx.begin(), idx.begin() + k, out.begin() + i * k);
    });
  }
  return out;
}

std::vector<float> neighbour_jaccard(std::span<const int64_t> a, std::span<const int64_t> b,
                                     int64_t n, int64_t k) {
  if (static_cast<int64_t>(a.size()) != n * k || static_cast<int64_t>(b.size()) != n * k)
    throw Error("Jaccard: the neighbour lists are not (n, k)");
  std::vector<float> out(static_cast<std::size_t>(n));
  tbb::parallel_for(int64_t{0}, n, [&](int64_t i) {
    std::vector<int64_t> x(a.begin() + i * k, a.begin() + (i + 1) * k);
    std::vector<int64_t> y(b.begin() + i * k, b.begin() + (i + 1) * k);
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    x.erase(std::unique(x.begin(), x.end()), x.end());
    y.erase(std::unique(y.begin(), y.end()), y.end());
    std::vector<int64_t> both;
    std::set_intersection(x.begin(), x.end(), y.begin(), y.end(), std::back_inserter(both));
    const double inter = static_cast<double>(both.size());
    const double uni = static_cast<double>(x.size() + y.size()) - inter;
    out[i] = uni > 0 ? static_cast<float>(inter / uni) : 1.0f;
  });
  return out;
}

std::vector<float> principal_components_2d(std::span<const float> x, int64_t n, int64_t d,
                                           double explained[2]) {
  if (n < 2 || d < 1 || static_cast<int64_t>(x.size()) != n * d)
    throw Error("PCA: need an (n, d) embedding with n >= 2");
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Mat m(n, d);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) m(i, j) = x[i * d + j];
  const Eigen::RowVectorXd mean = m.colwise().mean();
  m.rowwise() -= mean;
  std::vector<float> out(static_cast<std::size_t>(n * 2), 0.0f);
  if (d > n) {
    // Wide embeddings: the eigenvectors of the (n, n) Gram matrix give the
    // projections directly, p_c = u_c sqrt(lambda_c).
    const Eigen::MatrixXd gram = m * m.transpose();
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram);
    if (eig.info() != Eigen::Success) throw Error("PCA: the eigendecomposition did not converge");
    const Eigen::VectorXd values = eig.eigenvalues();
    const double total = std::max(values.sum(), 1e-300);
    for (int c = 0; c < 2; ++c) {
      const int64_t col = n - 1 - c;
      Eigen::VectorXd u = eig.eigenvectors().col(col);
      Eigen::Index at = 0;
      u.cwiseAbs().maxCoeff(&at);
      if (u(at) < 0) u = -u;
      const double lambda = std::max(values(col), 0.0);
      explained[c] = lambda / total;
      for (int64_t i = 0; i < n; ++i) out[i * 2 + c] = static_cast<float>(u(i) * std::sqrt(lambda));
    }
    return out;
  }
  const Eigen::MatrixXd cov = (m.transpose() * m) / static_cast<double>(n - 1);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);
  if (eig.info() != Eigen::Success) throw Error("PCA: the eigendecomposition did not converge");
  const Eigen::VectorXd values = eig.eigenvalues();  // ascending
  const double total = std::max(values.sum(), 1e-300);
  for (int c = 0; c < 2; ++c) {
    const int64_t col = d - 1 - c;
    if (col < 0) {
      explained[c] = 0.0;
      continue;
    }
    Eigen::VectorXd v = eig.eigenvectors().col(col);
    // A fixed sign: the entry of largest magnitude is positive.
    Eigen::Index at = 0;
    v.cwiseAbs().maxCoeff(&at);
    if (v(at) < 0) v = -v;
    explained[c] = std::max(values(col), 0.0) / total;
    const Eigen::VectorXd p = m * v;
    for (int64_t i = 0; i < n; ++i) out[i * 2 + c] = static_cast<float>(p(i));
  }
  return out;
}

}  // namespace sparsetrain
