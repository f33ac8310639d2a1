#include "sparsetrain/optim.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <type_traits>

#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

// Tensors with more elements than this are updated by several TBB tasks.
// Every update is element-wise, so the split never changes a result.
constexpr int64_t kParallelGrain = int64_t{1} << 15;
// The gradient norm is summed over fixed chunks of this many elements, and
// the chunk sums are added in chunk order: the same for any thread count.
constexpr int64_t kNormChunk = int64_t{1} << 16;
// Per-parameter step counts are saved as floats, exact up to 2^24.
constexpr int64_t kMaxSavedSteps = int64_t{1} << 24;
// torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
constexpr double kClipEpsilon = 1e-6;

template <class F>
void for_ranges(int64_t n, F&& body) {
  if (n <= kParallelGrain) {
    body(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kParallelGrain),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

std::string format_float(float v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

constexpr const char* kSlotSeparator = ".";
constexpr const char* kStepSlot = "step";

// d = g (+ wd * w); buf = m * buf + d (buf = d on the first step);
// d = nesterov ? d + m * buf : buf; w -= lr * d.
template <bool kDecay, bool kFirst, bool kNesterov>
void sgd_momentum_range(float* w, const float* g, float* buf, int64_t begin, int64_t end, float lr,
                        float momentum, float wd) {
  for (int64_t i = begin; i < end; ++i) {
    float d = g[i];
    if constexpr (kDecay) d += wd * w[i];
    float b;
    if constexpr (kFirst) {
      b = d;
    } else {
      b = momentum * buf[i] + d;
    }
    buf[i] = b;
    if constexpr (kNesterov) {
      d += momentum * b;
    } else {
      d = b;
    }
    w[i] -= lr * d;
  }
}

template <bool kDecay, bool kFirst>
void sgd_momentum_dispatch(bool nesterov, float* w, const float* g, float* buf, int64_t n, float lr,
                           float momentum, float wd) {
  for_ranges(n, [&](int64_t begin, int64_t end) {
    if (nesterov) {
      sgd_momentum_range<kDecay, kFirst, true>(w, g, buf, begin, end, lr, momentum, wd);
    } else {
      sgd_momentum_range<kDecay, kFirst, false>(w, g, buf, begin, end, lr, momentum, wd);
    }
  });
}

}  // namespace

// --- Optimizer -------------------------------------------------------------

void Optimizer::step(const std::vector<Parameter*>& params, float lr) {
  // Validate everything first, so an error leaves parameters and state as
  // they were.
  for (const Parameter* p : params) {
    if (!p->trainable() || !p->grad.defined()) continue;
    if (!p->value.defined() || p->grad.numel() != p->value.numel()) {
      throw Error("optimizer: parameter '" + p->name + "' has gradient " + p->grad.shape_string() +
                  " for value " + p->value.shape_string());
    }
    const auto it = state_.find(p->name);
    if (it == state_.end()) continue;
    for (const Tensor& slot : it->second.slot) {
      if (slot.defined() && slot.numel() != p->value.numel()) {
        throw Error("optimizer: state of parameter '" + p->name + "' has " +
                    std::to_string(slot.numel()) + " values but the parameter has " +
                    std::to_string(p->value.numel()) +
                    " (call reset_state or gather_state when a parameter's storage changes)");
      }
    }
  }
  for (Parameter* p : params) {
    if (!p->updated() || !p->grad.defined()) continue;
    ParamState& state = state_[p->name];
    ++state.steps;
    update(*p, lr, state);
  }
  ++step_count_;
}

void Optimizer::zero_grad(const std::vector<Parameter*>& params) {
  for (Parameter* p : params) {
    if (p->grad.defined()) p->grad.zero();
  }
}

void Optimizer::reset_state(const std::string& param_name) { state_.erase(param_name); }

Optimizer::ParamState* Optimizer::state_of(const std::string& param_name) {
  const auto it = state_.find(param_name);
  return it == state_.end() ? nullptr : &it->second;
}

void Optimizer::gather_state(const std::string& param_name, const std::vector<int64_t>& indices) {
  ParamState* state = state_of(param_name);
  if (state == nullptr) return;
  for (const Tensor& slot : state->slot) {
    if (!slot.defined()) continue;
    for (const int64_t i : indices) {
      if (i < 0 || i >= slot.numel()) {
        throw Error("optimizer: gather_state of '" + param_name + "': index " + std::to_string(i) +
                    " is outside its " + std::to_string(slot.numel()) + " values");
      }
    }
  }
  const int64_t k = static_cast<int64_t>(indices.size());
  for (Tensor& slot : state->slot) {
    if (!slot.defined()) continue;
    Tensor kept = Tensor::empty({k});
    for (int64_t j = 0; j < k; ++j) kept[j] = slot[indices[static_cast<std::size_t>(j)]];
    slot = kept;
  }
}

std::vector<std::pair<std::string, Tensor>> Optimizer::state_tensors() const {
  const std::vector<std::string> names = slot_names();
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [param, state] : state_) {
    for (std::size_t i = 0; i < names.size() && i < 2; ++i) {
      if (names[i].empty() || !state.slot[i].defined()) continue;
      out.emplace_back(param + kSlotSeparator + names[i], state.slot[i]);
    }
    if (saves_steps()) {
      const int64_t steps = std::min(state.steps, kMaxSavedSteps);
      out.emplace_back(param + kSlotSeparator + kStepSlot,
                       Tensor::from({1}, {static_cast<float>(steps)}));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void Optimizer::load_state_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                   const std::vector<Parameter*>& params) {
  const std::vector<std::string> names = slot_names();
  std::map<std::string, const Parameter*> by_name;
  for (const Parameter* p : params) by_name[p->name] = p;

  std::map<std::string, ParamState> loaded;
  std::map<std::string, std::set<std::string>> seen;  // param -> slots present
  for (const auto& [name, tensor] : tensors) {
    const std::string what = std::string(kind()) + " optimizer state '" + name + "'";
    const std::size_t dot = name.rfind('.');
    if (dot == std::string::npos || dot == 0) {
      throw Error(what + ": expected '<parameter>.<slot>'");
    }
    const std::string param = name.substr(0, dot);
    const std::string slot = name.substr(dot + 1);
    const auto p = by_name.find(param);
    if (p == by_name.end()) throw Error(what + ": no parameter named '" + param + "'");
    if (!p->second->trainable()) throw Error(what + ": '" + param + "' is not trainable");
    if (!tensor.defined()) throw Error(what + ": undefined tensor");
    if (!seen[param].insert(slot).second) throw Error(what + ": given twice");
    ParamState& state = loaded[param];
    if (saves_steps() && slot == kStepSlot) {
      const float steps = tensor.numel() == 1 ? tensor[0] : -1.0f;
      if (tensor.shape() != Shape{1} || !(steps >= 0.0f) ||
          steps > static_cast<float>(kMaxSavedSteps) || std::floor(steps) != steps) {
        throw Error(what + ": expected shape (1) holding a step count, got " +
                    tensor.shape_string() +
                    (tensor.numel() == 1 ? " holding " + format_float(tensor[0]) : ""));
      }
      state.steps = static_cast<int64_t>(steps);
      continue;
    }
    const auto slot_it = std::find(names.begin(), names.end(), slot);
    if (slot.empty() || slot_it == names.end()) {
      std::string expected;
      std::vector<std::string> known;
      for (const std::string& n : names) {
        if (!n.empty()) known.push_back(n);
      }
      if (saves_steps()) known.emplace_back(kStepSlot);
      for (const std::string& n : known) {
        if (!expected.empty()) expected += ", ";
        expected += n;
      }
      throw Error(what + ": unknown slot '" + slot + "' (expected " +
                  (expected.empty() ? std::string("none: this optimizer has no state") : expected) +
                  ")");
    }
    if (tensor.shape() != p->second->value.shape()) {
      throw Error(what + ": shape " + tensor.shape_string() + " does not match parameter " +
                  p->second->value.shape_string());
    }
    state.slot[slot_it - names.begin()] = tensor.clone();
  }
  // Every parameter with state must have all of it.
  for (auto& [param, state] : loaded) {
    const std::set<std::string>& present = seen[param];
    for (const std::string& n : names) {
      if (!n.empty() && present.count(n) == 0) {
        throw Error(std::string(kind()) + " optimizer state '" + param + kSlotSeparator + n +
                    "' is missing");
      }
    }
    if (saves_steps() && present.count(kStepSlot) == 0) {
      throw Error(std::string(kind()) + " optimizer state '" + param + kSlotSeparator + kStepSlot +
                  "' is missing");
    }
  }
  state_ = std::move(loaded);
}

// --- SGD -------------------------------------------------------------------

SGD::SGD(float momentum, bool nesterov, float weight_decay)
    : momentum_(momentum), nesterov_(nesterov), weight_decay_(weight_decay) {
  if (!(momentum >= 0.0f && momentum < 1.0f)) {
    throw Error("--momentum: must be in [0, 1), got " + format_float(momentum));
  }
  if (!(weight_decay >= 0.0f) || !std::isfinite(weight_decay)) {
    throw Error("--weight-decay: must be finite and >= 0, got " + format_float(weight_decay));
  }
  if (nesterov && momentum == 0.0f) {
    throw Error("--nesterov: needs a momentum > 0 (set --momentum)");
  }
}

std::string SGD::describe() const {
  std::string s = "sgd(momentum=" + format_float(momentum_);
  if (nesterov_) s += ", nesterov";
  s += ", weight_decay=" + format_float(weight_decay_) + ")";
  return s;
}

std::vector<std::string> SGD::slot_names() const {
  if (momentum_ == 0.0f) return {};
  return {"momentum"};
}

void SGD::update(Parameter& p, float lr, ParamState& state) {
  float* w = p.value.data();
  const float* g = p.grad.data();
  const int64_t n = p.value.numel();
  const bool decay = p.decays() && weight_decay_ != 0.0f;
  const float wd = weight_decay_;
  if (momentum_ == 0.0f) {
    for_ranges(n, [&](int64_t begin, int64_t end) {
      if (decay) {
        for (int64_t i = begin; i < end; ++i) w[i] -= lr * (g[i] + wd * w[i]);
      } else {
        for (int64_t i = begin; i < end; ++i) w[i] -= lr * g[i];
      }
    });
    return;
  }
  Tensor& buf = state.slot[0];
  const bool first = !buf.defined();
  if (first) buf = Tensor::empty(p.value.shape());
  float* b = buf.data();
  if (decay) {
    if (first) {
      sgd_momentum_dispatch<true, true>(nesterov_, w, g, b, n, lr, momentum_, wd);
    } else {
      sgd_momentum_dispatch<true, false>(nesterov_, w, g, b, n, lr, momentum_, wd);
    }
  } else {
    if (first) {
      sgd_momentum_dispatch<false, true>(nesterov_, w, g, b, n, lr, momentum_, wd);
    } else {
      sgd_momentum_dispatch<false, false>(nesterov_, w, g, b, n, lr, momentum_, wd);
    }
  }
}

// --- AdamW -----------------------------------------------------------------

AdamW::AdamW(float beta1, float beta2, float eps, float weight_decay)
    : beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay) {
  if (!(beta1 >= 0.0f && beta1 < 1.0f)) {
    throw Error("--beta1: must be in [0, 1), got " + format_float(beta1));
  }
  if (!(beta2 >= 0.0f && beta2 < 1.0f)) {
    throw Error("--beta2: must be in [0, 1), got " + format_float(beta2));
  }
  if (!(eps > 0.0f) || !std::isfinite(eps)) {
    throw Error("--eps: must be finite and > 0, got " + format_float(eps));
  }
  if (!(weight_decay >= 0.0f) || !std::isfinite(weight_decay)) {
    throw Error("--weight-decay: must be finite and >= 0, got " + format_float(weight_decay));
  }
}

std::string AdamW::describe() const {
  return "adamw(beta1=" + format_float(beta1_) + ", beta2=" + format_float(beta2_) +
         ", eps=" + format_float(eps_) + ", weight_decay=" + format_float(weight_decay_) + ")";
}

std::vector<std::string> AdamW::slot_names() const { return {"exp_avg", "exp_avg_sq"}; }

void AdamW::update(Parameter& p, float lr, ParamState& state) {
  Tensor& m_t = state.slot[0];
  Tensor& v_t = state.slot[1];
  if (!m_t.defined() || !v_t.defined()) {
    m_t = Tensor::zeros(p.value.shape());
    v_t = Tensor::zeros(p.value.shape());
  }
  float* w = p.value.data();
  const float* g = p.grad.data();
  float* m = m_t.data();
  float* v = v_t.data();
  const int64_t n = p.value.numel();

  const double t = static_cast<double>(state.steps);
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(beta1_), t);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(beta2_), t);
  const float step_size = static_cast<float>(static_cast<double>(lr) / bias_correction1);
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const bool decay = p.decays() && weight_decay_ != 0.0f;
  const float decay_factor =
      static_cast<float>(1.0 - static_cast<double>(lr) * static_cast<double>(weight_decay_));
  const float b1 = beta1_, b2 = beta2_, eps = eps_;
  const float one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;

  auto range = [&](auto decay_tag, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i];
      const float mi = b1 * m[i] + one_minus_b1 * gi;
      const float vi = b2 * v[i] + one_minus_b2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const float denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
      float wi = w[i];
      if constexpr (decltype(decay_tag)::value) wi *= decay_factor;
      w[i] = wi - step_size * (mi / denom);
    }
  };
  for_ranges(n, [&](int64_t begin, int64_t end) {
    if (decay) {
      range(std::true_type{}, begin, end);
    } else {
      range(std::false_type{}, begin, end);
    }
  });
}

