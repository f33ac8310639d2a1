// The node interface every layer implements. A node computes its forward
// pass, its backward pass by its own rule, and says what backward needs, so
// the executor can free activations as soon as nothing needs them.
//
// Conventions (see STYLE.md):
// - forward returns a new output tensor; the node picks the output layout
//   (dense convolutions produce nodes::dense_conv_layout(); BatchNorm, ReLU,
//   pooling and Add keep the layout of their input).
// - backward returns one diff_src per input (an undefined Tensor where
//   need_diff_src is false) and ACCUMULATES (+=) weight gradients into
//   Parameter::grad; the trainer zeroes them.
// - shapes are logical: (N, C, H, W) for 4-D activations, (N, F) for 2-D.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/parameter.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

struct ForwardArgs {
  std::span<const Tensor> inputs;
  // Training behaviour: BatchNorm normalises with the batch statistics and
  // updates its running ones, dropout drops. Otherwise: running statistics,
  // dropout is the identity, and no state of the node changes.
  bool training = true;
  uint64_t seed = 0;  // per-step seed for stochastic nodes (dropout)
  // Keep what backward needs (saves()). The executor sets it for a training
  // forward and for a probe forward (ExecMode::kProbe: inference behaviour,
  // backward allowed); an inference forward keeps nothing.
  bool keep_for_backward = true;
};

struct BackwardArgs {
  std::span<const Tensor> inputs;  // the forward inputs if saves().inputs, else undefined
  const Tensor* output = nullptr;  // the forward output if saves().output
  const Tensor* diff_dst = nullptr;
  std::span<const char> need_diff_src;  // one flag per input
  // The gradients returned may share storage with each other (no hook will
  // see them, so nothing writes into them in place; the executor never
  // does). Otherwise each must own its storage, or share only diff_dst's.
  bool diffs_may_share = false;
  // Per input, when defined: the gradient the input's other consumers have
  // sent it so far, in storage that nothing else holds. A node may add its
  // own gradient into it in place and return that tensor (the same storage)
  // as the input's diff_src, which the executor then takes as the sum instead
  // of adding the two in a new tensor. Never offered when a hook watches the
  // node's backward (the hook must see the node's own gradient).
  std::span<Tensor> sum_into = {};
  // When set: input 0 is the output of a ReLU (this tensor) whose backward
  // the executor lets this node apply, because this node's gradient
  // completes the ReLU's: sum_into[0] holds every other consumer's, or none
  // sent any. A node that returns its input gradient (the sum, when it adds
  // into sum_into[0]) kept where relu_output > 0 and zeroed elsewhere sets
  // *relu_applied, and the ReLU's own backward is skipped. A node that adds
  // its gradient elsewhere must not apply it; ignoring it is always correct.
  const Tensor* relu_output = nullptr;
  bool* relu_applied = nullptr;
  // Accumulate the gradients of the node's parameters. When false, and for
  // each parameter that is frozen (Parameter::frozen), no gradient is added
  // and a weight-gradient pass that only they need is not run.
  bool param_grads = true;
};

struct Saves {
  bool inputs = false;  // backward reads the forward inputs
  bool output = false;  // backward reads the forward output
};

// What the executor's plan needs to know of a node, instead of its type name.
struct NodeTraits {
  // y = max(0, x), one input: may be folded into the producer that applies
  // it (nodes::ReluFusable).
  bool relu = false;
  // Works on any activation layout and hands its input's layout on
  // (BatchNorm, ReLU): a dense stem may reach sparse convolutions through it
  // in their layout.
  bool layout_transparent = false;
  // A convolution (its input layout is the conv domain's).
  bool convolution = false;
  // Sums its inputs (Add): passes any layout on to its consumers.
  bool sums_inputs = false;
  // Reads kCHWN inputs with padded channel planes (Tensor::plane) and gives
  // its output, and its input gradients, its input's planes (BatchNorm,
  // ReLU): the executor may then pad the output of a sparse convolution
  // that feeds it. A node without this trait only ever sees packed tensors.
  bool padded_planes = false;
};

class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) {}
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  virtual const char* type() const = 0;

  // Output shape for the given input shapes (batch dimension included).
  // Throws Error naming the node when the inputs do not fit.
  virtual Shape output_shape(const std::vector<Shape>& inputs) const = 0;

  virtual Tensor forward(const ForwardArgs& args) = 0;
  virtual std::vector<Tensor> backward(const BackwardArgs& args) = 0;
  virtual Saves saves() const = 0;
  virtual NodeTraits traits() const { return {}; }
  // Drops whatever forward kept for backward (indices, statistics, masks).
  virtual void clear_saved() {}

  virtual std::vector<Parameter*> parameters() { return {}; }
  // Draws fresh initial values for the parameters (He-normal weights, zero
  // biases, unit BatchNorm scale).
  virtual void reset_parameters(Rng& rng) {}
  // A one-line description for summaries, e.g. "3x3 s1 p1, 16->16".
  virtual std::string describe() const { return {}; }

 protected:
  // For output_shape: throws Error "<type> '<name>' takes one input, got 2"
  // unless there are exactly `count` inputs.
  void expect_inputs(const std::vector<Shape>& inputs, std::size_t count) const;
  // For output_shape: throws Error "<type> '<name>' expects <expected>, got
  // <input shape>" (expected: "a 4-D input (N, C, H, W)").
  [[noreturn]] void fail_input_shape(const std::string& expected, const Shape& input) const;

 private:
  std::string name_;
};

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
