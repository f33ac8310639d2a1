// Elastic-net multinomial logistic regression (transfer/elastic_net.h): input
// checks, the working set of each lambda, and the path.

#include "transfer/elastic_net.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "sparsetrain/error.h"
#include "transfer/elastic_net_fista.h"

namespace sparsetrain::detail {
namespace {

using enet::Features;
using enet::FloatRows;
using enet::Gradient;
using enet::Point;
using enet::RowMatrix;
using enet::VectorXd;

[[noreturn]] void fail(const std::string& what) { throw Error("elastic net: " + what); }

void check_alpha(double alpha) {
  if (!(alpha > 0 && alpha <= 1)) {
    fail("alpha " + std::to_string(alpha) +
         " is outside (0, 1]; it is the L1 share of the penalty");
  }
}

// Throws Error naming the first problem of `data`; returns the (k) examples
// of each class.
std::vector<int64_t> check_data(const ElasticNetData& data) {
  if (data.n <= 0) fail("no examples (n = " + std::to_string(data.n) + ")");
  if (data.d <= 0) fail("no features (d = " + std::to_string(data.d) + ")");
  if (data.k < 2) fail("needs at least 2 classes (k = " + std::to_string(data.k) + ")");
  if (data.x == nullptr || data.y == nullptr) fail("the features or the labels are null");
  std::vector<int64_t> count(data.k, 0);
  for (int64_t i = 0; i < data.n; ++i) {
    const int32_t label = data.y[i];
    if (label < 0 || label >= data.k) {
      fail("label " + std::to_string(label) + " of example " + std::to_string(i) +
           " is outside [0, " + std::to_string(data.k) + ")");
    }
    ++count[label];
    for (int64_t j = 0; j < data.d; ++j) {
      if (!std::isfinite(data.x[i * data.d + j])) {
        fail("feature " + std::to_string(j) + " of example " + std::to_string(i) +
             " is not finite; the features must be finite numbers");
      }
    }
  }
  return count;
}

void check_options(const ElasticNetOptions& o) {
  check_alpha(o.alpha);
  if (o.path_points < 1) fail("path_points " + std::to_string(o.path_points) + " is below 1");
  if (!(o.lambda_min_ratio > 0 && o.lambda_min_ratio < 1)) {
    fail("lambda_min_ratio " + std::to_string(o.lambda_min_ratio) + " is outside (0, 1)");
  }
  if (!(o.tolerance > 0 && std::isfinite(o.tolerance))) {
    fail("tolerance " + std::to_string(o.tolerance) + " must be a positive number");
  }
  if (o.max_iterations < 1) {
    fail("max_iterations " + std::to_string(o.max_iterations) + " is below 1");
  }
}

void check_solution(const ElasticNetSolution& s, int64_t k, int64_t d, const char* what) {
  if (static_cast<int64_t>(s.bias.size()) != k || static_cast<int64_t>(s.weight.size()) != k * d) {
    fail(std::string(what) + " has " + std::to_string(s.weight.size()) + " weights and " +
         std::to_string(s.bias.size()) + " biases; the data needs k * d = " +
         std::to_string(k * d) + " and k = " + std::to_string(k));
  }
}

Features features(const ElasticNetData& data) { return Features(data.x, data.n, data.d); }

// A solve in progress: the point (W, b) on all d features, the gradient
// there on all features, and the working set with its columns of X (kept
// while the set does not change).
struct State {
  Point at;                  // w (k, d), b (k)
  Gradient full;             // at `at`, on all d features
  std::vector<int64_t> set;  // (a) working-set features
  FloatRows set_x;           // (n, a) their columns; unused when a = d
  enet::Logits logits;       // (n, k) buffers of FISTA
  double local_lipschitz = 0;
};

// (W, b) = (0, b*), b* = log class frequency (centred), and the gradient
// there. Throws Error when a class has no example (b* = -infinity).
State start_state(const ElasticNetData& data) {
  const std::vector<int64_t> count = check_data(data);
  State s;
  s.at.w = RowMatrix::Zero(data.k, data.d);
  s.at.b.resize(data.k);
  for (int c = 0; c < data.k; ++c) {
    if (count[c] == 0) {
      fail("class " + std::to_string(c) +
           " has no example (its optimal bias would be -infinity); relabel the classes present "
           "to 0..k-1");
    }
    s.at.b[c] = std::log(static_cast<double>(count[c]));
  }
  s.at.b.array() -= s.at.b.mean();
  enet::evaluate(features(data), data.y, s.at, s.logits.at, &s.full);
  return s;
}

// lambda_max at the start state: the largest |grad_W| over alpha.
double lambda_max_at(const State& start, double alpha) {
  return start.full.w.cwiseAbs().maxCoeff() / alpha;
}

double objective(double loss, const RowMatrix& w, double lambda, double alpha) {
  return loss + lambda * (alpha * w.cwiseAbs().sum() + (1 - alpha) / 2 * w.squaredNorm());
}

// Solves at `lambda` from s.at, which becomes the solution. The working set
// starts as the sequential strong rule's (Tibshirani et al. 2012, section
// 5: keep feature j when some |g_cj| >= alpha (2 lambda - lambda_prev), g the
// gradient at the previous solution) plus the support of s.at; features that
// violate the KKT conditions outside it are added until none does.
ElasticNetSolution solve_point(const ElasticNetData& data, double lipschitz, double lambda,
                               double lambda_prev, const ElasticNetOptions& o, State& s) {
  const int64_t k = data.k, d = data.d;
  const double strong = o.alpha * (2 * lambda - lambda_prev);
  std::vector<char> keep(d);
  for (int64_t j = 0; j < d; ++j) {
    keep[j] = (s.at.w.col(j).array() != 0).any() || s.full.w.col(j).cwiseAbs().maxCoeff() >= strong;
  }
  enet::FistaSettings settings;
  settings.lambda = lambda;
  settings.alpha = o.alpha;
  settings.tolerance = o.tolerance;
  settings.max_steps = o.max_iterations;
  settings.lipschitz = lipschitz;
  settings.local_lipschitz = s.local_lipschitz;
  int steps = 0;
  bool converged = false;
  double violation = 0;
  for (;;) {
    std::vector<int64_t> set;
    for (int64_t j = 0; j < d; ++j) {
      if (keep[j]) set.push_back(j);
    }
    const int64_t a = static_cast<int64_t>(set.size());
    if (a < d && (set != s.set || s.set_x.rows() != data.n)) {
      s.set_x.resize(data.n, a);
      const Features x = features(data);
      for (int64_t jj = 0; jj < a; ++jj) s.set_x.col(jj) = x.col(set[jj]);
    }
    s.set = set;
    const Features x = a < d ? Features(s.set_x.data(), data.n, a) : features(data);
    Point p{RowMatrix(k, a), s.at.b};
    for (int64_t jj = 0; jj < a; ++jj) p.w.col(jj) = s.at.w.col(set[jj]);
    Gradient g;
    const bool done = enet::fista(x, data.y, settings, p, g, s.logits, steps);
    s.at.w.setZero();
    for (int64_t jj = 0; jj < a; ++jj) s.at.w.col(set[jj]) = p.w.col(jj);
    s.at.b = p.b;
    if (a == d) {
      s.full = std::move(g);
    } else {
      enet::evaluate_from_logits(features(data), data.y, s.logits.at, &s.full);
    }
    violation = enet::kkt_violation(s.at.w, s.full, lambda, o.alpha);
    bool grown = false;
    for (int64_t j = 0; j < d; ++j) {
      if (!keep[j] && s.full.w.col(j).cwiseAbs().maxCoeff() - lambda * o.alpha > o.tolerance) {
        keep[j] = grown = true;
      }
    }
    if (!grown || steps >= o.max_iterations) {
      converged = done && violation <= o.tolerance;
      break;
    }
  }
  s.local_lipschitz = settings.local_lipschitz;
  ElasticNetSolution out;
  out.lambda = lambda;
  out.weight.assign(s.at.w.data(), s.at.w.data() + s.at.w.size());
  out.bias.assign(s.at.b.data(), s.at.b.data() + s.at.b.size());
  out.iterations = steps;
  out.converged = converged;
  out.objective = objective(s.full.loss, s.at.w, lambda, o.alpha);
  out.kkt_violation = violation;
  return out;
}

}  // namespace

int64_t ElasticNetSolution::nonzero() const {
  return std::count_if(weight.begin(), weight.end(), [](double v) { return v != 0; });
}

std::vector<int64_t> ElasticNetSolution::nonzero_per_class() const {
  const size_t k = bias.size(), d = k == 0 ? 0 : weight.size() / k;
  std::vector<int64_t> count(k, 0);
  for (size_t c = 0; c < k; ++c) {
    for (size_t j = 0; j < d; ++j) count[c] += weight[c * d + j] != 0;
  }
  return count;
}

double elastic_net_lambda_max(const ElasticNetData& data, double alpha) {
  check_alpha(alpha);
  return lambda_max_at(start_state(data), alpha);
}

std::vector<double> elastic_net_lambdas(double lambda_max, int points, double min_ratio) {
  if (!(lambda_max >= 0 && std::isfinite(lambda_max))) {
    fail("lambda_max " + std::to_string(lambda_max) + " must be a finite number >= 0");
  }
  if (points < 1) fail("path_points " + std::to_string(points) + " is below 1");
  if (!(min_ratio > 0 && min_ratio < 1)) {
    fail("lambda_min_ratio " + std::to_string(min_ratio) + " is outside (0, 1)");
  }
  std::vector<double> out(points, lambda_max);
  for (int i = 1; i < points; ++i) {
    out[i] = lambda_max * std::pow(min_ratio, static_cast<double>(i) / (points - 1));
  }
  return out;
}

ElasticNetSolution solve_elastic_net(const ElasticNetData& data, double lambda,
                                     const ElasticNetOptions& options,
                                     const ElasticNetSolution* start) {
  check_options(options);
  if (!(lambda >= 0 && std::isfinite(lambda))) {
    fail("lambda " + std::to_string(lambda) + " must be a finite number >= 0");
  }
  State s = start_state(data);
  double lambda_prev = lambda_max_at(s, options.alpha);
  if (start != nullptr) {
    check_solution(*start, data.k, data.d, "the start solution");
    s.at.w = Eigen::Map<const RowMatrix>(start->weight.data(), data.k, data.d);
    s.at.b = Eigen::Map<const VectorXd>(start->bias.data(), data.k);
    enet::evaluate(features(data), data.y, s.at, s.logits.at, &s.full);
    lambda_prev = start->lambda;
  }
  return solve_point(data, enet::lipschitz_bound(features(data)), lambda, lambda_prev, options, s);
}

double elastic_net_kkt_violation(const ElasticNetData& data, const ElasticNetSolution& s,
                                 double alpha) {
  check_alpha(alpha);
  check_data(data);
  check_solution(s, data.k, data.d, "the solution");
  const Point p{Eigen::Map<const RowMatrix>(s.weight.data(), data.k, data.d),
                Eigen::Map<const VectorXd>(s.bias.data(), data.k)};
  RowMatrix logits;  // (n, k)
  Gradient g;
  enet::evaluate(features(data), data.y, p, logits, &g);
  return enet::kkt_violation(p.w, g, s.lambda, alpha);
}

std::vector<ElasticNetSolution> elastic_net_path(
    const ElasticNetData& data, const ElasticNetOptions& options,
    const std::function<bool(int index, const ElasticNetSolution&)>& on_point) {
  check_options(options);
  State s = start_state(data);
  const double lipschitz = enet::lipschitz_bound(features(data));
  const double lambda_max = lambda_max_at(s, options.alpha);
  const std::vector<double> lambdas =
      elastic_net_lambdas(lambda_max, options.path_points, options.lambda_min_ratio);
  std::vector<ElasticNetSolution> path;
  for (int i = 0; i < options.path_points; ++i) {
    if (i >= 2) {
      // Predictor: the lambdas are evenly spaced in log lambda, so
      // 2 W(i-1) - W(i-2) extrapolates the path linearly in log lambda
      // (kept on the support of W(i-1), which the working set contains).
      // From there FISTA starts about twice closer than from W(i-1).
      const Eigen::Map<const RowMatrix> before(path[i - 2].weight.data(), data.k, data.d);
      const Eigen::Map<const VectorXd> bias_before(path[i - 2].bias.data(), data.k);
      s.at.w = (s.at.w.array() != 0).select(2 * s.at.w.array() - before.array(), 0.0).matrix();
      s.at.b = 2 * s.at.b - bias_before;
    }
    path.push_back(
        solve_point(data, lipschitz, lambdas[i], i == 0 ? lambda_max : lambdas[i - 1], options, s));
    if (on_point && !on_point(i, path.back())) break;
  }
  return path;
}

std::vector<int32_t> elastic_net_predict(const ElasticNetSolution& s, const float* x, int64_t n,
                                         int64_t d) {
  const int64_t k = static_cast<int64_t>(s.bias.size());
  if (k < 1) fail("the solution has no classes");
  check_solution(s, k, d, "the solution");
  if (n < 0 || (n > 0 && x == nullptr)) fail("no features to predict from (x is null or n < 0)");
  std::vector<int32_t> out(n);
  std::vector<double> z(k);  // (k) logits of one row
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < k; ++c) {
      double sum = s.bias[c];
      for (int64_t j = 0; j < d; ++j) sum += s.weight[c * d + j] * x[i * d + j];
      z[c] = sum;
    }
    out[i] = static_cast<int32_t>(std::max_element(z.begin(), z.end()) - z.begin());
  }
  return out;
}

double elastic_net_accuracy(const ElasticNetSolution& s, const ElasticNetData& data) {
  check_data(data);
  check_solution(s, data.k, data.d, "the solution");
  const std::vector<int32_t> predicted = elastic_net_predict(s, data.x, data.n, data.d);
  int64_t right = 0;
  for (int64_t i = 0; i < data.n; ++i) right += predicted[i] == data.y[i];
  return static_cast<double>(right) / static_cast<double>(data.n);
}

}  // namespace sparsetrain::detail