// --- factory and clipping --------------------------------------------------

std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& options) {
  if (options.kind == "sgd") {
    return std::make_unique<SGD>(options.momentum, options.nesterov, options.weight_decay);
  }
  if (options.kind == "adamw") {
    return std::make_unique<AdamW>(options.beta1, options.beta2, options.eps, options.weight_decay);
  }
  throw Error("--optimizer: unknown optimizer '" + options.kind + "' (expected sgd, adamw)");
}

float clip_grad_norm(const std::vector<Parameter*>& params, float max_norm) {
  if (!(max_norm > 0.0f)) {
    throw Error("--clip-grad-norm: must be > 0, got " + format_float(max_norm));
  }
  std::vector<Tensor*> grads;
  for (Parameter* p : params) {
    if (p->updated() && p->grad.defined()) grads.push_back(&p->grad);
  }
  double sum_sq = 0.0;
  for (const Tensor* grad : grads) {
    const float* g = grad->data();
    const int64_t n = grad->numel();
    const int64_t chunks = (n + kNormChunk - 1) / kNormChunk;
    std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
    auto sum_chunk = [&](int64_t c) {
      const int64_t begin = c * kNormChunk, end = std::min(n, begin + kNormChunk);
      double s = 0.0;
      for (int64_t i = begin; i < end; ++i) s += static_cast<double>(g[i]) * g[i];
      partial[static_cast<std::size_t>(c)] = s;
    };
    if (chunks <= 1) {
      if (chunks == 1) sum_chunk(0);
    } else {
      tbb::parallel_for(int64_t{0}, chunks, sum_chunk);
    }
    for (const double s : partial) sum_sq += s;
  }
  const double norm = std::sqrt(sum_sq);
  if (std::isfinite(norm) && norm > static_cast<double>(max_norm)) {
    const float scale = static_cast<float>(static_cast<double>(max_norm) / (norm + kClipEpsilon));
    for (Tensor* grad : grads) {
      float* g = grad->data();
      for_ranges(grad->numel(), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) g[i] *= scale;
      });
    }
  }
  return static_cast<float>(norm);
}

}  // namespace sparsetrain
