#include "sparsetrain/graph.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <unordered_map>

#include "hooks_internal.h"
#include "kernels/eltwise/eltwise.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/optim.h"

namespace sparsetrain {

struct Graph::Impl {
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<std::vector<NodeId>> inputs;
  std::vector<std::vector<int>> consumers;
  std::vector<Shape> shapes;  // output shapes for batch 1
  std::unordered_map<std::string, int> by_name;
  int input = -1;
  int output = -1;

  // Per-step state.
  std::vector<Tensor> outs;
  std::vector<Tensor> diffs;
  std::vector<char> keep_for_backward;
  bool forward_was_training = false;
  int64_t last_peak = 0;
  int64_t step = 0;

  std::shared_ptr<HookRegistry> hooks = std::make_shared<HookRegistry>();

  int check(NodeId id) const {
    if (id.index < 0 || id.index >= static_cast<int>(nodes.size())) {
      throw Error("graph: node id " + std::to_string(id.index) + " does not exist");
    }
    return id.index;
  }
};

namespace {

// into = into + add, in fresh storage: a node's backward may return tensors
// that alias its diff_dst or each other (Add passes its gradient through to
// both inputs), so gradients are never summed in place.
void accumulate(Tensor& into, const Tensor& add) {
  const Tensor same = to_layout(add, into.layout());
  SPARSETRAIN_ASSERT(same.numel() == into.numel());
  Tensor sum = Tensor::empty(into.shape(), into.layout());
  kernels::eltwise_kernel().add_forward(sum.data(), into.data(), same.data(), sum.numel());
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

Tensor Graph::forward(const Tensor& x, bool training, uint64_t seed) {
  Impl& g = *impl_;
  if (g.input < 0) throw Error("graph: no input node");
  const int n = static_cast<int>(g.nodes.size());
  // The input node validates the shape against the model.
  g.nodes[g.input]->output_shape({x.shape()});
  reset_peak_memory();

  g.outs.assign(n, Tensor());
  g.diffs.assign(n, Tensor());
  g.keep_for_backward.assign(n, 0);
  g.forward_was_training = training;
  if (training) {
    for (int i = 0; i < n; ++i) {
      const Saves s = g.nodes[i]->saves();
      if (s.output) g.keep_for_backward[i] = 1;
      if (s.inputs)
        for (NodeId in : g.inputs[i]) g.keep_for_backward[in.index] = 1;
    }
  }
  std::vector<int> remaining(n);
  for (int i = 0; i < n; ++i) remaining[i] = static_cast<int>(g.consumers[i].size());

  const bool have_hooks = !g.hooks->empty();
  std::vector<Tensor> in;
  for (int i = 0; i < n; ++i) {
    Node& node = *g.nodes[i];
    if (i == g.input) {
      g.outs[i] =
          x.rank() == 4 && x.layout() == Layout::kPlain ? x.reshaped(x.shape(), Layout::kNCHW) : x;
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
      ForwardArgs args;
      args.inputs = in;
      args.training = training;
      args.seed = seed;
      g.outs[i] = node.forward(args);
      if (!training) node.clear_saved();
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
      if (--remaining[j] == 0 && !g.keep_for_backward[j] && j != g.output) g.outs[j] = Tensor();
    }
  }
  g.last_peak = memory_stats().peak_bytes;
  const Tensor& out = g.outs[g.output];
  return out.layout() == Layout::kCN ? to_layout(out, Layout::kPlain) : out;
}

Tensor Graph::backward(const Tensor& diff_output, bool want_input_grad) {
  Impl& g = *impl_;
  if (!g.forward_was_training || g.outs.empty()) {
    throw Error("graph: backward needs a preceding forward with training = true");
  }
  const int n = static_cast<int>(g.nodes.size());
  const Tensor& out = g.outs[g.output];
  if (diff_output.shape() != out.shape()) {
    throw Error("graph: backward got a gradient of shape " + diff_output.shape_string() +
                " for an output of shape " + out.shape_string());
  }
  const bool input_grad = want_input_grad || g.hooks->wants_input_grad();
  const bool have_hooks = !g.hooks->empty();
  g.diffs[g.output] = diff_output;

  std::vector<Tensor> in;
  std::vector<char> need;
  for (int i = n - 1; i >= 0; --i) {
    if (i == g.input) break;
    if (!g.diffs[i].defined()) {
      g.nodes[i]->clear_saved();
      continue;
    }
    Node& node = *g.nodes[i];
    const Saves saves = node.saves();
    in.clear();
    need.clear();
    for (NodeId id : g.inputs[i]) {
      in.push_back(saves.inputs ? g.outs[id.index] : Tensor());
      need.push_back(id.index != g.input || input_grad);
    }
    BackwardArgs args;
    args.inputs = in;
    args.output = saves.output ? &g.outs[i] : nullptr;
    args.diff_dst = &g.diffs[i];
    args.need_diff_src = need;
    std::vector<Tensor> diff_src = node.backward(args);
    SPARSETRAIN_ASSERT(diff_src.size() == g.inputs[i].size());
    if (have_hooks && g.hooks->any(HookPoint::kAfterBackward, node.name())) {
      HookEvent ev = make_event(HookPoint::kAfterBackward, node.name(), node.type(), g.step, true);
      ev.inputs = in;
      ev.output = saves.output ? &g.outs[i] : nullptr;
      ev.diff_dst = &g.diffs[i];
      ev.diff_src = diff_src;
      ev.parameters = node.parameters();
      g.hooks->fire(ev);
    }
    for (std::size_t k = 0; k < diff_src.size(); ++k) {
      if (!need[k] || !diff_src[k].defined()) continue;
      Tensor& into = g.diffs[g.inputs[i][k].index];
      if (!into.defined()) {
        into = std::move(diff_src[k]);
      } else {
        accumulate(into, diff_src[k]);
      }
    }
    node.clear_saved();
    g.diffs[i] = Tensor();
    if (i != g.output) g.outs[i] = Tensor();
  }
  g.last_peak = std::max(g.last_peak, memory_stats().peak_bytes);
  Tensor result = input_grad ? g.diffs[g.input] : Tensor();
  release();
  return result;
}

void Graph::release() {
  Impl& g = *impl_;
  for (auto& node : g.nodes) node->clear_saved();
  g.outs.clear();
  g.diffs.clear();
  g.forward_was_training = false;
}

int64_t Graph::last_peak_bytes() const { return impl_->last_peak; }
void Graph::set_step(int64_t step) { impl_->step = step; }
int64_t Graph::step() const { return impl_->step; }

HookHandle Graph::add_hook(HookPoint point, const std::string& pattern, HookFn fn,
                           HookOptions options) {
  if (!fn) throw Error("graph: add_hook needs a callback");
  const int64_t id = impl_->hooks->add(point, pattern, std::move(fn), options);
  return HookHandle(impl_->hooks, id);
}

void Graph::fire(HookPoint point, const std::string& phase) {
  if (impl_->hooks->empty()) return;
  HookEvent ev = make_event(point, "", "", impl_->step, true);
  ev.parameters = parameters();
  ev.phase = phase;
  impl_->hooks->fire(ev);
}

// --- sparse linear layers ----------------------------------------------------

void Graph::compress(const std::string& node_name, const Tensor& mask, Optimizer* optimizer) {
  Node& n = node(node_name);
  const std::string param = node_name + ".weight";
  if (n.type() == std::string("linear")) {
    for (Parameter* p : n.parameters()) {
      if (p->name == param && p->compressed()) decompress(node_name, optimizer);
    }
  }
  nodes::linear_compress(n, mask);
  if (optimizer != nullptr) optimizer->gather_state(param, parameter(param).dense_index);
}

void Graph::decompress(const std::string& node_name, Optimizer* optimizer) {
  Node& n = node(node_name);
  const std::string param = node_name + ".weight";
  bool was_compressed = false;
  for (Parameter* p : n.parameters())
    if (p->name == param && p->compressed()) was_compressed = true;
  nodes::linear_decompress(n);
  if (was_compressed && optimizer != nullptr) optimizer->reset_state(param);
}

void Graph::set_sparse_kernels(const std::string& mode) {
  const nodes::LinearKernels kernels = nodes::parse_linear_kernels(mode);
  for (auto& n : impl_->nodes)
    if (n->type() == std::string("linear")) nodes::linear_set_kernels(*n, kernels);
}

int Graph::sparse_layer_count() {
  int count = 0;
  for (auto& n : impl_->nodes)
    if (n->type() == std::string("linear") && nodes::linear_runs_sparse(*n)) ++count;
  return count;
}

int Graph::prunable_layer_count() const {
  int count = 0;
  for (const auto& n : impl_->nodes)
    if (n->type() == std::string("linear")) ++count;
  return count;
}

Tensor magnitude_mask(const Tensor& weight, float sparsity) {
  if (!(sparsity >= 0.0f && sparsity < 1.0f)) {
    throw Error("--sparsity must be in [0, 1), got " + std::to_string(sparsity));
  }
  const Tensor w = to_layout(weight, Layout::kPlain);
  const int64_t n = w.numel();
  const int64_t keep =
      std::clamp<int64_t>(std::llround((1.0 - static_cast<double>(sparsity)) * n), 0, n);
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  auto larger = [&w](int64_t a, int64_t b) {
    const float ma = std::fabs(w[a]), mb = std::fabs(w[b]);
    return ma > mb || (ma == mb && a < b);
  };
  if (keep < n) std::nth_element(order.begin(), order.begin() + keep, order.end(), larger);
  Tensor mask = Tensor::zeros(weight.shape());
  for (int64_t k = 0; k < keep; ++k) mask[order[k]] = 1.0f;
  return mask;
}

void Graph::mask(const std::string& node_name, const Tensor& mask) {
  Node& n = node(node_name);
  if (n.type() != std::string("linear")) {
    throw Error("mask: node '" + node_name + "' is a " + n.type() + ", not a linear layer");
  }
  Parameter& p = parameter(node_name + ".weight");
  if (p.compressed()) {
    throw Error("mask: the weight of '" + node_name + "' is compressed; decompress it first");
  }
  if (mask.shape() != p.value.shape()) {
    throw Error("mask: '" + node_name + "' has a weight of shape " + p.value.shape_string() +
                ", the mask is " + mask.shape_string());
  }
  p.mask = to_layout(mask, Layout::kPlain).clone();
  for (int64_t i = 0; i < p.mask.numel(); ++i) p.mask[i] = p.mask[i] != 0.0f ? 1.0f : 0.0f;
  apply_mask(p, /*grads=*/true);
}

void Graph::unmask(const std::string& node_name) {
  parameter(node_name + ".weight").mask = Tensor();
}

int prune_linear_layers(Graph& graph, float sparsity, Optimizer* optimizer, bool compressed) {
  if (!(sparsity >= 0.0f && sparsity < 1.0f)) {
    throw Error("--sparsity must be in [0, 1), got " + std::to_string(sparsity));
  }
  if (sparsity == 0.0f) return 0;
  int count = 0;
  for (int i = 0; i < graph.size(); ++i) {
    Node& n = graph.node(NodeId{i});
    if (n.type() != std::string("linear")) continue;
    const std::string param = n.name() + ".weight";
    Parameter& p = graph.parameter(param);
    Tensor dense = p.value;
    if (p.compressed()) {
      dense = Tensor::zeros(p.dense_shape);
      for (std::size_t k = 0; k < p.dense_index.size(); ++k) dense[p.dense_index[k]] = p.value[k];
    }
    if (compressed) {
      graph.compress(n.name(), magnitude_mask(dense, sparsity), optimizer);
    } else {
      graph.mask(n.name(), magnitude_mask(dense, sparsity));
    }
    ++count;
  }
  return count;
}

}  // namespace sparsetrain
