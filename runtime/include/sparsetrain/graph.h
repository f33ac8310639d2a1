// The layer graph: a static DAG of named nodes, built with the builder
// methods below, executed forward in topological order and backward in
// reverse by each node's rule. Activations are freed as soon as neither a
// later node nor backward needs them; peak memory of the last step is
// reported.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/hooks.h"
#include "sparsetrain/kernel_choices.h"
#include "sparsetrain/node.h"
#include "sparsetrain/parameter.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

struct NodeId {
  int index = -1;
};

struct Conv2dOptions {
  int64_t out_channels = 0;
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t groups = 1;  // groups == in_channels == out_channels: depthwise
  bool bias = true;
};

struct LinearOptions {
  int64_t out_features = 0;
  bool bias = true;
};

struct BatchNormOptions {
  float momentum = 0.1f;  // running = (1 - momentum) * running + momentum * batch
  float eps = 1e-5f;
};

struct PoolOptions {
  int64_t kernel = 2;
  int64_t stride = 2;
  int64_t padding = 0;
};

// Time spent in one node, summed over the calls since Graph::reset_profile()
// (Graph::set_profiling). Divide by the calls for a per-step figure.
struct NodeTiming {
  std::string name;
  std::string type;            // "conv2d", "linear", ...
  double forward_ms = 0.0;     // node forward, with the reorders of its inputs
  double backward_ms = 0.0;    // node backward, with the summing of its diff_src
  int64_t forward_calls = 0;   // forward passes (training and inference)
  int64_t backward_calls = 0;  // backward passes
  int64_t reorders = 0;        // to_layout copies made in those calls (reorder_count())
  bool sparse = false;         // the last forward ran the sparse kernels
  bool direct = false;         // a dense conv on the sparse kernels' direct path (the stem)
  // The last forward laid the output out with padded channel planes
  // (Tensor::plane; the plan pads a sparse convolution's output that reaches
  // only BatchNorm, ReLU and sparse convolutions).
  bool padded_output = false;
};

class HookRegistry;
class Optimizer;

// How a forward pass runs.
enum class ExecMode : uint8_t {
  // BatchNorm normalises with batch statistics and updates its running ones,
  // dropout drops; everything backward needs is kept; backward adds into
  // the parameters' gradients (those not frozen).
  kTrain,
  // Running statistics, no dropout, nothing kept: no backward. Changes no
  // state of the graph's parameters or buffers.
  kInference,
  // As kInference (running statistics, no dropout, no state changed), but
  // keeps what backward needs: a backward then gives input gradients and
  // never touches a parameter's gradient (saliency, attributions). A probe
  // pass between two training steps leaves the run bit for bit as it was.
  kProbe,
};
const char* exec_mode_name(ExecMode mode);  // "train" | "inference" | "probe"

struct BackwardOptions {
  // Add into Parameter::grad (after a kTrain forward only; frozen parameters
  // never get one). False: no weight-gradient pass runs at all.
  bool param_grads = true;
  // Return the gradient with respect to the graph input.
  bool input_grad = false;
};

class Graph {
 public:
  Graph();
  ~Graph();
  Graph(Graph&&) noexcept;
  Graph& operator=(Graph&&) noexcept;

  // --- building -----------------------------------------------------------
  // The graph input; sample_shape excludes the batch: {C, H, W} or {F}.
  NodeId input(const std::string& name, Shape sample_shape);
  NodeId conv2d(const std::string& name, NodeId x, const Conv2dOptions& options);
  NodeId linear(const std::string& name, NodeId x, const LinearOptions& options);
  NodeId batchnorm2d(const std::string& name, NodeId x, const BatchNormOptions& options = {});
  NodeId relu(const std::string& name, NodeId x);
  NodeId maxpool2d(const std::string& name, NodeId x, const PoolOptions& options);
  NodeId avgpool2d(const std::string& name, NodeId x, const PoolOptions& options);
  NodeId global_avgpool(const std::string& name, NodeId x);
  NodeId add(const std::string& name, NodeId a, NodeId b);
  NodeId flatten(const std::string& name, NodeId x);
  NodeId dropout(const std::string& name, NodeId x, float p);
  // Any node: the graph takes ownership and checks the input shapes.
  NodeId add_node(std::unique_ptr<Node> node, const std::vector<NodeId>& inputs);
  void set_output(NodeId node);

  // Draws initial parameter values from a seeded generator.
  void initialize(uint64_t seed);

  // --- inspecting ---------------------------------------------------------
  int size() const;
  Node& node(NodeId id);
  Node& node(const std::string& name);
  NodeId find(const std::string& name) const;  // index -1 when absent
  const std::vector<NodeId>& inputs_of(NodeId id) const;
  Shape shape_of(NodeId id, int64_t batch = 1) const;
  Shape input_shape() const;  // without the batch
  NodeId output() const;
  std::vector<Parameter*> parameters();  // trainable ones and buffers, in node order
  Parameter& parameter(const std::string& name);
  int64_t parameter_count(bool include_buffers = false);
  std::string summary();

