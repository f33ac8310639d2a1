// Elastic-net multinomial logistic regression along a regularisation path:
// the sparse linear head of `finetune --mode sparse-head` (Wong, Santurkar,
// Madry 2021, "Leveraging sparse linear layers for debuggable deep
// networks", section 2: a glmnet-style path over deep features).
//
// Objective (glmnet's multinomial convention, Friedman, Hastie, Tibshirani
// 2010, section 4), with the bias unpenalised:
//   F(W, b) = (1/n) sum_i CE(softmax(W x_i + b), y_i)
//             + lambda * (alpha * ||W||_1 + (1 - alpha)/2 * ||W||_F^2)
// Solver: FISTA (Beck and Teboulle 2009) in double precision, the ridge term
// in the proximal step, with backtracking below the global bound
// L = 1/2 * largest eigenvalue of [X 1]^T [X 1] / n (Boehning's bound on the
// softmax cross-entropy's Hessian) and gradient-based restart (O'Donoghue and
// Candes 2015). Each lambda is solved first on the features the sequential
// strong rule keeps (Tibshirani et al. 2012), then checked against the KKT
// conditions on all features. Along the path each point starts from the
// previous two extrapolated linearly in log lambda. Passes over the rows run
// on TBB with a fixed split: results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace sparsetrain::detail {

// The caller's data, not copied beyond one call. Features are used as given
// (the caller standardises them).
struct ElasticNetData {
  const float* x = nullptr;    // (n, d) row-major
  int64_t n = 0;               // examples
  int64_t d = 0;               // features
  const int32_t* y = nullptr;  // (n) labels in [0, k)
  int k = 0;                   // classes
};

struct ElasticNetOptions {
  double alpha = 0.99;  // share of the L1 term, in (0, 1]
  // Lambdas, geometric from lambda_max down to lambda_max * lambda_min_ratio.
  int path_points = 100;
  double lambda_min_ratio = 1e-3;
  // Stopping rule: the largest KKT violation (elastic_net_kkt_violation,
  // over all weights and the bias) is at most `tolerance`.
  double tolerance = 1e-6;
  // Proximal gradient steps (each one pass over the data) allowed per path
  // point or per solve; a point that runs out is returned with converged =
  // false.
  int max_iterations = 5000;
};

struct ElasticNetSolution {
  double lambda = 0;
  std::vector<double> weight;  // (k, d) row-major
  std::vector<double> bias;    // (k)
  int iterations = 0;          // proximal gradient steps tried for this point
  bool converged = false;      // KKT violation <= tolerance on all features
  double objective = 0;        // F(weight, bias) at this lambda
  double kkt_violation = 0;    // largest KKT violation at the returned point

  // Nonzero weights in all.
  int64_t nonzero() const;
  // (k) nonzero weights of each class's row.
  std::vector<int64_t> nonzero_per_class() const;
};

// The smallest lambda at which W = 0 is optimal (with the optimal bias
// b* = log of the class frequencies, up to a constant): max |grad_W| / alpha
// at (0, b*). Throws Error when a class has no example (b* would be -inf).
double elastic_net_lambda_max(const ElasticNetData& data, double alpha);

// (points) lambdas, geometric from lambda_max down to lambda_max * min_ratio
// (just lambda_max when points = 1).
std::vector<double> elastic_net_lambdas(double lambda_max, int points, double min_ratio);

// Solves at one lambda, warm-started from `start` (a solution of the same
// data, any lambda) when given, else from (0, b*).
ElasticNetSolution solve_elastic_net(const ElasticNetData& data, double lambda,
                                     const ElasticNetOptions& options,
                                     const ElasticNetSolution* start = nullptr);

// Largest violation of the optimality (KKT) conditions of F at s.lambda,
// with g = grad_W of the mean cross-entropy and g_b its bias gradient:
//   W_cj != 0: |g_cj + lambda (1 - alpha) W_cj + lambda alpha sign(W_cj)|
//   W_cj == 0: max(0, |g_cj| - lambda alpha)
//   bias:      |g_b,c|
double elastic_net_kkt_violation(const ElasticNetData& data, const ElasticNetSolution& s,
                                 double alpha);

// The whole path with warm starts. `on_point` (may be empty) is called after
// each point, with its index in the path, and may return false to stop early;
// the points solved so far are returned.
std::vector<ElasticNetSolution> elastic_net_path(
    const ElasticNetData& data, const ElasticNetOptions& options,
    const std::function<bool(int index, const ElasticNetSolution&)>& on_point = {});

// (n) predicted class of each row of x (n, d) row-major: argmax of W x + b
// (the lowest class on ties).
std::vector<int32_t> elastic_net_predict(const ElasticNetSolution& s, const float* x, int64_t n,
                                         int64_t d);
// Share of the rows of data.x whose prediction is their label, in [0, 1].
double elastic_net_accuracy(const ElasticNetSolution& s, const ElasticNetData& data);

}  // namespace sparsetrain::detail
