// The pieces of Trainer behind finetune modes linear-probe and sparse-head:
// the backbone is frozen, the head's input features are computed once
// (cached, transfer/features.h) and the head trains as a graph of its own
// over them; the whole model (backbone + head) is what checkpoints hold.
#pragma once

#include <string>
#include <vector>

#include "sparsetrain/data.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/options.h"

namespace sparsetrain::detail {

// Whether a run's head trains on cached features instead of images.
bool trains_on_features(const TrainOptions& options);

class FeatureStage {
 public:
  // `model`: the whole model, backbone loaded and head initialised (or a
  // resumed run's model). Computes or reads the features of the head's
  // input for both splits. Throws Error when the head (options.head, default
  // the last linear node) is not the model's output linear node, or the
  // options do not fit (freezing, augmentation).
  FeatureStage(Graph model, const TrainOptions& options, const Dataset& train, const Dataset& test);

  // A graph that runs the head alone: input "features" of the features'
  // sample shape -> flatten -> linear named as the head, with the head's
  // current values (compressed if the head is).
  Graph head_graph();
  // Writes the model's head into the head graph (a checkpoint loaded into
  // the model).
  void load_head(Graph& head_graph);
  // Writes the head graph's parameters (`head_params`) into the model's
  // head (compressing it with the same mask when the head is compressed).
  void store_head(const std::vector<Parameter*>& head_params);

  Graph& model() { return model_; }
  const std::string& head() const { return head_; }
  const std::string& feature_node() const { return node_; }
  Dataset& train() { return train_; }
  Dataset& test() { return test_; }
  const std::string& note() const { return note_; }

 private:
  Graph model_;
  std::string head_, node_;
  Dataset train_, test_;
  std::string note_;
};

}  // namespace sparsetrain::detail
