// The elastic-net multinomial path solver (transfer/elastic_net.h) against
// the plain-loop reference of tests/elastic_net_reference.h: lambda_max, the
// KKT conditions, optimality spot checks, warm starts, the working set, the
// path's sparsity, thread-count independence, and bad inputs.

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "sparsetrain/error.h"
#include "tests/elastic_net_reference.h"
#include "transfer/elastic_net.h"

namespace sparsetrain::detail {
namespace {

using enet_test::active_features;
using enet_test::kkt;
using enet_test::kSeed;
using enet_test::make_problem;
using enet_test::objective;
using enet_test::Problem;

// The solver's stopping rule is a KKT violation <= tolerance on its own
// gradient; the reference gradient here differs from it by rounding only.
constexpr double kTolerance = 1e-6;
constexpr double kRoundingSlack = 1e-9;

ElasticNetOptions options(int points) {
  ElasticNetOptions o;
  o.path_points = points;
  o.tolerance = kTolerance;
  return o;
}

TEST(ElasticNet, LambdaMaxIsWhereTheFirstWeightAppears) {
  const Problem p = make_problem(200, 10, 3);
  const ElasticNetOptions o = options(1);
  // Reference: at W = 0 the optimal bias makes P the class frequencies f, so
  // g_cj = (1/n) sum_i x_ij (f_c - [y_i = c]).
  std::vector<double> freq(p.k, 0.0);
  for (int32_t label : p.y) freq[label] += 1.0 / p.n;
  double largest = 0;
  int64_t largest_at = -1;  // index in W (k, d)
  for (int c = 0; c < p.k; ++c) {
    for (int64_t j = 0; j < p.d; ++j) {
      double g = 0;
      for (int64_t i = 0; i < p.n; ++i) g += p.x[i * p.d + j] * (freq[c] - (p.y[i] == c));
      if (std::abs(g / p.n) > largest) {
        largest = std::abs(g / p.n);
        largest_at = c * p.d + j;
      }
    }
  }
  const double lambda_max = elastic_net_lambda_max(p.data(), o.alpha);
  EXPECT_NEAR(lambda_max, largest / o.alpha, 1e-12);

  const ElasticNetSolution at_max = solve_elastic_net(p.data(), lambda_max, o);
  EXPECT_TRUE(at_max.converged);
  EXPECT_EQ(at_max.nonzero(), 0);
  // The bias is log f up to one constant.
  const double shift = at_max.bias[0] - std::log(freq[0]);
  for (int c = 1; c < p.k; ++c) EXPECT_NEAR(at_max.bias[c] - std::log(freq[c]), shift, 1e-6);

  // Zero is the optimum there, not just the start: from a dense start the
  // solver comes back to it. At lambda_max itself the largest gradient sits
  // exactly on the threshold, so a weight within the tolerance of zero may
  // stay; just above, all are exactly zero.
  const ElasticNetSolution dense = solve_elastic_net(p.data(), lambda_max / 100, o);
  ASSERT_GT(dense.nonzero(), p.k);
  const ElasticNetSolution back = solve_elastic_net(p.data(), lambda_max, o, &dense);
  EXPECT_TRUE(back.converged);
  for (double w : back.weight) EXPECT_LT(std::abs(w), 1e-4);
  const ElasticNetSolution above = solve_elastic_net(p.data(), 1.001 * lambda_max, o, &dense);
  EXPECT_TRUE(above.converged);
  EXPECT_EQ(above.nonzero(), 0);

  // Just below, one weight enters: the one of the largest reference gradient.
  const ElasticNetSolution below = solve_elastic_net(p.data(), 0.999 * lambda_max, o);
  EXPECT_TRUE(below.converged);
  EXPECT_EQ(below.nonzero(), 1);
  EXPECT_NE(below.weight[largest_at], 0.0);
  EXPECT_LE(kkt(p, below, o.alpha), kTolerance + kRoundingSlack);
}

TEST(ElasticNet, KktConditionsHoldAlongThePath) {
  const Problem p = make_problem(200, 10, 3);
  const ElasticNetOptions o = options(30);
  const std::vector<ElasticNetSolution> path = elastic_net_path(p.data(), o);
  ASSERT_EQ(path.size(), 30u);
  for (size_t i : {1u, 5u, 12u, 20u, 29u}) {
    SCOPED_TRACE("point " + std::to_string(i));
    const ElasticNetSolution& s = path[i];
    EXPECT_TRUE(s.converged);
    const double violation = kkt(p, s, o.alpha);
    EXPECT_LE(violation, kTolerance + kRoundingSlack);
    EXPECT_NEAR(elastic_net_kkt_violation(p.data(), s, o.alpha), violation, 1e-12);
    EXPECT_NEAR(s.kkt_violation, violation, 1e-12);
    // The check has teeth: 10% off the solution violates it by far.
    ElasticNetSolution off = s;
    for (double& v : off.weight) v *= 1.1;
    off.bias[0] += 0.1;
    EXPECT_GT(kkt(p, off, o.alpha), 100 * kTolerance);
    EXPECT_NEAR(elastic_net_kkt_violation(p.data(), off, o.alpha), kkt(p, off, o.alpha), 1e-12);
  }
}

TEST(ElasticNet, PathGrowsSparselyTowardsAnAccurateOptimum) {
  // On this data the number of nonzero weights never falls along the path.
  // It may in general: the loss is unchanged by adding a constant to a
  // feature's column of W, so near the unpenalised end one class's weight can
  // hand over to another's (on kSeed's data, column 7 does at point 35); the
  // number of features in use still only grows, checked below on kSeed.
  constexpr uint32_t kMonotoneSeed = 1;
  const Problem p = make_problem(200, 10, 3, kMonotoneSeed);
  const ElasticNetOptions o = options(40);
  const std::vector<ElasticNetSolution> path = elastic_net_path(p.data(), o);
  ASSERT_EQ(path.size(), 40u);
  const std::vector<double> lambdas =
      elastic_net_lambdas(elastic_net_lambda_max(p.data(), o.alpha), 40, o.lambda_min_ratio);
  EXPECT_EQ(path.front().nonzero(), 0);
  // At the unpenalised end each feature's column keeps k - 1 nonzeros.
  EXPECT_GE(path.back().nonzero(), (p.k - 1) * p.d * 3 / 4);
  for (size_t i = 0; i < path.size(); ++i) {
    EXPECT_DOUBLE_EQ(path[i].lambda, lambdas[i]);
    if (i > 0) {
      EXPECT_GE(path[i].nonzero(), path[i - 1].nonzero()) << "point " << i;
    }
    const std::vector<int64_t> per_class = path[i].nonzero_per_class();
    int64_t sum = 0;
    for (int64_t c : per_class) sum += c;
    EXPECT_EQ(sum, path[i].nonzero());
  }
  const Problem q = make_problem(200, 10, 3);
  const std::vector<ElasticNetSolution> q_path = elastic_net_path(q.data(), o);
  bool fell = false;
  for (size_t i = 1; i < q_path.size(); ++i) {
    EXPECT_GE(active_features(q, q_path[i]), active_features(q, q_path[i - 1])) << "point " << i;
    fell = fell || q_path[i].nonzero() < q_path[i - 1].nonzero();
  }
  EXPECT_TRUE(fell) << "kSeed's path no longer shows a hand-over; update the comment above";
  // The first weights to enter are on the signal features 0..k-1.
  const auto first = std::find_if(path.begin(), path.end(),
                                  [](const ElasticNetSolution& s) { return s.nonzero() > 0; });
  ASSERT_NE(first, path.end());
  for (int c = 0; c < p.k; ++c) {
    for (int64_t j = p.k; j < p.d; ++j) EXPECT_EQ(first->weight[c * p.d + j], 0.0);
  }

  // Optimality spot checks: the objective, recomputed here, is lowest at the
  // solution among points moved along single coordinates (a zero weight,
  // a nonzero weight, a bias) and along random directions.
  std::mt19937 rng(kSeed);
  std::normal_distribution<double> normal(0.0, 1.0);
  constexpr double kStep = 1e-3;
  for (size_t i : {3u, 15u, 39u}) {
    SCOPED_TRACE("point " + std::to_string(i));
    const ElasticNetSolution& s = path[i];
    const double at = objective(p, s.weight, s.bias, s.lambda, o.alpha);
    EXPECT_NEAR(s.objective, at, 1e-12);
    const auto zero = std::find(s.weight.begin(), s.weight.end(), 0.0) - s.weight.begin();
    const auto nonzero =
        std::find_if(s.weight.begin(), s.weight.end(), [](double v) { return v != 0; }) -
        s.weight.begin();
    for (double sign : {-1.0, 1.0}) {
      for (auto index : {zero, nonzero}) {
        if (index == static_cast<std::ptrdiff_t>(s.weight.size())) continue;
        std::vector<double> w = s.weight;
        w[index] += sign * kStep;
        EXPECT_LE(at, objective(p, w, s.bias, s.lambda, o.alpha));
      }
      std::vector<double> b = s.bias;
      b[1] += sign * kStep;
      EXPECT_LE(at, objective(p, s.weight, b, s.lambda, o.alpha));
    }
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<double> w = s.weight, b = s.bias;
      for (double& v : w) v += kStep * normal(rng);
      for (double& v : b) v += kStep * normal(rng);
      EXPECT_LE(at, objective(p, w, b, s.lambda, o.alpha));
    }
  }

