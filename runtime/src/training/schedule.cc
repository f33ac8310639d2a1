#include "sparsetrain/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

enum class Kind { kConstant, kMultistep, kCosine, kOneCycle };

std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

[[noreturn]] void bad(const std::string& option, const std::string& problem) {
  throw Error(option + ": " + problem);
}

void require_positive_finite(const char* option, float v) {
  if (!(v > 0.0f) || !std::isfinite(v)) bad(option, "must be finite and > 0, got " + fmt(v));
}

// value = end + (start - end) / 2 * (1 + cos(pi * pct)), pct in [0, 1].
double cosine_anneal(double start, double end, double pct) {
  return end + (start - end) / 2.0 * (1.0 + std::cos(std::numbers::pi * pct));
}

class BuiltinSchedule final : public LrSchedule {
 public:
  BuiltinSchedule(Kind kind, const LrScheduleOptions& o) : kind_(kind), o_(o) {
    total_steps_ = o.total_epochs * o.steps_per_epoch;
    warmup_steps_ = o.warmup_epochs * o.steps_per_epoch;
    if (kind == Kind::kOneCycle) {
      // As OneCycleLR: phase ends are fractional step indices.
      phase1_end_ =
          static_cast<double>(o.onecycle_pct_start) * static_cast<double>(total_steps_) - 1.0;
      phase2_end_ = static_cast<double>(total_steps_) - 1.0;
      initial_lr_ = static_cast<double>(o.base_lr) / o.onecycle_div_factor;
      final_lr_ = initial_lr_ / o.onecycle_final_div;
    }
  }

  float lr(int64_t step) const override {
    step = std::max<int64_t>(step, 0);
    double value = schedule_value(step);
    if (step < warmup_steps_) {
      const double start = o_.warmup_start_factor;
      value *= start +
               (1.0 - start) * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
    }
    return static_cast<float>(value);
  }

  std::string describe() const override {
    std::string s;
    switch (kind_) {
      case Kind::kConstant:
        s = "constant(base_lr=" + fmt(o_.base_lr);
        break;
      case Kind::kMultistep: {
        s = "multistep(base_lr=" + fmt(o_.base_lr) + ", gamma=" + fmt(o_.gamma) + ", milestones=[";
        for (std::size_t i = 0; i < o_.milestones.size(); ++i) {
          if (i > 0) s += ',';
          s += std::to_string(o_.milestones[i]);
        }
        s += "]";
        break;
      }
      case Kind::kCosine:
        s = "cosine(base_lr=" + fmt(o_.base_lr) + ", min_lr=" + fmt(o_.min_lr);
        break;
      case Kind::kOneCycle:
        s = "onecycle(max_lr=" + fmt(o_.base_lr) + ", pct_start=" + fmt(o_.onecycle_pct_start) +
            ", div_factor=" + fmt(o_.onecycle_div_factor) +
            ", final_div=" + fmt(o_.onecycle_final_div);
        break;
    }
    s += ", " + std::to_string(o_.total_epochs) + " epochs";
    if (o_.warmup_epochs > 0) s += ", warm-up " + std::to_string(o_.warmup_epochs);
    return s + ")";
  }

 private:
  double schedule_value(int64_t step) const {
    const double base = o_.base_lr;
    switch (kind_) {
      case Kind::kConstant:
        return base;
      case Kind::kMultistep: {
        const int64_t epoch = step / o_.steps_per_epoch;
        double value = base;
        for (const int64_t m : o_.milestones) {
          if (m <= epoch) value *= o_.gamma;
        }
        return value;
      }
      case Kind::kCosine: {
        if (step < warmup_steps_) return base;
        if (step >= total_steps_) return o_.min_lr;
        const double pct = static_cast<double>(step - warmup_steps_) /
                           static_cast<double>(total_steps_ - warmup_steps_);
        return cosine_anneal(base, o_.min_lr, pct);
      }
      case Kind::kOneCycle: {
        const double s = static_cast<double>(step);
        if (s >= phase2_end_) return final_lr_;
        if (s <= phase1_end_) return cosine_anneal(initial_lr_, base, s / phase1_end_);
        return cosine_anneal(base, final_lr_, (s - phase1_end_) / (phase2_end_ - phase1_end_));
      }
    }
    return base;
  }

