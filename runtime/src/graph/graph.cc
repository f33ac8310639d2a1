#include "sparsetrain/graph.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <unordered_map>

#include "graph/graph_impl.h"
#include "kernels/eltwise/eltwise.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/optim.h"

namespace sparsetrain {

namespace {

// into = into + add, in fresh storage: a node's backward may return tensors
// that alias its diff_dst or each other (Add passes its gradient through to
// both inputs), so gradients are never summed in place.
// The sum is packed (a node takes a gradient in its output's planes itself,
// to_layout_of).
void accumulate(Tensor& into, const Tensor& add) {
  const Tensor base = into.packed();
  const Tensor same = to_layout(add, into.layout()).packed();
  SPARSETRAIN_ASSERT(same.numel() == base.numel());
  Tensor sum = Tensor::empty(base.shape(), base.layout());
  kernels::eltwise_kernels().pick().add_forward(sum.data(), base.data(), same.data(), sum.numel());
  into = std::move(sum);
}

HookEvent make_event(HookPoint point, const std::string& node, const char* type, int64_t step,
                     bool training) {
  HookEvent ev;
  ev.point = point;
  ev.node = node;
  ev.node_type = type;
  ev.step = step;
  ev.training = training;
  return ev;
}

}  // namespace

Graph::Graph() : impl_(std::make_unique<Impl>()) {}
Graph::~Graph() = default;
Graph::Graph(Graph&&) noexcept = default;
Graph& Graph::operator=(Graph&&) noexcept = default;

NodeId Graph::add_node(std::unique_ptr<Node> node, const std::vector<NodeId>& inputs) {
  Impl& g = *impl_;
  const std::string name = node->name();
  if (name.empty()) throw Error("graph: a node needs a name");
  if (g.by_name.count(name)) throw Error("graph: two nodes are named '" + name + "'");
  std::vector<Shape> in_shapes;
  for (NodeId id : inputs) in_shapes.push_back(g.shapes[g.check(id)]);
  Shape out = node->output_shape(in_shapes);
  const int index = static_cast<int>(g.nodes.size());
  if (nodes::PrunableNode* p = nodes::as_prunable(*node)) p->set_choice_book(g.choices);
  for (NodeId id : inputs) g.consumers[id.index].push_back(index);
  g.nodes.push_back(std::move(node));
  g.inputs.push_back(inputs);
  g.consumers.emplace_back();
  g.shapes.push_back(std::move(out));
  g.by_name[name] = index;
  g.output = index;
  return {index};
}

NodeId Graph::input(const std::string& name, Shape sample_shape) {
  if (impl_->input >= 0) throw Error("graph: only one input node is supported ('" + name + "')");
  Shape with_batch{1};
  with_batch.insert(with_batch.end(), sample_shape.begin(), sample_shape.end());
  auto node = nodes::make_input(name, sample_shape);
  // The input node checks the sample shape; feed it its own shape.
  Impl& g = *impl_;
  if (g.by_name.count(name)) throw Error("graph: two nodes are named '" + name + "'");
  const int index = static_cast<int>(g.nodes.size());
  g.nodes.push_back(std::move(node));
  g.inputs.emplace_back();
  g.consumers.emplace_back();
  g.shapes.push_back(with_batch);
  g.by_name[name] = index;
  g.input = index;
  g.output = index;
  return {index};
}

NodeId Graph::conv2d(const std::string& name, NodeId x, const Conv2dOptions& options) {
  const Shape& s = impl_->shapes[impl_->check(x)];
  if (s.size() != 4) {
    throw Error("conv2d '" + name + "': input must be 4-D (N, C, H, W), got " + shape_to_string(s));
  }
  return add_node(nodes::make_conv2d(name, s[1], options), {x});
}

NodeId Graph::linear(const std::string& name, NodeId x, const LinearOptions& options) {
  const Shape& s = impl_->shapes[impl_->check(x)];
  if (s.size() != 2) {
    throw Error("linear '" + name + "': input must be 2-D (N, F), got " + shape_to_string(s) +
                "; add a flatten node before it");
  }
  return add_node(nodes::make_linear(name, s[1], options), {x});
}

NodeId Graph::batchnorm2d(const std::string& name, NodeId x, const BatchNormOptions& options) {
  const Shape& s = impl_->shapes[impl_->check(x)];
  if (s.size() != 4) {
    throw Error("batchnorm2d '" + name + "': input must be 4-D, got " + shape_to_string(s));
  }
  return add_node(nodes::make_batchnorm2d(name, s[1], options), {x});
}

NodeId Graph::relu(const std::string& name, NodeId x) {
  return add_node(nodes::make_relu(name), {x});
}

NodeId Graph::maxpool2d(const std::string& name, NodeId x, const PoolOptions& options) {
  return add_node(nodes::make_maxpool2d(name, options), {x});
}

NodeId Graph::avgpool2d(const std::string& name, NodeId x, const PoolOptions& options) {
  return add_node(nodes::make_avgpool2d(name, options), {x});
}

NodeId Graph::global_avgpool(const std::string& name, NodeId x) {
  return add_node(nodes::make_global_avgpool(name), {x});
}

NodeId Graph::add(const std::string& name, NodeId a, NodeId b) {
  return add_node(nodes::make_add(name), {a, b});
}

NodeId Graph::flatten(const std::string& name, NodeId x) {
  return add_node(nodes::make_flatten(name), {x});
}

NodeId Graph::dropout(const std::string& name, NodeId x, float p) {
  return add_node(nodes::make_dropout(name, p), {x});
}

void Graph::set_output(NodeId node) { impl_->output = impl_->check(node); }

void Graph::initialize(uint64_t seed) {
  Rng rng(seed);
  for (auto& node : impl_->nodes) node->reset_parameters(rng);
}

int Graph::size() const { return static_cast<int>(impl_->nodes.size()); }
Node& Graph::node(NodeId id) { return *impl_->nodes[impl_->check(id)]; }

Node& Graph::node(const std::string& name) {
  const NodeId id = find(name);
  if (id.index < 0) throw Error("graph: no node named '" + name + "'");
  return node(id);
}

NodeId Graph::find(const std::string& name) const {
  auto it = impl_->by_name.find(name);
  return {it == impl_->by_name.end() ? -1 : it->second};
}

const std::vector<NodeId>& Graph::inputs_of(NodeId id) const {
  return impl_->inputs[impl_->check(id)];
}

Shape Graph::shape_of(NodeId id, int64_t batch) const {
  Shape s = impl_->shapes[impl_->check(id)];
  s[0] = batch;
  return s;
}

Shape Graph::input_shape() const {
  if (impl_->input < 0) throw Error("graph: no input node");
  const Shape& s = impl_->shapes[impl_->input];
  return Shape(s.begin() + 1, s.end());
}

NodeId Graph::output() const { return {impl_->output}; }

std::vector<Parameter*> Graph::parameters() {
  std::vector<Parameter*> all;
  for (auto& node : impl_->nodes) {
    for (Parameter* p : node->parameters()) all.push_back(p);
  }
  return all;
}

Parameter& Graph::parameter(const std::string& name) {
  for (Parameter* p : parameters())
    if (p->name == name) return *p;
  throw Error("graph: no parameter named '" + name + "'");
}

int64_t Graph::parameter_count(bool include_buffers) {
  int64_t n = 0;
  for (Parameter* p : parameters())
    if (include_buffers || p->trainable()) n += p->dense_numel();
  return n;
}

std::string Graph::summary() {
  std::ostringstream os;
  os << "node                     type            output            params  detail\n";
  for (std::size_t i = 0; i < impl_->nodes.size(); ++i) {
    Node& n = *impl_->nodes[i];
    int64_t params = 0;
    for (Parameter* p : n.parameters())
      if (p->trainable()) params += p->value.numel();
    char line[256];
    std::snprintf(line, sizeof line, "%-24s %-15s %-17s %7lld  %s\n", n.name().c_str(), n.type(),
                  shape_to_string(impl_->shapes[i]).c_str(), static_cast<long long>(params),
                  n.describe().c_str());
    os << line;
  }
  os << "trainable parameters: " << parameter_count() << "\n";
  return os.str();
}

const char* exec_mode_name(ExecMode mode) {
  // Indexed by the enumerator, in declaration order.
  constexpr const char* kNames[] = {"train", "inference", "probe"};
  return kNames[static_cast<int>(mode)];
}

Tensor Graph::forward(const Tensor& x, bool training, uint64_t seed) {
  return forward(x, training ? ExecMode::kTrain : ExecMode::kInference, seed);
}

ExecMode Graph::last_mode() const { return impl_->mode; }

int64_t Graph::plans_made() const { return impl_->plans_made; }
void Graph::set_fusion(bool on) { impl_->fusion = on; }
bool Graph::fusion() const { return impl_->fusion; }
void Graph::set_padded_planes(bool on) { impl_->padding = on; }
bool Graph::padded_planes() const { return impl_->padding; }

int Graph::set_frozen(const std::string& pattern, bool frozen) {
  int count = 0;
  for (Parameter* p : parameters()) {
    if (!p->trainable() || !glob_match(pattern, p->name)) continue;
    p->frozen = frozen;
    ++count;
  }
  if (count == 0) {
    throw Error("graph: no trainable parameter matches '" + pattern + "' (parameters are named " +
                "<node>.<field>, e.g. conv1.weight; '*' matches any run)");
  }
  return count;
}

Tensor Graph::forward(const Tensor& x, ExecMode mode, uint64_t seed) {
  const bool training = mode == ExecMode::kTrain;
  const bool keep = mode != ExecMode::kInference;
  Impl& g = *impl_;
  if (g.input < 0) throw Error("graph: no input node");
  const int n = static_cast<int>(g.nodes.size());
  // The input node validates the shape against the model.
  g.nodes[g.input]->output_shape({x.shape()});
  reset_peak_memory();

  g.outs.assign(n, Tensor());
  g.reordered.assign(n, {});
  g.fed.assign(n, {});
  g.diffs.assign(n, Tensor());
  if (g.profiling) g.timings.resize(n);
  g.relu_folded.assign(n, 0);
  g.sum_from.assign(n, -1);
  const Impl::Plan& plan = g.plan_for(mode);
  for (int i = 0; i < n; ++i) {
    if (nodes::PrunableNode* p = nodes::as_prunable(*g.nodes[i])) {
      p->set_direct_dense(plan.direct_dense[i]);
      p->set_padded_output(plan.padded_output[i]);
    }
    if (nodes::ReluFusable* f = nodes::as_relu_fusable(*g.nodes[i]))
      f->set_relu_fusion(plan.relu_fused[i]);
    // A convolution that forms the next BatchNorm's batch statistics (none
    // left from an earlier forward count).
    if (nodes::StatisticsConsumer* c = nodes::as_statistics_consumer(*g.nodes[i]))
      c->statistics_slot()->of = nullptr;
    if (nodes::StatisticsProducer* p = nodes::as_statistics_producer(*g.nodes[i])) {
      const int b = plan.stats_to[i];
      p->set_output_statistics(
          b >= 0 ? nodes::as_statistics_consumer(*g.nodes[b])->statistics_slot() : nullptr);
    }
  }
  g.keep_for_backward = plan.keep;
  g.relu_backward_of = plan.relu_backward_of;
  g.mode = mode;
  g.backward_ready = keep;
  std::vector<int> remaining(n);
  for (int i = 0; i < n; ++i) remaining[i] = static_cast<int>(g.consumers[i].size());

  const bool have_hooks = !g.hooks->empty();
  std::vector<Tensor> in;
  for (int i = 0; i < n; ++i) {
    Node& node = *g.nodes[i];
    if (i == g.input) {
      g.outs[i] =
          x.rank() == 4 && x.layout() == Layout::kPlain ? x.reshaped(x.shape(), Layout::kNCHW) : x;
    } else if (const int j = g.inputs[i].empty() ? -1 : g.inputs[i][0].index;
               j >= 0 && plan.relu_fused[j] && nodes::as_relu_fusable(*g.nodes[j])->relu_fused()) {
      // The node before this ReLU has applied it.
      g.outs[i] = g.outs[j];
      g.fed[i].push_back(g.outs[j].layout());
      g.relu_folded[i] = 1;
      if (g.profiling) ++g.timings[i].forward_calls;
    } else if (g.sum_from[i] >= 0) {
      // The BatchNorm before this Add has computed its sum (and its ReLU).
      const int j = g.sum_from[i];
      g.outs[i] = g.outs[j];
      for (std::size_t k = 0; k < g.inputs[i].size(); ++k) g.fed[i].push_back(g.outs[j].layout());
      nodes::as_sum_foldable(node)->record_folded_forward(
          g.outs[j].layout(), nodes::as_residual_fusable(*g.nodes[j])->residual_relu());
      if (g.profiling) ++g.timings[i].forward_calls;
    } else {
      in.clear();
      for (NodeId id : g.inputs[i]) in.push_back(g.outs[id.index]);
      if (have_hooks && g.hooks->any(HookPoint::kBeforeForward, node.name())) {
        HookEvent ev =
            make_event(HookPoint::kBeforeForward, node.name(), node.type(), g.step, training);
        ev.inputs = in;
        ev.parameters = node.parameters();
        g.hooks->fire(ev);
      }
      const auto t0 =
          g.profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      const int64_t reorders0 = g.profiling ? reorder_count() : 0;
      // Feed each input in the layout the node reads it in, reordering each
      // producer's output at most once per layout (inputs a hook replaced are
      // left to the node).
      for (std::size_t k = 0; k < in.size(); ++k) {
        const Layout want = nodes::preferred_input_layout(node, in, k);
        const int j = g.inputs[i][k].index;
        if (in[k].data() == g.outs[j].data() && in[k].layout() != want)
          in[k] = g.output_in(j, want);
        g.fed[i].push_back(in[k].layout());
      }
      // Padded channel planes only reach the nodes that take them (the
      // plan sees to it; this keeps any other node safe).
      if (!g.takes_padded_planes(i))
        for (Tensor& t : in)
          if (t.padded()) t = t.packed();
      // A BatchNorm that adds the residual of the Add after it: that residual
      // in the BatchNorm's layout (as the Add would read it), when the Add's
      // output takes that layout.
      nodes::ResidualFusable* summing =
          plan.residual_add[i] >= 0 ? nodes::as_residual_fusable(node) : nullptr;
      Tensor residual;
      if (summing != nullptr) {
        const int a = plan.residual_add[i], r = plan.residual_from[i];
        const bool first = g.inputs[a][0].index == i;
        if (first || Impl::to_layout_is_view(g.outs[r].layout(), in[0].layout()))
          residual = g.output_in(r, in[0].layout());
        summing->set_residual_fusion(residual.defined() ? &residual : nullptr,
                                     plan.relu_fused[a] != 0);
      }
      ForwardArgs args;
      args.inputs = in;
      args.training = training;
      args.keep_for_backward = keep;
      args.seed = seed;
      g.outs[i] = node.forward(args);
      if (summing != nullptr) {
        summing->set_residual_fusion(nullptr, false);
        if (summing->residual_fused()) g.sum_from[plan.residual_add[i]] = i;
      }
      if (!keep) node.clear_saved();
      if (g.profiling) {
        Impl::Timing& t = g.timings[i];
        t.forward_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        t.reorders += reorder_count() - reorders0;
        ++t.forward_calls;
      }
    }
    if (have_hooks && g.hooks->any(HookPoint::kAfterForward, node.name())) {
      HookEvent ev =
          make_event(HookPoint::kAfterForward, node.name(), node.type(), g.step, training);
      if (i != g.input) ev.inputs = in;
      ev.output = &g.outs[i];
      ev.parameters = node.parameters();
      g.hooks->fire(ev);
    }
    in.clear();
    for (NodeId id : g.inputs[i]) {
      const int j = id.index;
      if (--remaining[j] == 0 && !g.keep_for_backward[j] && j != g.output) g.free_output(j);
    }
  }
  g.last_peak = memory_stats().peak_bytes;
  // Graph outputs are plain (N, K) or NCHW, whatever the last node produced.
  const Tensor& out = g.outs[g.output];
  return to_layout(out, out.rank() == 4 ? Layout::kNCHW : Layout::kPlain);
}

Tensor Graph::backward(const Tensor& diff_output, bool want_input_grad) {
  return backward(diff_output, BackwardOptions{.param_grads = true, .input_grad = want_input_grad});
}

Tensor Graph::backward(const Tensor& diff_output, const BackwardOptions& options) {
  Impl& g = *impl_;
  if (!g.backward_ready || g.outs.empty()) {
    throw Error(std::string("graph: backward needs a preceding forward in train or probe mode") +
                (g.mode == ExecMode::kInference ? " (the last one ran in inference mode)" : ""));
  }
  const bool want_input_grad = options.input_grad;
  // A probe's backward never touches a parameter's gradient.
  const bool param_grads = options.param_grads && g.mode == ExecMode::kTrain;
  const int n = static_cast<int>(g.nodes.size());
  const Tensor& out = g.outs[g.output];
  if (diff_output.shape() != out.shape()) {
    throw Error("graph: backward got a gradient of shape " + diff_output.shape_string() +
                " for an output of shape " + out.shape_string());
  }
  const bool input_grad = want_input_grad || g.hooks->wants_input_grad();
  const bool have_hooks = !g.hooks->empty();
  g.diffs[g.output] = diff_output;
  g.relu_masked.assign(n, 0);
  if (g.profiling) g.timings.resize(n);

  std::vector<Tensor> in;
  std::vector<char> need;
  std::vector<Tensor> sum_into;
  for (int i = n - 1; i >= 0; --i) {
    if (i == g.input) break;
    if (!g.diffs[i].defined()) {
      g.nodes[i]->clear_saved();
      continue;
    }
    Node& node = *g.nodes[i];
    // A ReLU whose backward another node applies: its gradient goes to its
    // producer as it is, and nothing of it runs.
    const auto hand_to_producer = [&g, &node, i] {
      g.diffs[g.inputs[i][0].index] = std::move(g.diffs[i]);
      node.clear_saved();
      g.diffs[i] = Tensor();
      if (i != g.output) g.free_output(i);
      if (g.profiling) ++g.timings[i].backward_calls;
    };
    if (g.relu_masked[i]) {
      // A consumer has applied it (BackwardArgs::relu_output).
      const int j = g.inputs[i][0].index;
      if (g.relu_folded[i]) nodes::as_relu_fusable(*g.nodes[j])->set_relu_fusion(false);
      hand_to_producer();
      continue;
    }
    // A folded ReLU: the producer masks the gradient itself when it can and
    // no hook watches the ReLU's backward; otherwise the ReLU runs its own
    // backward (from its output, the producer's fused one) and the producer
    // a plain one (nodes.h).
    if (g.relu_folded[i]) {
      const int j = g.inputs[i][0].index;
      nodes::ReluFusable* producer = nodes::as_relu_fusable(*g.nodes[j]);
      if (producer->fuses_relu_backward() && !g.diffs[j].defined() &&
          !(have_hooks && g.hooks->any(HookPoint::kAfterBackward, node.name()))) {
        hand_to_producer();
        continue;
      }
      producer->set_relu_fusion(false);
    }
    const Saves saves = node.saves();
    in.clear();
    need.clear();
    for (std::size_t k = 0; k < g.inputs[i].size(); ++k) {
      const int j = g.inputs[i][k].index;
      Tensor saved;
      if (saves.inputs) saved = k < g.fed[i].size() ? g.output_in(j, g.fed[i][k]) : g.outs[j];
      if (saved.padded() && !g.takes_padded_planes(i)) saved = saved.packed();
      in.push_back(std::move(saved));
      need.push_back(j != g.input || input_grad);
    }
    const auto t0 =
        g.profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    const int64_t reorders0 = g.profiling ? reorder_count() : 0;
    BackwardArgs args;
    args.inputs = in;
    args.output = saves.output ? &g.outs[i] : nullptr;
    // A gradient with padded planes only for a node that takes them.
    const Tensor packed_diff =
        g.diffs[i].padded() && !g.takes_padded_planes(i) ? g.diffs[i].packed() : Tensor();
    args.diff_dst = packed_diff.defined() ? &packed_diff : &g.diffs[i];
    args.need_diff_src = need;
    args.diffs_may_share = !(have_hooks && g.hooks->any(HookPoint::kAfterBackward, node.name()));
    args.param_grads = param_grads;
    // The gradients already summed for this node's inputs, offered to the
    // node to add into in place (BackwardArgs::sum_into): only storage no one
    // else holds, and each input's once.
    sum_into.assign(g.inputs[i].size(), Tensor());
    if (args.diffs_may_share) {
      for (std::size_t k = 0; k < g.inputs[i].size(); ++k) {
        Tensor& into = g.diffs[g.inputs[i][k].index];
        if (!need[k] || !into.sole_owner()) continue;
        sum_into[k] = into;  // from here on shared: a repeated input is offered once
      }
    }
    args.sum_into = sum_into;
    // The ReLU feeding input 0, when this node may apply its backward: the
    // ReLU's producer does not mask by itself, and this node's gradient
    // completes the ReLU's (the others' are in sum_into, or there are none).
    bool relu_applied = false;
    if (const int r = g.relu_backward_of.empty() ? -1 : g.relu_backward_of[i]; r >= 0) {
      const int j = g.inputs[r][0].index;
      const bool producer_masks =
          g.relu_folded[r] && nodes::as_relu_fusable(*g.nodes[j])->fuses_relu_backward();
      // (Backward hooks attached after the forward count too.)
      const bool watched =
          have_hooks && (g.hooks->any(HookPoint::kAfterBackward, node.name()) ||
                         g.hooks->any(HookPoint::kAfterBackward, g.nodes[r]->name()));
      if (!producer_masks && !watched && g.outs[r].defined() &&
          (!g.diffs[r].defined() || sum_into[0].defined())) {
        args.relu_output = &g.outs[r];
        args.relu_applied = &relu_applied;
      }
    }
    std::vector<Tensor> diff_src = node.backward(args);
    if (relu_applied) g.relu_masked[g.relu_backward_of[i]] = 1;
    sum_into.clear();
    if (param_grads && g.on_parameter_gradients) {
      const std::vector<Parameter*> node_params = node.parameters();
      if (!node_params.empty()) g.on_parameter_gradients(node_params);
    }
    SPARSETRAIN_ASSERT(diff_src.size() == g.inputs[i].size());
    double backward_s = 0;
    if (g.profiling) {
      backward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    if (have_hooks && g.hooks->any(HookPoint::kAfterBackward, node.name())) {
      HookEvent ev = make_event(HookPoint::kAfterBackward, node.name(), node.type(), g.step,
                                g.mode == ExecMode::kTrain);
      ev.inputs = in;
      ev.output = saves.output ? &g.outs[i] : nullptr;
      ev.diff_dst = &g.diffs[i];
      ev.diff_src = diff_src;
      ev.parameters = node.parameters();
      g.hooks->fire(ev);
    }
    const auto t1 =
        g.profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    for (std::size_t k = 0; k < diff_src.size(); ++k) {
      if (!need[k] || !diff_src[k].defined()) continue;
      Tensor& into = g.diffs[g.inputs[i][k].index];
      if (!into.defined()) {
        into = std::move(diff_src[k]);
      } else if (diff_src[k].shares_storage(into)) {
        // The node added its gradient into the sum in place.
      } else {
        accumulate(into, diff_src[k]);
      }
    }
    node.clear_saved();
    g.diffs[i] = Tensor();
    if (i != g.output) g.free_output(i);
    if (g.profiling) {
      Impl::Timing& t = g.timings[i];
      t.backward_s +=
          backward_s + std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
      t.reorders += reorder_count() - reorders0;
      ++t.backward_calls;
    }
  }
  g.last_peak = std::max(g.last_peak, memory_stats().peak_bytes);
  // In the layout of the graph input (NCHW or plain), like the output.
  Tensor result;
  if (input_grad && g.diffs[g.input].defined()) {
    const Tensor& d = g.diffs[g.input];
    result = to_layout(d, d.rank() == 4 ? Layout::kNCHW : Layout::kPlain);
  }
  release();
  return result;
}

void Graph::release() {
  Impl& g = *impl_;
  for (auto& node : g.nodes) node->clear_saved();
  g.outs.clear();
  g.reordered.clear();
  g.fed.clear();
  g.diffs.clear();
  g.backward_ready = false;
}

int64_t Graph::last_peak_bytes() const { return impl_->last_peak; }

void Graph::set_profiling(bool on) { impl_->profiling = on; }
bool Graph::profiling() const { return impl_->profiling; }
void Graph::reset_profile() { impl_->timings.assign(impl_->nodes.size(), Impl::Timing{}); }

std::vector<NodeTiming> Graph::profile() const {
  const Impl& g = *impl_;
  std::vector<NodeTiming> out;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (static_cast<int>(i) == g.input) continue;
    Node& node = *g.nodes[i];
    NodeTiming t;
    t.name = node.name();
    t.type = node.type();
    if (i < g.timings.size()) {
      const Impl::Timing& s = g.timings[i];
      t.forward_ms = 1e3 * s.forward_s;
      t.backward_ms = 1e3 * s.backward_s;
      t.forward_calls = s.forward_calls;
      t.backward_calls = s.backward_calls;
      t.reorders = s.reorders;
    }
    if (const nodes::PrunableNode* p = nodes::as_prunable(node)) {
      t.sparse = p->runs_sparse();
      t.direct = p->runs_direct();
      t.padded_output = p->padded_output();
    }
    out.push_back(std::move(t));
  }
  return out;
}

void Graph::set_step(int64_t step) {
  impl_->step = step;
  impl_->choices->set_step(step);
}
int64_t Graph::step() const { return impl_->step; }

HookHandle Graph::add_hook(HookPoint point, const std::string& pattern, HookFn fn,
                           HookOptions options) {
  if (!fn) throw Error("graph: add_hook needs a callback");
  const int64_t id = impl_->hooks->add(point, pattern, std::move(fn), options);
  return HookHandle(impl_->hooks, id);
}

void Graph::set_parameter_gradients_callback(ParameterGradientsFn fn) {
  impl_->on_parameter_gradients = std::move(fn);
}

void Graph::fire(HookPoint point, const std::string& phase) {
  if (impl_->hooks->empty()) return;
  HookEvent ev = make_event(point, "", "", impl_->step, true);
  ev.parameters = parameters();
  ev.phase = phase;
  impl_->hooks->fire(ev);
}

// --- sparse layers (the rest: graph_sparse.cc) -----------------------------------

void Graph::set_sparse_kernels(const std::string& mode) {
  const nodes::SparseKernels kernels = nodes::parse_sparse_kernels(mode);
  for (auto& n : impl_->nodes)
    if (nodes::PrunableNode* p = nodes::as_prunable(*n)) p->set_kernels(kernels);
}

int Graph::sparse_layer_count() {
  int count = 0;
  for (auto& n : impl_->nodes)
    if (nodes::PrunableNode* p = nodes::as_prunable(*n); p != nullptr && p->runs_sparse()) ++count;
  return count;
}

int Graph::prunable_layer_count() const {
  int count = 0;
  for (const auto& n : impl_->nodes)
    if (nodes::as_prunable(*n) != nullptr) ++count;
  return count;
}

namespace {
int prunable_node(const std::unordered_map<std::string, int>& by_name,
                  const std::vector<std::unique_ptr<Node>>& all, const std::string& node_name) {
  const auto it = by_name.find(node_name);
  if (it == by_name.end() || nodes::as_prunable(*all[it->second]) == nullptr) {
    throw Error("set_prunable: '" + node_name + "' is not a conv2d or linear node");
  }
  return it->second;
}
}  // namespace

void Graph::set_prunable(const std::string& node_name, bool prunable) {
  const int i = prunable_node(impl_->by_name, impl_->nodes, node_name);
  if (prunable) {
    impl_->kept_dense.erase(i);
  } else {
    impl_->kept_dense.insert(i);
  }
}

bool Graph::prunable(const std::string& node_name) const {
  return impl_->kept_dense.count(prunable_node(impl_->by_name, impl_->nodes, node_name)) == 0;
}

}  // namespace sparsetrain
