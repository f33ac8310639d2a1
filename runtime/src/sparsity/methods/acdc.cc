// AC/DC (Peste et al. 2021): a dense warm-up, then compressed and
// decompressed phases alternating, ending compressed. Each compression is a
// fresh top-k over all chosen weights; each decompression brings the pruned
// weights back as zeros with their momentum reset.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/options.h"
#include "sparsetrain/sparsity.h"
#include "sparsity/methods/registry.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {
namespace {

using detail::format_list;

// AC/DC on 200 epochs (Peste et al. 2021, sec. 4): compressed phases begin at
// epochs 10, 50, 90, 130 and 170, decompressed ones at 30, 70, 110 and 150.
constexpr double kAcdcPaperEpochs = 200.0;
constexpr double kAcdcPaperCompress[] = {10.0, 50.0, 90.0, 130.0, 170.0};
constexpr double kAcdcPaperDecompress[] = {30.0, 70.0, 110.0, 150.0};

[[noreturn]] void fail(const std::string& msg) { throw Error(msg); }

}  // namespace

std::vector<double> acdc_default_compress_epochs(double epochs) {
  std::vector<double> out;
  for (const double e : kAcdcPaperCompress) out.push_back(e / kAcdcPaperEpochs * epochs);
  return out;
}

std::vector<double> acdc_default_decompress_epochs(double epochs) {
  std::vector<double> out;
  for (const double e : kAcdcPaperDecompress) out.push_back(e / kAcdcPaperEpochs * epochs);
  return out;
}

std::unique_ptr<SparsityMethod> AcdcMethod::clone() const {
  return std::make_unique<AcdcMethod>(*this);
}

std::vector<std::string> AcdcMethod::option_flags() const {
  return {"--compress-epochs", "--decompress-epochs"};
}

void AcdcMethod::validate(const TrainOptions& o) const {
  const double epochs = static_cast<double>(o.epochs);
  if (o.compress_epochs.empty() && !o.decompress_epochs.empty())
    fail("--decompress-epochs needs --compress-epochs (a compressed phase before each one)");
  if (!o.compress_epochs.empty() && o.compress_epochs.size() != o.decompress_epochs.size() + 1) {
    fail(
        "--compress-epochs / --decompress-epochs: AC/DC alternates compressed and decompressed "
        "phases and ends compressed, so it needs one more compress epoch than decompress "
        "epochs; got " +
        std::to_string(o.compress_epochs.size()) + " (" + format_list(o.compress_epochs) +
        ") and " + std::to_string(o.decompress_epochs.size()) + " (" +
        format_list(o.decompress_epochs) + ")");
  }
  for (std::size_t i = 0; i < o.compress_epochs.size(); ++i) {
    const double c = o.compress_epochs[i];
    if (!std::isfinite(c) || c < 0 || c >= epochs) {
      fail("--compress-epochs: " + format_list({c}) + " is outside the run (epochs 0 to " +
           std::to_string(o.epochs) + ", the last compressed phase must begin before the end)");
    }
    if (i > 0 && !(o.decompress_epochs[i - 1] < c)) {
      fail(
          "--compress-epochs / --decompress-epochs: phases must alternate in increasing "
          "order (compress " +
          format_list({o.compress_epochs[i - 1]}) + " < decompress " +
          format_list({o.decompress_epochs[i - 1]}) + " < compress " + format_list({c}) +
          " ...); got compress " + format_list(o.compress_epochs) + ", decompress " +
          format_list(o.decompress_epochs));
    }
    if (i < o.decompress_epochs.size()) {
      const double d = o.decompress_epochs[i];
      if (!std::isfinite(d) || d < 0 || d >= epochs)
        fail("--decompress-epochs: " + format_list({d}) + " is outside the run (epochs 0 to " +
             std::to_string(o.epochs) + ")");
      if (!(c < d)) {
        fail(
            "--compress-epochs / --decompress-epochs: phases must alternate in increasing "
            "order; compressed phase " +
            std::to_string(i + 1) + " begins at epoch " + format_list({c}) +
            " but its decompressed phase at " + format_list({d}) + " (compress " +
            format_list(o.compress_epochs) + ", decompress " + format_list(o.decompress_epochs) +
            ")");
      }
    }
  }
}

