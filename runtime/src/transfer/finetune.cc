// Transfer fine-tuning (sparsetrain/transfer.h): the options a fine-tuning
// run inherits, the head it replaces, freezing, and loading the upstream
// checkpoint around the new head.

#include "transfer/finetune.h"

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "sparsetrain/error.h"
#include "sparsetrain/options.h"
#include "sparsetrain/trainer.h"
#include "sparsetrain/transfer.h"

namespace sparsetrain {

TrainOptions inherited_options(const std::string& path) {
  TrainOptions o = read_checkpoint_options(path);
  static_cast<SparsityOptions&>(o) = SparsityOptions{};
  static_cast<RetrainOptions&>(o) = RetrainOptions{};
  static_cast<TransferOptions&>(o) = TransferOptions{};
  // Of the run options, the threads, seed, kernels and storage stay; the
  // outputs are the new run's (the rows not inherited).
  const TrainOptions fresh;
  for (const OptionRow& row : option_rows()) {
    if (!row.inherited) std::visit([&](auto m) { o.*m = fresh.*m; }, row.member);
  }
  return o;
}

TrainOptions finetune_options(const std::string& upstream, const std::string& mode) {
  TrainOptions o = inherited_options(upstream);
  o.init_from = upstream;
  o.finetune = mode;
  return o;
}

std::string classifier_node(Graph& graph) {
  for (int i = graph.size() - 1; i >= 0; --i) {
    if (std::string(graph.node(NodeId{i}).type()) == "linear") return graph.node(NodeId{i}).name();
  }
  throw Error("the model has no linear node to serve as its classifier head");
}

void apply_freeze(const TrainOptions& o, Graph& graph) {
  for (const std::string& pattern : o.freeze) {
    try {
      graph.set_frozen(pattern);
    } catch (const Error& e) {
      throw Error("--freeze '" + pattern + "': matches no trainable parameter of " + o.model +
                  " (parameters are named <node>.<field>, e.g. conv1.weight; '*' matches any run)");
    }
  }
}

namespace detail {

void validate_transfer_options(const TrainOptions& o) {
  // The settings of one mode are refused in the others.
  const TransferOptions defaults;
  const bool features = o.finetune == "linear-probe" || o.finetune == "sparse-head";
  if (!features && o.feature_cache != defaults.feature_cache) {
    throw Error("--feature-cache is for finetune --mode linear-probe or sparse-head");
  }
  if (o.finetune != "sparse-head") {
    const std::pair<bool, const char*> path_flags[] = {
        {o.path_points != defaults.path_points, "--path-points"},
        {o.head_alpha != defaults.head_alpha, "--head-alpha"},
        {o.val_fraction != defaults.val_fraction, "--val-fraction"},
        {o.head_density != defaults.head_density, "--head-density"}};
    for (const auto& [set, flag] : path_flags) {
      if (set) throw Error(std::string(flag) + " is for finetune --mode sparse-head");
    }
  }
  if (o.finetune.empty()) {
    if (!o.head.empty()) throw Error("--head is for fine-tuning (sparsetrain finetune)");
    return;
  }
  if (o.init_from.empty()) {
    throw Error("fine-tuning (" + o.finetune + ") needs the upstream checkpoint (--checkpoint)");
  }
  if (!o.retrain.empty()) {
    throw Error("--retrain " + o.retrain + " with fine-tuning: fine-tuning trains a new head " +
                "with a learning rate of its own; drop --retrain");
  }
  if (o.sparsity > 0.0f) {
    throw Error("fine-tuning keeps the upstream checkpoint's masks fixed: drop --sparsity (got " +
                std::to_string(o.sparsity) + ")");
  }
}

std::string start_finetune(const TrainOptions& o, Graph& graph, const Checkpoint& ck,
                           const std::string& path, SparseLoad mode) {
  const std::string head = o.head.empty() ? classifier_node(graph) : o.head;
  const NodeId id = graph.find(head);
  if (id.index < 0) throw Error("--head '" + head + "': no such node in " + o.model);
  const std::string type = graph.node(id).type();
  if (type != "linear") {
    throw Error("--head '" + head + "' is a " + type +
                " node; the head replaced is a linear classifier");
  }
  // The upstream's input must be this task's.
  const auto shape_it = ck.metadata().find("sample_shape");
  if (shape_it != ck.metadata().end()) {
    std::vector<int64_t> upstream;
    try {
      upstream = nlohmann::json::parse(shape_it->second).get<std::vector<int64_t>>();
    } catch (const nlohmann::json::exception&) {
      throw Error("--checkpoint: '" + path + "': bad sample_shape metadata");
    }
    const Shape here = graph.input_shape();
    if (upstream != here) {
      throw Error("--checkpoint: '" + path + "' was trained on samples " +
                  nlohmann::json(upstream).dump() + " but " + o.dataset + " has " +
                  nlohmann::json(here).dump() + ": the upstream model's input does not fit");
    }
  }
  load_graph_parameters_except(ck, graph, mode, {head});
  const int64_t outputs = graph.shape_of(id).back();
  return "new head '" + head + "' (" + std::to_string(outputs) + " outputs" +
         (o.classes.empty() ? "" : ": classes " + o.classes) + ")";
}

}  // namespace detail
}  // namespace sparsetrain
