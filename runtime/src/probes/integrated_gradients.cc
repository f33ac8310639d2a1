// integrated-gradients (Sundararajan et al. 2017, "Axiomatic attribution
// for deep networks"): attr = (x - x') * integral over a in [0, 1] of
// d score / d x at x' + a (x - x'), by a quadrature of --steps points
// (the Riemann midpoint rule or Gauss-Legendre). Path points run in chunks of
// --internal-batch images, so memory does not grow with the step count.
// Completeness says sum(attr) = score(x) - score(x'); each sample reports how
// far the quadrature is from it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "probes/sample_probes.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"

namespace sparsetrain {
namespace {

using json = nlohmann::json;

// Gauss-Legendre nodes and weights on [0, 1]: roots of P_n by Newton's
// method from Chebyshev guesses, weights 2 / ((1 - x^2) P_n'(x)^2), mapped
// from [-1, 1].
void gauss_legendre(int n, std::vector<double>& nodes, std::vector<double>& weights) {
  nodes.assign(static_cast<size_t>(n), 0.0);
  weights.assign(static_cast<size_t>(n), 0.0);
  for (int i = 0; i < n; ++i) {
    double x = std::cos(std::numbers::pi * (i + 0.75) / (n + 0.5));
    double dp = 1.0;
    for (int iter = 0; iter < 100; ++iter) {
      double p0 = 1.0, p1 = x;  // P_0, P_1
      for (int k = 2; k <= n; ++k) {
        const double p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      // p1 = P_n(x), p0 = P_{n-1}(x); P_n' = n (x P_n - P_{n-1}) / (x^2 - 1).
      dp = n * (x * p1 - p0) / (x * x - 1.0);
      const double step = p1 / dp;
      x -= step;
      if (std::abs(step) < 1e-15) break;
    }
    nodes[i] = 0.5 * (1.0 - x);
    weights[i] = 1.0 / ((1.0 - x * x) * dp * dp);  // 2 / (...) halved for [0, 1]
  }
}

// A Gaussian blur of each channel of a (C, H, W) image (zero-padded edges
// renormalised), the "blurred image" baseline.
void blur(const float* x, float* out, int64_t c, int64_t h, int64_t w, double sigma) {
  const int r = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  std::vector<double> k(static_cast<size_t>(2 * r + 1));
  for (int i = -r; i <= r; ++i) k[i + r] = std::exp(-0.5 * i * i / (sigma * sigma));
  std::vector<double> tmp(static_cast<size_t>(h * w));
  for (int64_t ch = 0; ch < c; ++ch) {
    const float* src = x + ch * h * w;
    float* dst = out + ch * h * w;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t xx = 0; xx < w; ++xx) {
        double s = 0, n = 0;
        for (int i = -r; i <= r; ++i)
          if (xx + i >= 0 && xx + i < w) {
            s += k[i + r] * src[y * w + xx + i];
            n += k[i + r];
          }
        tmp[y * w + xx] = s / n;
      }
    for (int64_t y = 0; y < h; ++y)
      for (int64_t xx = 0; xx < w; ++xx) {
        double s = 0, n = 0;
        for (int i = -r; i <= r; ++i)
          if (y + i >= 0 && y + i < h) {
            s += k[i + r] * tmp[(y + i) * w + xx];
            n += k[i + r];
          }
        dst[y * w + xx] = static_cast<float>(s / n);
      }
  }
}

class IntegratedGradients final : public SampleProbe {
 public:
  std::vector<ProbeOption> options() const override {
    return {{"steps", "50", "points on the path from the baseline to the input"},
            {"method", "riemann", "quadrature: riemann (midpoint rule) or gauss-legendre"},
            {"baseline", "zero",
             "zero (the dataset mean, 0 after normalisation), blur (the image blurred, "
             "--blur-sigma) or noise (uniform noise over the pixel range, seeded)"},
            {"blur-sigma", "4", "the blur baseline's Gaussian sigma, pixels"},
            {"internal-batch", "32", "path points per pass: bounds memory whatever --steps"},
            {"score", "logit", "the target's score: logit, probability or log-probability"}};
  }

  void check(const ProbeContext& c) const override {
    const int64_t steps = detail::option_integer(c, "steps", 1, 100000);
    const std::string method = detail::option_choice(c, "method", {"riemann", "gauss-legendre"});
    detail::option_choice(c, "baseline", {"zero", "blur", "noise"});
    detail::option_number(c, "blur-sigma", 0.1, 1000);
    detail::option_integer(c, "internal-batch", 1, 4096);
    parse_class_score(c.options.at("score"));
    if (method == "gauss-legendre" && steps > 1000)
      throw Error("--steps: Gauss-Legendre takes at most 1000 points");
  }