void AcdcMethod::plan(const TrainOptions& o, const SparsitySchedule& s) {
  const double epochs = static_cast<double>(o.epochs);
  const bool defaults = o.compress_epochs.empty();
  const std::vector<double> ce =
      defaults ? acdc_default_compress_epochs(epochs) : o.compress_epochs;
  const std::vector<double> de =
      defaults ? acdc_default_decompress_epochs(epochs) : o.decompress_epochs;
  compress_steps_.clear();
  decompress_steps_.clear();
  for (const double e : ce) compress_steps_.push_back(epoch_to_step(e, s.steps_per_epoch));
  for (const double e : de) decompress_steps_.push_back(epoch_to_step(e, s.steps_per_epoch));
  // Alternating boundaries c0 < d0 < c1 < ... < c_last < total steps.
  std::vector<int64_t> order;
  for (std::size_t i = 0; i < compress_steps_.size(); ++i) {
    order.push_back(compress_steps_[i]);
    if (i < decompress_steps_.size()) order.push_back(decompress_steps_[i]);
  }
  for (std::size_t i = 1; i < order.size(); ++i) {
    if (order[i] <= order[i - 1]) {
      throw Error("--compress-epochs / --decompress-epochs: two AC/DC phases begin on step " +
                  std::to_string(order[i]) + " (" + std::to_string(s.steps_per_epoch) +
                  " steps per epoch; compress " + format_list(ce) + ", decompress " +
                  format_list(de) + (defaults ? ", the defaults for this run" : "") +
                  "): give more epochs or fewer phases");
    }
  }
  if (order.back() >= s.total_steps) {
    throw Error("--compress-epochs: the last compressed phase begins at step " +
                std::to_string(order.back()) + ", after the run's " +
                std::to_string(s.total_steps) + " steps");
  }
}

SparsityPhase AcdcMethod::phase_at(const SparsitySchedule& s, int64_t step) const {
  int64_t last_compress = -1, last_decompress = -1;
  for (const int64_t c : compress_steps_)
    if (c <= step) last_compress = c;
  for (const int64_t d : decompress_steps_)
    if (d <= step) last_decompress = d;
  if (last_compress < 0 && last_decompress < 0) return SparsityPhase::kDense;
  return last_compress > last_decompress ? s.sparse_phase() : SparsityPhase::kDecompressed;
}

std::string AcdcMethod::describe(const SparsitySchedule& s) const {
  char tail[320];
  std::snprintf(
      tail, sizeof tail, "; dense until epoch %g (step %lld)",
      static_cast<double>(compress_steps_.front()) / static_cast<double>(s.steps_per_epoch),
      static_cast<long long>(compress_steps_.front()));
  std::string text = tail;
  text += ", compressed from epochs " + detail::format_epochs(compress_steps_, s.steps_per_epoch);
  if (!decompress_steps_.empty())
    text += ", decompressed from " + detail::format_epochs(decompress_steps_, s.steps_per_epoch);
  return text;
}

// Before the first step the layers are dense.
void AcdcMethod::resume(SparsityController& c, int64_t steps) {
  c.restore_phase(c.schedule().phase_at(steps - 1));
}

void AcdcMethod::before_step(SparsityController& c, int64_t step) {
  const SparsitySchedule& s = c.schedule();
  const auto& cs = compress_steps_;
  const auto& ds = decompress_steps_;
  if (std::find(cs.begin(), cs.end(), step) != cs.end()) {
    // A fresh top-k over all chosen weights (Peste et al. 2021, Alg. 1):
    // weights pruned in the last compressed phase may come back.
    c.apply_masks(magnitude_masks(c.graph(), c.layers(), s.sparsity, s.distribution),
                  !s.masked_storage);
    c.set_phase(s.sparse_phase(), step);
  } else if (std::find(ds.begin(), ds.end(), step) != ds.end()) {
    // Back to dense: pruned weights return as zero, momentum restarts.
    Graph& graph = c.graph();
    for (const PrunableLayer& l : c.layers()) {
      if (graph.parameter(l.param).masked()) {
        graph.unmask(l.node);
        if (c.optimizer() != nullptr) c.optimizer()->reset_state(l.param);
      } else {
        graph.decompress(l.node, c.optimizer());
      }
    }
    c.set_phase(SparsityPhase::kDecompressed, step);
  }
}

std::unique_ptr<SparsityMethod> detail::make_acdc_method() {
  return std::make_unique<AcdcMethod>();
}

}  // namespace sparsetrain
