// The settings schema (sparsetrain/options.h): one table of rows per
// concern, and the range check every reader of the rows shares.
#include "sparsetrain/options.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <type_traits>

#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/sparsity_method.h"
#include "training/options_internal.h"

namespace sparsetrain {

namespace {

using Rows = std::vector<OptionRow>;

// Most worker threads a run may ask for.
constexpr int kMaxThreads = 1024;

OptionRow row(std::string_view key, OptionMember member, std::string_view flag,
              std::string_view recipe_key, std::string_view help) {
  return OptionRow(key, member, flag, recipe_key, help);
}

Rows model_data_rows() {
  return {
      row("model", &TrainOptions::model, "--model", "model",
          "mlp | lenet5 | resnet20 | resnet32 | resnet56, or a model file NAME.yaml")
          .shown(),
      row("dataset", &TrainOptions::dataset, "--dataset", "dataset",
          "mnist | fashion-mnist | cifar10")
          .one_of(dataset_names())
          .recipes_only()
          .shown(),
      row("classes", &TrainOptions::classes, "--classes", "classes",
          "Keep only these classes, relabelled 0..k-1 in the order given: 0-4, or 5,6,7,8,9 "
          "(default: all)")
          .omitted_by_default(),
      row("data_dir", &TrainOptions::data_dir, "--data-dir", "data_dir",
          "Folder holding mnist/, fashion-mnist/, cifar-10/ (default: the first of "
          "$SPARSETRAIN_DATA, ~/.cache/sparsetrain/data and ../shared/data that holds the "
          "dataset)")
          .omitted_by_default(),
      row("batch_size", &TrainOptions::batch_size, "--batch-size", "batch_size",
          "Samples per step (default: 50 for mlp/lenet5, 128 for resnets)")
          .at_least(1),
      row("eval_batch_size", &TrainOptions::eval_batch_size, "--eval-batch-size", "eval_batch_size",
          "Batch size of evaluation")
          .at_least(1)
          .shown(),
      row("augment", &TrainOptions::augment, "--augment", "augment",
          "auto | on | off (auto: crop + flip on cifar10)")
          .as_tristate()
          .shown(),
      row("train_limit", &TrainOptions::train_limit, "--train-limit", "train_limit",
          "Use only the first N training images")
          .at_least(1)
          .or_minus_one("all images"),
      row("test_limit", &TrainOptions::test_limit, "--test-limit", "test_limit",
          "Use only the first N test images")
          .at_least(1)
          .or_minus_one("all images"),
  };
}

Rows optimizer_rows() {
  return {
      row("epochs", &TrainOptions::epochs, "--epochs", "epochs", "Training epochs")
          .at_least(1)
          .shown(),
      row("optimizer", &TrainOptions::optimizer, "--optimizer", "optimizer.name", "sgd | adamw")
          .one_of({"sgd", "adamw"})
          .shown(),
      row("lr", &TrainOptions::lr, "--lr", "optimizer.lr",
          "Peak learning rate (default: 0.05 for mlp/lenet5, 0.1 for resnets)")
          .above(0),
      row("momentum", &TrainOptions::momentum, "--momentum", "optimizer.momentum", "SGD momentum")
          .at_least(0)
          .below(1)
          .shown(),
      row("nesterov", &TrainOptions::nesterov, "--nesterov", "optimizer.nesterov",
          "Nesterov momentum (default: on for mlp/lenet5)"),
      row("weight_decay", &TrainOptions::weight_decay, "--weight-decay", "optimizer.weight_decay",
          "Weight decay (weights only)")
          .at_least(0)
          .shown(),
      row("beta1", &TrainOptions::beta1, "--beta1", "optimizer.beta1", "AdamW beta1")
          .at_least(0)
          .below(1)
          .shown(),
      row("beta2", &TrainOptions::beta2, "--beta2", "optimizer.beta2", "AdamW beta2")
          .at_least(0)
          .below(1)
          .shown(),
      row("adam_eps", &TrainOptions::adam_eps, "", "optimizer.eps", "AdamW epsilon").above(0),
      row("lr_schedule", &TrainOptions::lr_schedule, "--lr-schedule", "lr_schedule.name",
          "constant | multistep | cosine | onecycle (default: onecycle)")
          .one_of({"constant", "multistep", "cosine", "onecycle"}),
      row("milestones", &TrainOptions::milestones, "--lr-milestones", "lr_schedule.milestones",
          "Epochs (comma-separated) where multistep multiplies the lr by --lr-gamma")
          .at_least(1)
          .increasing_list()
          .omitted_by_default(),
      row("lr_gamma", &TrainOptions::lr_gamma, "--lr-gamma", "lr_schedule.gamma",
          "Multistep factor")
          .above(0)
          .shown(),
      row("warmup_epochs", &TrainOptions::warmup_epochs, "--warmup-epochs",
          "lr_schedule.warmup_epochs", "Linear warm-up epochs")
          .at_least(0)
          .shown(),
      row("clip_grad_norm", &TrainOptions::clip_grad_norm, "--clip-grad-norm", "clip_grad_norm",
          "Clip the global gradient norm (0: off)")
          .at_least(0)
          .shown(),
  };
}

Rows sparsity_rows() {
  return {
      row("sparsity_method", &TrainOptions::sparsity_method, "--sparsity-method", "sparsity.method",
          "static (masks fixed after initialisation) | acdc (alternating compressed and "
          "decompressed phases) | gmp (gradual magnitude pruning, cubic) | rigl (drop by "
          "magnitude, grow by gradient)")
          .one_of_sparsity_methods()
          .shown(),
      row("sparsity", &TrainOptions::sparsity, "--sparsity", "sparsity.target",
          "Target sparsity over the pruned conv and linear weights (0: dense)")
          .at_least(0)
          .below(1)
          .shown(),
      row("distribution", &TrainOptions::distribution, "--distribution", "sparsity.distribution",
          "How the sparsity spreads over layers: global | uniform | erk (default: uniform "
          "for static, global for acdc and gmp, erk for rigl)")
          .one_of({"global", "uniform", "erk"})
          .omitted_by_default(),
      row("dense_first_last", &TrainOptions::dense_first_last, "--dense-first-last",
          "sparsity.dense_first_last",
          "Keep the first and last prunable layer dense: auto (when the model has "
          "convolutions and its model file marks no layer prunable: false) | on | off")
          .as_tristate()
          .shown(),
      // Recipes give both as sparsity.phases (recipe.cc).
      row("compress_epochs", &TrainOptions::compress_epochs, "--compress-epochs", "",
          "acdc: epochs (comma-separated, fractions allowed) where compressed phases "
          "begin (default: 5,25,45,65,85% of the run)")
          .per_method(),
      row("decompress_epochs", &TrainOptions::decompress_epochs, "--decompress-epochs", "",
          "acdc: epochs where decompressed phases begin, one fewer than "
          "--compress-epochs (default: 15,35,55,75% of the run)")
          .per_method(),
      row("initial_sparsity", &TrainOptions::initial_sparsity, "--initial-sparsity",
          "sparsity.initial_sparsity", "gmp: sparsity of the first pruning step")
          .at_least(0)
          .below(1)
          .per_method()
          .shown(),
      row("prune_start_epoch", &TrainOptions::prune_start_epoch, "--prune-start-epoch",
          "sparsity.start_epoch",
          "gmp: first pruning step; rigl: first mask update after it (epochs, -1: "
          "gmp 10% of the run, rigl 0)")
          .at_least(0)
          .or_minus_one("the method's default")
          .per_method()
          .omitted_by_default()
          .shown(),
      row("prune_end_epoch", &TrainOptions::prune_end_epoch, "--prune-end-epoch",
          "sparsity.end_epoch",
          "gmp: the final sparsity is reached here, then compressed; rigl: no mask "
          "updates after it (epochs, -1: gmp 60%, rigl 75% of the run)")
          .at_least(0)
          .or_minus_one("the method's default")
          .per_method()
          .omitted_by_default()
          .shown(),
      row("prune_every_steps", &TrainOptions::prune_every_steps, "--prune-every-steps",
          "sparsity.every_steps",
          "gmp: steps between pruning steps; rigl: steps between mask updates")
          .at_least(1)
          .per_method()
          .shown(),
      row("drop_fraction", &TrainOptions::drop_fraction, "--drop-fraction",
          "sparsity.drop_fraction",
          "rigl: fraction of each layer's weights dropped and regrown at the first "
          "update, cosine-decayed to 0 at --prune-end-epoch")
          .at_least(0)
          .below(1)
          .per_method()
          .shown(),
  };
}

Rows retrain_rows() {
  return {
      row("save_epochs", &TrainOptions::save_epochs, "--save-epochs", "save_epochs",
          "Also save the training state after these epochs (comma-separated, 0: before "
          "the first step) in <out>/epoch-<E>/, for --retrain weight-rewind")
          .at_least(0)
          .increasing_list()
          .omitted_by_default(),
      row("init_from", &TrainOptions::init_from, "--init-from", "retrain.init_from",
          "Start from this checkpoint's weights (file or run folder); its pruned weights "
          "keep their masks for the whole run")
          .omitted_by_default(),
      row("retrain", &TrainOptions::retrain, "--retrain", "retrain.mode",
          "With --init-from a pruned checkpoint: finetune (the original run's final lr) | "
          "lr-rewind (the original lr schedule from --rewind-epoch) | weight-rewind "
          "(also the weights of epoch --rewind-epoch)")
          .one_of({"finetune", "lr-rewind", "weight-rewind"})
          .omitted_by_default(),
      row("rewind_epoch", &TrainOptions::rewind_epoch, "--rewind-epoch", "retrain.rewind_epoch",
          "lr-rewind, weight-rewind: the original run's epoch to rewind to (default: its "
          "epochs minus --epochs)")
          .at_least(0)
          .or_minus_one("the original run's epochs minus epochs")
          .omitted_by_default(),
      row("rewind_from", &TrainOptions::rewind_from, "--rewind-from", "retrain.rewind_from",
          "weight-rewind: the snapshot to rewind to (default: epoch-<E>/ of the run the "
          "pruned checkpoint came from)")
          .omitted_by_default(),
      // Set by lr-rewind and weight-rewind; no flags.
      row("lr_schedule_epochs", &TrainOptions::lr_schedule_epochs, "", "lr_schedule.span_epochs",
          "Epochs the lr schedule spans (0: epochs)")
          .at_least(0)
          .omitted_by_default(),
      row("lr_schedule_offset_epochs", &TrainOptions::lr_schedule_offset_epochs, "",
          "lr_schedule.offset_epochs", "Epochs into the lr schedule the run starts")
          .at_least(0)
          .omitted_by_default(),
  };
}

Rows run_rows() {
  return {
      row("threads", &TrainOptions::threads, "--threads", "threads",
          "Worker threads (0: all cores)")
          .at_least(0)
          .at_most(kMaxThreads)
          .shown(),
      row("seed", &TrainOptions::seed, "--seed", "seed",
          "Seed of initialisation, shuffling and augmentation")
          .at_least(0)
          .shown(),
      row("kernels", &TrainOptions::kernels, "--kernels", "kernels",
          "Kernels of compressed conv and linear layers: sparse | dense | auto (timed once per "
          "layer, shape and density; ties within 10% by the density rule) | auto-fixed (the "
          "density rule only: the same choices on any machine)")
          .one_of({"auto", "sparse", "dense", "auto-fixed"})
          .shown(),
      row("kernel_choices", &TrainOptions::kernel_choices, "--kernel-choices", "kernel_choices",
          "Replay the kernel choices recorded in this file (a run's kernel_choices.json, or its "
          "folder), so the run repeats that one bit for bit")
          .omitted_by_default()
          .not_inherited(),  // recorded for the other run's layers and shapes
      row("sparse_storage", &TrainOptions::sparse_storage, "--sparse-storage", "sparsity.storage",
          "How pruned layers are held: compressed (nonzeros only, sparse kernels) | "
          "masked (dense weight + mask, dense kernels)")
          .one_of({"compressed", "masked"})
          .shown(),
      row("out_dir", &TrainOptions::out_dir, "--out", "",
          "Run folder: checkpoints (checkpoint.safetensors) and probe output")
          .not_inherited(),
      row("metrics_path", &TrainOptions::metrics_path, "--metrics", "",
          "Write JSON lines (start, epoch, end events) to this file")
          .not_inherited(),
      row("resume_dir", &TrainOptions::resume_dir, "--resume", "",
          "Continue the run saved in this folder (or checkpoint file)")
          .not_saved()
          .not_inherited(),
      row("force", &TrainOptions::force, "--force", "",
          "Replace a checkpoint already in --out (another run's training state is lost)")
          .not_saved()
          .not_inherited(),
      row("max_steps", &TrainOptions::max_steps, "--max-steps", "",
          "Stop after this many steps in total (checkpointed)")
          .at_least(1)
          .or_minus_one("no limit")
          .not_inherited(),
      row("log_every", &TrainOptions::log_every, "--log-every", "",
          "Also log every N-th step's loss to --metrics")
          .at_least(0)
          .not_inherited(),
      // The command line adds the registered names to the help; validate()
      // checks them (make_probe).
      row("probes", &TrainOptions::probes, "--probe", "", "Probes to run on the final evaluation")
          .not_inherited(),
      row("progress", &TrainOptions::progress, "", "", "Progress lines while training").not_saved(),
  };
}

Rows transfer_rows() {
  return {
      // `sparsetrain finetune --mode`; no flag of train.
      row("finetune", &TrainOptions::finetune, "", "transfer.mode",
          "Transfer fine-tuning from --init-from with a new head: full (everything trains, the "
          "upstream masks fixed) | linear-probe (the backbone frozen, the head trains on cached "
          "features) | sparse-head (an elastic-net head over cached features, along a "
          "regularisation path)")
          .one_of({"", "full", "linear-probe", "sparse-head"})
          .omitted_by_default(),
      row("head", &TrainOptions::head, "--head", "transfer.head",
          "finetune: the classifier node replaced by a new one for the new classes (default: "
          "the last linear node)")
          .omitted_by_default(),
      row("freeze", &TrainOptions::freeze, "--freeze", "transfer.freeze",
          "Freeze the parameters matching these patterns (comma-separated, e.g. conv*,layer1.*): "
          "no gradient, no weight-gradient pass")
          .omitted_by_default(),
      row("feature_cache", &TrainOptions::feature_cache, "--feature-cache",
          "transfer.feature_cache",
          "linear-probe, sparse-head: folder of the feature cache (default: "
          "~/.cache/sparsetrain/features; none: no cache)")
          .omitted_by_default()
          .not_inherited(),
      row("path_points", &TrainOptions::path_points, "--path-points", "transfer.path_points",
          "sparse-head: points of the regularisation path, from lambda_max down to "
          "lambda_max/1000")
          .at_least(1)
          .at_most(1000)
          .omitted_by_default(),
      row("head_alpha", &TrainOptions::head_alpha, "--head-alpha", "transfer.head_alpha",
          "sparse-head: elastic-net mixing of the L1 and L2 penalties (1: lasso)")
          .above(0)
          .at_most(1)
          .omitted_by_default(),
      row("val_fraction", &TrainOptions::val_fraction, "--val-fraction", "transfer.val_fraction",
          "sparse-head: share of the training samples held out to choose the path point")
          .above(0)
          .at_most(0.5)
          .omitted_by_default(),
      row("head_density", &TrainOptions::head_density, "--head-density", "transfer.head_density",
          "sparse-head: keep the densest head with at most this share of nonzero weights "
          "(default: the best validation accuracy)")
          .above(0)
          .at_most(1)
          .or_minus_one("the best validation accuracy")
          .omitted_by_default(),
  };
}

Rows all_rows() {
  Rows rows;
  for (Rows (*concern)() :
       {model_data_rows, optimizer_rows, sparsity_rows, retrain_rows, transfer_rows, run_rows}) {
    for (OptionRow& r : concern()) rows.push_back(std::move(r));
  }
  return rows;
}

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

template <class T>
std::string value_text(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return "'" + value + "'";
  } else if constexpr (std::is_floating_point_v<T>) {
    return detail::float_text(static_cast<double>(value), std::is_same_v<T, float>);
  } else {
    return std::to_string(value);
  }
}

}  // namespace

