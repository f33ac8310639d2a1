// Sparsity schedules: the methods' names and defaults, when each prunes,
// compresses or updates (SparsitySchedule), and the validation of their
// options. The masks and the controller that applies a schedule are
// sparsity.cc.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numbers>
#include <numeric>
#include <type_traits>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {
namespace {

// AC/DC on 200 epochs (Peste et al. 2021, sec. 4): compressed phases begin at
// epochs 10, 50, 90, 130 and 170, decompressed ones at 30, 70, 110 and 150.
constexpr double kAcdcPaperEpochs = 200.0;
constexpr double kAcdcPaperCompress[] = {10.0, 50.0, 90.0, 130.0, 170.0};
constexpr double kAcdcPaperDecompress[] = {30.0, 70.0, 110.0, 150.0};
// GMP's default ramp (fractions of the run) and RigL's last mask update.
constexpr double kGmpDefaultStart = 0.1;
constexpr double kGmpDefaultEnd = 0.6;
constexpr double kRiglDefaultEnd = 0.75;

std::string format_epochs(const std::vector<int64_t>& steps, int64_t steps_per_epoch) {
  std::string out;
  for (const int64_t s : steps) {
    char item[48];
    std::snprintf(item, sizeof item, "%s%g", out.empty() ? "" : ", ",
                  static_cast<double>(s) / static_cast<double>(steps_per_epoch));
    out += item;
  }
  return out;
}
std::string format_list(const std::vector<double>& values) {
  std::string out;
  for (const double v : values) {
    char item[48];
    std::snprintf(item, sizeof item, "%s%g", out.empty() ? "" : ",", v);
    out += item;
  }
  return out;
}
}  // namespace

// --- schedules -----------------------------------------------------------------

SparsityMethod parse_sparsity_method(const std::string& name) {
  if (name == "static") return SparsityMethod::kStatic;
  if (name == "acdc") return SparsityMethod::kAcdc;
  if (name == "gmp") return SparsityMethod::kGmp;
  if (name == "rigl") return SparsityMethod::kRigl;
  throw Error("--sparsity-method: unknown method '" + name +
              "' (expected static, acdc, gmp or rigl)");
}

const char* sparsity_method_name(SparsityMethod method) {
  switch (method) {
    case SparsityMethod::kStatic:
      return "static";
    case SparsityMethod::kAcdc:
      return "acdc";
    case SparsityMethod::kGmp:
      return "gmp";
    case SparsityMethod::kRigl:
      return "rigl";
  }
  return "?";
}

Distribution default_distribution(SparsityMethod method) {
  switch (method) {
    case SparsityMethod::kStatic:
      return Distribution::kUniform;
    case SparsityMethod::kAcdc:
    case SparsityMethod::kGmp:
      return Distribution::kGlobal;
    case SparsityMethod::kRigl:
      return Distribution::kErk;
  }
  return Distribution::kUniform;
}

const char* phase_name(SparsityPhase phase) {
  switch (phase) {
    case SparsityPhase::kDense:
      return "dense";
    case SparsityPhase::kMasked:
      return "masked";
    case SparsityPhase::kCompressed:
      return "compressed";
    case SparsityPhase::kDecompressed:
      return "decompressed";
  }
  return "?";
}

int64_t epoch_to_step(double epoch, int64_t steps_per_epoch) {
  return std::llround(epoch * static_cast<double>(steps_per_epoch));
}

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

SparsityPhase SparsitySchedule::phase_at(int64_t step) const {
  if (!active()) return SparsityPhase::kDense;
  const SparsityPhase sparse = masked_storage ? SparsityPhase::kMasked : SparsityPhase::kCompressed;
  switch (method) {
    case SparsityMethod::kStatic:
    case SparsityMethod::kRigl:
      return sparse;
    case SparsityMethod::kAcdc: {
      int64_t last_compress = -1, last_decompress = -1;
      for (const int64_t s : compress_steps)
        if (s <= step) last_compress = s;
      for (const int64_t s : decompress_steps)
        if (s <= step) last_decompress = s;
      if (last_compress < 0 && last_decompress < 0) return SparsityPhase::kDense;
      return last_compress > last_decompress ? sparse : SparsityPhase::kDecompressed;
    }
    case SparsityMethod::kGmp:
      if (step < prune_start_step) return SparsityPhase::kDense;
      if (step < prune_end_step) return SparsityPhase::kMasked;
      return sparse;
  }
  return SparsityPhase::kDense;
}

bool SparsitySchedule::gmp_prunes_at(int64_t step) const {
  return active() && method == SparsityMethod::kGmp && step >= prune_start_step &&
         step <= prune_end_step && (step - prune_start_step) % prune_every_steps == 0;
}

double SparsitySchedule::gmp_target(int64_t step) const {
  return gmp_sparsity(step, initial_sparsity, sparsity, prune_start_step, prune_end_step);
}