  // Near the unpenalised end the classifier fits the separable-ish data.
  EXPECT_GE(elastic_net_accuracy(path.back(), p.data()), 0.85);
  const std::vector<int32_t> predicted = elastic_net_predict(path.back(), p.x.data(), p.n, p.d);
  int64_t right = 0;
  for (int64_t i = 0; i < p.n; ++i) right += predicted[i] == p.y[i];
  EXPECT_DOUBLE_EQ(elastic_net_accuracy(path.back(), p.data()), static_cast<double>(right) / p.n);
}

TEST(ElasticNet, WarmStartReachesTheColdSolutionInFewerSteps) {
  const Problem p = make_problem(200, 10, 3);
  // Near the unpenalised end the objective is flat (the data are almost
  // separable), and a KKT violation of 1e-6 leaves the weights ~1e-3 apart;
  // solve tighter so that both starts must land on the same weights.
  ElasticNetOptions o = options(20);
  o.tolerance = 1e-10;
  const std::vector<ElasticNetSolution> path = elastic_net_path(p.data(), o);
  for (size_t i : {6u, 12u, 19u}) {
    SCOPED_TRACE("point " + std::to_string(i));
    const ElasticNetSolution cold = solve_elastic_net(p.data(), path[i].lambda, o);
    const ElasticNetSolution warm = solve_elastic_net(p.data(), path[i].lambda, o, &path[i - 1]);
    ASSERT_TRUE(cold.converged);
    ASSERT_TRUE(warm.converged);
    EXPECT_LT(warm.iterations, cold.iterations);
    EXPECT_NEAR(warm.objective, cold.objective, 1e-13);
    for (size_t j = 0; j < cold.weight.size(); ++j) {
      EXPECT_NEAR(warm.weight[j], cold.weight[j], 1e-6) << "weight " << j;
      EXPECT_EQ(warm.weight[j] == 0, cold.weight[j] == 0) << "weight " << j;
    }
    for (int c = 0; c < p.k; ++c) {
      // The bias is fixed up to a constant; compare differences.
      EXPECT_NEAR(warm.bias[c] - warm.bias[0], cold.bias[c] - cold.bias[0], 1e-6);
    }
  }
}

TEST(ElasticNet, WorkingSetGrowsWhereTheStrongRuleMisses) {
  const Problem p = make_problem(200, 10, 3);
  const ElasticNetOptions o = options(1);
  const double lambda_max = elastic_net_lambda_max(p.data(), o.alpha);
  const double lambda = lambda_max / 20;
  // A start at (0, b*) that claims lambda = 0: the strong rule then keeps
  // only the features with |g_cj| >= 2 alpha lambda, and those of the
  // solution with smaller gradients at the start must come in through the
  // KKT check on all features.
  ElasticNetSolution start = solve_elastic_net(p.data(), lambda_max, o);
  ASSERT_EQ(start.nonzero(), 0);
  start.lambda = 0;
  const ElasticNetSolution misled = solve_elastic_net(p.data(), lambda, o, &start);
  const ElasticNetSolution cold = solve_elastic_net(p.data(), lambda, o);
  EXPECT_TRUE(misled.converged);
  EXPECT_LE(kkt(p, misled, o.alpha), kTolerance + kRoundingSlack);
  EXPECT_EQ(misled.nonzero(), cold.nonzero());
  for (size_t j = 0; j < cold.weight.size(); ++j) {
    EXPECT_NEAR(misled.weight[j], cold.weight[j], 1e-4) << "weight " << j;
  }
}

TEST(ElasticNet, PathStopsWhenAskedAndIsTheSameOnAnyThreadCount) {
  // 5000 rows: the passes cut them into several chunks.
  const Problem p = make_problem(5000, 12, 4);
  const ElasticNetOptions o = options(15);
  std::vector<int> seen;
  const std::vector<ElasticNetSolution> head =
      elastic_net_path(p.data(), o, [&](int index, const ElasticNetSolution& s) {
        seen.push_back(index);
        return index < 4;
      });
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
  ASSERT_EQ(head.size(), 5u);

  std::vector<ElasticNetSolution> one, two;
  {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 1);
    one = elastic_net_path(p.data(), o);
  }
  {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 2);
    two = elastic_net_path(p.data(), o);
  }
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i].weight, two[i].weight) << "point " << i;
    EXPECT_EQ(one[i].bias, two[i].bias) << "point " << i;
    EXPECT_EQ(one[i].iterations, two[i].iterations) << "point " << i;
  }
  for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ(head[i].weight, one[i].weight);
}

