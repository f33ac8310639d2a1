// The head of a linear-probe or sparse-head run as a graph of its own over
// cached features (transfer/linear_probe.h).

#include "transfer/linear_probe.h"

#include <algorithm>

#include "sparsetrain/error.h"
#include "sparsetrain/transfer.h"
#include "transfer/features.h"

namespace sparsetrain::detail {
namespace {

constexpr const char* kLinearProbe = "linear-probe";
constexpr const char* kSparseHead = "sparse-head";
constexpr const char* kFeatureInput = "features";

// Writes dense row-major values into `p` (gathered by dense_index when
// compressed), in the parameter's own storage.
void assign_values(Parameter& p, const Tensor& dense) {
  if (p.compressed()) {
    for (std::size_t k = 0; k < p.dense_index.size(); ++k) p.value[k] = dense[p.dense_index[k]];
    return;
  }
  const Tensor in_layout = to_layout(dense.reshaped(p.value.shape()), p.value.layout());
  std::copy(in_layout.data(), in_layout.data() + in_layout.numel(), p.value.data());
}

// Copies the parameters of a head into node `head` of `to`, compressed with
// the same mask when they are compressed.
void copy_head(const std::vector<Parameter*>& from, Graph& to, const std::string& head) {
  for (const Parameter* p : from) {
    Parameter& q = to.parameter(p->name);
    if (p->compressed() && (!q.compressed() || q.dense_index != p->dense_index)) {
      to.compress(head, kept_mask(*p));
    } else if (!p->compressed() && q.compressed()) {
      to.decompress(head);
    }
    assign_values(q, dense_value(*p));
  }
}

}  // namespace

bool trains_on_features(const TrainOptions& o) {
  return o.finetune == kLinearProbe || o.finetune == kSparseHead;
}

FeatureStage::FeatureStage(Graph model, const TrainOptions& o, const Dataset& train,
                           const Dataset& test)
    : model_(std::move(model)) {
  head_ = o.head.empty() ? classifier_node(model_) : o.head;
  const NodeId id = model_.find(head_);
  if (id.index < 0) throw Error("--head '" + head_ + "': no such node in " + o.model);
  if (std::string(model_.node(id).type()) != "linear" || model_.output().index != id.index) {
    throw Error("--head '" + head_ + "': " + o.finetune +
                " trains a new classifier on the features its head reads, so the head must be " +
                "the model's output linear node (" + o.model + "'s is '" +
                model_.node(model_.output()).name() + "')");
  }
  if (!o.freeze.empty()) {
    throw Error("--freeze with --mode " + o.finetune +
                ": the whole backbone is frozen already (features are computed once)");
  }
  if (o.augment == 1) {
    throw Error("--augment on with --mode " + o.finetune +
                ": features are computed once, from the images as they are; use --mode full "
                "to train with augmentation");
  }
  node_ = model_.node(model_.inputs_of(id).at(0)).name();
  CachedFeatures f =
      cached_features(model_, node_, train, test, o.eval_batch_size, o.feature_cache);
  train_ = std::move(f.train);
  test_ = std::move(f.test);
  note_ = f.note;
}

Graph FeatureStage::head_graph() {
  Graph g;
  const NodeId in = g.input(kFeatureInput, {train_.channels, train_.height, train_.width});
  const NodeId flat = g.flatten(std::string(kFeatureInput) + ".flatten", in);
  const NodeId id = model_.find(head_);
  LinearOptions lo;
  lo.out_features = model_.shape_of(id).back();
  bool has_bias = false;
  for (Parameter* p : model_.node(id).parameters()) has_bias |= p->name == head_ + ".bias";
  lo.bias = has_bias;
  const NodeId h = g.linear(head_, flat, lo);
  g.set_output(h);
  load_head(g);
  return g;
}

void FeatureStage::load_head(Graph& head_graph) {
  copy_head(model_.node(model_.find(head_)).parameters(), head_graph, head_);
}

void FeatureStage::store_head(const std::vector<Parameter*>& head_params) {
  copy_head(head_params, model_, head_);
}

}  // namespace sparsetrain::detail
