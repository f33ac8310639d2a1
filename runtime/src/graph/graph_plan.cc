// Execution plans: what a forward in one mode does, from the nodes' traits.
#include <utility>

#include "graph/graph_impl.h"

namespace sparsetrain {

// Whether node i (a BatchNorm or an Add) may apply the ReLU that is its
// only consumer in the forward: nothing else reads its output and no
// forward hook would see the fused tensors (backward runs unfused).
bool Graph::Impl::relu_fusable(int i) const {
  if (nodes::as_relu_fusable(*nodes[i]) == nullptr || consumers[i].size() != 1 || i == output)
    return false;
  const int r = consumers[i][0];
  if (!nodes[r]->traits().relu || inputs[r].size() != 1) return false;
  for (const HookPoint point : {HookPoint::kBeforeForward, HookPoint::kAfterForward})
    if (hooks->any(point, nodes[i]->name()) || hooks->any(point, nodes[r]->name())) return false;
  return true;
}

// Whether node i (a BatchNorm) may compute the Add that is its only
// consumer (nodes::ResidualFusable): the Add's other input (the residual)
// is computed before node i, nothing else reads node i's output, and no
// forward hook watches either node (a hook on the Add's ReLU stops that ReLU
// being fused, relu_fusable, but not the sum).
bool Graph::Impl::residual_fusable(int i, int* add, int* from) const {
  if (nodes::as_residual_fusable(*nodes[i]) == nullptr || consumers[i].size() != 1 || i == output)
    return false;
  const int a = consumers[i][0];
  if (nodes::as_sum_foldable(*nodes[a]) == nullptr || inputs[a].size() != 2) return false;
  const int k = inputs[a][0].index == i ? 1 : 0;
  if (inputs[a][1 - k].index != i) return false;
  const int r = inputs[a][k].index;
  if (r == i || r > i) return false;
  for (const HookPoint point : {HookPoint::kBeforeForward, HookPoint::kAfterForward})
    if (hooks->any(point, nodes[i]->name()) || hooks->any(point, nodes[a]->name())) return false;
  *add = a;
  *from = r;
  return true;
}

// Node i may apply the backward of the ReLU r feeding its input 0 when its
// backward is the last to send r a gradient (it is r's consumer of lowest
// index), r's producer sends nothing else anywhere (r is its only consumer),
// and no backward hook watches r or node i (each must see the gradient it
// would see unfused). Whether the producer already applies the ReLU's
// backward itself (BatchNorm, ReluFusable) is decided per step.
int Graph::Impl::relu_backward_candidate(int i) const {
  if (inputs[i].empty()) return -1;
  const int r = inputs[i][0].index;
  if (r == input || r == output || !nodes[r]->traits().relu || inputs[r].size() != 1) return -1;
  for (const int k : consumers[r])
    if (k < i) return -1;
  const int j = inputs[r][0].index;
  if (j == input || consumers[j].size() != 1) return -1;
  if (hooks->any(HookPoint::kAfterBackward, nodes[r]->name()) ||
      hooks->any(HookPoint::kAfterBackward, nodes[i]->name()))
    return -1;
  return r;
}

// Node i (a convolution) may form the batch statistics of the BatchNorm
// that is its only consumer (nodes::StatisticsProducer) when no forward
// hook watches either: a hook could change the output the statistics
// describe, or expect to see the BatchNorm compute them.
int Graph::Impl::statistics_candidate(int i) const {
  if (nodes::as_statistics_producer(*nodes[i]) == nullptr || consumers[i].size() != 1 ||
      i == output)
    return -1;
  const int b = consumers[i][0];
  if (nodes::as_statistics_consumer(*nodes[b]) == nullptr || inputs[b].size() != 1) return -1;
  for (const HookPoint point : {HookPoint::kBeforeForward, HookPoint::kAfterForward})
    if (hooks->any(point, nodes[i]->name()) || hooks->any(point, nodes[b]->name())) return -1;
  return b;
}

// A dense convolution runs on the direct kernels in kCHWN
// (PrunableNode::set_direct_dense) when it reads the graph input and its
// output reaches, through BatchNorm and ReLU nodes only, nothing but Adds
// and convolutions that run sparse: the activations then enter the sparse
// kernels' layout at the graph input (a few channels) and no reorder sits
// after the stem, in either direction.
bool Graph::Impl::stem_feeds_sparse(int i) const {
  if (!nodes[i]->traits().convolution || inputs[i].size() != 1 || inputs[i][0].index != input)
    return false;
  int j = i;
  while (consumers[j].size() == 1 && j != output) {
    if (!nodes[consumers[j][0]]->traits().layout_transparent) break;
    j = consumers[j][0];
  }
  if (j == output) return false;
  bool sparse = false;
  for (const int k : consumers[j]) {
    if (nodes[k]->traits().sums_inputs) continue;
    const nodes::PrunableNode* p = nodes::as_prunable(*nodes[k]);
    if (p == nullptr || !nodes[k]->traits().convolution || !p->runs_sparse()) return false;
    sparse = true;
  }
  return sparse;
}

bool Graph::Impl::takes_padded_planes(int i) const {
  if (nodes[i]->traits().padded_planes) return true;
  const nodes::PrunableNode* p = nodes::as_prunable(*nodes[i]);
  return p != nullptr && nodes[i]->traits().convolution && (p->runs_sparse() || p->runs_direct());
}

bool Graph::Impl::watched(int i) const {
  for (const HookPoint point :
       {HookPoint::kBeforeForward, HookPoint::kAfterForward, HookPoint::kAfterBackward})
    if (hooks->any(point, nodes[i]->name())) return true;
  return false;
}

// Padded planes in node i's output reach no hook: no consumer is watched,
// and those that hand the planes on (NodeTraits::padded_planes: BatchNorm,
// ReLU, Add) hand them to unwatched nodes only, and so on. Convolutions end
// the walk (their output is their own), and a node that does not take
// padded planes gets a packed copy from the executor.
bool Graph::Impl::padding_stays_inside(int i) const {
  for (const int k : consumers[i]) {
    if (watched(k)) return false;
    if (nodes[k]->traits().padded_planes && !padding_stays_inside(k)) return false;
  }
  return true;
}

// A convolution on the sparse kernels (compressed, or the dense stem on the
// direct path: `direct`, as the plan decides) pads its output's channel
// planes (chwn_padded_plane: CIFAR's power-of-two planes otherwise put the
// same position of every channel into the same cache sets) when every
// consumer takes padded planes and no hook would see them. In ResNet-20 the
// padding then runs from the stem to the pooling, which gets a packed copy
// of the last block's output.
bool Graph::Impl::pads_output(int i, bool direct) const {
  if (!nodes[i]->traits().convolution || !(direct || takes_padded_planes(i)) || i == output ||
      consumers[i].empty() || watched(i))
    return false;
  for (const int k : consumers[i])
    if (!takes_padded_planes(k)) return false;
  return padding_stays_inside(i);
}

const Graph::Impl::Plan& Graph::Impl::plan_for(ExecMode mode) {
  const int n = static_cast<int>(nodes.size());
  std::vector<char> sparse(n, 0);
  for (int i = 0; i < n; ++i)
    if (const nodes::PrunableNode* p = nodes::as_prunable(*nodes[i])) sparse[i] = p->runs_sparse();
  for (const Plan& p : plans)
    if (p.mode == mode && p.hooks_version == hooks->version() && p.runs_sparse == sparse &&
        p.fusion == fusion && p.padding == padding)
      return p;
  std::erase_if(plans, [mode](const Plan& p) { return p.mode == mode; });
  Plan& p = plans.emplace_back();
  p.mode = mode;
  p.hooks_version = hooks->version();
  p.runs_sparse = std::move(sparse);
  p.fusion = fusion;
  p.padding = padding;
  p.direct_dense.assign(n, 0);
  p.relu_fused.assign(n, 0);
  p.keep.assign(n, 0);
  p.residual_add.assign(n, -1);
  p.residual_from.assign(n, -1);
  p.relu_backward_of.assign(n, -1);
  p.stats_to.assign(n, -1);
  p.padded_output.assign(n, 0);
  const bool fuse = mode == ExecMode::kTrain && fusion;
  for (int i = 0; i < n; ++i) {
    p.direct_dense[i] = stem_feeds_sparse(i);
    p.relu_fused[i] = fuse && relu_fusable(i);
    if (int a, r; fuse && residual_fusable(i, &a, &r)) {
      p.residual_add[i] = a;
      p.residual_from[i] = r;
    }
    if (fuse) p.relu_backward_of[i] = relu_backward_candidate(i);
    if (fuse) p.stats_to[i] = statistics_candidate(i);
    if (fuse && padding) p.padded_output[i] = pads_output(i, p.direct_dense[i] != 0);
    if (mode == ExecMode::kInference) continue;
    const Saves s = nodes[i]->saves();
    if (s.output) p.keep[i] = 1;
    if (s.inputs)
      for (NodeId in : inputs[i]) p.keep[in.index] = 1;
  }
  ++plans_made;
  return p;
}

}  // namespace sparsetrain