bool SparsitySchedule::rigl_updates_at(int64_t step) const {
  return active() && method == SparsityMethod::kRigl && step > prune_start_step &&
         step < update_end_step && (step - prune_start_step) % prune_every_steps == 0;
}

double SparsitySchedule::rigl_drop_fraction(int64_t step) const {
  if (update_end_step <= 0 || step >= update_end_step) return 0.0;
  const double t = static_cast<double>(step) / static_cast<double>(update_end_step);
  return 0.5 * static_cast<double>(drop_fraction) * (1.0 + std::cos(std::numbers::pi * t));
}

std::string SparsitySchedule::describe() const {
  char head[160];
  std::snprintf(head, sizeof head, "%s, %s, target %.3f", sparsity_method_name(method),
                distribution_name(distribution), static_cast<double>(sparsity));
  std::string text = head;
  const double spe = static_cast<double>(steps_per_epoch);
  char tail[320];
  switch (method) {
    case SparsityMethod::kStatic:
      text += ", masks fixed after initialisation";
      break;
    case SparsityMethod::kAcdc:
      std::snprintf(tail, sizeof tail, "; dense until epoch %g (step %lld)",
                    static_cast<double>(compress_steps.front()) / spe,
                    static_cast<long long>(compress_steps.front()));
      text += tail;
      text += ", compressed from epochs " + format_epochs(compress_steps, steps_per_epoch);
      if (!decompress_steps.empty())
        text += ", decompressed from " + format_epochs(decompress_steps, steps_per_epoch);
      break;
    case SparsityMethod::kGmp:
      std::snprintf(
          tail, sizeof tail,
          "; %.3f -> %.3f (cubic) every %lld steps from epoch %g to %g (steps %lld-%lld), "
          "then compressed",
          static_cast<double>(initial_sparsity), static_cast<double>(sparsity),
          static_cast<long long>(prune_every_steps), static_cast<double>(prune_start_step) / spe,
          static_cast<double>(prune_end_step) / spe, static_cast<long long>(prune_start_step),
          static_cast<long long>(prune_end_step));
      text += tail;
      break;
    case SparsityMethod::kRigl:
      std::snprintf(tail, sizeof tail,
                    "; drop/grow %.2f (cosine to 0) every %lld steps until epoch %g (step %lld)",
                    static_cast<double>(drop_fraction), static_cast<long long>(prune_every_steps),
                    static_cast<double>(update_end_step) / spe,
                    static_cast<long long>(update_end_step));
      text += tail;
      break;
  }
  return text;
}

