#include "training/retrain.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "base/json_text.h"
#include "sparsetrain/checkpoint.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/sparsity.h"
#include "transfer/finetune.h"

namespace sparsetrain::detail {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kFinetune = "finetune";
constexpr const char* kLrRewind = "lr-rewind";
constexpr const char* kWeightRewind = "weight-rewind";

// A schedule read `offset_steps` steps later: the run's step s takes the
// value of step s + offset_steps (learning-rate rewinding replays the tail
// of the original schedule).
class OffsetSchedule final : public LrSchedule {
 public:
  OffsetSchedule(std::unique_ptr<LrSchedule> inner, int64_t offset_steps, int64_t offset_epochs)
      : inner_(std::move(inner)), offset_steps_(offset_steps), offset_epochs_(offset_epochs) {}
  float lr(int64_t step) const override {
    return inner_->lr(std::max<int64_t>(step, 0) + offset_steps_);
  }
  std::string describe() const override {
    return inner_->describe() + " from epoch " + std::to_string(offset_epochs_);
  }

 private:
  std::unique_ptr<LrSchedule> inner_;
  int64_t offset_steps_;
  int64_t offset_epochs_;
};

std::string percent(double fraction) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", 100.0 * fraction);
  return text;
}

std::string epochs_text(int64_t epochs) {
  return std::to_string(epochs) + (epochs == 1 ? " epoch" : " epochs");
}

std::string lr_text(float lr) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", static_cast<double>(lr));
  return text;
}

const std::string& meta_or_throw(const Checkpoint& ck, const std::string& path, const char* key,
                                 const char* flag) {
  return checkpoint_meta(
      ck, key, std::string(flag) + ": '" + path + "' is not a sparsetrain training checkpoint");
}

// The options a training checkpoint was saved with.
TrainOptions saved_options(const Checkpoint& ck, const std::string& path, const char* flag) {
  return options_from_json(meta_or_throw(ck, path, "options", flag));
}

// The masks of the graph's masked or compressed weights, by node.
std::map<std::string, Tensor> current_masks(Graph& graph) {
  std::map<std::string, Tensor> masks;
  for (Parameter* p : graph.parameters()) {
    if (!p->prunable()) continue;
    const std::string node = p->name.substr(0, p->name.size() - std::string(".weight").size());
    if (p->compressed()) {
      Tensor mask = Tensor::zeros(p->dense_shape);
      for (const int64_t i : p->dense_index) mask[i] = 1.0f;
      masks[node] = mask;
    } else if (p->masked()) {
      masks[node] = p->mask.clone();
    }
  }
  return masks;
}

// The run folder a checkpoint came from: what `sparsetrain prune` recorded,
// else the folder holding it.
std::string source_run_of(const Checkpoint& ck, const std::string& path) {
  const auto pruned = ck.metadata().find("pruned");
  if (pruned != ck.metadata().end()) {
    try {
      const json j = json::parse(pruned->second);
      if (j.contains("source_run")) return detail::json_to_text(j.at("source_run"));
    } catch (const json::exception& e) {
      throw Error("--init-from: '" + path + "': bad 'pruned' metadata: " + e.what());
    }
  }
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

int64_t saved_epoch(const Checkpoint& ck, const std::string& path) {
  try {
    return json::parse(meta_or_throw(ck, path, "state", "--rewind-from"))
        .at("epoch")
        .get<int64_t>();
  } catch (const json::exception& e) {
    throw Error("--rewind-from: '" + path + "': bad training state metadata: " + e.what());
  }
}

}  // namespace

void validate_retrain_options(const TrainOptions& o) {
  if (!o.retrain.empty() && o.init_from.empty()) {
    throw Error("--retrain " + o.retrain +
                " needs --init-from: the pruned checkpoint to retrain (see sparsetrain prune)");
  }
  if (o.retrain == kFinetune && o.rewind_epoch >= 0) {
    throw Error(
        "--rewind-epoch: fine-tuning rewinds nothing; use --retrain lr-rewind or "
        "weight-rewind");
  }
  if (!o.rewind_from.empty() && o.retrain != kWeightRewind) {
    throw Error("--rewind-from is for --retrain weight-rewind");
  }
  for (const int64_t e : o.save_epochs) {
    if (e > o.epochs) {
      throw Error("--save-epochs: epoch " + std::to_string(e) + " is past the end of the run (" +
                  std::to_string(o.epochs) + " epochs)");
    }
  }
  if (!o.save_epochs.empty() && o.out_dir.empty()) {
    throw Error("--save-epochs needs --out: snapshots go to <out>/epoch-<E>/");
  }
}

