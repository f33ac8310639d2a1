// A run's sparsity schedule (sparsetrain/sparsity.h): the settings every
// method shares, the validation of the sparsity options (common checks,
// options of other methods refused, then the method's own), and the
// schedule built from the options with the method's plan. The methods are
// methods/*.cc.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "sparsetrain/error.h"
#include "sparsetrain/options.h"
#include "sparsetrain/sparsity.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {

std::string detail::format_epochs(const std::vector<int64_t>& steps, int64_t steps_per_epoch) {
  std::string out;
  for (const int64_t s : steps) {
    char item[48];
    std::snprintf(item, sizeof item, "%s%g", out.empty() ? "" : ", ",
                  static_cast<double>(s) / static_cast<double>(steps_per_epoch));
    out += item;
  }
  return out;
}

std::string detail::format_list(const std::vector<double>& values) {
  std::string out;
  for (const double v : values) {
    char item[48];
    std::snprintf(item, sizeof item, "%s%g", out.empty() ? "" : ",", v);
    out += item;
  }
  return out;
}

std::string detail::join_or(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

void detail::check_prune_window(double start, double end, bool allow_empty) {
  if (start > end || (!allow_empty && start == end)) {
    throw Error("--prune-start-epoch (" + format_list({start}) +
                ") must come before --prune-end-epoch (" + format_list({end}) + ")");
  }
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

SparsityPhase SparsitySchedule::phase_at(int64_t step) const {
  if (!active() || method == nullptr) return SparsityPhase::kDense;
  return method->phase_at(*this, step);
}

std::string SparsitySchedule::describe() const {
  char head[160];
  std::snprintf(head, sizeof head, "%s, %s, target %.3f", method_name.c_str(),
                distribution_name(distribution), static_cast<double>(sparsity));
  return head + (method != nullptr ? method->describe(*this) : std::string());
}

void validate_sparsity_options(const TrainOptions& o) {
  using detail::format_list;
  auto fail = [](const std::string& msg) { throw Error(msg); };
  detail::check_sparsity(o.sparsity);
  const std::unique_ptr<SparsityMethod> method = make_sparsity_method(o.sparsity_method);
  if (!o.distribution.empty()) parse_distribution(o.distribution);
  if (o.dense_first_last < -1 || o.dense_first_last > 1) {
    fail("--dense-first-last must be auto, on or off (-1, 1 or 0), got " +
         std::to_string(o.dense_first_last));
  }
  if (method->needs_target() && o.sparsity == 0.0f)
    fail("--sparsity-method " + o.sparsity_method + " needs a target: set --sparsity (e.g. 0.9)");
  // The settings only some methods read (the schema's per-method rows):
  // refused when set under another method.
  for (const OptionRow& row : option_rows()) {
    if (!row.method_specific || !option_is_set(row, o)) continue;
    const std::vector<std::string> readers = option_methods(row);
    if (std::find(readers.begin(), readers.end(), o.sparsity_method) == readers.end()) {
      fail(std::string(row.name()) + " applies to --sparsity-method " + detail::join_or(readers) +
           " only (this run: " + o.sparsity_method + ")");
    }
  }
  const double epochs = static_cast<double>(o.epochs);
  auto check_epoch = [&](double value, const char* flag) {
    if (value == -1.0) return;
    if (!std::isfinite(value) || value < 0 || value > epochs) {
      fail(std::string(flag) + " must be -1 (the method's default) or an epoch in [0, " +
           std::to_string(o.epochs) + "], got " + format_list({value}));
    }
  };
  check_epoch(o.prune_start_epoch, "--prune-start-epoch");
  check_epoch(o.prune_end_epoch, "--prune-end-epoch");
  if (o.prune_every_steps < 1)
    fail("--prune-every-steps must be at least 1, got " + std::to_string(o.prune_every_steps));
  if (!(o.drop_fraction >= 0.0f && o.drop_fraction < 1.0f))
    fail("--drop-fraction must be in [0, 1), got " + std::to_string(o.drop_fraction));
  method->validate(o);
}

SparsitySchedule make_sparsity_schedule(const TrainOptions& o, int64_t steps_per_epoch) {
  validate_sparsity_options(o);
  if (steps_per_epoch < 1) throw Error("sparsity schedule: steps per epoch must be at least 1");
  std::unique_ptr<SparsityMethod> method = make_sparsity_method(o.sparsity_method);
  SparsitySchedule s;
  s.method_name = o.sparsity_method;
  s.distribution =
      o.distribution.empty() ? method->default_distribution() : parse_distribution(o.distribution);
  s.sparsity = o.sparsity;
  s.dense_first_last = o.dense_first_last;
  s.masked_storage = o.sparse_storage == "masked";
  s.steps_per_epoch = steps_per_epoch;
  s.total_steps = o.epochs * steps_per_epoch;
  method->plan(o, s);
  s.method = std::move(method);
  return s;
}

}  // namespace sparsetrain
