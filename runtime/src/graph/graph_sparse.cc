// Graph's sparse layers: compress, decompress, mask, magnitude masks (the
// executor and the graph's building are in graph.cc).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph_impl.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {

namespace {

nodes::PrunableNode& prunable_node(Graph& graph, const std::string& node_name, const char* what) {
  Node& n = graph.node(node_name);
  nodes::PrunableNode* p = nodes::as_prunable(n);
  if (p == nullptr) {
    throw Error(std::string(what) + ": node '" + node_name + "' is a " + n.type() +
                ", not a prunable layer (conv2d or linear)");
  }
  return *p;
}

// The optimizer state of a compressed weight carried from its old stored
// positions to its new ones: kept positions keep their state, new positions
// start at zero (RigL's grown weights, Evci et al. 2020, sec. 3: "initialized
// to zero"). Works for any order of either index; costs O(nnz log nnz), no
// dense-sized buffer.
void carry_state(Optimizer& optimizer, const std::string& param,
                 const std::vector<int64_t>& old_index, const std::vector<int64_t>& new_index) {
  Optimizer::ParamState* state = optimizer.state_of(param);
  if (state == nullptr) return;
  std::vector<std::pair<int64_t, int64_t>> old_at;  // (position, old entry), sorted
  old_at.reserve(old_index.size());
  for (std::size_t k = 0; k < old_index.size(); ++k) {
    old_at.emplace_back(old_index[k], static_cast<int64_t>(k));
  }
  std::sort(old_at.begin(), old_at.end());
  std::vector<int64_t> from(new_index.size(), -1);  // new entry -> old entry or -1
  for (std::size_t k = 0; k < new_index.size(); ++k) {
    const auto it =
        std::lower_bound(old_at.begin(), old_at.end(), std::make_pair(new_index[k], int64_t{-1}));
    if (it != old_at.end() && it->first == new_index[k]) from[k] = it->second;
  }
  for (Tensor& slot : state->slot) {
    if (!slot.defined()) continue;
    SPARSETRAIN_ASSERT(slot.numel() == static_cast<int64_t>(old_index.size()));
    Tensor moved = Tensor::empty({static_cast<int64_t>(new_index.size())});
    for (std::size_t k = 0; k < from.size(); ++k) moved[k] = from[k] < 0 ? 0.0f : slot[from[k]];
    slot = moved;
  }
}

}  // namespace

void Graph::compress(const std::string& node_name, const Tensor& mask, Optimizer* optimizer) {
  nodes::PrunableNode& n = prunable_node(*this, node_name, "compress");
  Parameter& p = n.weight();
  const bool was_compressed = p.compressed();
  const std::vector<int64_t> old_index = was_compressed ? p.dense_index : std::vector<int64_t>{};
  n.compress(mask);
  p.mask = Tensor();  // a masked weight becomes compressed: the mask is the stored set now
  if (optimizer == nullptr) return;
  if (was_compressed) {
    carry_state(*optimizer, p.name, old_index, p.dense_index);
  } else {
    optimizer->gather_state(p.name, p.dense_index);
  }
}

void Graph::decompress(const std::string& node_name, Optimizer* optimizer) {
  nodes::PrunableNode& n = prunable_node(*this, node_name, "decompress");
  const bool was_compressed = n.weight().compressed();
  n.decompress();
  if (was_compressed && optimizer != nullptr) optimizer->reset_state(n.weight().name);
}

Tensor magnitude_mask(const Tensor& weight, float sparsity) {
  detail::check_sparsity(sparsity);
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
  Parameter& p = prunable_node(*this, node_name, "mask").weight();
  if (p.compressed()) {
    throw Error("mask: the weight of '" + node_name + "' is compressed; decompress it first");
  }
  if (mask.shape() != p.value.shape()) {
    throw Error("mask: '" + node_name + "' has a weight of shape " + p.value.shape_string() +
                ", the mask is " + mask.shape_string());
  }
  p.mask = to_layout(mask, mask.rank() == 4 ? Layout::kNCHW : Layout::kPlain)
               .reshaped(p.value.shape())
               .clone();
  for (int64_t i = 0; i < p.mask.numel(); ++i) p.mask[i] = p.mask[i] != 0.0f ? 1.0f : 0.0f;
  apply_mask(p, /*grads=*/true);
}

void Graph::unmask(const std::string& node_name) {
  prunable_node(*this, node_name, "unmask").weight().mask = Tensor();
}

std::vector<std::string> Graph::sparse_layer_names() {
  std::vector<std::string> names;
  for (auto& n : impl_->nodes)
    if (nodes::PrunableNode* p = nodes::as_prunable(*n); p != nullptr && p->runs_sparse())
      names.push_back(n->name());
  return names;
}

std::vector<KernelChoice> Graph::kernel_choices() const { return impl_->choices->made(); }

void Graph::replay_kernel_choices(const std::vector<KernelChoice>& choices,
                                  const std::string& where) {
  for (std::size_t k = 0; k < choices.size(); ++k) {
    const KernelChoice& c = choices[k];
    const auto it = impl_->by_name.find(c.layer);
    Node* n = it == impl_->by_name.end() ? nullptr : impl_->nodes[it->second].get();
    const std::string entry =
        where + ": choice " + std::to_string(k + 1) + " (layer '" + c.layer + "')";
    if (n == nullptr || nodes::as_prunable(*n) == nullptr) {
      std::string layers;
      for (const auto& m : impl_->nodes)
        if (nodes::as_prunable(*m) != nullptr) layers += (layers.empty() ? "" : ", ") + m->name();
      throw Error(entry +
                  ": this model has no conv2d or linear layer of that name (its "
                  "prunable layers: " +
                  layers + "); the choices were recorded for another model");
    }
    if (!c.op.empty() && c.op != n->type()) {
      throw Error(entry + ": recorded for a " + c.op + " layer, but '" + c.layer + "' is a " +
                  n->type() + "; the choices were recorded for another model");
    }
  }
  impl_->choices->replay(choices);
}

void Graph::set_kernel_timing_hook(KernelTimingHook hook) {
  impl_->choices->set_timing_hook(std::move(hook));
}

int64_t Graph::kernel_timings_run() const { return impl_->choices->timings_run(); }

int prune_linear_layers(Graph& graph, float sparsity, Optimizer* optimizer, bool compressed) {
  detail::check_sparsity(sparsity);
  if (sparsity == 0.0f) return 0;
  int count = 0;
  for (int i = 0; i < graph.size(); ++i) {
    Node& n = graph.node(NodeId{i});
    if (n.type() != std::string("linear")) continue;
    const std::string param = n.name() + ".weight";
    Parameter& p = graph.parameter(param);
    const Tensor dense = dense_value(p);
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
