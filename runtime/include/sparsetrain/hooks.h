// Hooks: the one extension point for observing and steering a run. A hook is
// attached at a point (before/after a node's forward, after its backward,
// after the optimizer step, on a sparsity phase change) to the nodes whose
// names match a glob pattern ("*", "conv*", "layer1.*.conv?"). It may read
// the tensors of the event, and replace the ones passed by non-const pointer.
// The handle removes it (explicitly or when the handle is destroyed, unless
// detach() was called).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/parameter.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

enum class HookPoint : uint8_t {
  kBeforeForward,
  kAfterForward,
  kAfterBackward,
  kAfterOptimizerStep,  // fired once per step with node name "" (pattern ignored)
  kPhaseChange,         // fired by sparsity controllers with the new phase name
};

struct HookEvent {
  HookPoint point;
  std::string node;       // node name ("" for step-level events)
  std::string node_type;  // "conv2d", "linear", ...
  int64_t step = 0;
  bool training = false;
  std::span<Tensor> inputs;            // forward inputs (kBeforeForward may replace them)
  Tensor* output = nullptr;            // kAfterForward: may be replaced
  const Tensor* diff_dst = nullptr;    // kAfterBackward
  std::span<Tensor> diff_src;          // kAfterBackward: may be replaced
  std::vector<Parameter*> parameters;  // the node's parameters (all, for step events)
  std::string phase;                   // kPhaseChange
};

using HookFn = std::function<void(HookEvent&)>;

struct HookOptions {
  // Ask the executor to compute the gradient with respect to the graph input
  // (kept only when some hook asks: saliency, integrated gradients).
  bool wants_input_grad = false;
};

class HookRegistry;

class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<HookRegistry> registry, int64_t id)
      : registry_(std::move(registry)), id_(id) {}
  HookHandle(HookHandle&& other) noexcept;
  HookHandle& operator=(HookHandle&& other) noexcept;
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle() { remove(); }

  void remove();
  // Keep the hook for the life of the graph; the handle no longer owns it.
  void detach() { registry_.reset(); }
  bool active() const;

 private:
  std::weak_ptr<HookRegistry> registry_;
  int64_t id_ = -1;
};

// Glob matching with '*' (any run) and '?' (one character).
bool glob_match(std::string_view pattern, std::string_view text);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