  Kind kind_;
  LrScheduleOptions o_;
  int64_t total_steps_ = 0;
  int64_t warmup_steps_ = 0;
  double phase1_end_ = 0, phase2_end_ = 0, initial_lr_ = 0, final_lr_ = 0;
};

}  // namespace

std::unique_ptr<LrSchedule> make_lr_schedule(const LrScheduleOptions& o) {
  Kind kind;
  if (o.kind == "constant") {
    kind = Kind::kConstant;
  } else if (o.kind == "multistep") {
    kind = Kind::kMultistep;
  } else if (o.kind == "cosine") {
    kind = Kind::kCosine;
  } else if (o.kind == "onecycle") {
    kind = Kind::kOneCycle;
  } else {
    bad("--lr-schedule",
        "unknown schedule '" + o.kind + "' (expected constant, multistep, cosine, onecycle)");
  }

  require_positive_finite("--lr", o.base_lr);
  if (o.steps_per_epoch < 1) {
    bad("steps per epoch", "must be >= 1, got " + std::to_string(o.steps_per_epoch) +
                               " (is the dataset smaller than one batch?)");
  }
  if (o.total_epochs < 1) bad("--epochs", "must be >= 1, got " + std::to_string(o.total_epochs));
  // Step counts must fit in int64 with room to spare.
  constexpr int64_t kMaxSteps = int64_t{1} << 53;
  if (o.total_epochs > kMaxSteps / o.steps_per_epoch) {
    bad("--epochs", std::to_string(o.total_epochs) + " epochs of " +
                        std::to_string(o.steps_per_epoch) + " steps is too many steps");
  }
  if (o.warmup_epochs < 0 || o.warmup_epochs >= o.total_epochs) {
    bad("--warmup-epochs", "must be in [0, --epochs) = [0, " + std::to_string(o.total_epochs) +
                               "), got " + std::to_string(o.warmup_epochs));
  }
  if (!(o.warmup_start_factor >= 0.0f && o.warmup_start_factor <= 1.0f)) {
    bad("--warmup-start-factor", "must be in [0, 1], got " + fmt(o.warmup_start_factor));
  }

  switch (kind) {
    case Kind::kConstant:
      break;
    case Kind::kMultistep: {
      if (o.milestones.empty()) bad("--lr-milestones", "multistep needs at least one milestone");
      int64_t previous = 0;
      for (const int64_t m : o.milestones) {
        if (m < 1 || m > o.total_epochs) {
          bad("--lr-milestones", "milestone " + std::to_string(m) +
                                     " is outside [1, --epochs] = [1, " +
                                     std::to_string(o.total_epochs) + "]");
        }
        if (m <= previous) {
          bad("--lr-milestones", "milestones must be strictly increasing, got " +
                                     std::to_string(m) + " after " + std::to_string(previous));
        }
        previous = m;
      }
      require_positive_finite("--lr-gamma", o.gamma);
      break;
    }
    case Kind::kCosine:
      if (!(o.min_lr >= 0.0f && o.min_lr <= o.base_lr)) {
        bad("--min-lr", "must be in [0, --lr] = [0, " + fmt(o.base_lr) + "], got " + fmt(o.min_lr));
      }
      break;
    case Kind::kOneCycle: {
      if (!(o.onecycle_pct_start > 0.0f && o.onecycle_pct_start < 1.0f)) {
        bad("--lr-schedule onecycle",
            "its rising fraction must be in (0, 1), got " + fmt(o.onecycle_pct_start));
      }
      require_positive_finite("onecycle_div_factor", o.onecycle_div_factor);
      require_positive_finite("onecycle_final_div", o.onecycle_final_div);
      const double total_steps = static_cast<double>(o.total_epochs * o.steps_per_epoch);
      if (static_cast<double>(o.onecycle_pct_start) * total_steps <= 1.0) {
        bad("--lr-schedule onecycle",
            "its rising phase (" + fmt(o.onecycle_pct_start) + " of " + fmt(total_steps) +
                " steps) is shorter than one step; train more steps (--epochs, --train-limit, "
                "--batch-size) or choose another --lr-schedule");
      }
      break;
    }
  }
  return std::make_unique<BuiltinSchedule>(kind, o);
}

}  // namespace sparsetrain
