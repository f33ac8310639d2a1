#include <iostream>

#include "commands.h"
#include "sparsetrain/error.h"
#include "sparsetrain/models.h"

namespace sparsetrain::cli {

GraphFactory model_factory() {
  return [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t classes) {
    return build_model(model, ModelOptions{c, h, w, classes});
  };
}

CLI::App* add_train(CLI::App& app, TrainCommand& cmd) {
  TrainOptions& o = cmd.options;
  CLI::App* sub = app.add_subcommand("train", "Train a model on a dataset");
  sub->add_option("--model", o.model, "mlp | lenet5 | resnet20 | resnet32 | resnet56")
      ->capture_default_str();
  sub->add_option("--dataset", o.dataset, "mnist | fashion-mnist | cifar10")->capture_default_str();
  sub->add_option("--data-dir", o.data_dir, "Folder holding mnist/, fashion-mnist/, cifar-10/")
      ->capture_default_str();
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
  sub->add_option("--probe", o.probes, "Probes to run on the final evaluation: activation-stats");
  sub->add_option("--sparsity", o.sparsity,
                  "Prune every linear layer's weight to this sparsity by magnitude after "
                  "initialisation and train it compressed (0: dense)")
      ->capture_default_str();
  sub->add_option("--kernels", o.kernels,
                  "Kernels of compressed linear layers: sparse | dense | auto (timed once per "
                  "shape and density)")
      ->check(CLI::IsMember({"auto", "sparse", "dense"}))
      ->capture_default_str();
  sub->add_option("--sparse-storage", o.sparse_storage,
                  "How --sparsity layers are held: compressed (nonzeros only, sparse kernels) | "
                  "masked (dense weight + mask, dense kernels)")
      ->check(CLI::IsMember({"compressed", "masked"}))
      ->capture_default_str();
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
    SPARSETRAIN_FIELD("--kernels", kernels),
    SPARSETRAIN_FIELD("--sparse-storage", sparse_storage),
};
#undef SPARSETRAIN_FIELD

// The options of the run: the user's flags over a base. The base is the
// saved run's options when resuming (so `--resume DIR` alone continues the
// same run, and e.g. `--epochs 5` extends it), else the model's
// recommended options.
void resolve_options(TrainCommand& cmd) {
  TrainOptions& o = cmd.options;
  o.augment = cmd.augment == "auto" ? -1 : (cmd.augment == "on" ? 1 : 0);
  TrainOptions base;
  if (!o.resume_dir.empty()) {
    base = read_checkpoint_options(o.resume_dir);
    if (o.out_dir.empty()) o.out_dir = o.resume_dir;
  } else {
    base = recommended_options(o.model);
  }
  for (const FieldCopy& f : kFields) {
    if (cmd.app->count(f.flag) == 0) f.copy(o, base);
  }
  o.progress = !cmd.no_progress;
}

}  // namespace

int run_train(TrainCommand& cmd) {
  resolve_options(cmd);
  Trainer trainer(cmd.options, model_factory());
  const TrainResult r = trainer.run(std::cout);
  // Reaching --max-steps is a planned stop; a signal is not.
  const bool planned = cmd.options.max_steps >= 0 && r.steps >= cmd.options.max_steps;
  return r.interrupted && !planned ? 130 : 0;
}

}  // namespace sparsetrain::cli
