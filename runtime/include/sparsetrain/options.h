// The settings of a training run, split by concern, and the schema that
// describes each setting once: one row with its member, command-line flag,
// recipe key, help and range. The command line (`sparsetrain train`), recipes
// (sparsetrain/recipe.h), the options JSON of metrics and checkpoints
// (options_to_json) and validate() all read option_rows(); a new setting is
// a member here and a row in runtime/src/training/options.cc.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "sparsetrain/core/export.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// What is trained on what.
struct ModelDataOptions {
  std::string model = "lenet5";
  std::string dataset = "mnist";
  // Keep only these classes, relabelled 0..k-1 in the order given: "0-4",
  // "5,6,7,8,9" (parse_class_list in data.h). Empty: every class.
  std::string classes;
  std::string data_dir;  // empty: search the places of data_search_places() (data.h)
  int64_t batch_size = 50;
  int64_t eval_batch_size = 500;
  int augment = -1;          // -1: dataset default (crop + flip on CIFAR-10), 0 off, 1 on
  int64_t train_limit = -1;  // use only the first N training images
  int64_t test_limit = -1;
  bool operator==(const ModelDataOptions&) const = default;
};

// The optimizer and its learning-rate schedule.
struct OptimizationOptions {
  int64_t epochs = 1;
  std::string optimizer = "sgd";  // sgd | adamw
  float lr = 0.05f;
  float momentum = 0.9f;
  bool nesterov = true;
  float weight_decay = 5e-4f;
  float beta1 = 0.9f, beta2 = 0.999f, adam_eps = 1e-8f;
  std::string lr_schedule = "onecycle";  // constant | multistep | cosine | onecycle
  std::vector<int64_t> milestones;       // epochs, for multistep
  float lr_gamma = 0.1f;
  int64_t warmup_epochs = 0;
  float clip_grad_norm = 0.0f;  // 0: no clipping
  bool operator==(const OptimizationOptions&) const = default;
};

// The sparsity schedule (DESIGN.md "Sparsity methods", sparsetrain/sparsity.h).
struct SparsityOptions {
  // Target sparsity over the prunable weights (conv and linear weights of
  // the layers chosen below); 0: a dense run.
  float sparsity = 0.0f;
  // static: magnitude masks right after initialisation, fixed for the run;
  // acdc: alternating compressed / decompressed phases;
  // gmp: gradual magnitude pruning on the cubic schedule;
  // rigl: ERK masks at initialisation, drop by magnitude, grow by gradient.
  std::string sparsity_method = "static";
  // global | uniform | erk; empty: the method's default (static: uniform,
  // acdc and gmp: global, rigl: erk).
  std::string distribution;
  // Leave the first and the last prunable layer dense: -1 when the model
  // has convolutions (the stem conv and the classifier are tiny and
  // sensitive) and marks no layer not prunable (auto_dense_first_last in
  // sparsetrain/masks.h), 0 never, 1 always.
  int dense_first_last = -1;
  // acdc: epochs (fractions allowed, counted from 0) at which compressed and
  // decompressed phases begin; the run is dense before the first compressed
  // phase. Empty: the paper's proportions scaled to `epochs` (dense warm-up
  // to 5%, compressed phases from 5, 25, 45, 65 and 85%, decompressed ones
  // from 15, 35, 55 and 75%).
  std::vector<double> compress_epochs;
  std::vector<double> decompress_epochs;
  // gmp: s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, pruning every
  // `prune_every_steps` steps (dt) from `prune_start_epoch` (t0) to
  // `prune_end_epoch` (t0 + n dt), s_f = sparsity. -1: the method's default
  // (gmp: from 10% to 60% of the run; rigl: updates from the start until
  // 75% of the run).
  float initial_sparsity = 0.0f;    // s_i
  double prune_start_epoch = -1;    // t0
  double prune_end_epoch = -1;      // t0 + n dt
  int64_t prune_every_steps = 100;  // dt; gmp and rigl
  // rigl: fraction of each layer's stored weights dropped and regrown at the
  // first update, cosine-decayed to zero at prune_end_epoch.
  float drop_fraction = 0.3f;
  bool operator==(const SparsityOptions&) const = default;
};

