// FISTA for the elastic-net multinomial logistic regression
// (transfer/elastic_net_fista.h).

#include "transfer/elastic_net_fista.h"

#include <tbb/parallel_for.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace sparsetrain::detail::enet {
namespace {

// Rows of one tile: the tile of X in double, (rows, a), and its logits stay in
// cache between the two products of a pass.
constexpr int64_t kTileRows = 256;
// The rows are cut into at most this many chunks, a split that does not
// depend on the thread count, and the chunks' sums are added in order:
// results are the same bit for bit on any number of threads.
constexpr int64_t kMaxChunks = 16;
constexpr double kSoftmaxCurvatureBound = 0.5;
// Backtracking (Beck and Teboulle 2009, FISTA with backtracking; letting the
// trial shrink each step as Scheinberg, Goldfarb and Bai 2014): each step
// first tries the last local Lipschitz estimate times kShrink, and multiplies
// it by kGrow until the step descends; never above the global bound.
constexpr double kShrink = 0.95;
constexpr double kGrow = 2.0;
// Trials stay above this share of the global bound.
constexpr double kMinLipschitzShare = 1e-4;
// The descent test allows this relative rounding error in the losses, which
// are sums over n rows.
constexpr double kDescentSlack = 1e-12;

int64_t chunk_count(int64_t n) { return std::min(kMaxChunks, (n + kTileRows - 1) / kTileRows); }

// Softmax cross-entropy of the rows of a tile of logits z (m, k) with labels
// y (m): returns the sum over rows of logsumexp(z_i) - z_i,y_i and leaves
// softmax(z_i) - onehot(y_i) in e (m, k). Exponentials and logarithms go
// through Eigen's vectorised ones, a tile at a time.
double cross_entropy(Eigen::Ref<const RowMatrix> z, const int32_t* y, Eigen::Ref<RowMatrix> e) {
  const int64_t m = z.rows();
  double label_logits = 0;  // sum of z_i,y_i - max_c z_i,c
  e = z;
  for (int64_t i = 0; i < m; ++i) {
    e.row(i).array() -= e.row(i).maxCoeff();
    label_logits += e(i, y[i]);
  }
  e = e.array().exp();
  const VectorXd sum = e.rowwise().sum();  // (m)
  for (int64_t i = 0; i < m; ++i) {
    e.row(i) /= sum[i];
    e(i, y[i]) -= 1;
  }
  return sum.array().log().sum() - label_logits;
}

// What one pass over the rows computes, besides the loss and gradient at the
// point: see `pass`.
struct PassSpec {
  const Point* point = nullptr;  // null: `logits` already holds the point's logits
  RowMatrix* logits = nullptr;   // (n, k) of the point, written or read
  // FISTA's step test needs the loss at the proximal point x_k+1 behind the
  // extrapolated point y_k+1 = x_k+1 + beta (x_k+1 - x_k). Logits are linear
  // in (W, b), so z(x_k+1) = (z(y_k+1) + beta z(x_k)) / (1 + beta): with
  // `last` = z(x_k) (n, k), they are written to `next` (n, k).
  const RowMatrix* last = nullptr;
  double beta = 0;
  RowMatrix* next = nullptr;
};

// Loss and gradient (into `out`); returns the loss at the proximal point
// when spec.next is given, else 0.
double pass(Features x, const int32_t* y, const PassSpec& spec, Gradient* out) {
  const int64_t n = x.rows(), a = x.cols(), k = spec.logits->cols();
  const int64_t chunks = chunk_count(n);
  std::vector<Gradient> part(chunks);
  std::vector<double> part_next(chunks, 0.0);
  tbb::parallel_for(int64_t{0}, chunks, [&](int64_t chunk) {
    const int64_t begin = n * chunk / chunks, end = n * (chunk + 1) / chunks;
    Gradient& g = part[chunk];
    g.w = RowMatrix::Zero(k, a);
    g.b = VectorXd::Zero(k);
    RowMatrix tile(kTileRows, a);      // (tile, a) rows of X in double
    RowMatrix residual(kTileRows, k);  // (tile, k) P - Y
    for (int64_t r0 = begin; r0 < end; r0 += kTileRows) {
      const int64_t m = std::min(kTileRows, end - r0);
      auto xt = tile.topRows(m);
      xt = x.middleRows(r0, m).cast<double>();
      auto z = spec.logits->middleRows(r0, m);
      if (spec.point != nullptr) {
        z.noalias() = xt * spec.point->w.transpose();
        z.rowwise() += spec.point->b.transpose();
      }
      if (spec.next != nullptr) {
        auto zn = spec.next->middleRows(r0, m);
        zn = (z + spec.beta * spec.last->middleRows(r0, m)) / (1 + spec.beta);
        part_next[chunk] += cross_entropy(zn, y + r0, residual.topRows(m));
      }
      auto r = residual.topRows(m);
      g.loss += cross_entropy(z, y + r0, r);
      g.w.noalias() += r.transpose() * xt;
      g.b += r.colwise().sum().transpose();
    }
  });
  const double inv_n = 1.0 / static_cast<double>(n);
  out->loss = 0;
  out->w = RowMatrix::Zero(k, a);
  out->b = VectorXd::Zero(k);
  double loss_next = 0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    out->loss += part[chunk].loss;
    out->w += part[chunk].w;
    out->b += part[chunk].b;
    loss_next += part_next[chunk];
  }
  out->loss *= inv_n;
  out->w *= inv_n;
  out->b *= inv_n;
  return loss_next * inv_n;
}

}  // namespace