TEST(ElasticNet, LambdasAreGeometric) {
  const std::vector<double> l = elastic_net_lambdas(2.0, 5, 1e-2);
  ASSERT_EQ(l.size(), 5u);
  EXPECT_DOUBLE_EQ(l.front(), 2.0);
  EXPECT_NEAR(l.back(), 2e-2, 1e-15);
  for (size_t i = 1; i < l.size(); ++i) EXPECT_NEAR(l[i] / l[i - 1], std::sqrt(0.1), 1e-12);
  EXPECT_EQ(elastic_net_lambdas(2.0, 1, 1e-2), std::vector<double>{2.0});
}

TEST(ElasticNet, PredictTakesTheArgmaxOfTheLogits) {
  ElasticNetSolution s;
  s.weight = {1, 0, 0, 1, -1, -1};  // (3, 2)
  s.bias = {0, 0.5, 0};
  const std::vector<float> x = {2, 0, 0, 2, -1, -1, 0, 0};  // (4, 2)
  // Logits: (2, 0.5, -2), (0, 2.5, -2), (-1, -0.5, 2), (0, 0.5, 0).
  EXPECT_EQ(elastic_net_predict(s, x.data(), 4, 2), (std::vector<int32_t>{0, 1, 2, 1}));
  EXPECT_EQ(s.nonzero(), 4);
  EXPECT_EQ(s.nonzero_per_class(), (std::vector<int64_t>{1, 1, 2}));
}