namespace detail {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string float_text(double value, bool single) {
  char text[64];
  const auto result = single ? std::to_chars(text, text + sizeof text, static_cast<float>(value))
                             : std::to_chars(text, text + sizeof text, value);
  std::string s(text, result.ptr);
  // YAML 1.1 readers take "1e-08" as a string; "1.0e-08" is a float everywhere.
  const std::size_t e = s.find('e');
  if (e != std::string::npos && s.find('.') == std::string::npos) s.insert(e, ".0");
  return s;
}

}  // namespace detail

std::vector<std::string> option_choices(const OptionRow& row) {
  return row.choices_are_sparsity_methods ? sparsity_method_names() : row.choices;
}

std::vector<std::string> option_methods(const OptionRow& row) {
  std::vector<std::string> names;
  if (!row.method_specific) return names;
  for (const std::string& name : sparsity_method_names()) {
    const std::vector<std::string> flags = make_sparsity_method(name)->option_flags();
    if (std::find(flags.begin(), flags.end(), row.flag) != flags.end()) names.push_back(name);
  }
  return names;
}

bool option_is_set(const OptionRow& row, const TrainOptions& options) {
  static const TrainOptions defaults;
  return std::visit([&](auto m) { return !(options.*m == defaults.*m); }, row.member);
}