  ProbeReport run(const ProbeContext& c) override {
    check(c);
    const int steps = static_cast<int>(detail::option_integer(c, "steps", 1, 100000));
    const std::string method = c.options.at("method");
    const std::string baseline_kind = c.options.at("baseline");
    const double sigma = detail::option_number(c, "blur-sigma", 0.1, 1000);
    const int64_t chunk = detail::option_integer(c, "internal-batch", 1, 4096);
    const ClassScore score = parse_class_score(c.options.at("score"));
    if (c.images.rank() != 4)
      throw Error("integrated-gradients: the model's input is not an image");

    std::vector<double> alpha, weight;
    if (method == "riemann") {
      for (int k = 0; k < steps; ++k) {
        alpha.push_back((k + 0.5) / steps);
        weight.push_back(1.0 / steps);
      }
    } else {
      gauss_legendre(steps, alpha, weight);
    }
    const Dataset& d = *c.data;
    const int64_t ch = c.images.dim(1), h = c.images.dim(2), w = c.images.dim(3);
    const int64_t per = ch * h * w;
    Rng rng(c.seed ^ 0x16a7e5ULL);
    ProbeReport r;
    json samples = json::array();
    std::ostringstream summary;
    int64_t peak = 0;
    for (size_t i = 0; i < c.indices.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      const float* x = c.images.data() + static_cast<int64_t>(i) * per;
      std::vector<float> base(static_cast<size_t>(per), 0.0f);
      if (baseline_kind == "blur") {
        blur(x, base.data(), ch, h, w, sigma);
      } else if (baseline_kind == "noise") {
        for (int64_t cc = 0; cc < ch; ++cc) {
          const float m = d.mean.empty() ? 0.0f : d.mean[cc];
          const float s = d.stddev.empty() ? 1.0f : d.stddev[cc];
          for (int64_t j = 0; j < h * w; ++j)
            base[cc * h * w + j] = (rng.uniform(0.0f, 1.0f) - m) / s;
        }
      }
      const std::vector<int32_t> target(static_cast<size_t>(chunk), c.targets[i]);
      std::vector<double> integral(static_cast<size_t>(per), 0.0);
      for (int first = 0; first < steps; first += static_cast<int>(chunk)) {
        const int64_t rows = std::min<int64_t>(chunk, steps - first);
        Tensor batch = Tensor::empty({rows, ch, h, w}, Layout::kNCHW);
        for (int64_t b = 0; b < rows; ++b) {
          const float a = static_cast<float>(alpha[first + b]);
          float* dst = batch.data() + b * per;
          for (int64_t j = 0; j < per; ++j) dst[j] = base[j] + a * (x[j] - base[j]);
        }
        const ScoreGradient g = class_score_gradient(
            *c.graph, batch, std::span<const int32_t>(target.data(), static_cast<size_t>(rows)),
            score);
        peak = std::max(peak, c.graph->last_peak_bytes());
        for (int64_t b = 0; b < rows; ++b) {
          const float* gp = g.input_grad.data() + b * per;
          const double wt = weight[first + b];
          for (int64_t j = 0; j < per; ++j) integral[j] += wt * gp[j];
        }
      }
      // The endpoints' scores, for completeness.
      Tensor ends = Tensor::empty({2, ch, h, w}, Layout::kNCHW);
      std::copy_n(x, per, ends.data());
      std::copy(base.begin(), base.end(), ends.data() + per);
      const std::vector<int32_t> both(2, c.targets[i]);
      const ScoreGradient e = class_score_gradient(*c.graph, ends, both, score);
      std::vector<float> attr(static_cast<size_t>(per));
      double total = 0;
      Tensor map = Tensor::zeros({h, w});
      for (int64_t j = 0; j < per; ++j) {
        attr[j] = static_cast<float>((x[j] - base[j]) * integral[j]);
        total += attr[j];
        map[j % (h * w)] += attr[j];
      }
      const double delta = static_cast<double>(e.score[0]) - e.score[1];
      const double error = std::abs(total - delta);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      samples.push_back({{"index", c.indices[i]},
                         {"target", c.targets[i]},
                         {"predicted", e.predicted[0]},
                         {"score", e.score[0]},
                         {"baseline_score", e.score[1]},
                         {"attribution_sum", total},
                         {"completeness_error", error},
                         {"relative_completeness_error", delta != 0 ? error / std::abs(delta) : 0},
                         {"seconds", seconds},
                         {"map", std::vector<float>(map.data(), map.data() + h * w)},
                         {"attribution", attr}});
      char line[200];
      std::snprintf(line, sizeof line,
                    "sample %lld: score %.4f, baseline %.4f, sum of attributions %.4f, "
                    "completeness error %.2e (%.3f%%), %.2f s\n",
                    static_cast<long long>(c.indices[i]), e.score[0], e.score[1], total, error,
                    delta != 0 ? 100.0 * error / std::abs(delta) : 0.0, seconds);
      summary << line;
      r.maps.push_back({.sample = static_cast<int64_t>(i),
                        .title = "ig " + std::to_string(steps) + " steps",
                        .map = map,
                        .is_signed = true,
                        .image = {}});
    }
    r.json = json{{"steps", steps},
                  {"method", method},
                  {"baseline", baseline_kind},
                  {"internal_batch", chunk},
                  {"score", class_score_name(score)},
                  {"peak_activation_bytes", peak},
                  {"alphas", alpha},
                  {"weights", weight},
                  {"map_shape", {h, w}},
                  {"samples", samples}}
                 .dump();
    summary << "peak activation memory " << peak / (1024.0 * 1024.0) << " MiB (internal batch "
            << chunk << ")\n";
    r.summary = summary.str();
    return r;
  }
};

}  // namespace

namespace detail {
void register_integrated_gradients() {
  register_sample_probe("integrated-gradients",
                        [] { return std::make_unique<IntegratedGradients>(); });
}
}  // namespace detail

}  // namespace sparsetrain
