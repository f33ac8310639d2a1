#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/log.h"
#include "sparsetrain/models.h"

namespace sparsetrain::cli {

CLI::App* add_eval(CLI::App& app, EvalCommand& cmd) {
  CLI::App* sub = app.add_subcommand("eval", "Evaluate a checkpoint on a dataset's test split");
  sub->add_option("--checkpoint", cmd.checkpoint, "checkpoint.safetensors (or its run folder)")
      ->required();
  sub->add_option("--dataset", cmd.dataset,
                  "mnist | fashion-mnist | cifar10 (default: the training one)");
  sub->add_option("--classes", cmd.classes,
                  "Keep only these classes, relabelled 0..k-1 in the order given: 0-4, or "
                  "5,6,7,8,9 (default: the training run's)");
  sub->add_option("--data-dir", cmd.data_dir, option_help("data_dir"));
  sub->add_option("--batch-size", cmd.batch_size, "Evaluation batch size")->capture_default_str();
  sub->add_option("--limit", cmd.limit, "Use only the first N test images");
  sub->add_option("--threads", cmd.threads, option_help("threads"))->capture_default_str();
  sub->add_flag("--json", cmd.json, "Print one JSON object");
  return sub;
}

ModelOnData load_model_on_data(const std::string& checkpoint, const std::string& dataset_flag,
                               const std::string& classes_flag, const std::string& data_dir_flag,
                               Split split, int64_t limit) {
  ModelOnData m;
  m.path = checkpoint;
  if (std::filesystem::is_directory(m.path)) m.path += "/checkpoint.safetensors";
  m.trained = load_model_checkpoint(m.path, zoo_factory(), m.graph);
  m.dataset = dataset_flag.empty() ? m.trained.dataset : dataset_flag;
  // Without --data-dir, the folder the run was trained from (when it named
  // one and this is its dataset), else the usual search.
  m.data_dir =
      !data_dir_flag.empty() || m.dataset != m.trained.dataset ? data_dir_flag : m.trained.data_dir;
  m.classes =
      classes_flag.empty() && m.dataset == m.trained.dataset ? m.trained.classes : classes_flag;
  m.data = load_dataset(m.dataset, m.data_dir, split, limit, m.classes);
  const int64_t outputs = m.graph.shape_of(m.graph.output()).back();
  if (m.data.num_classes != outputs) {
    throw Error("the model has " + std::to_string(outputs) +
                " outputs but the evaluated data has " + std::to_string(m.data.num_classes) +
                " classes" + (m.classes.empty() ? "" : " (--classes " + m.classes + ")"));
  }
  m.graph.node(m.graph.find("input"))
      .output_shape({Shape{1, m.data.channels, m.data.height, m.data.width}});
  return m;
}

int run_eval(EvalCommand& cmd) {
  if (cmd.batch_size < 1) throw Error("--batch-size must be at least 1");
  check_threads(cmd.threads);
  set_num_threads(cmd.threads);
  ModelOnData m = load_model_on_data(cmd.checkpoint, cmd.dataset, cmd.classes, cmd.data_dir,
                                     Split::kTest, cmd.limit);
  const std::string& path = m.path;
  const TrainOptions& trained = m.trained;
  const std::string& dataset = m.dataset;
  const std::string& classes = m.classes;
  const Dataset& data = m.data;
  Graph& graph = m.graph;
  const EvalResult r = evaluate_graph(graph, data, cmd.batch_size);
  if (cmd.json) {
    nlohmann::json per_class = nlohmann::json::array();
    for (std::size_t c = 0; c < r.class_accuracy.size(); ++c) {
      per_class.push_back(
          {{"class", c < data.class_names.size() ? data.class_names[c] : std::to_string(c)},
           {"accuracy", r.class_accuracy[c]},
           {"count", r.class_count[c]}});
    }
    std::cout << nlohmann::json({{"checkpoint", path},
                                 {"model", trained.model},
                                 {"dataset", dataset},
                                 {"classes", data.class_names},
                                 {"samples", r.samples},
                                 {"accuracy", r.accuracy},
                                 {"loss", r.loss},
                                 {"per_class", per_class}})
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
    return 0;
  }
  const std::string subset = classes.empty() ? "" : " classes " + classes;
  std::printf("model %s, dataset %s%s (%lld test images)\n", trained.model.c_str(), dataset.c_str(),
              subset.c_str(), static_cast<long long>(r.samples));
  std::printf("accuracy %.2f%%  loss %.4f\n\n", 100.0 * r.accuracy, r.loss);
  std::printf("%-14s %9s %7s\n", "class", "accuracy", "images");
  for (std::size_t c = 0; c < r.class_accuracy.size(); ++c) {
    const std::string name = c < data.class_names.size() ? data.class_names[c] : std::to_string(c);
    std::printf("%-14s %8.2f%% %7lld\n", name.c_str(), 100.0 * r.class_accuracy[c],
                static_cast<long long>(r.class_count[c]));
  }
  return 0;
}

}  // namespace sparsetrain::cli
