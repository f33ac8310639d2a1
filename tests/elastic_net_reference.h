// A reference for the elastic-net solver's tests (transfer/elastic_net.h):
// seeded synthetic problems, and the loss, gradient, objective and KKT
// violation written with plain loops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "transfer/elastic_net.h"

namespace sparsetrain::detail::enet_test {

// Features are N(0, 1); class c's score is kSignal * x_c plus N(0, kNoise)
// noise, and the label is the best score: features 0..k-1 carry the signal,
// the others none. With these values the classes are separable up to ~10%.
constexpr float kSignal = 4.0f;
constexpr float kNoise = 1.0f;
constexpr uint32_t kSeed = 20210601;

struct Problem {
  int64_t n = 0, d = 0;
  int k = 0;
  std::vector<float> x;    // (n, d) row-major
  std::vector<int32_t> y;  // (n)
  ElasticNetData data() const { return {x.data(), n, d, y.data(), k}; }
};

inline Problem make_problem(int64_t n, int64_t d, int k, uint32_t seed = kSeed) {
  Problem p{n, d, k, std::vector<float>(n * d), std::vector<int32_t>(n)};
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : p.x) v = normal(rng);
  for (int64_t i = 0; i < n; ++i) {
    float best = -std::numeric_limits<float>::infinity();
    for (int c = 0; c < k; ++c) {
      const float score = kSignal * p.x[i * d + c] + kNoise * normal(rng);
      if (score > best) {
        best = score;
        p.y[i] = c;
      }
    }
  }
  return p;
}

// Mean cross-entropy of softmax(W x_i + b) and its gradient, in plain loops.
struct Reference {
  double loss = 0;
  std::vector<double> grad_w;  // (k, d)
  std::vector<double> grad_b;  // (k)
};

inline Reference reference(const Problem& p, const std::vector<double>& w,
                           const std::vector<double>& b) {
  Reference r{0, std::vector<double>(p.k * p.d, 0.0), std::vector<double>(p.k, 0.0)};
  std::vector<double> z(p.k);  // (k)
  for (int64_t i = 0; i < p.n; ++i) {
    for (int c = 0; c < p.k; ++c) {
      z[c] = b[c];
      for (int64_t j = 0; j < p.d; ++j) z[c] += w[c * p.d + j] * p.x[i * p.d + j];
    }
    const double top = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (int c = 0; c < p.k; ++c) sum += std::exp(z[c] - top);
    const double log_sum = top + std::log(sum);
    r.loss += log_sum - z[p.y[i]];
    for (int c = 0; c < p.k; ++c) {
      const double residual = std::exp(z[c] - log_sum) - (c == p.y[i] ? 1.0 : 0.0);
      r.grad_b[c] += residual;
      for (int64_t j = 0; j < p.d; ++j) r.grad_w[c * p.d + j] += residual * p.x[i * p.d + j];
    }
  }
  r.loss /= static_cast<double>(p.n);
  for (double& g : r.grad_w) g /= static_cast<double>(p.n);
  for (double& g : r.grad_b) g /= static_cast<double>(p.n);
  return r;
}

inline double objective(const Problem& p, const std::vector<double>& w,
                        const std::vector<double>& b, double lambda, double alpha) {
  double l1 = 0, l2 = 0;
  for (double v : w) {
    l1 += std::abs(v);
    l2 += v * v;
  }
  return reference(p, w, b).loss + lambda * (alpha * l1 + (1 - alpha) / 2 * l2);
}

// The header's KKT violation, from the reference gradient.
inline double kkt(const Problem& p, const ElasticNetSolution& s, double alpha) {
  const Reference r = reference(p, s.weight, s.bias);
  double worst = 0;
  for (double g : r.grad_b) worst = std::max(worst, std::abs(g));
  for (size_t i = 0; i < s.weight.size(); ++i) {
    const double v = s.weight[i], g = r.grad_w[i];
    const double sign = v > 0 ? 1.0 : -1.0;
    worst = std::max(worst, v != 0 ? std::abs(g + s.lambda * ((1 - alpha) * v + alpha * sign))
                                   : std::max(0.0, std::abs(g) - s.lambda * alpha));
  }
  return worst;
}

// Features with a nonzero weight in some class.
inline int64_t active_features(const Problem& p, const ElasticNetSolution& s) {
  int64_t count = 0;
  for (int64_t j = 0; j < p.d; ++j) {
    bool active = false;
    for (int c = 0; c < p.k; ++c) active = active || s.weight[c * p.d + j] != 0;
    count += active;
  }
  return count;
}

}  // namespace sparsetrain::detail::enet_test
