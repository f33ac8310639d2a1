// TrainOptions: validation, the models' recommended hyper-parameters, and
// the JSON form stored in metrics and checkpoints.
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "training/retrain.h"
#include "sparsetrain/error.h"
#include "sparsetrain/probes.h"
#include "sparsetrain/schedule.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {

using json = nlohmann::json;

void validate(const TrainOptions& o) {
  auto fail = [](const std::string& msg) { throw Error(msg); };
  if (o.epochs < 1) fail("--epochs must be at least 1, got " + std::to_string(o.epochs));
  if (o.batch_size < 1)
    fail("--batch-size must be at least 1, got " + std::to_string(o.batch_size));
  if (o.eval_batch_size < 1) fail("--eval-batch-size must be at least 1");
  if (!(o.lr > 0) || !std::isfinite(o.lr))
    fail("--lr must be a positive number, got " + std::to_string(o.lr));
  if (o.momentum < 0 || o.momentum >= 1)
    fail("--momentum must be in [0, 1), got " + std::to_string(o.momentum));
  if (o.weight_decay < 0)
    fail("--weight-decay must be >= 0, got " + std::to_string(o.weight_decay));
  if (o.optimizer != "sgd" && o.optimizer != "adamw") {
    fail("--optimizer: unknown optimizer '" + o.optimizer + "' (expected sgd or adamw)");
  }
  if (o.clip_grad_norm < 0) fail("--clip-grad-norm must be >= 0");
  if (!(o.sparsity >= 0.0f && o.sparsity < 1.0f))
    fail("--sparsity must be in [0, 1), got " + std::to_string(o.sparsity));
  validate_sparsity_options(o);
  detail::validate_retrain_options(o);
  if (o.sparse_storage != "compressed" && o.sparse_storage != "masked")
    fail("--sparse-storage: unknown storage '" + o.sparse_storage +
         "' (expected compressed or masked)");
  if (o.kernels != "auto" && o.kernels != "sparse" && o.kernels != "dense")
    fail("--kernels: unknown kernels '" + o.kernels + "' (expected sparse, dense or auto)");
  if (o.threads < 0)
    fail("--threads must be >= 0 (0: all cores), got " + std::to_string(o.threads));
  if (o.warmup_epochs < 0) fail("--warmup-epochs must be >= 0");
  for (const auto& p : o.probes) make_probe(p);  // throws naming an unknown one
}

TrainOptions recommended_options(const std::string& model) {
  TrainOptions o;
  o.model = model;
  o.optimizer = "sgd";
  o.momentum = 0.9f;
  o.weight_decay = 5e-4f;
  o.lr_schedule = "onecycle";
  if (model.rfind("resnet", 0) == 0) {
    o.batch_size = 128;
    o.lr = 0.1f;
    o.nesterov = false;
  } else {
    o.batch_size = 50;
    o.lr = 0.05f;
    o.nesterov = true;
  }
  return o;
}