  // --- sparse layers (conv2d and linear) -------------------------------------
  // Compresses the weight of conv2d or linear node `node_name` to the
  // positions where `mask` (the weight's shape, (O, I) or (O, C/G, KH, KW),
  // any layout; nonzero = kept) is nonzero: the parameter "<node>.weight"
  // then holds only those entries (Parameter::compressed(): value and grad of
  // shape {nnz}, dense_shape and dense_index set), pruned weights are gone for
  // good (no momentum or weight decay reaches them), and the node runs the
  // sparse kernels (set_sparse_kernels). A masked weight drops its mask.
  // With an optimizer, its state for the weight is gathered to the kept
  // entries (Optimizer::gather_state).
  // On a node that is already compressed (a new mask: RigL, AC/DC), weights
  // and optimizer state are carried over: positions kept in both masks keep
  // their value and state, newly kept positions start from the current value
  // (zero, as they were pruned) with zero state.
  // Throws Error naming the node when it is not a conv2d or linear node or
  // the mask has the wrong size.
  void compress(const std::string& node_name, const Tensor& mask, Optimizer* optimizer = nullptr);
  // Back to a dense weight, pruned positions zero; with an optimizer, the
  // weight's state is reset (AC/DC restarts momentum). No-op on a dense node.
  void decompress(const std::string& node_name, Optimizer* optimizer = nullptr);
  // Masked state: the weight of conv2d or linear node `node_name` stays
  // dense, its pruned entries (mask 0) are zeroed now and kept at zero by
  // apply_mask() around every optimizer step (the trainer does this). The
  // node runs the dense kernels. Throws Error naming the node on a compressed
  // weight or a mask of the wrong shape. unmask() drops the mask (values stay).
  void mask(const std::string& node_name, const Tensor& mask);
  void unmask(const std::string& node_name);
  // Kernels of compressed layers: "sparse", "dense" (the stored values
  // scattered into a dense weight for oneDNN), "auto" (default: one training
  // step of each timed once per layer and problem (shape, batch, stored
  // count, stride, padding, image size), ties within a margin decided by
  // the fixed rule) or "auto-fixed" (the fixed rule only, nothing timed);
  // see sparsetrain/kernel_choices.h. Each decision is logged
  // (sparsetrain/log.h) and recorded (kernel_choices()). Throws Error
  // naming --kernels on another value.
  //
  // Layouts: sparse linear layers read and write (F, N) Layout::kCN, sparse
  // convolutions (C, H, W, N) Layout::kCHWN; BatchNorm, ReLU, pooling, Add
  // and dropout keep whatever layout they get, and Flatten turns kCHWN into
  // kCN without a copy. The executor reorders a node's output once per
  // layout its consumers read it in and shares the copy, so a ResNet whose
  // block convolutions run sparse reorders only where the dense stem hands
  // over to the first sparse block (see README "Sparse convolutions").
  void set_sparse_kernels(const std::string& mode);
  // Conv2d and linear nodes whose last forward ran on the sparse kernels
  // (before the first forward: the compressed ones not forced dense), and
  // all conv2d and linear nodes.
  int sparse_layer_count();
  int prunable_layer_count() const;
  // Whether sparsity methods may prune conv2d or linear node `node_name`
  // (prunable_layers in sparsetrain/masks.h): true unless set_prunable made
  // it false (a model file's `prunable: false`). Throws Error naming the
  // node when it is not a conv2d or linear node.
  void set_prunable(const std::string& node_name, bool prunable);
  bool prunable(const std::string& node_name) const;
  // The names of the layers sparse_layer_count() counts, in node order.
  std::vector<std::string> sparse_layer_names();

  // --- kernel choices (sparsetrain/kernel_choices.h) ---------------------------
  // The auto and auto-fixed decisions this graph has used, in the order first
  // used (replayed ones included, marked KernelChoice::replayed).
  std::vector<KernelChoice> kernel_choices() const;
  // Takes these records instead of deciding, for the same layer and problem,
  // from the next forward on (replacing decisions already made for them).
  // Throws Error starting with `where` (the file, "--kernel-choices FILE")
  // when a record names a node that is not a conv2d or linear layer of this
  // graph, or a layer of the other op.
  void replay_kernel_choices(const std::vector<KernelChoice>& choices,
                             const std::string& where = "kernel choices");
  // For tests and experiments: called after each timing, may change the
  // medians (KernelTimingHook). Empty: none.
  void set_kernel_timing_hook(KernelTimingHook hook);
  // Timings run so far (a problem timed once counts once).
  int64_t kernel_timings_run() const;