void validate_sparsity_options(const TrainOptions& o) {
  auto fail = [](const std::string& msg) { throw Error(msg); };
  detail::check_sparsity(o.sparsity);
  const SparsityMethod method = parse_sparsity_method(o.sparsity_method);
  if (!o.distribution.empty()) parse_distribution(o.distribution);
  if (o.dense_first_last < -1 || o.dense_first_last > 1) {
    fail("--dense-first-last must be auto, on or off (-1, 1 or 0), got " +
         std::to_string(o.dense_first_last));
  }
  const std::string method_flag = std::string("--sparsity-method ") + o.sparsity_method;
  if (method != SparsityMethod::kStatic && o.sparsity == 0.0f)
    fail(method_flag + " needs a target: set --sparsity (e.g. 0.9)");
  const double epochs = static_cast<double>(o.epochs);

  // AC/DC phases.
  if (method != SparsityMethod::kAcdc) {
    if (!o.compress_epochs.empty())
      fail("--compress-epochs applies to --sparsity-method acdc only (this run: " +
           o.sparsity_method + ")");
    if (!o.decompress_epochs.empty())
      fail("--decompress-epochs applies to --sparsity-method acdc only (this run: " +
           o.sparsity_method + ")");
  } else {
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

  // GMP ramp and RigL updates.
  if (o.initial_sparsity != 0.0f) {
    if (method != SparsityMethod::kGmp)
      fail("--initial-sparsity applies to --sparsity-method gmp only (this run: " +
           o.sparsity_method + ")");
    if (!(o.initial_sparsity > 0.0f && o.initial_sparsity <= o.sparsity)) {
      fail("--initial-sparsity must be in [0, --sparsity] = [0, " + std::to_string(o.sparsity) +
           "], got " + std::to_string(o.initial_sparsity));
    }
  }
  auto check_epoch = [&](double value, const char* flag) {
    if (value == -1.0) return;
    if (!std::isfinite(value) || value < 0 || value > epochs) {
      fail(std::string(flag) + " must be -1 (the method's default) or an epoch in [0, " +
           std::to_string(o.epochs) + "], got " + format_list({value}));
    }
  };
  check_epoch(o.prune_start_epoch, "--prune-start-epoch");
  check_epoch(o.prune_end_epoch, "--prune-end-epoch");
  const bool schedules_pruning = method == SparsityMethod::kGmp || method == SparsityMethod::kRigl;
  if (!schedules_pruning && (o.prune_start_epoch != -1.0 || o.prune_end_epoch != -1.0)) {
    fail(std::string(o.prune_start_epoch != -1.0 ? "--prune-start-epoch" : "--prune-end-epoch") +
         " applies to --sparsity-method gmp or rigl only (this run: " + o.sparsity_method + ")");
  }
  if (schedules_pruning) {
    const double start = o.prune_start_epoch != -1.0
                             ? o.prune_start_epoch
                             : (method == SparsityMethod::kGmp ? kGmpDefaultStart * epochs : 0.0);
    const double end =
        o.prune_end_epoch != -1.0
            ? o.prune_end_epoch
            : (method == SparsityMethod::kGmp ? kGmpDefaultEnd : kRiglDefaultEnd) * epochs;
    if (start > end || (method == SparsityMethod::kRigl && start == end)) {
      fail("--prune-start-epoch (" + format_list({start}) +
           ") must come before --prune-end-epoch (" + format_list({end}) + ")");
    }
  }
  if (o.prune_every_steps < 1)
    fail("--prune-every-steps must be at least 1, got " + std::to_string(o.prune_every_steps));
  if (!(o.drop_fraction >= 0.0f && o.drop_fraction < 1.0f))
    fail("--drop-fraction must be in [0, 1), got " + std::to_string(o.drop_fraction));
}

SparsitySchedule make_sparsity_schedule(const TrainOptions& o, int64_t steps_per_epoch) {
  validate_sparsity_options(o);
  if (steps_per_epoch < 1) throw Error("sparsity schedule: steps per epoch must be at least 1");
  SparsitySchedule s;
  s.method = parse_sparsity_method(o.sparsity_method);
  s.distribution =
      o.distribution.empty() ? default_distribution(s.method) : parse_distribution(o.distribution);
  s.sparsity = o.sparsity;
  s.dense_first_last = o.dense_first_last;
  s.masked_storage = o.sparse_storage == "masked";
  s.steps_per_epoch = steps_per_epoch;
  s.total_steps = o.epochs * steps_per_epoch;
  s.prune_every_steps = o.prune_every_steps;
  s.drop_fraction = o.drop_fraction;
  s.seed = o.seed;
  const double epochs = static_cast<double>(o.epochs);
  switch (s.method) {
    case SparsityMethod::kStatic:
      break;
    case SparsityMethod::kAcdc: {
      const bool defaults = o.compress_epochs.empty();
      const std::vector<double> ce =
          defaults ? acdc_default_compress_epochs(epochs) : o.compress_epochs;
      const std::vector<double> de =
          defaults ? acdc_default_decompress_epochs(epochs) : o.decompress_epochs;
      for (const double e : ce) s.compress_steps.push_back(epoch_to_step(e, steps_per_epoch));
      for (const double e : de) s.decompress_steps.push_back(epoch_to_step(e, steps_per_epoch));
      // Alternating boundaries c0 < d0 < c1 < ... < c_last < total steps.
      std::vector<int64_t> order;
      for (std::size_t i = 0; i < s.compress_steps.size(); ++i) {
        order.push_back(s.compress_steps[i]);
        if (i < s.decompress_steps.size()) order.push_back(s.decompress_steps[i]);
      }
      for (std::size_t i = 1; i < order.size(); ++i) {
        if (order[i] <= order[i - 1]) {
          throw Error("--compress-epochs / --decompress-epochs: two AC/DC phases begin on step " +
                      std::to_string(order[i]) + " (" + std::to_string(steps_per_epoch) +
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
      break;
    }
    case SparsityMethod::kGmp: {
      const double start =
          o.prune_start_epoch != -1.0 ? o.prune_start_epoch : kGmpDefaultStart * epochs;
      const double end = o.prune_end_epoch != -1.0 ? o.prune_end_epoch : kGmpDefaultEnd * epochs;
      s.initial_sparsity = o.initial_sparsity;
      s.prune_start_step = epoch_to_step(start, steps_per_epoch);
      if (s.prune_start_step >= s.total_steps) {
        throw Error("--prune-start-epoch: pruning would begin at step " +
                    std::to_string(s.prune_start_step) + ", after the run's last step (" +
                    std::to_string(s.total_steps - 1) + ")");
      }
      // t0 + n dt: the last pruning step at or before the requested end
      // (and within the run).
      const int64_t last =
          std::clamp(epoch_to_step(end, steps_per_epoch), s.prune_start_step, s.total_steps - 1);
      s.prune_end_step = s.prune_start_step +
                         (last - s.prune_start_step) / s.prune_every_steps * s.prune_every_steps;
      break;
    }
    case SparsityMethod::kRigl: {
      s.prune_start_step =
          o.prune_start_epoch != -1.0 ? epoch_to_step(o.prune_start_epoch, steps_per_epoch) : 0;
      s.update_end_step =
          epoch_to_step(o.prune_end_epoch != -1.0 ? o.prune_end_epoch : kRiglDefaultEnd * epochs,
                        steps_per_epoch);
      break;
    }
  }
  return s;
}

}  // namespace sparsetrain
