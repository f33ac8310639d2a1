// Recipes (DESIGN.md "Sparsity methods"): a YAML file that names a run's
// model, data, optimizer, learning-rate schedule and sparsity schedule.
// `sparsetrain train --recipe F` starts from the model's recommended options,
// applies the recipe, then the flags given on the command line (flags win).
// The resolved options are saved as a recipe (recipe_to_yaml) in the run
// folder and in every checkpoint, so a run can be repeated from its folder.
//
//   description: free text (ignored)
//   model: resnet20                     # any model of the zoo
//   dataset: cifar10                    # mnist | fashion-mnist | cifar10
//   data_dir: ../shared/data            # empty or absent: searched (data.h)
//   epochs: 200
//   batch_size: 128
//   eval_batch_size: 500
//   seed: 0
//   threads: 0                          # 0: all cores
//   augment: auto                       # auto | true | false
//   train_limit: -1                     # -1: all images, else at least 1
//   test_limit: -1
//   clip_grad_norm: 0                   # 0: off
//   kernels: auto                       # auto | sparse | dense
//   save_epochs: [2, 5]                 # snapshots for weight rewinding
//   optimizer:
//     name: sgd                         # sgd | adamw
//     lr: 0.1
//     momentum: 0.9
//     nesterov: false
//     weight_decay: 5.0e-4
//     beta1: 0.9                        # adamw
//     beta2: 0.999
//     eps: 1.0e-8
//   lr_schedule:
//     name: multistep                   # constant | multistep | cosine | onecycle
//     milestones: [100, 150]            # multistep, epochs
//     gamma: 0.1
//     warmup_epochs: 0
//     span_epochs: 0                    # the schedule spans this many epochs (0: epochs)
//     offset_epochs: 0                  # and the run starts this far into it
//   sparsity:
//     method: acdc                      # static | acdc | gmp | rigl
//     target: 0.9
//     distribution: global              # global | uniform | erk (default: the method's)
//     dense_first_last: auto            # auto | true | false
//     storage: compressed               # compressed | masked
//     phases:                           # acdc: contiguous, in order, dense before the first
//       - {state: compressed, start: 10, end: 30}
//       - {state: decompressed, start: 30, end: 50}
//       - ...
//     initial_sparsity: 0               # gmp
//     start_epoch: 3                    # gmp, rigl (default: the method's)
//     end_epoch: 18
//     every_steps: 100
//     drop_fraction: 0.3                # rigl
//   retrain:
//     init_from: runs/pruned            # a checkpoint or run folder
//     mode: lr-rewind                   # finetune | lr-rewind | weight-rewind
//     rewind_epoch: 5
//     rewind_from: runs/dense/epoch-5   # weight-rewind (default: the original run's)
//   transfer:                           # sparsetrain finetune (sparsetrain/transfer.h)
//     mode: full                        # full | linear-probe | sparse-head
//     head: fc                          # default: the last linear node
//     freeze: [conv1.*]                 # any run
//     feature_cache: none               # linear-probe, sparse-head (default: user cache)
//     path_points: 100                  # sparse-head
//     head_alpha: 0.99
//     val_fraction: 0.1
//     head_density: -1                  # -1: the best validation accuracy
//
// The keys are the recipe keys of the settings schema (option_rows(),
// options.h), read and range-checked as their rows say; sparsity.phases sets
// compress_epochs and decompress_epochs. Every key is optional. A wrong
// recipe is refused with an Error naming the file, the line and the key:
// YAML syntax, an unknown or repeated key, a value of the wrong type or out
// of range, a method parameter for another method, or AC/DC phases that
// overlap, leave a gap or are out of order.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

class Recipe {
 public:
  // Reads and validates a recipe file.
  static Recipe load(const std::string& path);
  // The same for recipe text; `source` names it in error messages.
  static Recipe parse(const std::string& text, const std::string& source);

  const std::string& source() const { return source_; }
  // The model the recipe names ("" when none).
  const std::string& model() const { return model_; }
  // Sets every field the recipe names on `options`; the others are left.
  void apply(TrainOptions& options) const;
  // The keys the recipe sets ("optimizer.lr", ...) with their lines (1-based).
  const std::vector<std::pair<std::string, int>>& keys() const { return keys_; }
  // "recipe 'F', line N (key)" for an error about `key` found later (the
  // model name, say); "recipe 'F'" when the recipe does not set it.
  std::string where(const std::string& key) const;

 private:
  std::string source_;
  std::string model_;
  std::vector<std::pair<std::string, int>> keys_;
  std::vector<std::function<void(TrainOptions&)>> setters_;
  friend class RecipeParser;
};

// The options as a recipe (every recipe field, defaults included), which
// Recipe::parse reads back to the same options.
std::string recipe_to_yaml(const TrainOptions& options);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