std::string options_to_json(const TrainOptions& o) {
  json j = {{"model", o.model},
            {"dataset", o.dataset},
            {"data_dir", o.data_dir},
            {"epochs", o.epochs},
            {"batch_size", o.batch_size},
            {"optimizer", o.optimizer},
            {"lr", o.lr},
            {"momentum", o.momentum},
            {"nesterov", o.nesterov},
            {"weight_decay", o.weight_decay},
            {"beta1", o.beta1},
            {"beta2", o.beta2},
            {"adam_eps", o.adam_eps},
            {"lr_schedule", o.lr_schedule},
            {"milestones", o.milestones},
            {"lr_gamma", o.lr_gamma},
            {"warmup_epochs", o.warmup_epochs},
            {"clip_grad_norm", o.clip_grad_norm},
            {"threads", o.threads},
            {"seed", o.seed},
            {"augment", o.augment},
            {"train_limit", o.train_limit},
            {"test_limit", o.test_limit},
            {"eval_batch_size", o.eval_batch_size},
            {"out_dir", o.out_dir},
            {"metrics_path", o.metrics_path},
            {"max_steps", o.max_steps},
            {"log_every", o.log_every},
            {"probes", o.probes},
            {"sparsity", o.sparsity},
            {"sparsity_method", o.sparsity_method},
            {"distribution", o.distribution},
            {"dense_first_last", o.dense_first_last},
            {"compress_epochs", o.compress_epochs},
            {"decompress_epochs", o.decompress_epochs},
            {"initial_sparsity", o.initial_sparsity},
            {"prune_start_epoch", o.prune_start_epoch},
            {"prune_end_epoch", o.prune_end_epoch},
            {"prune_every_steps", o.prune_every_steps},
            {"drop_fraction", o.drop_fraction},
            {"kernels", o.kernels},
            {"sparse_storage", o.sparse_storage}};
  // Snapshots and retraining (retrain.h).
  j["save_epochs"] = o.save_epochs;
  j["init_from"] = o.init_from;
  j["retrain"] = o.retrain;
  j["rewind_epoch"] = o.rewind_epoch;
  j["rewind_from"] = o.rewind_from;
  j["lr_schedule_epochs"] = o.lr_schedule_epochs;
  j["lr_schedule_offset_epochs"] = o.lr_schedule_offset_epochs;
  return j.dump();
}

TrainOptions options_from_json(const std::string& text) {
  TrainOptions o;
  try {
    const json j = json::parse(text);
    auto get = [&j](const char* key, auto& field) {
      if (j.contains(key)) field = j.at(key).get<std::decay_t<decltype(field)>>();
    };
    get("model", o.model);
    get("dataset", o.dataset);
    get("data_dir", o.data_dir);
    get("epochs", o.epochs);
    get("batch_size", o.batch_size);
    get("optimizer", o.optimizer);
    get("lr", o.lr);
    get("momentum", o.momentum);
    get("nesterov", o.nesterov);
    get("weight_decay", o.weight_decay);
    get("beta1", o.beta1);
    get("beta2", o.beta2);
    get("adam_eps", o.adam_eps);
    get("lr_schedule", o.lr_schedule);
    get("milestones", o.milestones);
    get("lr_gamma", o.lr_gamma);
    get("warmup_epochs", o.warmup_epochs);
    get("clip_grad_norm", o.clip_grad_norm);
    get("threads", o.threads);
    get("seed", o.seed);
    get("augment", o.augment);
    get("train_limit", o.train_limit);
    get("test_limit", o.test_limit);
    get("eval_batch_size", o.eval_batch_size);
    get("out_dir", o.out_dir);
    get("metrics_path", o.metrics_path);
    get("max_steps", o.max_steps);
    get("log_every", o.log_every);
    get("probes", o.probes);
    get("sparsity", o.sparsity);
    get("sparsity_method", o.sparsity_method);
    get("distribution", o.distribution);
    get("dense_first_last", o.dense_first_last);
    get("compress_epochs", o.compress_epochs);
    get("decompress_epochs", o.decompress_epochs);
    get("initial_sparsity", o.initial_sparsity);
    get("prune_start_epoch", o.prune_start_epoch);
    get("prune_end_epoch", o.prune_end_epoch);
    get("prune_every_steps", o.prune_every_steps);
    get("drop_fraction", o.drop_fraction);
    get("kernels", o.kernels);
    get("sparse_storage", o.sparse_storage);
    get("save_epochs", o.save_epochs);
    get("init_from", o.init_from);
    get("retrain", o.retrain);
    get("rewind_epoch", o.rewind_epoch);
    get("rewind_from", o.rewind_from);
    get("lr_schedule_epochs", o.lr_schedule_epochs);
    get("lr_schedule_offset_epochs", o.lr_schedule_offset_epochs);
  } catch (const json::exception& e) {
    throw Error(std::string("run options: not valid JSON: ") + e.what());
  }
  return o;
}

}  // namespace sparsetrain
