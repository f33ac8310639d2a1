// `sparsetrain compare`: groups of trained models against a reference group
// (sparsetrain/compare.h), with compare.json and report.html.

#include "sparsetrain/compare.h"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "sparsetrain/error.h"
#include "sparsetrain/log.h"
#include "sparsetrain/models.h"

namespace sparsetrain::cli {

CLI::App* add_compare(CLI::App& app, CompareCommand& cmd) {
  CLI::App* sub = app.add_subcommand(
      "compare", "Compare groups of trained models beyond accuracy (report.html, compare.json)");
  sub->add_option("--model-group", cmd.groups,
                  "NAME=RUN[,RUN...]: a group of runs (seeds); the first group is the reference. "
                  "Repeat for each group")
      ->required();
  sub->add_option("--dataset", cmd.dataset,
                  "mnist | fashion-mnist | cifar10 (default: the training one)");
  sub->add_option("--classes", cmd.classes,
                  "Keep only these classes (default: the training run's)");
  sub->add_option("--data-dir", cmd.data_dir, option_help("data_dir"));
  sub->add_option("--split", cmd.split, "test | train")->capture_default_str();
  sub->add_option("--limit", cmd.limit, "Use only the first N images");
  sub->add_option("--layer", cmd.options.layer,
                  "Node whose output is the embedding (default: the classifier's input)");
  sub->add_option("--k", cmd.options.k, "Nearest neighbours per sample")->capture_default_str();
  sub->add_option("--metric", cmd.options.metric, "cosine | euclidean")->capture_default_str();
  sub->add_option("--bins", cmd.options.bins, "Calibration bins")->capture_default_str();
  sub->add_option("--uncertain-below", cmd.options.uncertain_below,
                  "A prediction is uncertain when its largest softmax probability is below this")
      ->capture_default_str();
  sub->add_option("--noise-steps", cmd.options.noise_steps,
                  "Uniform-noise amplitudes from 0 to --noise-max")
      ->capture_default_str();
  sub->add_option(
         "--noise-max", cmd.options.noise_max,
         "Largest noise amplitude, in units of the normalised input (the dataset's stddev)")
      ->capture_default_str();
  sub->add_option("--corruptions", cmd.corruptions,
                  "Comma-separated: gaussian-noise, defocus-blur, contrast, brightness, pixelate, "
                  "or none")
      ->capture_default_str();
  sub->add_option("--severities", cmd.options.severities, "Severities 1..N of each corruption")
      ->capture_default_str();
  sub->add_option("--robust-limit", cmd.options.robust_limit,
                  "Images of the noise and corruption passes: the first N (-1: all, 0: none)")
      ->capture_default_str();
  sub->add_option("--tolerance", cmd.options.potential_tolerance,
                  "Accuracy drop the prune potential allows (0.005: half a point)")
      ->capture_default_str();
  sub->add_option("--top", cmd.options.top, "PIEs and dominoes shown")->capture_default_str();
  sub->add_option("--batch-size", cmd.options.batch, "Inference batch size")->capture_default_str();
  sub->add_option("--seed", cmd.options.seed, "Seed of the corruptions and the scatter subset")
      ->capture_default_str();
  sub->add_option("--threads", cmd.threads, option_help("threads"))->capture_default_str();
  sub->add_option("--out", cmd.out, "Folder of compare.json and report.html")->required();
  sub->add_flag("--json", cmd.json, "Print the group summary as one JSON object");
  return sub;
}

namespace {

struct LoadedModel {
  std::string group, label, path, model;
  Graph graph;
};

// NAME=RUN[,RUN...]
std::pair<std::string, std::vector<std::string>> parse_group(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw Error("--model-group: expected NAME=RUN[,RUN...], got '" + spec + "'");
  std::vector<std::string> runs;
  std::stringstream in(spec.substr(eq + 1));
  for (std::string run; std::getline(in, run, ',');)
    if (!run.empty()) runs.push_back(run);
  if (runs.empty()) throw Error("--model-group " + spec.substr(0, eq) + ": no run given");
  return {spec.substr(0, eq), runs};
}

std::string checkpoint_file(const std::string& run) {
  namespace fs = std::filesystem;
  if (fs::is_directory(run)) {
    const std::string file = run + "/checkpoint.safetensors";
    if (!fs::exists(file)) throw Error("run folder " + run + " has no checkpoint.safetensors");
    return file;
  }
  if (!fs::exists(run)) throw Error("no such run or checkpoint: " + run);
  return run;
}

}  // namespace

int run_compare(CompareCommand& cmd) {
  check_threads(cmd.threads);
  set_num_threads(cmd.threads);
  // Only warnings: the kernel rule's line for every layer of every model
  // says nothing a comparison needs.
  set_log_sink([](LogLevel level, std::string_view line) {
    if (level == LogLevel::kWarning) std::cerr << "warning: " << line << "\n";
  });
  if (cmd.split != "test" && cmd.split != "train")
    throw Error("--split: expected test or train, got '" + cmd.split + "'");
  cmd.options.corruptions.clear();
  if (cmd.corruptions != "none") {
    std::stringstream in(cmd.corruptions);
    for (std::string c; std::getline(in, c, ',');)
      if (!c.empty()) cmd.options.corruptions.push_back(c);
  }
  // Every run, the first one giving the data.
  std::vector<std::unique_ptr<LoadedModel>> models;
  std::vector<std::pair<std::string, std::vector<std::string>>> specs;
  for (const std::string& spec : cmd.groups) {
    auto parsed = parse_group(spec);
    for (const auto& seen : specs)
      if (seen.first == parsed.first)
        throw Error("--model-group: two groups are named '" + parsed.first + "'");
    specs.push_back(std::move(parsed));
  }
  Dataset data;
  std::string dataset, classes, data_dir;
  for (const auto& [name, runs] : specs) {
    for (std::size_t i = 0; i < runs.size(); ++i) {
      auto m = std::make_unique<LoadedModel>();
      m->group = name;
      m->path = checkpoint_file(runs[i]);
      m->label = runs.size() == 1 ? name : name + "/" + std::to_string(i);
      if (models.empty()) {
        ModelOnData first =
            load_model_on_data(m->path, cmd.dataset, cmd.classes, cmd.data_dir,
                               cmd.split == "test" ? Split::kTest : Split::kTrain, cmd.limit);
        m->model = first.trained.model;
        m->graph = std::move(first.graph);
        data = std::move(first.data);
        dataset = first.dataset;
        classes = first.classes;
        data_dir = first.data_dir;
      } else {
        const TrainOptions trained = load_model_checkpoint(m->path, zoo_factory(), m->graph);
        m->model = trained.model;
        if (m->model != models.front()->model) {
          throw Error("--model-group " + name + ": " + runs[i] + " is a " + m->model +
                      " but the reference " + models.front()->path + " is a " +
                      models.front()->model + " (compare needs one model architecture)");
        }
        const Shape want{data.channels, data.height, data.width};
        if (m->graph.input_shape() != want) {
          throw Error("--model-group " + name + ": " + runs[i] + " takes inputs " +
                      shape_to_string(m->graph.input_shape()) + ", the data's are " +
                      shape_to_string(want));
        }
      }
      m->graph.set_sparse_kernels("auto-fixed");
      models.push_back(std::move(m));
    }
  }
  std::vector<CompareGroup> groups;
  for (const auto& m : models) {
    if (groups.empty() || groups.back().name != m->group) groups.push_back({m->group, {}});
    groups.back().models.push_back({m->label, m->path, &m->graph});
  }
  if (!cmd.json) {
    std::printf("compare: %zu models in %zu groups on %s %s (%lld images)%s\n", models.size(),
                groups.size(), dataset.c_str(), cmd.split.c_str(),
                static_cast<long long>(data.size()),
                classes.empty() ? "" : (", classes " + classes).c_str());
    std::fflush(stdout);
  }
  const CompareResult r = compare_models(groups, data, cmd.options);
  const std::vector<std::string> written = write_compare_report(cmd.out, r, data);

  nlohmann::json summary = nlohmann::json::array();
  for (std::size_t gi = 0; gi < r.groups.size(); ++gi) {
    const GroupStats& g = r.groups[gi];
    double jaccard = 0;
    int pairs = 0;
    for (const EmbeddingPair& e : r.embeddings) {
      for (const ModelStats& s : r.models)
        if (s.label == e.model && s.group == g.name) jaccard += e.mean, ++pairs;
    }
    summary.push_back(
        {{"group", g.name},
         {"models", g.models},
         {"sparsity", g.sparsity},
         {"accuracy", g.accuracy},
         {"ece", g.ece},
         {"uncertain_fraction", g.uncertain_fraction},
         {"disagreement", g.disagreement},
         {"error_correlation", g.error_correlation},
         {"pies", g.has_pies ? nlohmann::json(g.pie_count) : nlohmann::json(nullptr)},
         {"jaccard", pairs ? nlohmann::json(jaccard / pairs) : nlohmann::json(nullptr)}});
  }
  if (cmd.json) {
    std::cout << nlohmann::json({{"groups", summary},
                                 {"samples", r.samples},
                                 {"seconds", r.seconds},
                                 {"written", written}})
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
    return 0;
  }
  std::printf("\n%-12s %6s %8s %9s %7s %10s %9s %8s %7s %8s\n", "group", "models", "sparsity",
              "accuracy", "ECE", "uncertain", "disagree", "err corr", "PIEs", "Jaccard");
  for (const auto& s : summary) {
    const std::string pies = s["pies"].is_null() ? "-" : std::to_string(s["pies"].get<int64_t>());
    char jac[16] = "-";
    if (!s["jaccard"].is_null()) std::snprintf(jac, sizeof jac, "%.3f", s["jaccard"].get<double>());
    std::printf("%-12s %6d %7.1f%% %8.2f%% %7.4f %9.2f%% %8.2f%% %8.3f %7s %8s\n",
                s["group"].get<std::string>().c_str(), s["models"].get<int>(),
                100 * s["sparsity"].get<double>(), 100 * s["accuracy"].get<double>(),
                s["ece"].get<double>(), 100 * s["uncertain_fraction"].get<double>(),
                100 * s["disagreement"].get<double>(), s["error_correlation"].get<double>(),
                pies.c_str(), jac);
  }
  if (!r.potentials.empty()) {
    std::printf("\nprune potential:");
    for (const PrunePotential& p : r.potentials)
      if (p.distribution == "clean" || p.distribution.rfind("noise", 0) != 0 ||
          p.distribution == "noise 0.30" || p.distribution == "noise 0.70")
        std::printf(" %s %.0f%%;", p.distribution.c_str(), 100 * p.potential);
    std::printf("\n");
  }
  std::printf("\n");
  for (const auto& [stage, s] : r.seconds) std::printf("%s %.1f s; ", stage.c_str(), s);
  std::printf("\nwrote %s and %s\n", written[0].c_str(), written[1].c_str());
  return 0;
}

}  // namespace sparsetrain::cli
