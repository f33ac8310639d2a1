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

int run_eval(EvalCommand& cmd) {
  if (cmd.batch_size < 1) throw Error("--batch-size must be at least 1");
  check_threads(cmd.threads);
  set_num_threads(cmd.threads);
  std::string path = cmd.checkpoint;
  if (std::filesystem::is_directory(path)) path += "/checkpoint.safetensors";
  Graph graph;
  const TrainOptions trained = load_model_checkpoint(path, zoo_factory(), graph);
  const std::string dataset = cmd.dataset.empty() ? trained.dataset : cmd.dataset;
  // Without --data-dir, the folder the run was trained from (when it named
  // one and this is its dataset), else the usual search.
  const std::string data_dir =
      !cmd.data_dir.empty() || dataset != trained.dataset ? cmd.data_dir : trained.data_dir;
  const std::string classes =
      cmd.classes.empty() && dataset == trained.dataset ? trained.classes : cmd.classes;
  const Dataset data = load_dataset(dataset, data_dir, Split::kTest, cmd.limit, classes);
  const int64_t outputs = graph.shape_of(graph.output()).back();
  if (data.num_classes != outputs) {
    throw Error("the model has " + std::to_string(outputs) + " outputs but the evaluated data " +
                "has " + std::to_string(data.num_classes) + " classes" +
                (classes.empty() ? "" : " (--classes " + classes + ")"));
  }
  graph.node(graph.find("input")).output_shape({Shape{1, data.channels, data.height, data.width}});
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
