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
  sub->add_option("--batch-size", o.batch_size, "Samples per step")->capture_default_str();
  sub->add_option("--optimizer", o.optimizer, "sgd | adamw")->capture_default_str();
  sub->add_option("--lr", o.lr, "Base learning rate")->capture_default_str();
  sub->add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str();
  sub->add_flag("--nesterov", o.nesterov, "Nesterov momentum");
  sub->add_option("--weight-decay", o.weight_decay, "Weight decay (weights only)")
      ->capture_default_str();
  sub->add_option("--beta1", o.beta1, "AdamW beta1")->capture_default_str();
  sub->add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
  sub->add_option("--lr-schedule", o.lr_schedule, "constant | multistep | cosine | onecycle")
      ->capture_default_str();
  sub->add_option("--lr-milestones", o.milestones, "Epochs (comma-separated) where multistep multiplies the lr by --lr-gamma")
      ->delimiter(',');
  sub->add_option("--lr-gamma", o.lr_gamma, "Multistep factor")->capture_default_str();
  sub->add_option("--warmup-epochs", o.warmup_epochs, "Linear warm-up epochs")->capture_default_str();
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
  sub->add_option("--out", o.out_dir, "Run folder: checkpoints (checkpoint.safetensors) and probe output");
  sub->add_option("--metrics", o.metrics_path, "Write JSON lines (start, epoch, end events) to this file");
  sub->add_option("--resume", o.resume_dir, "Continue the run saved in this folder (or checkpoint file)");
  sub->add_option("--max-steps", o.max_steps, "Stop after this many steps in total (checkpointed)");
  sub->add_option("--log-every", o.log_every, "Also log every N-th step's loss to --metrics");
  sub->add_option("--probe", o.probes, "Probes to run on the final evaluation: activation-stats");
  sub->add_flag("--no-progress", cmd.no_progress, "No progress lines, only the table");
  return sub;
}

int run_train(TrainCommand& cmd) {
  TrainOptions& o = cmd.options;
  o.augment = cmd.augment == "auto" ? -1 : (cmd.augment == "on" ? 1 : 0);
  o.progress = !cmd.no_progress;
  if (!o.resume_dir.empty() && o.out_dir.empty()) o.out_dir = o.resume_dir;
  Trainer trainer(o, model_factory());
  const TrainResult r = trainer.run(std::cout);
  return r.interrupted ? 130 : 0;
}

}  // namespace sparsetrain::cli
