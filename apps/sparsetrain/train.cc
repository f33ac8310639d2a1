#include <algorithm>
#include <iostream>
#include <optional>

#include "commands.h"
#include "sparsetrain/error.h"
#include "sparsetrain/models.h"
#include "sparsetrain/probes.h"
#include "sparsetrain/recipe.h"

namespace sparsetrain::cli {

CLI::App* add_train(CLI::App& app, TrainCommand& cmd) {
  TrainOptions& o = cmd.options;
  CLI::App* sub = app.add_subcommand("train", "Train a model on a dataset");
  sub->add_option("--model", o.model, "mlp | lenet5 | resnet20 | resnet32 | resnet56")
      ->capture_default_str();
  sub->add_option("--dataset", o.dataset, "mnist | fashion-mnist | cifar10")->capture_default_str();
  sub->add_option("--data-dir", o.data_dir, kDataDirHelp);
  sub->add_option("--epochs", o.epochs, "Training epochs")->capture_default_str();
  sub->add_option("--batch-size", o.batch_size,
                  "Samples per step (default: 50 for mlp/lenet5, 128 for resnets)");
  sub->add_option("--optimizer", o.optimizer, "sgd | adamw")->capture_default_str();
  sub->add_option("--lr", o.lr,
                  "Peak learning rate (default: 0.05 for mlp/lenet5, 0.1 for resnets)");
  sub->add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str();
  sub->add_flag("--nesterov,!--no-nesterov", o.nesterov,
                "Nesterov momentum (default: on for mlp/lenet5)");
  sub->add_option("--weight-decay", o.weight_decay, "Weight decay (weights only)")
      ->capture_default_str();
  sub->add_option("--beta1", o.beta1, "AdamW beta1")->capture_default_str();
  sub->add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
  sub->add_option("--lr-schedule", o.lr_schedule,
                  "constant | multistep | cosine | onecycle (default: onecycle)");
  sub->add_option("--lr-milestones", o.milestones,
                  "Epochs (comma-separated) where multistep multiplies the lr by --lr-gamma")
      ->delimiter(',');
  sub->add_option("--lr-gamma", o.lr_gamma, "Multistep factor")->capture_default_str();
  sub->add_option("--warmup-epochs", o.warmup_epochs, "Linear warm-up epochs")
      ->capture_default_str();
  sub->add_option("--clip-grad-norm", o.clip_grad_norm, "Clip the global gradient norm (0: off)")
      ->capture_default_str();
  sub->add_option("--threads", o.threads, "Worker threads (0: all cores)")->capture_default_str();
  sub->add_option("--seed", o.seed, "Seed of initialisation, shuffling and augmentation")
      ->capture_default_str();
  sub->add_option("--augment", cmd.augment, "auto | on | off (auto: crop + flip on cifar10)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  sub->add_option("--train-limit", o.train_limit, "Use only the first N training images");
  sub->add_option("--test-limit", o.test_limit, "Use only the first N test images");
  sub->add_option("--eval-batch-size", o.eval_batch_size, "Batch size of evaluation")
      ->capture_default_str();
  sub->add_option("--out", o.out_dir,
                  "Run folder: checkpoints (checkpoint.safetensors) and probe output");
  sub->add_option("--metrics", o.metrics_path,
                  "Write JSON lines (start, epoch, end events) to this file");
  sub->add_option("--resume", o.resume_dir,
                  "Continue the run saved in this folder (or checkpoint file)");
  sub->add_option("--max-steps", o.max_steps, "Stop after this many steps in total (checkpointed)");
  sub->add_option("--log-every", o.log_every, "Also log every N-th step's loss to --metrics");
  std::string probe_list;
  for (const std::string& name : probe_names())
    probe_list += (probe_list.empty() ? "" : ", ") + name;
  sub->add_option("--probe", o.probes, "Probes to run on the final evaluation: " + probe_list);
  sub->add_option("--sparsity", o.sparsity,
                  "Target sparsity over the pruned conv and linear weights (0: dense)")
      ->capture_default_str();
  sub->add_option("--sparsity-method", o.sparsity_method,
                  "static (masks fixed after initialisation) | acdc (alternating compressed and "
                  "decompressed phases) | gmp (gradual magnitude pruning, cubic) | rigl (drop by "
                  "magnitude, grow by gradient)")
      ->check(CLI::IsMember({"static", "acdc", "gmp", "rigl"}))
      ->capture_default_str();
  sub->add_option("--distribution", o.distribution,
                  "How the sparsity spreads over layers: global | uniform | erk (default: uniform "
                  "for static, global for acdc and gmp, erk for rigl)")
      ->check(CLI::IsMember({"global", "uniform", "erk"}));
  sub->add_option("--dense-first-last", o.dense_first_last,
                  "Keep the first and last prunable layer dense: auto (when the model has "
                  "convolutions) | on | off")
      ->transform(
          CLI::CheckedTransformer(std::map<std::string, int>{{"auto", -1}, {"on", 1}, {"off", 0}}))
      ->default_str("auto");
  sub->add_option("--compress-epochs", o.compress_epochs,
                  "acdc: epochs (comma-separated, fractions allowed) where compressed phases "
                  "begin (default: 5,25,45,65,85% of the run)")
      ->delimiter(',');
  sub->add_option("--decompress-epochs", o.decompress_epochs,
                  "acdc: epochs where decompressed phases begin, one fewer than "
                  "--compress-epochs (default: 15,35,55,75% of the run)")
      ->delimiter(',');
  sub->add_option("--initial-sparsity", o.initial_sparsity,
                  "gmp: sparsity of the first pruning step")
      ->capture_default_str();
  sub->add_option("--prune-start-epoch", o.prune_start_epoch,
                  "gmp: first pruning step; rigl: first mask update after it (epochs, -1: "
                  "gmp 10% of the run, rigl 0)")
      ->capture_default_str();
  sub->add_option("--prune-end-epoch", o.prune_end_epoch,
                  "gmp: the final sparsity is reached here, then compressed; rigl: no mask "
                  "updates after it (epochs, -1: gmp 60%, rigl 75% of the run)")
      ->capture_default_str();
  sub->add_option("--prune-every-steps", o.prune_every_steps,
                  "gmp: steps between pruning steps; rigl: steps between mask updates")
      ->capture_default_str();
  sub->add_option("--drop-fraction", o.drop_fraction,
                  "rigl: fraction of each layer's weights dropped and regrown at the first "
                  "update, cosine-decayed to 0 at --prune-end-epoch")
      ->capture_default_str();
  sub->add_option("--kernels", o.kernels,
                  "Kernels of compressed linear layers: sparse | dense | auto (timed once per "
                  "shape and density)")
      ->check(CLI::IsMember({"auto", "sparse", "dense"}))
      ->capture_default_str();
  sub->add_option("--sparse-storage", o.sparse_storage,
                  "How pruned layers are held: compressed (nonzeros only, sparse kernels) | "
                  "masked (dense weight + mask, dense kernels)")
      ->check(CLI::IsMember({"compressed", "masked"}))
      ->capture_default_str();
  sub->add_option("--recipe", cmd.recipe,
                  "YAML recipe of the run (model, data, optimizer, lr and sparsity schedules); "
                  "flags given with it override its fields");
  sub->add_flag("--print-recipe", cmd.print_recipe,
                "Print the resolved recipe (recipe, then flags) as YAML and exit");
  sub->add_option("--save-epochs", o.save_epochs,
                  "Also save the training state after these epochs (comma-separated, 0: before "
                  "the first step) in <out>/epoch-<E>/, for --retrain weight-rewind")
      ->delimiter(',');
  sub->add_option("--init-from", o.init_from,
                  "Start from this checkpoint's weights (file or run folder); its pruned weights "
                  "keep their masks for the whole run");
  sub->add_option("--retrain", o.retrain,
                  "With --init-from a pruned checkpoint: finetune (the original run's final lr) | "
                  "lr-rewind (the original lr schedule from --rewind-epoch) | weight-rewind "
                  "(also the weights of epoch --rewind-epoch)")
      ->check(CLI::IsMember({"finetune", "lr-rewind", "weight-rewind"}));
  sub->add_option("--rewind-epoch", o.rewind_epoch,
                  "lr-rewind, weight-rewind: the original run's epoch to rewind to (default: its "
                  "epochs minus --epochs)");
  sub->add_option("--rewind-from", o.rewind_from,
                  "weight-rewind: the snapshot to rewind to (default: epoch-<E>/ of the run the "
                  "pruned checkpoint came from)");
  sub->add_flag("--no-progress", cmd.no_progress, "No progress lines, only the table");
  cmd.app = sub;
  return sub;
}

namespace {

// Flag -> field, for taking the fields the user did not set from a base
// (the model's recommended options, or the options of a run being resumed).
struct FieldCopy {
  const char* flag;
  void (*copy)(TrainOptions& to, const TrainOptions& from);
};
#define SPARSETRAIN_FIELD(flag, member)                                               \
  FieldCopy {                                                                         \
    flag, [](TrainOptions& to, const TrainOptions& from) { to.member = from.member; } \
  }
const FieldCopy kFields[] = {
    SPARSETRAIN_FIELD("--model", model),
    SPARSETRAIN_FIELD("--dataset", dataset),
    SPARSETRAIN_FIELD("--data-dir", data_dir),
    SPARSETRAIN_FIELD("--epochs", epochs),
    SPARSETRAIN_FIELD("--batch-size", batch_size),
    SPARSETRAIN_FIELD("--optimizer", optimizer),
    SPARSETRAIN_FIELD("--lr", lr),
    SPARSETRAIN_FIELD("--momentum", momentum),
    SPARSETRAIN_FIELD("--nesterov", nesterov),
    SPARSETRAIN_FIELD("--weight-decay", weight_decay),
    SPARSETRAIN_FIELD("--beta1", beta1),
    SPARSETRAIN_FIELD("--beta2", beta2),
    SPARSETRAIN_FIELD("--lr-schedule", lr_schedule),
    SPARSETRAIN_FIELD("--lr-milestones", milestones),
    SPARSETRAIN_FIELD("--lr-gamma", lr_gamma),
    SPARSETRAIN_FIELD("--warmup-epochs", warmup_epochs),
    SPARSETRAIN_FIELD("--clip-grad-norm", clip_grad_norm),
    SPARSETRAIN_FIELD("--threads", threads),
    SPARSETRAIN_FIELD("--seed", seed),
    SPARSETRAIN_FIELD("--augment", augment),
    SPARSETRAIN_FIELD("--train-limit", train_limit),
    SPARSETRAIN_FIELD("--test-limit", test_limit),
    SPARSETRAIN_FIELD("--eval-batch-size", eval_batch_size),
    SPARSETRAIN_FIELD("--metrics", metrics_path),
    SPARSETRAIN_FIELD("--log-every", log_every),
    SPARSETRAIN_FIELD("--probe", probes),
    SPARSETRAIN_FIELD("--sparsity", sparsity),
    SPARSETRAIN_FIELD("--sparsity-method", sparsity_method),
    SPARSETRAIN_FIELD("--distribution", distribution),
    SPARSETRAIN_FIELD("--dense-first-last", dense_first_last),
    SPARSETRAIN_FIELD("--compress-epochs", compress_epochs),
    SPARSETRAIN_FIELD("--decompress-epochs", decompress_epochs),
    SPARSETRAIN_FIELD("--initial-sparsity", initial_sparsity),
    SPARSETRAIN_FIELD("--prune-start-epoch", prune_start_epoch),
    SPARSETRAIN_FIELD("--prune-end-epoch", prune_end_epoch),
    SPARSETRAIN_FIELD("--prune-every-steps", prune_every_steps),
    SPARSETRAIN_FIELD("--drop-fraction", drop_fraction),
    SPARSETRAIN_FIELD("--kernels", kernels),
    SPARSETRAIN_FIELD("--sparse-storage", sparse_storage),
    SPARSETRAIN_FIELD("--save-epochs", save_epochs),
    SPARSETRAIN_FIELD("--init-from", init_from),
    SPARSETRAIN_FIELD("--retrain", retrain),
    SPARSETRAIN_FIELD("--rewind-epoch", rewind_epoch),
    SPARSETRAIN_FIELD("--rewind-from", rewind_from),
};
#undef SPARSETRAIN_FIELD

// The base of a run started from a checkpoint (--init-from): the options
// that trained it (model, data, batch, optimizer, lr schedule, epochs),
// without its sparsity schedule, snapshots, retraining and run folders.
TrainOptions init_base(const std::string& path) {
  TrainOptions o = read_checkpoint_options(path);
  const TrainOptions d;
  o.out_dir = d.out_dir;
  o.metrics_path = d.metrics_path;
  o.resume_dir = d.resume_dir;
  o.max_steps = d.max_steps;
  o.log_every = d.log_every;
  o.probes = d.probes;
  o.sparsity = d.sparsity;
  o.sparsity_method = d.sparsity_method;
  o.distribution = d.distribution;
  o.dense_first_last = d.dense_first_last;
  o.compress_epochs = d.compress_epochs;
  o.decompress_epochs = d.decompress_epochs;
  o.initial_sparsity = d.initial_sparsity;
  o.prune_start_epoch = d.prune_start_epoch;
  o.prune_end_epoch = d.prune_end_epoch;
  o.prune_every_steps = d.prune_every_steps;
  o.drop_fraction = d.drop_fraction;
  o.save_epochs = d.save_epochs;
  o.init_from = d.init_from;
  o.retrain = d.retrain;
  o.rewind_epoch = d.rewind_epoch;
  o.rewind_from = d.rewind_from;
  o.lr_schedule_epochs = d.lr_schedule_epochs;
  o.lr_schedule_offset_epochs = d.lr_schedule_offset_epochs;
  return o;
}

// The lr flags that --retrain replaces by the original run's schedule.
constexpr const char* kRetrainLrFlags[] = {"--lr", "--lr-schedule", "--lr-milestones", "--lr-gamma",
                                           "--warmup-epochs"};

// The options of the run: the user's flags over a base. The base is the
// saved run's options when resuming (so `--resume DIR` alone continues the
// same run, and e.g. `--epochs 5` extends it), else the model's
// recommended options with the recipe (--recipe) applied over them, else
// the options of the --init-from checkpoint's run (init_base), else the
// model's recommended options.
void resolve_options(TrainCommand& cmd) {
  TrainOptions& o = cmd.options;
  o.augment = cmd.augment == "auto" ? -1 : (cmd.augment == "on" ? 1 : 0);
  TrainOptions base;
  std::optional<Recipe> recipe;
  if (!o.resume_dir.empty()) {
    if (!cmd.recipe.empty()) {
      throw Error("--recipe with --resume: the run's resolved recipe is saved with it (" +
                  o.resume_dir + "/recipe.yaml); give flags to change it");
    }
    base = read_checkpoint_options(o.resume_dir);
    if (o.out_dir.empty()) o.out_dir = o.resume_dir;
  } else if (!cmd.recipe.empty()) {
    recipe = Recipe::load(cmd.recipe);
    const bool model_flag = cmd.app->count("--model") != 0;
    if (!model_flag && !recipe->model().empty()) {
      const std::vector<std::string> known = model_names();
      if (std::find(known.begin(), known.end(), recipe->model()) == known.end()) {
        std::string list;
        for (const std::string& m : known) list += (list.empty() ? "" : ", ") + m;
        throw Error(recipe->where("model") + ": unknown model '" + recipe->model() +
                    "' (expected one of: " + list + ")");
      }
    }
    base = recommended_options(model_flag || recipe->model().empty() ? o.model : recipe->model());
    recipe->apply(base);
  } else if (!o.init_from.empty()) {
    base = init_base(o.init_from);
  } else {
    base = recommended_options(o.model);
  }
  // The base with the flags given over it; fields without a flag (the lr
  // schedule's span and offset of a retraining run, AdamW's eps) keep the
  // base's value, the run-control flags below always the command line's.
  const TrainOptions flags = o;
  o = base;
  for (const FieldCopy& f : kFields) {
    if (cmd.app->count(f.flag) != 0) f.copy(o, flags);
  }
  o.out_dir = flags.out_dir;
  o.resume_dir = flags.resume_dir;
  o.max_steps = flags.max_steps;
  o.progress = !cmd.no_progress;
  if (!o.retrain.empty() && o.resume_dir.empty()) {
    for (const char* flag : kRetrainLrFlags) {
      if (cmd.app->count(flag) != 0) {
        throw Error(std::string(flag) + " with --retrain " + o.retrain +
                    ": retraining takes its learning rate from the original run; use "
                    "--init-from without --retrain for a schedule of your own");
      }
    }
  }
  if (recipe) {
    try {
      validate(o);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (options from recipe '" + recipe->source() +
                  "' and the flags)");
    }
  }
}

}  // namespace

int run_train(TrainCommand& cmd) {
  resolve_options(cmd);
  if (cmd.print_recipe) {
    std::cout << recipe_to_yaml(cmd.options);
    return 0;
  }
  Trainer trainer(cmd.options, zoo_factory());
  const TrainResult r = trainer.run(std::cout);
  // Reaching --max-steps is a planned stop; a signal is not.
  const bool planned = cmd.options.max_steps >= 0 && r.steps >= cmd.options.max_steps;
  return r.interrupted && !planned ? 130 : 0;
}

}  // namespace sparsetrain::cli
