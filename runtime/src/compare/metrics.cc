// The per-prediction measurements of sparsetrain/compare.h: calibration,
// modal predictions and PIEs, the prune potential.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "sparsetrain/compare.h"
#include "sparsetrain/error.h"

namespace sparsetrain {

std::vector<ReliabilityBin> reliability_bins(std::span<const float> confidence,
                                             std::span<const uint8_t> correct, int bins) {
  if (bins < 1) throw Error("calibration bins must be at least 1, got " + std::to_string(bins));
  if (confidence.size() != correct.size()) {
    throw Error("calibration: " + std::to_string(confidence.size()) + " confidences but " +
                std::to_string(correct.size()) + " correctness flags");
  }
  std::vector<ReliabilityBin> out(static_cast<std::size_t>(bins));
  std::vector<double> conf_sum(out.size(), 0.0), right(out.size(), 0.0);
  for (std::size_t i = 0; i < confidence.size(); ++i) {
    // A NaN confidence (a model whose logits are not finite) counts as 0.
    const double v = static_cast<double>(confidence[i]);
    const double c = std::isfinite(v) ? std::clamp(v, 0.0, 1.0) : 0.0;
    // Bin b holds [b / bins, (b + 1) / bins); confidence 1 goes to the last.
    const int b = std::min(bins - 1, static_cast<int>(c * bins));
    out[b].count++;
    conf_sum[b] += c;
    right[b] += correct[i] ? 1.0 : 0.0;
  }
  for (int b = 0; b < bins; ++b) {
    ReliabilityBin& r = out[b];
    r.lower = static_cast<double>(b) / bins;
    r.upper = static_cast<double>(b + 1) / bins;
    if (r.count > 0) {
      r.confidence = conf_sum[b] / static_cast<double>(r.count);
      r.accuracy = right[b] / static_cast<double>(r.count);
    }
  }
  return out;
}

double expected_calibration_error(std::span<const ReliabilityBin> bins) {
  int64_t total = 0;
  for (const ReliabilityBin& b : bins) total += b.count;
  if (total == 0) return 0.0;
  double ece = 0.0;
  for (const ReliabilityBin& b : bins) {
    ece += static_cast<double>(b.count) / static_cast<double>(total) *
           std::abs(b.accuracy - b.confidence);
  }
  return ece;
}

void modal_predictions(const std::vector<std::vector<int32_t>>& predictions, int classes,
                       std::vector<int32_t>& mode, std::vector<double>& share) {
  if (predictions.empty()) throw Error("modal predictions: the population is empty");
  const std::size_t n = predictions.front().size();
  for (const auto& p : predictions) {
    if (p.size() != n)
      throw Error("modal predictions: the models predicted different sample counts");
  }
  mode.assign(n, 0);
  share.assign(n, 0.0);
  std::vector<int> votes(static_cast<std::size_t>(classes));
  for (std::size_t i = 0; i < n; ++i) {
    std::fill(votes.begin(), votes.end(), 0);
    for (const auto& p : predictions) {
      const int32_t c = p[i];
      if (c < 0 || c >= classes) {
        throw Error("modal predictions: class " + std::to_string(c) + " outside [0, " +
                    std::to_string(classes) + ")");
      }
      votes[c]++;
    }
    const auto best = std::max_element(votes.begin(), votes.end());  // first: lowest class
    mode[i] = static_cast<int32_t>(best - votes.begin());
    share[i] = static_cast<double>(*best) / static_cast<double>(predictions.size());
  }
}

std::vector<int64_t> pruning_identified_exemplars(
    const std::vector<std::vector<int32_t>>& reference,
    const std::vector<std::vector<int32_t>>& group, int classes) {
  std::vector<int32_t> ref_mode, group_mode;
  std::vector<double> ref_share, group_share;
  modal_predictions(reference, classes, ref_mode, ref_share);
  modal_predictions(group, classes, group_mode, group_share);
  if (ref_mode.size() != group_mode.size())
    throw Error("PIEs: the two populations predicted different sample counts");
  std::vector<int64_t> out;
  for (std::size_t i = 0; i < ref_mode.size(); ++i)
    if (ref_mode[i] != group_mode[i]) out.push_back(static_cast<int64_t>(i));
  return out;
}

double prune_potential(std::span<const double> sparsity, std::span<const double> accuracy,
                       double reference_sparsity, double reference_accuracy, double tolerance) {
  if (sparsity.size() != accuracy.size())
    throw Error("prune potential: sparsities and accuracies differ in count");
  double best = reference_sparsity;
  for (std::size_t g = 0; g < sparsity.size(); ++g) {
    // A small slack keeps a group exactly at the tolerance inside it.
    if (accuracy[g] >= reference_accuracy - tolerance - 1e-12) best = std::max(best, sparsity[g]);
  }
  return best;
}

}  // namespace sparsetrain