// Runs `call`, which must throw Error with `piece` in its message.
template <class F>
void expect_error(F call, const std::string& piece) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one naming \"" << piece << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(piece), std::string::npos) << e.what();
  }
}

TEST(ElasticNet, BadInputsThrowNamingTheProblem) {
  const Problem good = make_problem(30, 4, 3);
  const ElasticNetOptions o = options(3);
  const auto path_of = [&](const Problem& p, const ElasticNetOptions& opt) {
    return [p, opt] { elastic_net_path(p.data(), opt); };
  };
  Problem p = good;
  p.n = 0;
  expect_error(path_of(p, o), "no examples");
  p = good;
  p.d = 0;
  expect_error(path_of(p, o), "no features");
  p = good;
  p.k = 1;
  expect_error(path_of(p, o), "at least 2 classes");
  p = good;
  p.y[7] = 3;
  expect_error(path_of(p, o), "label 3 of example 7 is outside [0, 3)");
  p.y[7] = -1;
  expect_error(path_of(p, o), "label -1 of example 7");
  p = good;
  p.x[5 * 4 + 2] = std::numeric_limits<float>::quiet_NaN();
  expect_error(path_of(p, o), "feature 2 of example 5 is not finite");
  p.x[5 * 4 + 2] = std::numeric_limits<float>::infinity();
  expect_error(path_of(p, o), "feature 2 of example 5 is not finite");
  p = good;
  for (int32_t& label : p.y) label = label == 2 ? 0 : label;
  expect_error(path_of(p, o), "class 2 has no example");

  for (double alpha : {0.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    ElasticNetOptions bad = o;
    bad.alpha = alpha;
    expect_error(path_of(good, bad), "alpha");
    expect_error([&] { elastic_net_lambda_max(good.data(), alpha); }, "alpha");
  }
  ElasticNetOptions bad = o;
  bad.path_points = 0;
  expect_error(path_of(good, bad), "path_points 0");
  for (double ratio : {0.0, 1.0, 2.0}) {
    bad = o;
    bad.lambda_min_ratio = ratio;
    expect_error(path_of(good, bad), "lambda_min_ratio");
  }
  bad = o;
  bad.tolerance = 0;
  expect_error(path_of(good, bad), "tolerance");
  bad = o;
  bad.max_iterations = 0;
  expect_error(path_of(good, bad), "max_iterations");
  expect_error([&] { solve_elastic_net(good.data(), -1.0, o); }, "lambda -1");
  ElasticNetSolution wrong;
  wrong.weight.assign(5, 0.0);
  wrong.bias.assign(3, 0.0);
  expect_error([&] { solve_elastic_net(good.data(), 0.1, o, &wrong); }, "start solution");
  expect_error([&] { elastic_net_kkt_violation(good.data(), wrong, 0.5); }, "the solution");
  expect_error([&] { elastic_net_lambdas(1.0, 0, 0.1); }, "path_points");
}

// Near the realistic size (sparse-head fine-tuning of a small network:
// 64 features, 5 classes, 100 lambdas; 10,000 examples rather than 25,000,
// which take several seconds) the path runs to the end with every point
// converged.
TEST(ElasticNet, RealisticSizePathConverges) {
  constexpr int64_t kRows = 10000, kFeatures = 64;
  constexpr int kClasses = 5;
  const Problem p = make_problem(kRows, kFeatures, kClasses);
  const ElasticNetOptions o = options(100);
  const std::vector<ElasticNetSolution> path = elastic_net_path(p.data(), o);
  ASSERT_EQ(path.size(), 100u);
  int64_t steps = 0;
  for (const ElasticNetSolution& s : path) {
    EXPECT_TRUE(s.converged) << "lambda " << s.lambda;
    EXPECT_LE(s.kkt_violation, kTolerance);
    steps += s.iterations;
  }
  EXPECT_EQ(path.front().nonzero(), 0);
  EXPECT_GT(path.back().nonzero(), kClasses);
  EXPECT_LE(elastic_net_kkt_violation(p.data(), path.back(), o.alpha), kTolerance);
  EXPECT_GE(elastic_net_accuracy(path.back(), p.data()), 0.8);
  RecordProperty("proximal_steps", std::to_string(steps));
}

}  // namespace
}  // namespace sparsetrain::detail
