// Factories for the built-in node types (internal: the public API reaches
// them through Graph's builder methods). Each factory validates its options
// and throws Error naming the node on a bad one.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nodes/kernel_choice.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/node.h"

namespace sparsetrain::nodes {

std::unique_ptr<Node> make_input(const std::string& name, Shape sample_shape);
std::unique_ptr<Node> make_conv2d(const std::string& name, int64_t in_channels,
                                  const Conv2dOptions& options);
std::unique_ptr<Node> make_linear(const std::string& name, int64_t in_features,
                                  const LinearOptions& options);
std::unique_ptr<Node> make_batchnorm2d(const std::string& name, int64_t channels,
                                       const BatchNormOptions& options);
std::unique_ptr<Node> make_relu(const std::string& name);
std::unique_ptr<Node> make_maxpool2d(const std::string& name, const PoolOptions& options);
std::unique_ptr<Node> make_avgpool2d(const std::string& name, const PoolOptions& options);
std::unique_ptr<Node> make_global_avgpool(const std::string& name);
std::unique_ptr<Node> make_add(const std::string& name);
std::unique_ptr<Node> make_flatten(const std::string& name);
std::unique_ptr<Node> make_dropout(const std::string& name, float p);

// --- one input, no parameters (node.cc) -----------------------------------------
// The frame of ReLU, dropout, flatten and the pooling nodes: the input count
// is checked once here, the shape and layout of the last forward's input are
// kept for backward, and the backward returns an empty gradient at once when
// the input's is not wanted (BackwardArgs::need_diff_src).
class UnaryNode : public Node {
 public:
  using Node::Node;
  Shape output_shape(const std::vector<Shape>& inputs) const final;
  Tensor forward(const ForwardArgs& args) final;
  std::vector<Tensor> backward(const BackwardArgs& args) final;

 protected:
  // The output's shape for an input of shape `x` (default: the same).
  virtual Shape unary_shape(const Shape& x) const { return x; }
  virtual Tensor unary_forward(const Tensor& x, const ForwardArgs& args) = 0;
  // Only called with a diff_dst, when the input's gradient is wanted.
  virtual Tensor unary_backward(const BackwardArgs& args) = 0;

  Shape input_shape_;  // of the last forward
  Layout input_layout_ = Layout::kNCHW;
};

// --- prunable layers (linear.cc, conv2d.cc) ------------------------------------
// A node whose weight can be compressed: linear and conv2d. See
// Graph::compress for the semantics; the graph adds the optimizer state.

// Kernels of a compressed layer: chosen (kernel_choice.h: timed, or by the
// fixed rule only), or forced.
enum class SparseKernels : uint8_t { kAuto, kAutoFixed, kSparse, kDense };
SparseKernels parse_sparse_kernels(const std::string& mode);  // throws Error naming --kernels
const char* sparse_kernels_name(SparseKernels kernels);       // "auto", "auto-fixed", ...

class PrunableNode : public Node {
 public:
  using Node::Node;
  // The weight parameter ("<node>.weight").
  virtual Parameter& weight() = 0;
  // Stores only the positions where `mask` (the dense weight's size, any
  // shape; nonzero = kept) is nonzero, taking their values from the current
  // weight (zero where it was already pruned). Works on a compressed node
  // too (a new mask). Throws Error naming the node on a mask of the wrong size.
  virtual void compress(const Tensor& mask) = 0;
  // Back to a dense weight, pruned positions zero. No-op when dense.
  virtual void decompress() = 0;
  virtual void set_kernels(SparseKernels kernels) = 0;
  // Compressed, and its last forward (before any: its next one, unless
  // forced dense) ran the sparse kernels.
  virtual bool runs_sparse() const = 0;
  // The layout the node reads an input of shape `input` in (what it would
  // reorder to itself): the sparse kernels' batch-innermost layout when it
  // runs sparse for that shape (this may time the kernels in auto mode).
  virtual Layout input_layout(const Shape& input) = 0;
  // Asks a dense (uncompressed) layer to run on the sparse kernels' direct
  // path in their layout, every weight stored (conv2d only: a stem that reads
  // the graph input and feeds sparse convolutions, so the activations never
  // leave that layout; Graph decides, graph.cc). Ignored when compressed.
  virtual void set_direct_dense(bool on) { (void)on; }
  // Dense, and runs on that direct path.
  virtual bool runs_direct() const { return false; }
  // Asks a layer on the sparse kernels to lay its kCHWN output out with
  // padded channel planes (chwn_padded_plane): the executor's plan, when
  // every consumer takes padded planes (NodeTraits::padded_planes, or a
  // convolution on the sparse kernels) and no hook would see them.
  virtual void set_padded_output(bool on) { (void)on; }
  // The last forward's output had padded channel planes.
  virtual bool padded_output() const { return false; }