// Snapshots and retraining after pruning (Renda et al., ICLR 2020).
struct RetrainOptions {
  // Also save the whole training state at the end of these epochs (0: before
  // the first step) as out_dir/epoch-<E>/checkpoint.safetensors, for weight
  // rewinding. Needs out_dir.
  std::vector<int64_t> save_epochs;
  // Start from this checkpoint's weights (file or run folder; BatchNorm
  // statistics and biases included) instead of a random initialisation. Its
  // masked or compressed weights keep their masks for the whole run
  // (compressed unless sparse_storage is "masked"). The optimizer starts
  // fresh.
  std::string init_from;
  // With init_from: how the learning rate and the weights of the retraining
  // are chosen.
  //   finetune       the original run's final lr, constant, for `epochs`;
  //   lr-rewind      the original run's lr schedule replayed from epoch
  //                  rewind_epoch for `epochs` (the pruned weights kept);
  //   weight-rewind  as lr-rewind, and every parameter reset to the original
  //                  run's snapshot at epoch rewind_epoch, pruned by the
  //                  checkpoint's masks.
  // Empty: the lr schedule of these options. Resolving a mode rewrites the
  // lr fields, so a saved run resumes with its resolved schedule.
  std::string retrain;
  // -1: epochs of the original run minus `epochs` (the last `epochs`
  // epochs of the original schedule, as in the paper).
  int64_t rewind_epoch = -1;
  // weight-rewind: the snapshot to rewind to; empty: epoch-<E>/ in the run
  // folder the pruned checkpoint came from.
  std::string rewind_from;
  // The lr schedule spans this many epochs (0: `epochs`), and the run's step
  // s takes its value at step s + lr_schedule_offset_epochs * steps per
  // epoch. Set by lr-rewind and weight-rewind.
  int64_t lr_schedule_epochs = 0;
  int64_t lr_schedule_offset_epochs = 0;
  bool operator==(const RetrainOptions&) const = default;
};

// Transfer fine-tuning (sparsetrain/transfer.h): a run that starts from the
// upstream checkpoint init_from on a new task, with a new classifier head.
struct TransferOptions {
  // "" (not a transfer run) | full: everything trains, the upstream's masks
  // stay fixed (compressed layers stay compressed, pruned weights stay 0) |
  // linear-probe: the backbone frozen, the head trains on its input
  // features, computed once and cached | sparse-head: an elastic-net head
  // over those features along a regularisation path.
  std::string finetune;
  // The classifier node replaced by a new one sized for the new classes;
  // empty: the last linear node.
  std::string head;
  // Parameters frozen for the whole run (glob patterns over
  // "<node>.<field>", e.g. "conv*" or "layer1.*"): no gradient, no
  // weight-gradient pass, bit-identical at the end. Any run, not only
  // transfer.
  std::vector<std::string> freeze;
  // linear-probe, sparse-head: the folder of the feature cache; empty: the
  // user cache (~/.cache/sparsetrain/features); "none": no cache.
  std::string feature_cache;
  // sparse-head: the path (points from lambda_max down to lambda_max / 1000,
  // elastic-net mixing alpha: 1 is the lasso), the share of the training
  // samples held out to choose a point, and the choice: the densest head
  // with at most head_density nonzero weights, or (-1) the best validation
  // accuracy.
  int64_t path_points = 100;
  float head_alpha = 0.99f;
  float val_fraction = 0.1f;
  float head_density = -1.0f;
  bool operator==(const TransferOptions&) const = default;
};

// How and where the run executes: threads, seed, the storage and kernels
// of pruned layers, output files, probes.
struct RunOptions {
  int threads = 0;  // 0: all hardware threads
  uint64_t seed = 0;
  std::string sparse_storage = "compressed";  // compressed | masked (dense storage + mask)
  // Kernels of compressed layers: sparse | dense | auto | auto-fixed
  // (sparsetrain/kernel_choices.h).
  std::string kernels = "auto";
  // A kernel-choices file (or run folder) whose choices the auto modes
  // replay (Graph::replay_kernel_choices); empty: none.
  std::string kernel_choices;
  std::string out_dir;       // checkpoints; empty: none
  std::string metrics_path;  // JSON lines; empty: none
  std::string resume_dir;    // continue the run saved there
  // Replace a checkpoint already in out_dir that is not the run being
  // resumed (without it such a run is refused: its training state would be
  // lost).
  bool force = false;
  int64_t max_steps = -1;           // stop (and checkpoint) after this many steps in total
  int64_t log_every = 0;            // also log the loss of every N-th step to the metrics file
  std::vector<std::string> probes;  // registered probes (sparsetrain/probes.h): "activation-stats"
  bool progress = true;
  bool operator==(const RunOptions&) const = default;
};

// Every setting of a run. The members of the concerns are members of
// TrainOptions (`o.lr`, `&TrainOptions::lr`).
struct TrainOptions : ModelDataOptions,
                      OptimizationOptions,
                      SparsityOptions,
                      RetrainOptions,
                      TransferOptions,
                      RunOptions {
  bool operator==(const TrainOptions&) const = default;
};

// A member of TrainOptions, by type.
using OptionMember =
    std::variant<std::string TrainOptions::*, bool TrainOptions::*, int TrainOptions::*,
                 int64_t TrainOptions::*, uint64_t TrainOptions::*, float TrainOptions::*,
                 double TrainOptions::*, std::vector<int64_t> TrainOptions::*,
                 std::vector<double> TrainOptions::*, std::vector<std::string> TrainOptions::*>;

// One setting: where it lives and what it may hold. The default is the
// member's initialiser (TrainOptions{}).
struct OptionRow {
  std::string_view key;         // the member's name, its JSON key and its name in messages
  std::string_view flag;        // "--lr"; empty: no flag
  std::string_view recipe_key;  // "optimizer.lr" (section.key) or "epochs"; empty: not in recipes
  std::string_view help;        // of the flag
  OptionMember member;

