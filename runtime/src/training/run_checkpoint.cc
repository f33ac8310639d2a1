// Checkpoint files of runs (sparsetrain/trainer.h): where a run folder keeps
// its checkpoint, what a command may write over, and reading a checkpoint's
// options and model.

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/error.h"
#include "sparsetrain/kernel_choices.h"
#include "sparsetrain/trainer.h"
#include "training/retrain.h"

namespace sparsetrain {
namespace {

using json = nlohmann::json;

constexpr const char* kCheckpointFile = "checkpoint.safetensors";

}  // namespace

std::string checkpoint_file(const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) p /= kCheckpointFile;
  return p.string();
}

void check_checkpoint_target(const std::string& target, const std::string& flag,
                             const std::vector<std::string>& sources, bool force) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(target, ec)) return;
  for (const std::string& source : sources) {
    if (source.empty() || !fs::equivalent(target, checkpoint_file(source), ec)) continue;
    throw Error(flag + ": '" + target +
                "' is the checkpoint this command reads; writing there would replace its "
                "training state (choose another folder)");
  }
  if (!force) {
    throw Error(flag + ": '" + target +
                "' already holds a checkpoint; choose another folder, or replace it with "
                "--force (its training state is lost)");
  }
}

TrainOptions read_checkpoint_options(const std::string& path) {
  const std::filesystem::path p(checkpoint_file(path));
  const Checkpoint ck = Checkpoint::load(p.string());
  auto it = ck.metadata().find("options");
  if (it == ck.metadata().end()) {
    throw Error(p.string() + ": not a sparsetrain training checkpoint (no 'options' metadata)");
  }
  return options_from_json(it->second);
}

TrainOptions load_model_checkpoint(const std::string& path, const GraphFactory& factory,
                                   Graph& graph_out) {
  const Checkpoint ck = Checkpoint::load(path);
  auto field = [&](const char* key) -> const std::string& {
    return detail::checkpoint_meta(ck, key, path + ": not a sparsetrain checkpoint");
  };
  TrainOptions o = options_from_json(field("options"));
  std::array<int64_t, 3> shape{};
  int64_t classes = 0;
  try {
    shape = json::parse(field("sample_shape")).get<std::array<int64_t, 3>>();
    const std::string& text = field("num_classes");
    size_t used = 0;
    classes = std::stoll(text, &used);
    if (used != text.size()) throw Error("not an integer");
  } catch (const std::exception& e) {
    throw Error(path + ": bad sample_shape / num_classes metadata");
  }
  detail::check_model_claims(path, o, shape, classes);
  try {
    graph_out = factory(o.model, shape[0], shape[1], shape[2], classes);
  } catch (const std::bad_alloc&) {
    throw Error(path + ": the model it describes (" + o.model + " for samples " +
                json(shape).dump() + ", " + std::to_string(classes) +
                " classes) does not fit in memory");
  }
  load_graph_parameters(ck, graph_out,
                        o.sparse_storage == "masked" ? SparseLoad::kMasked : SparseLoad::kAsSaved);
  // The run's kernel mode and the choices it made: each compressed layer runs
  // the kernels it trained on, at any batch of at least
  // kKernelChoiceSharedMinBatch with nothing timed (an evaluation would
  // otherwise time every layer again at its batch size).
  graph_out.set_sparse_kernels(o.kernels);
  if (const auto it = ck.metadata().find("kernel_choices"); it != ck.metadata().end()) {
    const std::string where = path + ": metadata 'kernel_choices'";
    graph_out.replay_kernel_choices(kernel_choices_from_json(it->second, where), where);
  }
  return o;
}

}  // namespace sparsetrain
