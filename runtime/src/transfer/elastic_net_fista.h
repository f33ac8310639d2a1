// The numerical core of transfer/elastic_net.h: the loss-and-gradient pass
// over the rows of X and FISTA with backtracking and restart. Internal to
// elastic_net.cc and elastic_net_fista.cc.
#pragma once

// The passes split rows over TBB; Eigen's own OpenMP threads would nest.
#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif
#include <Eigen/Core>
#include <cstdint>

namespace sparsetrain::detail::enet {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using FloatRows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Features = Eigen::Map<const FloatRows>;  // (n, a) row-major, the caller's floats
using Eigen::VectorXd;

// The mean cross-entropy at a point (W, b) and its gradient. With logits
// z_i = W x_i + b, P (n, k) their softmax and Y (n, k) the one-hot labels:
//   loss = (1/n) sum_i logsumexp(z_i) - z_i,y_i
//   w = (1/n) (P - Y)^T X   (k, a)      b = (1/n) (P - Y)^T 1   (k)
struct Gradient {
  double loss = 0;
  RowMatrix w;  // (k, a)
  VectorXd b;   // (k)
};

struct Point {
  RowMatrix w;  // (k, a)
  VectorXd b;   // (k)
};

// (n, k) logits kept between passes, so that no pass recomputes X W^T for a
// point whose logits are a linear combination of known ones.
struct Logits {
  RowMatrix at;     // (n, k) of the point where the gradient was taken
  RowMatrix last;   // (n, k) of FISTA's last proximal point x_k
  RowMatrix ahead;  // (n, k) of a candidate extrapolated point y_k+1
  RowMatrix next;   // (n, k) of a candidate proximal point x_k+1
};

// Lipschitz constant of the gradient of the mean cross-entropy in (W, b):
// 1/2 * the largest eigenvalue of [X 1]^T [X 1] / n (Boehning 1992: the
// softmax cross-entropy's Hessian in the logits is at most 1/2 (I - 11^T/k)).
double lipschitz_bound(Features x);

// Loss and gradient at p on the features x, writing the logits (n, k).
void evaluate(Features x, const int32_t* y, const Point& p, RowMatrix& logits, Gradient* out);
// Loss and gradient on the features x from logits (n, k) already known (those
// of a point whose weights outside x's columns are zero).
void evaluate_from_logits(Features x, const int32_t* y, const RowMatrix& logits, Gradient* out);

// Largest KKT violation (transfer/elastic_net.h) of weights w (k, a) with
// gradient g.w (k, a), and of the bias with gradient g.b (k).
double kkt_violation(const RowMatrix& w, const Gradient& g, double lambda, double alpha);

struct FistaSettings {
  double lambda = 0;
  double alpha = 1;
  double tolerance = 0;        // on the KKT violation
  int max_steps = 0;           // proximal steps (tried or taken) in all, with `steps`
  double lipschitz = 0;        // lipschitz_bound: a step of 1/lipschitz always descends
  double local_lipschitz = 0;  // in: the first trial (0: lipschitz); out: the last one taken
};

// Minimises loss + lambda (alpha |W|_1 + (1-alpha)/2 |W|^2) on the features x
// (n, a) from p, which becomes the returned point; g is its gradient and
// z.at its logits. Counts proximal steps in `steps`. Returns whether the
// point's KKT violation is <= s.tolerance.
bool fista(Features x, const int32_t* y, FistaSettings& s, Point& p, Gradient& g, Logits& z,
           int& steps);

}  // namespace sparsetrain::detail::enet