std::unique_ptr<LrSchedule> make_run_lr_schedule(const TrainOptions& o, int64_t steps_per_epoch) {
  LrScheduleOptions so;
  so.kind = o.lr_schedule;
  so.base_lr = o.lr;
  so.steps_per_epoch = steps_per_epoch;
  so.total_epochs = o.lr_schedule_epochs > 0 ? o.lr_schedule_epochs : o.epochs;
  so.milestones = o.milestones;
  so.gamma = o.lr_gamma;
  so.warmup_epochs = o.warmup_epochs;
  std::unique_ptr<LrSchedule> schedule = make_lr_schedule(so);
  if (o.lr_schedule_offset_epochs == 0) return schedule;
  return std::make_unique<OffsetSchedule>(std::move(schedule),
                                          o.lr_schedule_offset_epochs * steps_per_epoch,
                                          o.lr_schedule_offset_epochs);
}

const std::string& checkpoint_meta(const Checkpoint& ck, const char* key,
                                   const std::string& not_ours) {
  const auto it = ck.metadata().find(key);
  if (it == ck.metadata().end()) throw Error(not_ours + " (no '" + key + "' metadata)");
  return it->second;
}

void check_model_claims(const std::string& path, const TrainOptions& o,
                        const std::array<int64_t, 3>& shape, int64_t classes) {
  const std::string& dataset = o.dataset;
  constexpr int64_t kMaxSide = 65536, kMaxSampleNumel = int64_t{1} << 24;
  constexpr int64_t kMaxClasses = int64_t{1} << 20;
  const std::string claim = "its metadata claims samples " + json(shape).dump() + " and " +
                            std::to_string(classes) + " classes";
  const auto names = dataset_names();
  if (std::find(names.begin(), names.end(), dataset) != names.end()) {
    const DatasetGeometry g = dataset_geometry(dataset);
    const int64_t kept =
        o.classes.empty() ? g.num_classes
                          : static_cast<int64_t>(parse_class_list(o.classes, g.num_classes).size());
    if (shape != std::array<int64_t, 3>{g.channels, g.height, g.width} || classes != kept) {
      throw Error(path + ": " + claim + ", but its dataset " + dataset +
                  (o.classes.empty() ? "" : " (classes " + o.classes + ")") + " has samples " +
                  json({g.channels, g.height, g.width}).dump() + " and " + std::to_string(kept) +
                  " classes");
    }
    return;
  }
  int64_t numel = 1;
  for (const int64_t d : shape) {
    if (d < 1 || d > kMaxSide) throw Error(path + ": " + claim + " (a side out of range)");
    numel *= d;
  }
  if (numel > kMaxSampleNumel || classes < 1 || classes > kMaxClasses) {
    throw Error(path + ": " + claim + ", more than any model of the runtime can be built for (at " +
                "most " + std::to_string(kMaxSampleNumel) + " values per sample and " +
                std::to_string(kMaxClasses) + " classes)");
  }
}

std::string snapshot_path(const std::string& run_dir, int64_t epoch) {
  return (fs::path(run_dir) / ("epoch-" + std::to_string(epoch)) / "checkpoint.safetensors")
      .string();
}