const std::vector<OptionRow>& option_rows() {
  static const std::vector<OptionRow> rows = all_rows();
  return rows;
}

const OptionRow& option_row(std::string_view key) {
  for (const OptionRow& r : option_rows()) {
    if (r.key == key) return r;
  }
  throw Error("no setting named '" + std::string(key) + "'");
}

std::string option_expected(const OptionRow& row) {
  if (const auto choices = option_choices(row); !choices.empty())
    return "one of: " + detail::join(choices);
  if (row.tristate) return "auto, on or off (-1, 1 or 0)";
  const bool integer = std::visit(
      [](auto m) {
        using T = std::remove_reference_t<decltype(TrainOptions{}.*m)>;
        if constexpr (is_vector<T>::value) {
          return std::is_integral_v<typename T::value_type>;
        } else {
          return std::is_integral_v<T>;
        }
      },
      row.member);
  std::string range;
  if (integer) {
    range = std::isinf(row.max) ? "an integer >= " + value_text(static_cast<int64_t>(row.min))
                                : "an integer in [" + value_text(static_cast<int64_t>(row.min)) +
                                      ", " + value_text(static_cast<int64_t>(row.max)) + "]";
  } else {
    range = std::string("a number in ") + (row.open_min ? "(" : "[") +
            detail::float_text(row.min, false) + ", " +
            (std::isinf(row.max) ? "inf" : detail::float_text(row.max, false)) +
            (row.open_max || std::isinf(row.max) ? ")" : "]");
  }
  if (!row.minus_one.empty()) return "-1 (" + std::string(row.minus_one) + ") or " + range;
  return range;
}