  // Weight-gradient passes run so far (none for a backward without
  // parameter gradients or with weight and bias frozen).
  int64_t weight_grad_passes() const { return weight_grad_passes_; }

  // Where the node's kernel choices are made and recorded: its graph's book
  // (Graph::add_node); a node outside a graph makes its own.
  void set_choice_book(std::shared_ptr<KernelChoiceBook> book) { book_ = std::move(book); }

 protected:
  // Whether a compressed layer runs `problem` (layer, op, problem key and
  // description set) on the sparse kernels under mode `kernels`: forced, or
  // asked of the book (kernel_choice.h), which calls `prepare` only to time.
  bool decide_sparse(SparseKernels kernels, KernelChoice problem,
                     const std::function<TimedSteps()>& prepare);

  int64_t weight_grad_passes_ = 0;

 private:
  std::shared_ptr<KernelChoiceBook> book_;
};

// Where one backward's weight and bias gradients go (BackwardArgs::param_grads,
// Parameter::frozen): into the parameters' own gradients, or, for a frozen
// weight whose bias still learns, into a scratch buffer the size of the
// weight's gradient that is then dropped. No pass is needed when neither
// learns (weight is null).
struct GradTargets {
  float* weight = nullptr;
  float* bias = nullptr;       // null: the bias is absent or does not learn
  bool weight_learns = false;  // weight points at the weight's own gradient
  Tensor scratch;
  bool run() const { return weight != nullptr; }
};
GradTargets grad_targets(const BackwardArgs& args, Parameter& weight, Parameter* bias);

// The node as a prunable one, or null.
PrunableNode* as_prunable(Node& node);
// The options a conv2d node was built with (for probes that unfold its
// input: spade), or null when `node` is not a conv2d node.
const Conv2dOptions* conv2d_options(Node& node);

// The layout node `node` reads its input k in when its inputs arrive as
// `inputs`: the executor reorders each producer's output once per layout and
// shares that copy among all consumers that want it. Prunable nodes say what
// their kernels read; Add reads both inputs in the first one's layout; every
// other node takes its input as it comes.
Layout preferred_input_layout(Node& node, std::span<const Tensor> inputs, std::size_t k);

// --- ReLU fusion (batchnorm2d.cc, add.cc) --------------------------------------
// When a BatchNorm2d's or an Add's only consumer is a ReLU and no forward
// hook watches either node, the executor lets the producer apply the ReLU in
// its training forward (kernels: BatchNormDesc::relu, add_relu_forward): it
// returns max(0, y), which the executor hands on as the ReLU's output without
// running the ReLU. In the backward, a producer that fuses_relu_backward()
// (BatchNorm: its kernel recomputes the ReLU's mask from its saved input,
// desc.relu) takes the ReLU's gradient directly and the ReLU's backward is
// skipped, unless a backward hook watches the ReLU. Otherwise the ReLU's
// backward runs, from that output, and the producer's backward is the plain
// one (Add: masking there would read the output anyway; the executor may
// instead let the next sparse convolution apply the ReLU's backward,
// BackwardArgs::relu_output).
class ReluFusable {
 public:
  virtual ~ReluFusable() = default;
  // Set before a forward (whether to fuse) and cleared before the backward
  // (the gradient arriving is then the one of y, from the ReLU's backward).
  virtual void set_relu_fusion(bool on) = 0;
  // Whether the last forward returned max(0, y): asked, in training mode,
  // and (BatchNorm) its kernel fuses in the input's layout.
  virtual bool relu_fused() const = 0;
  // Whether, after a fused forward, backward can take the gradient of
  // max(0, y) and mask it itself.
  virtual bool fuses_relu_backward() const { return false; }
};

// The node as one that can fuse a ReLU, or null.
ReluFusable* as_relu_fusable(Node& node);

// --- residual fusion: BatchNorm + Add (+ ReLU) (batchnorm2d.cc, add.cc) ---------
// When a BatchNorm2d's only consumer is an Add whose other input is ready by
// then (the residual: the block's shortcut), and no forward hook watches the
// BatchNorm or the Add, the executor (graph_plan.cc) hands the BatchNorm that
// residual before its training forward: it returns y + residual, and
// max(0, y + residual) when the Add's ReLU is fused as well (ReluFusable on
// the Add), in one pass (kernels: BatchNormDesc::residual). The executor hands
// that on as the Add's output without running the Add, and tells the Add what
// its forward would have recorded (SumFoldable). The backward is the unfused
// one: the ReLU masks from its output, the Add passes the gradient to both
// inputs, and the BatchNorm's backward is the plain one.
class ResidualFusable {
 public:
  virtual ~ResidualFusable() = default;
  // Set before a forward: the residual to add (null: none) and whether to
  // apply the ReLU after the sum. Cleared (null) by the executor otherwise.
  virtual void set_residual_fusion(const Tensor* residual, bool relu) = 0;
  // Whether the last forward returned the sum: asked, in training mode, a
  // residual of the output's shape and layout, and a kernel that fuses.
  virtual bool residual_fused() const = 0;
  // Whether that sum also had the ReLU applied.
  virtual bool residual_relu() const = 0;
};
ResidualFusable* as_residual_fusable(Node& node);

// An Add whose sum a producer computed (ResidualFusable): `second` is the
// layout its second input came in, `relu` whether the sum had the ReLU.
class SumFoldable {
 public:
  virtual ~SumFoldable() = default;
  virtual void record_folded_forward(Layout second, bool relu) = 0;
};
SumFoldable* as_sum_foldable(Node& node);

// --- statistics fusion: sparse convolution -> BatchNorm (conv2d.cc, batchnorm2d.cc) ---
// When a convolution's only consumer is a BatchNorm2d and no forward hook
// watches either, the executor (graph_plan.cc) hands the convolution the
// BatchNorm's slot before a training forward. A convolution on the sparse
// kernels forms its output's batch statistics in its epilogue
// (kernels::conv_sparse_forward_stats) and leaves them there, with the
// address of the output they describe; the BatchNorm's training forward
// uses them when its input is that very tensor, and skips its own
// statistics pass. Otherwise it computes them as ever.
struct BatchStatistics {
  std::vector<double> mean, var;  // per channel: mean, biased variance
  const float* of = nullptr;      // the data they describe (null: none)
};
class StatisticsConsumer {
 public:
  virtual ~StatisticsConsumer() = default;
  virtual BatchStatistics* statistics_slot() = 0;
  // Whether the last forward used statistics from the slot.
  virtual bool statistics_given() const = 0;
};
StatisticsConsumer* as_statistics_consumer(Node& node);
class StatisticsProducer {
 public:
  virtual ~StatisticsProducer() = default;
  // Set before every forward: the slot to fill, or null (produce none).
  virtual void set_output_statistics(BatchStatistics* slot) = 0;
};
StatisticsProducer* as_statistics_producer(Node& node);

// The memory layout of dense 4-D activations between conv-domain nodes
// (conv, BatchNorm, ReLU, pooling, Add). Graph inputs arrive as kNCHW; the
// first conv reorders once and the run stays in this layout until Flatten or
// a conv on the sparse kernels, whose domain is Layout::kCHWN.
Layout dense_conv_layout();

}  // namespace sparsetrain::nodes
