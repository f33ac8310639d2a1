// Trainer's checkpoints (trainer.h): parameters with their sparse state
// (checkpoint.h, format 2: compressed weights as their stored values plus a
// bitmask, masked ones dense plus a bitmask), optimizer state, the
// generator, the position in the run, the history and the kernel choices.
#include <nlohmann/json.hpp>

#include "base/json_text.h"
#include "sparsetrain/error.h"
#include "sparsetrain/kernel_choices.h"
#include "sparsetrain/recipe.h"
#include "training/retrain.h"
#include "training/trainer_impl.h"
#include "training/trainer_report.h"

namespace sparsetrain {

using json = nlohmann::json;
using namespace report;

void Trainer::save_checkpoint(const std::string& path) const {
  const Impl& m = *impl_;
  Checkpoint ck;
  // A head over features saves the whole model it belongs to.
  if (m.stage) m.stage->store_head(m.params);
  save_parameters(ck, m.stage ? m.stage->model().parameters() : m.params);
  save_optimizer_state(ck, *m.optimizer, m.params);
  save_rng(ck, "rng/trainer", m.rng);
  const json state = fields_to_json(m, kPositionFields);
  json history = json::array();
  for (const auto& e : m.history) history.push_back(epoch_to_json(e));
  auto& meta = ck.metadata();
  meta["format"] = "sparsetrain-checkpoint-2";
  meta["options"] = options_to_json(m.options);
  meta["state"] = state.dump();
  meta["history"] = history.dump();
  meta["sample_shape"] = m.stage ? json(m.stage->model().input_shape()).dump()
                                 : json({m.train.channels, m.train.height, m.train.width}).dump();
  meta["num_classes"] = std::to_string(m.train.num_classes);
  // Replayed by --resume, so the resumed run takes the same kernels.
  meta["kernel_choices"] = kernel_choices_to_json(m.graph.kernel_choices());
  // For people reading the file (the options above are exact).
  meta["recipe"] = detail::utf8_lossy(recipe_to_yaml(m.options));
  ck.save(path);
}

void Trainer::load_checkpoint(const std::string& path) {
  Impl& m = *impl_;
  const Checkpoint ck = Checkpoint::load(path);
  auto field = [&](const char* key) -> const std::string& {
    return detail::checkpoint_meta(ck, key, path + ": not a sparsetrain training checkpoint");
  };
  const TrainOptions saved = options_from_json(field("options"));
  if (saved.model != m.options.model) {
    throw Error(path + ": the checkpoint holds model '" + saved.model + "', not '" +
                m.options.model + "'");
  }
  if (m.stage) {
    // The whole model; the head graph takes its head.
    detail::load_parameters_sparse(ck, m.stage->model(), m.options.sparse_storage == "masked");
    m.stage->load_head(m.graph);
  } else {
    detail::load_parameters_sparse(ck, m.graph, m.options.sparse_storage == "masked");
  }
  m.params = m.graph.parameters();
  load_optimizer_state(ck, *m.optimizer, m.params);
  load_rng(ck, "rng/trainer", m.rng);
  try {
    fields_from_json(json::parse(field("state")), m, kPositionFields);
    m.history.clear();
    for (const auto& e : json::parse(field("history"))) m.history.push_back(epoch_from_json(e));
  } catch (const json::exception& e) {
    throw Error(path + ": bad training state in the checkpoint metadata: " + e.what());
  }
  if (const auto it = ck.metadata().find("kernel_choices"); it != ck.metadata().end()) {
    const std::string where = path + ": metadata 'kernel_choices'";
    const std::vector<KernelChoice> recorded = kernel_choices_from_json(it->second, where);
    m.graph.replay_kernel_choices(recorded, where);
    m.choices_note +=
        "kernel choices: replaying " + std::to_string(recorded.size()) + " from the checkpoint\n";
  }
  // The masks came back with the parameters; the phase follows from the step.
  m.sparsity->resume(m.step);
}

}  // namespace sparsetrain