std::string apply_init_from(TrainOptions& o, Graph& graph, int64_t steps_per_epoch) {
  const std::string path = checkpoint_file(o.init_from);
  const Checkpoint ck = Checkpoint::load(path);
  const TrainOptions original = saved_options(ck, path, "--init-from");
  if (original.model != o.model) {
    throw Error("--init-from: '" + path + "' holds model '" + original.model +
                "' but this run trains '" + o.model + "' (--model)");
  }
  const SparseLoad mode =
      o.sparse_storage == "masked" ? SparseLoad::kMasked : SparseLoad::kCompressed;
  // Transfer fine-tuning loads everything but the new head (transfer/).
  const std::string head_text =
      o.finetune.empty() ? "" : detail::start_finetune(o, graph, ck, path, mode);
  if (o.finetune.empty()) load_graph_parameters(ck, graph, mode);
  const double sparsity = sparsity_report(graph).prunable_sparsity();
  const std::string masks_text =
      "'" + path + "' (" +
      (sparsity > 0 ? percent(sparsity) + " of the prunable weights pruned, masks fixed)"
                    : std::string("dense)"));
  if (!o.finetune.empty())
    return "fine-tuning (" + o.finetune + ") from " + masks_text + "; " + head_text;
  if (o.retrain.empty()) return "initialised from " + masks_text;
  if (o.sparsity > 0.0f) {
    throw Error("--retrain keeps the masks of --init-from fixed: drop --sparsity (got " +
                std::to_string(o.sparsity) + ")");
  }

  // The original run's schedule, as that run saw it.
  const int64_t span =
      original.lr_schedule_epochs > 0 ? original.lr_schedule_epochs : original.epochs;
  if (o.retrain == kFinetune) {
    const float final_lr =
        make_run_lr_schedule(original, steps_per_epoch)->lr(original.epochs * steps_per_epoch - 1);
    if (!(final_lr > 0.0f)) {
      throw Error("--retrain finetune: the original run of '" + path +
                  "' ends at learning rate 0; use lr-rewind, or --init-from with an --lr of "
                  "your own");
    }
    o.lr = final_lr;
    o.lr_schedule = "constant";
    o.milestones.clear();
    o.warmup_epochs = 0;
    o.lr_schedule_epochs = 0;
    o.lr_schedule_offset_epochs = 0;
    // Renda et al. fine-tune at the last lr of a step schedule (1% of the
    // peak there); a cosine or one-cycle schedule ends near 0 instead.
    const std::string near_zero =
        final_lr < 1e-3f * original.lr
            ? "\nnote: the original " + original.lr_schedule + " schedule ends at " +
                  lr_text(final_lr) + ", under 0.1% of its peak " + lr_text(original.lr) +
                  ", where fine-tuning barely moves the weights; for a constant lr of your own "
                  "use --init-from without --retrain, with --lr and --lr-schedule constant"
            : "";
    return "retraining (finetune) from " + masks_text + ": the original run's final lr " +
           lr_text(final_lr) + ", constant, for " + epochs_text(o.epochs) + near_zero;
  }

  const int64_t rewind =
      o.rewind_epoch >= 0 ? o.rewind_epoch : std::max<int64_t>(0, original.epochs - o.epochs);
  if (rewind > original.epochs) {
    throw Error("--rewind-epoch " + std::to_string(rewind) +
                " is past the end of the original run (" + std::to_string(original.epochs) +
                " epochs)");
  }
  o.rewind_epoch = rewind;
  o.lr = original.lr;
  o.lr_schedule = original.lr_schedule;
  o.milestones = original.milestones;
  o.lr_gamma = original.lr_gamma;
  o.warmup_epochs = original.warmup_epochs;
  o.lr_schedule_epochs = span;
  o.lr_schedule_offset_epochs = original.lr_schedule_offset_epochs + rewind;
  const float first_lr = make_run_lr_schedule(o, steps_per_epoch)->lr(0);
  std::string text = "retraining (" + o.retrain + ") from " + masks_text;
  const std::string schedule_text = "; lr: the original " + original.lr_schedule + " schedule (" +
                                    epochs_text(original.epochs) + ") replayed from epoch " +
                                    std::to_string(rewind) + " for " + epochs_text(o.epochs) +
                                    ", first lr " + lr_text(first_lr);
  if (o.retrain == kLrRewind) return text + schedule_text;

  // Weight rewinding: every parameter back to the snapshot at epoch E, under
  // the pruned checkpoint's masks.
  const std::map<std::string, Tensor> masks = current_masks(graph);
  const bool defaulted = o.rewind_from.empty();
  const std::string snapshot =
      defaulted ? snapshot_path(source_run_of(ck, path), rewind) : checkpoint_file(o.rewind_from);
  if (!fs::exists(snapshot)) {
    throw Error("--retrain weight-rewind: no snapshot '" + snapshot + "' of epoch " +
                std::to_string(rewind) + " (train the original run with --save-epochs " +
                std::to_string(rewind) + ", or name one with --rewind-from)");
  }
  const Checkpoint snap = Checkpoint::load(snapshot);
  const TrainOptions snap_options = saved_options(snap, snapshot, "--rewind-from");
  if (snap_options.model != o.model) {
    throw Error("--rewind-from: '" + snapshot + "' holds model '" + snap_options.model +
                "', not '" + o.model + "'");
  }
  const int64_t snap_epoch = saved_epoch(snap, snapshot);
  if (defaulted && snap_epoch != rewind) {
    throw Error("--retrain weight-rewind: '" + snapshot + "' was saved at epoch " +
                std::to_string(snap_epoch) + ", not " + std::to_string(rewind));
  }
  load_graph_parameters(snap, graph, SparseLoad::kAsSaved);
  for (const auto& [node, mask] : masks) {
    Parameter& p = graph.parameter(node + ".weight");
    if (p.compressed()) graph.decompress(node);
    if (p.masked()) graph.unmask(node);
    if (mode == SparseLoad::kMasked) {
      graph.mask(node, mask);
    } else {
      graph.compress(node, mask);
    }
  }
  o.rewind_from = snapshot;
  return text + "; weights of '" + snapshot + "' (epoch " + std::to_string(snap_epoch) +
         ") under those masks" + schedule_text;
}

}  // namespace sparsetrain::detail
