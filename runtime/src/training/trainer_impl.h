// Trainer's state (trainer.h), shared by the files of the trainer:
// trainer.cc (construction, steps, the run) and trainer_checkpoint.cc.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/data.h"
#include "sparsetrain/distributed.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/schedule.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"
#include "transfer/linear_probe.h"

namespace sparsetrain {

struct Trainer::Impl {
  TrainOptions options;
  GraphFactory factory;
  Dataset train;
  Dataset test;
  Graph graph;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<LrSchedule> schedule;
  std::vector<Parameter*> params;
  Rng rng;
  int64_t steps_per_epoch = 0;
  // Applies the sparsity schedule around every step (sparsity.h).
  std::unique_ptr<SparsityController> sparsity;

  // Position in the run (what a checkpoint restores).
  int64_t step = 0;
  int64_t epoch = 0;           // 0-based epoch in progress
  int64_t batch_in_epoch = 0;  // batches already done in that epoch
  double epoch_loss_sum = 0;
  int64_t epoch_correct = 0;
  int64_t epoch_seen = 0;
  double epoch_seconds = 0;  // time spent on the epoch in progress before a resume
  std::vector<EpochStats> history;
  std::string init_note;     // what init_from / retrain did, for the run log
  std::string choices_note;  // kernel choices replayed, for the run log
  std::vector<TrainerCallbacks> callbacks;
  // linear-probe and sparse-head: the whole model, while `graph` is its head
  // over cached features and `train` and `test` are those features.
  std::unique_ptr<detail::FeatureStage> stage;
  // Data-parallel training (set_data_parallel): null when alone.
  std::shared_ptr<DataParallel> ranks;
  bool any_rank_stopping = false;    // a rank was asked to stop (this step's sum)
  int64_t mask_changes_checked = 0;  // SparsityController::mask_changes() compared

  // Everything after the graph and the data are in place.
  void start(Trainer& self);
};

// The position in the run as a checkpoint's "state" (fields_to_json).
inline constexpr auto kPositionFields = [](auto& m, auto&& f) {
  f("step", m.step);
  f("epoch", m.epoch);
  f("batch_in_epoch", m.batch_in_epoch);
  f("epoch_loss_sum", m.epoch_loss_sum);
  f("epoch_correct", m.epoch_correct);
  f("epoch_seen", m.epoch_seen);
  f("epoch_seconds", m.epoch_seconds);
};

namespace detail {

// `masked`: saved masks become masks of dense weights (masked state) even
// where they were saved compressed; otherwise every weight comes back in
// the state it was saved in (format-1 files: compressed).
inline void load_parameters_sparse(const Checkpoint& ck, Graph& graph, bool masked) {
  load_graph_parameters(ck, graph, masked ? SparseLoad::kMasked : SparseLoad::kAsSaved);
}

}  // namespace detail
}  // namespace sparsetrain