double lipschitz_bound(Features x) {
  const int64_t n = x.rows(), d = x.cols(), chunks = chunk_count(n);
  std::vector<Eigen::MatrixXd> part(chunks);  // (d+1, d+1), lower triangles
  tbb::parallel_for(int64_t{0}, chunks, [&](int64_t chunk) {
    const int64_t begin = n * chunk / chunks, end = n * (chunk + 1) / chunks;
    const RowMatrix rows = x.middleRows(begin, end - begin).cast<double>();  // (rows, d)
    Eigen::MatrixXd& g = part[chunk];
    g = Eigen::MatrixXd::Zero(d + 1, d + 1);
    g.topLeftCorner(d, d).selfadjointView<Eigen::Lower>().rankUpdate(rows.transpose());
    g.bottomLeftCorner(1, d) = rows.colwise().sum();
  });
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(d + 1, d + 1);
  for (const Eigen::MatrixXd& g : part) gram += g;
  gram /= static_cast<double>(n);
  gram(d, d) = 1;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram, Eigen::EigenvaluesOnly);
  return kSoftmaxCurvatureBound * eig.eigenvalues().maxCoeff();
}

void evaluate(Features x, const int32_t* y, const Point& p, RowMatrix& logits, Gradient* out) {
  logits.resize(x.rows(), p.w.rows());
  PassSpec spec;
  spec.point = &p;
  spec.logits = &logits;
  pass(x, y, spec, out);
}

void evaluate_from_logits(Features x, const int32_t* y, const RowMatrix& logits, Gradient* out) {
  PassSpec spec;
  spec.logits = const_cast<RowMatrix*>(&logits);  // read only: spec.point is null
  pass(x, y, spec, out);
}

double kkt_violation(const RowMatrix& w, const Gradient& g, double lambda, double alpha) {
  double worst = g.b.cwiseAbs().maxCoeff();
  const double l1 = lambda * alpha, l2 = lambda * (1 - alpha);
  for (int64_t c = 0; c < w.rows(); ++c) {
    for (int64_t j = 0; j < w.cols(); ++j) {
      const double v = w(c, j), gv = g.w(c, j);
      worst = std::max(worst, v != 0 ? std::abs(gv + l2 * v + std::copysign(l1, v))
                                     : std::max(0.0, std::abs(gv) - l1));
    }
  }
  return worst;
}

bool fista(Features x, const int32_t* y, FistaSettings& s, Point& p, Gradient& g, Logits& z,
           int& steps) {
  // p is y_k, where the gradient g is taken; `last` is x_k.
  evaluate(x, y, p, z.at, &g);
  Point last = p;
  z.last = z.at;
  z.ahead.resize(z.at.rows(), z.at.cols());
  z.next.resize(z.at.rows(), z.at.cols());
  double t = 1;  // FISTA's momentum sequence
  double local = s.local_lipschitz > 0 ? s.local_lipschitz : s.lipschitz;
  for (;;) {
    if (kkt_violation(p.w, g, s.lambda, s.alpha) <= s.tolerance) {
      s.local_lipschitz = local;
      return true;
    }
    if (steps >= s.max_steps) return false;
    double trial = std::max(local * kShrink, s.lipschitz * kMinLipschitzShare);
    for (;;) {
      ++steps;
      // x_k+1 = prox(y_k - grad / trial) for the penalty lambda (alpha |w| +
      // (1-alpha)/2 w^2): soft-threshold by lambda alpha / trial, then divide
      // by 1 + lambda (1-alpha) / trial. The bias takes a plain step.
      const double threshold = s.lambda * s.alpha / trial;
      const double shrink = 1 / (1 + s.lambda * (1 - s.alpha) / trial);
      Point next;
      next.w = (p.w - g.w / trial).unaryExpr([&](double v) {
        return v > threshold    ? (v - threshold) * shrink
               : v < -threshold ? (v + threshold) * shrink
                                : 0.0;
      });
      next.b = p.b - g.b / trial;
      // Restart (O'Donoghue and Candes 2015, gradient scheme) when the step
      // turns against the momentum: <y_k - x_k+1, x_k+1 - x_k> > 0.
      const double against =
          (p.w - next.w).cwiseProduct(next.w - last.w).sum() + (p.b - next.b).dot(next.b - last.b);
      const double t_next = against > 0 ? 1 : (1 + std::sqrt(1 + 4 * t * t)) / 2;
      const double beta = against > 0 ? 0 : (t - 1) / t_next;
      Point ahead{next.w + beta * (next.w - last.w), next.b + beta * (next.b - last.b)};
      PassSpec spec;
      spec.point = &ahead;
      spec.logits = &z.ahead;
      spec.last = &z.last;
      spec.beta = beta;
      spec.next = &z.next;
      Gradient g_ahead;
      const double loss_next = pass(x, y, spec, &g_ahead);
      // Descent test: f(x_k+1) <= f(y_k) + <g, x_k+1 - y_k> + trial/2 |x_k+1 - y_k|^2.
      const RowMatrix dw = next.w - p.w;
      const VectorXd db = next.b - p.b;
      const double model = g.loss + g.w.cwiseProduct(dw).sum() + g.b.dot(db) +
                           trial / 2 * (dw.squaredNorm() + db.squaredNorm());
      const bool descends = loss_next <= model + kDescentSlack * (1 + std::abs(g.loss));
      if (descends || trial >= s.lipschitz || steps >= s.max_steps) {
        last = std::move(next);
        p = std::move(ahead);
        g = std::move(g_ahead);
        std::swap(z.last, z.next);
        std::swap(z.at, z.ahead);
        t = t_next;
        local = trial;
        break;
      }
      trial = std::min(trial * kGrow, s.lipschitz);
    }
  }
}

}  // namespace sparsetrain::detail::enet
