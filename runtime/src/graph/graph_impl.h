// The graph's private state (Graph::Impl), shared by graph.cc (building and
// running) and graph_plan.cc (what a forward in one mode does). Internal.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "graph/hooks_internal.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"

namespace sparsetrain {

struct Graph::Impl {
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<std::vector<NodeId>> inputs;
  std::vector<std::vector<int>> consumers;
  std::vector<Shape> shapes;  // output shapes for batch 1
  std::unordered_map<std::string, int> by_name;
  std::unordered_set<int> kept_dense;  // conv2d / linear nodes set_prunable(false)
  int input = -1;
  int output = -1;

  // Per-step state.
  std::vector<Tensor> outs;
  // Copies of outs[j] in other layouts, made for consumers that read it so
  // (nodes::preferred_input_layout) and shared among them; freed with outs[j].
  std::vector<std::vector<Tensor>> reordered;
  // The layout node i was fed each input in, for its backward.
  std::vector<std::vector<Layout>> fed;
  std::vector<Tensor> diffs;
  std::vector<char> keep_for_backward;
  // Node i is a ReLU whose producer (a BatchNorm or an Add) applied it in
  // the forward (nodes::ReluFusable): its output is the producer's.
  std::vector<char> relu_folded;
  // Node i is an Add whose sum the BatchNorm sum_from[i] computed
  // (nodes::ResidualFusable): its output is that BatchNorm's; -1 elsewhere.
  std::vector<int> sum_from;
  // From the plan of the last forward: BackwardArgs::relu_output candidates
  // (Plan::relu_backward_of); and per ReLU, whether a consumer applied its
  // backward in this backward.
  std::vector<int> relu_backward_of;
  std::vector<char> relu_masked;
  // The last forward's mode, and whether it kept what backward needs (false
  // after a kInference forward and after backward or release()).
  ExecMode mode = ExecMode::kInference;
  bool backward_ready = false;
  int64_t last_peak = 0;
  int64_t step = 0;

  std::shared_ptr<HookRegistry> hooks = std::make_shared<HookRegistry>();
  // The kernel choices of the prunable nodes (nodes/kernel_choice.h), shared
  // with them (add_node).
  std::shared_ptr<nodes::KernelChoiceBook> choices = std::make_shared<nodes::KernelChoiceBook>();

  // What a forward in one mode does, decided from the nodes' traits: which
  // dense stems run on the direct kernels, which producers apply the ReLU
  // after them, which outputs backward keeps. Made once per mode, hook set
  // and sparse state of the layers, and reused while they stay.
  struct Plan {
    ExecMode mode = ExecMode::kInference;
    int64_t hooks_version = -1;
    std::vector<char> runs_sparse;  // per node: a prunable layer on the sparse kernels
    bool fusion = true, padding = true;
    std::vector<char> direct_dense, relu_fused, keep;
    // Per BatchNorm that adds the residual of the Add after it: that Add's
    // index and the residual's producer; -1 elsewhere.
    std::vector<int> residual_add, residual_from;
    // Per node: the ReLU feeding its input 0 whose backward it may apply
    // (BackwardArgs::relu_output), or -1.
    std::vector<int> relu_backward_of;
    // Per convolution: the BatchNorm it forms the batch statistics for, or -1.
    std::vector<int> stats_to;
    // Per sparse convolution: its output laid out with padded channel planes.
    std::vector<char> padded_output;
  };
  std::vector<Plan> plans;  // one per mode at most
  int64_t plans_made = 0;
  bool fusion = true;   // Graph::set_fusion
  bool padding = true;  // Graph::set_padded_planes

  // The plan for `mode`, made or reused (graph_plan.cc).
  const Plan& plan_for(ExecMode mode);

  // Profiling (Graph::set_profiling): per node, indexed like `nodes`.
  struct Timing {
    double forward_s = 0, backward_s = 0;
    int64_t forward_calls = 0, backward_calls = 0, reorders = 0;
  };
  bool profiling = false;
  // Graph::set_parameter_gradients_callback: told of each node's finished
  // parameter gradients during backward.
  std::function<void(const std::vector<Parameter*>&)> on_parameter_gradients;
  std::vector<Timing> timings;

  // outs[j] in `layout`: itself, or a shared reordered copy.
  Tensor output_in(int j, Layout layout) {
    const Tensor& t = outs[j];
    if (to_layout_is_view(t.layout(), layout)) return to_layout(t, layout);
    for (const Tensor& r : reordered[j])
      if (r.layout() == layout) return r;
    reordered[j].push_back(to_layout(t, layout));
    return reordered[j].back();
  }

  void free_output(int j) {
    outs[j] = Tensor();
    reordered[j].clear();
  }

  // The plan's two decisions from traits (graph_plan.cc): whether node i
  // may apply the ReLU after it, and whether a dense stem conv runs on the
  // sparse kernels' direct path.
  bool relu_fusable(int i) const;
  bool stem_feeds_sparse(int i) const;
  // Whether BatchNorm i may add the residual of the Add after it (and that
  // Add's ReLU): the Add's index and the residual's producer, or false.
  bool residual_fusable(int i, int* add, int* from) const;
  // The ReLU whose backward node i may apply, or -1 (Plan::relu_backward_of).
  int relu_backward_candidate(int i) const;
  // The BatchNorm node i may form the batch statistics of, or -1.
  int statistics_candidate(int i) const;
  // Whether convolution i on the sparse kernels may pad its output's channel
  // planes (Plan::padded_output), and whether planes padded in node i's
  // output stay away from every hook.
  bool pads_output(int i, bool direct) const;
  bool padding_stays_inside(int i) const;
  // Whether node i takes padded planes (NodeTraits::padded_planes, or a
  // convolution on the sparse kernels); whether any hook watches it.
  bool takes_padded_planes(int i) const;
  bool watched(int i) const;

  static bool to_layout_is_view(Layout a, Layout b) {
    const auto nchw_like = [](Layout l) { return l == Layout::kPlain || l == Layout::kNCHW; };
    return a == b || (nchw_like(a) && nchw_like(b));
  }

  int check(NodeId id) const {
    if (id.index < 0 || id.index >= static_cast<int>(nodes.size())) {
      throw Error("graph: node id " + std::to_string(id.index) + " does not exist");
    }
    return id.index;
  }
};

}  // namespace sparsetrain