bool option_accepts(const OptionRow& row, double value) {
  if (!row.minus_one.empty() && value == -1.0) return true;
  if (row.tristate) return value == -1.0 || value == 0.0 || value == 1.0;
  return std::isfinite(value) && value >= row.min && value <= row.max &&
         !(row.open_min && value == row.min) && !(row.open_max && value == row.max);
}

void check_option(const OptionRow& row, const TrainOptions& options) {
  static const TrainOptions defaults;
  const std::string name(row.name());
  auto check_number = [&](const auto& value) {
    if (!option_accepts(row, static_cast<double>(value))) {
      throw Error(name + " must be " + option_expected(row) + ", got " + value_text(value));
    }
  };
  std::visit(
      [&](auto m) {
        using T = std::remove_cvref_t<decltype(options.*m)>;
        const T& value = options.*m;
        if constexpr (std::is_same_v<T, std::string>) {
          const bool unset = value.empty() && value == defaults.*m;
          const std::vector<std::string> choices = option_choices(row);
          const bool bound = !choices.empty() && !row.choices_bind_recipes_only;
          if (bound && !unset &&
              std::find(choices.begin(), choices.end(), value) == choices.end()) {
            throw Error(name + ": unknown value " + value_text(value) +
                        " (expected one of: " + detail::join(choices) + ")");
          }
        } else if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                             std::is_same_v<T, bool>) {
          // Any value (probe names are checked by their registry).
        } else if constexpr (is_vector<T>::value) {
          for (std::size_t i = 0; i < value.size(); ++i) {
            check_number(value[i]);
            if (row.increasing && i > 0 && !(value[i] > value[i - 1])) {
              throw Error(name + " must increase: " + value_text(value[i]) + " follows " +
                          value_text(value[i - 1]));
            }
          }
        } else {
          check_number(value);
        }
      },
      row.member);
}

}  // namespace sparsetrain