  // Numbers, and each item of a list, lie in [min, max] (an end open where
  // said) and are finite.
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool open_min = false;
  bool open_max = false;
  // Non-empty: -1 is allowed too and means this ("all images").
  std::string_view minus_one;
  // An int read as a switch: -1 auto, 1 on (true in recipes), 0 off (false).
  bool tristate = false;
  bool increasing = false;  // lists: every item greater than the one before
  // Strings: the values allowed ("" too when it is the default); read them
  // through option_choices().
  std::vector<std::string> choices;
  // The values allowed are the registered sparsity methods
  // (sparsity_method_names(), an app's own included).
  bool choices_are_sparsity_methods = false;
  bool choices_bind_recipes_only = false;  // code may use other values (an app's own dataset)
  // Read by some sparsity methods only: those whose
  // SparsityMethod::option_flags() list the flag (option_methods()). A run
  // that sets it under another method is refused; recipes write it for
  // those methods only.
  bool method_specific = false;
  bool show_default = false;  // the flag's help shows the default
  bool omit_default = false;  // recipes leave the key out while it holds the default
  bool saved = true;          // part of the options JSON (not a run's own --resume, progress)
  // A run built on another run's options (fine-tuning from its checkpoint,
  // inherited_options in sparsetrain/transfer.h) keeps the value; false: the
  // new run's own (its outputs and stop conditions), the default.
  bool inherited = true;

  OptionRow(std::string_view key, OptionMember member, std::string_view flag,
            std::string_view recipe_key, std::string_view help)
      : key(key), flag(flag), recipe_key(recipe_key), help(help), member(member) {}
  // Building a row: row(...).at_least(1).shown().
  OptionRow at_least(double v) && { return std::move(*this).with(&OptionRow::min, v); }
  OptionRow above(double v) && {
    return std::move(*this).with(&OptionRow::min, v).with(&OptionRow::open_min, true);
  }
  OptionRow at_most(double v) && { return std::move(*this).with(&OptionRow::max, v); }
  OptionRow below(double v) && {
    return std::move(*this).with(&OptionRow::max, v).with(&OptionRow::open_max, true);
  }
  OptionRow or_minus_one(std::string_view meaning) && {
    return std::move(*this).with(&OptionRow::minus_one, meaning);
  }
  OptionRow as_tristate() && { return std::move(*this).with(&OptionRow::tristate, true); }
  OptionRow recipes_only() && {
    return std::move(*this).with(&OptionRow::choices_bind_recipes_only, true);
  }
  OptionRow increasing_list() && { return std::move(*this).with(&OptionRow::increasing, true); }
  OptionRow one_of(std::vector<std::string> values) && {
    return std::move(*this).with(&OptionRow::choices, std::move(values));
  }
  OptionRow one_of_sparsity_methods() && {
    return std::move(*this).with(&OptionRow::choices_are_sparsity_methods, true);
  }
  OptionRow per_method() && { return std::move(*this).with(&OptionRow::method_specific, true); }
  OptionRow shown() && { return std::move(*this).with(&OptionRow::show_default, true); }
  OptionRow omitted_by_default() && {
    return std::move(*this).with(&OptionRow::omit_default, true);
  }
  OptionRow not_saved() && { return std::move(*this).with(&OptionRow::saved, false); }
  OptionRow not_inherited() && { return std::move(*this).with(&OptionRow::inherited, false); }

  // The flag, or the key of a setting without one: the name in messages.
  std::string_view name() const { return flag.empty() ? key : flag; }

 private:
  // The row with one field set: what every builder above does.
  template <class T, class V>
  OptionRow with(T OptionRow::*field, V&& value) && {
    this->*field = std::forward<V>(value);
    return std::move(*this);
  }
};

// Every setting, by concern (model and data, optimizer and schedule,
// sparsity, retraining, transfer, run), each once.
const std::vector<OptionRow>& option_rows();
// The row of `key` ("lr"); throws Error when there is none.
const OptionRow& option_row(std::string_view key);

// The values a string row allows (empty: any).
std::vector<std::string> option_choices(const OptionRow& row);
// The registered sparsity methods that read a method-specific row (empty
// for any other row).
std::vector<std::string> option_methods(const OptionRow& row);
// Whether `options` holds something other than the default in the row's
// member.
bool option_is_set(const OptionRow& row, const TrainOptions& options);

// What a row takes, for messages: "an integer >= 1", "a number in [0, 1)",
// "-1 (all images) or an integer >= 1", "one of: sgd, adamw".
std::string option_expected(const OptionRow& row);
// Whether a number (or a list's item) is one the row takes.
bool option_accepts(const OptionRow& row, double value);
// Throws Error naming the row (row.name()) when its member of `options`
// holds a value the row does not take.
void check_option(const OptionRow& row, const TrainOptions& options);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