  // --- running ------------------------------------------------------------
  // x: (N, C, H, W) or (N, F), plain layout. Returns the output (N, K) in
  // plain layout, or (N, C, H, W) in NCHW (reordered when the last node
  // produced another layout). seed drives dropout (kTrain).
  Tensor forward(const Tensor& x, ExecMode mode, uint64_t seed = 0);
  // training: ExecMode::kTrain, else ExecMode::kInference.
  Tensor forward(const Tensor& x, bool training, uint64_t seed = 0);
  // diff of the loss with respect to the output, after a kTrain or kProbe
  // forward (Error after kInference). After kTrain it fills the gradients
  // (+=) of the parameters that are not frozen, unless
  // options.param_grads is false; after kProbe it never does. Returns the
  // gradient with respect to the graph input (NCHW or plain) when a hook
  // asked for it (HookOptions::wants_input_grad) or options.input_grad is
  // set.
  Tensor backward(const Tensor& diff_output, const BackwardOptions& options);
  Tensor backward(const Tensor& diff_output, bool want_input_grad = false);
  // Called during backward (with parameter gradients) as soon as a node has
  // finished adding into the gradients of its parameters, nodes in backward
  // order: data-parallel training starts reducing those gradients while the
  // rest of backward runs (sparsetrain/distributed.h). Empty: none.
  using ParameterGradientsFn = std::function<void(const std::vector<Parameter*>& node_parameters)>;
  void set_parameter_gradients_callback(ParameterGradientsFn fn);
  // The mode of the last forward.
  ExecMode last_mode() const;
  // How many execution plans forward has made: a plan (which dense stems run
  // on the direct kernels, which producers apply their ReLU, what backward
  // keeps) is decided from the nodes' traits once per mode, set of hooks and
  // sparse state of the layers, and reused while those stay the same.
  int64_t plans_made() const;
  // Whether training steps fuse across node boundaries (on by default): a
  // BatchNorm or an Add applies the ReLU after it, a BatchNorm adds the
  // residual of the Add after it (and that Add's ReLU) in the same pass, and
  // a sparse convolution applies the backward of the ReLU before it as its
  // backward-data stores that ReLU's gradient. The results are the unfused
  // ones to float rounding (tests/test_fusion.cc); nodes a hook watches keep
  // their own pass. Off: every node runs on its own (for comparing, e.g.
  // `bench model --no-fusion`).
  void set_fusion(bool on);
  bool fusion() const;
  // Whether training steps lay out, with fusion on, the output of a sparse
  // convolution that reaches only BatchNorm, ReLU and sparse convolutions
  // (in ResNet-20 each block's first) with padded channel planes
  // (Tensor::plane, chwn_padded_plane) where its planes are multiples of
  // 4 KiB: the same position of every channel then no longer falls into
  // the same cache sets. On by default; the same results to the bit (every
  // kernel sums each element in the same order); nodes a hook watches see
  // packed tensors. Off: for comparing (`bench model --no-padding`).
  void set_padded_planes(bool on);
  bool padded_planes() const;

  // Freezes (or unfreezes) every parameter whose name matches `pattern`
  // (as hooks match node names: "*" for all, "conv*", an exact name;
  // sparsetrain/hooks.h): see Parameter::frozen. Returns how many matched;
  // throws Error naming the pattern when none does.
  int set_frozen(const std::string& pattern, bool frozen = true);
  // Drops every activation and saved state (e.g. after an inference batch).
  void release();
  int64_t last_peak_bytes() const;

  // --- profiling ------------------------------------------------------------
  // Per-node wall time of forward and backward (steady clock around each
  // node's call, hooks excluded), call counts, reorders and whether the node
  // ran sparse. Off by default; when off the executor reads no clock.
  // Timings accumulate until reset_profile(). profile() lists every node but
  // the input, in node order.
  void set_profiling(bool on);
  bool profiling() const;
  std::vector<NodeTiming> profile() const;
  void reset_profile();

  // Step counter reported in hook events.
  void set_step(int64_t step);
  int64_t step() const;

  // --- hooks ----------------------------------------------------------------
  HookHandle add_hook(HookPoint point, const std::string& pattern, HookFn fn,
                      HookOptions options = {});
  // Fires step-level hooks (kAfterOptimizerStep, kPhaseChange).
  void fire(HookPoint point, const std::string& phase = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Keeps the largest-magnitude (1 - sparsity) fraction of the entries of a
// weight (ties: the lower flat index wins): returns the (O, I) 0/1 mask.
// Throws Error when sparsity is outside [0, 1).
Tensor magnitude_mask(const Tensor& weight, float sparsity);
// Compresses every linear layer with its own magnitude mask at `sparsity`
// (uniform); sparsity 0 leaves the graph as it is. Returns the number of
// layers compressed.
// With `compressed` false the layers are masked instead (Graph::mask).
int prune_linear_layers(Graph& graph, float sparsity, Optimizer* optimizer = nullptr,
                        bool compressed = true);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
