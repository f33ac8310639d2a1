// sparsetrain probe NAME: an attribution probe (sparsetrain/attribution.h) on
// chosen samples of a dataset with a checkpoint's model; writes
// DIR/NAME.json and the pictures.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/log.h"
#include "sparsetrain/models.h"

namespace sparsetrain::cli {

namespace {

// "0,7,42" or ranges "0-9" (inclusive), comma-separated.
std::vector<int64_t> parse_indices(const std::string& spec) {
  std::vector<int64_t> out;
  std::stringstream ss(spec);
  std::string part;
  auto number = [&](const std::string& t) {
    if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 12)
      throw Error("--indices: '" + spec + "' is not a list of sample indices (0,7,42 or 0-9)");
    return std::stoll(t);
  };
  while (std::getline(ss, part, ',')) {
    const auto dash = part.find('-');
    if (dash == std::string::npos) {
      out.push_back(number(part));
      continue;
    }
    const int64_t a = number(part.substr(0, dash)), b = number(part.substr(dash + 1));
    if (b < a || b - a > 100000) throw Error("--indices: bad range '" + part + "'");
    for (int64_t i = a; i <= b; ++i) out.push_back(i);
  }
  if (out.empty()) throw Error("--indices: no samples given");
  return out;
}

// predicted | label | a class index or name.
std::vector<int32_t> resolve_targets(const std::string& spec, Graph& graph, const Dataset& data,
                                     const std::vector<int64_t>& indices, const Tensor& images) {
  std::vector<int32_t> t(indices.size());
  if (spec == "label") {
    for (size_t i = 0; i < indices.size(); ++i) t[i] = data.labels[indices[i]];
    return t;
  }
  if (spec == "predicted") {
    const Tensor logits = class_logits(graph, images);
    const int64_t k = logits.dim(1);
    for (size_t i = 0; i < indices.size(); ++i) {
      const float* row = logits.data() + static_cast<int64_t>(i) * k;
      t[i] = static_cast<int32_t>(std::max_element(row, row + k) - row);
    }
    return t;
  }
  int32_t k = -1;
  for (size_t c = 0; c < data.class_names.size(); ++c)
    if (data.class_names[c] == spec) k = static_cast<int32_t>(c);
  if (k < 0 && !spec.empty() && spec.find_first_not_of("0123456789") == std::string::npos &&
      spec.size() < 6)
    k = std::stoi(spec);
  if (k < 0 || k >= data.num_classes) {
    std::string names;
    for (const std::string& n : data.class_names) names += (names.empty() ? "" : ", ") + n;
    throw Error("--target: unknown target class '" + spec + "' (expected predicted, label, 0-" +
                std::to_string(data.num_classes - 1) + " or a class name: " + names + ")");
  }
  std::fill(t.begin(), t.end(), k);
  return t;
}

}  // namespace

CLI::App* add_probe(CLI::App& app, ProbeCommand& cmd) {
  std::string names;
  for (const std::string& n : sample_probe_names()) names += (names.empty() ? "" : " | ") + n;
  CLI::App* sub =
      app.add_subcommand("probe", "Explain a model's predictions on chosen samples: " + names +
                                      " (a JSON file " + "and pictures in --out)");
  sub->add_option("name", cmd.probe, names)->required();
  sub->add_option("--checkpoint", cmd.checkpoints,
                  "checkpoint.safetensors (or its run folder); several (LABEL=PATH) run the probe "
                  "on each model, side by side, the first one choosing the samples' targets")
      ->required();
  sub->add_option("--dataset", cmd.dataset,
                  "mnist | fashion-mnist | cifar10 (default: the training one)");
  sub->add_option("--classes", cmd.classes,
                  "Keep only these classes, relabelled 0..k-1 (default: the training run's)");
  sub->add_option("--split", cmd.split, "Samples from the test or the train split")
      ->capture_default_str();
  sub->add_option("--indices", cmd.indices, "Samples to explain: 0,7,42 or 0-9")
      ->capture_default_str();
  sub->add_option("--target", cmd.target,
                  "The class explained: predicted, label, or a class (index or name)")
      ->capture_default_str();
  sub->add_option("--out", cmd.out, "Folder for NAME.json and the pictures")->required();
  sub->add_option("--data-dir", cmd.data_dir, option_help("data_dir"));
  sub->add_option("--threads", cmd.threads, option_help("threads"))->capture_default_str();
  sub->add_option("--seed", cmd.seed, "Seed of the probes' random draws")->capture_default_str();
  // Every probe's options; each one is checked against the chosen probe.
  std::map<std::string, std::string> helps;
  for (const std::string& n : sample_probe_names())
    for (const ProbeOption& o : make_sample_probe(n)->options())
      helps[o.name] += (helps[o.name].empty() ? "" : "; ") + n + ": " + o.help + " (default " +
                       o.default_value + ")";
  for (const auto& [name, help] : helps)
    cmd.probe_flags.emplace_back(name, sub->add_option("--" + name, cmd.given[name], help));
  return sub;
}

// LABEL=PATH or PATH (labelled by its run folder's name).
std::pair<std::string, std::string> labelled_checkpoint(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq != std::string::npos && eq > 0) return {spec.substr(0, eq), spec.substr(eq + 1)};
  std::filesystem::path p(spec);
  if (!std::filesystem::is_directory(p)) p = p.parent_path();
  const std::string name = p.filename().string();
  return {name.empty() ? spec : name, spec};
}

int run_probe(ProbeCommand& cmd) {
  check_threads(cmd.threads);
  set_num_threads(cmd.threads);
  std::map<std::string, std::string> given;
  for (const auto& [name, option] : cmd.probe_flags)
    if (option->count() > 0) given[name] = cmd.given[name];
  std::unique_ptr<SampleProbe> probe = make_sample_probe(cmd.probe);
  if (cmd.split != "test" && cmd.split != "train")
    throw Error("--split: expected test or train, got '" + cmd.split + "'");
  const Split split = cmd.split == "test" ? Split::kTest : Split::kTrain;
  // The models, the first one the reference: its data, samples and targets.
  std::vector<std::string> labels;
  std::vector<ModelOnData> models;
  for (const std::string& spec : cmd.checkpoints) {
    const auto [label, path] = labelled_checkpoint(spec);
    if (std::find(labels.begin(), labels.end(), label) != labels.end())
      throw Error("--checkpoint: two models are labelled '" + label + "' (name them LABEL=PATH)");
    labels.push_back(label);
    if (models.empty()) {
      models.push_back(load_model_on_data(path, cmd.dataset, cmd.classes, cmd.data_dir, split, -1));
    } else {
      const ModelOnData& first = models.front();
      ModelOnData next =
          load_model_on_data(path, first.dataset, first.classes, first.data_dir, split, -1);
      if (next.data.image_numel() != first.data.image_numel())
        throw Error("--checkpoint " + path + ": its model does not take the samples of " +
                    first.path);
      models.push_back(std::move(next));
    }
    // Compressed layers run on the sparse kernels (nothing timed).
    models.back().graph.set_sparse_kernels("sparse");
  }
  ModelOnData& m = models.front();
  ProbeContext ctx;
  ctx.graph = &m.graph;
  ctx.data = &m.data;
  ctx.indices = parse_indices(cmd.indices);
  ctx.images = dataset_images(m.data, ctx.indices);
  ctx.targets = resolve_targets(cmd.target, m.graph, m.data, ctx.indices, ctx.images);
  ctx.options = resolve_probe_options(cmd.probe, given);
  ctx.seed = cmd.seed;
  probe->check(ctx);

  std::string opts;
  for (const auto& [k, v] : ctx.options) opts += " --" + k + " " + v;
  std::string described;
  for (size_t i = 0; i < models.size(); ++i) {
    char text[512];
    std::snprintf(text, sizeof text, "%s%s %s (model %s, %d of %d layers compressed)",
                  i ? "; " : "", models.size() == 1 ? "checkpoint" : labels[i].c_str(),
                  models[i].path.c_str(), models[i].trained.model.c_str(),
                  models[i].graph.sparse_layer_count(), models[i].graph.prunable_layer_count());
    described += text;
  }
  std::printf("probe %s: %s; dataset %s%s %s split, samples %s, target %s%s\n", cmd.probe.c_str(),
              described.c_str(), m.dataset.c_str(),
              m.classes.empty() ? "" : (" classes " + m.classes).c_str(), cmd.split.c_str(),
              cmd.indices.c_str(), cmd.target.c_str(), opts.c_str());
  std::fflush(stdout);

  // Each model on the same samples and targets; with several, every map is
  // titled with its model's label and the results are keyed by label.
  ProbeReport merged;
  nlohmann::json results = nlohmann::json::object();
  nlohmann::json checkpoints = nlohmann::json::array();
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string path = models[i].path;
    const Shape sample{m.data.channels, m.data.height, m.data.width};
    ProbeContext one = ctx;
    one.graph = &models[i].graph;
    one.model_copy = [path, sample] {
      Graph g;
      load_model_checkpoint(path, zoo_factory(), g);
      g.set_sparse_kernels("sparse");
      g.node(g.find("input")).output_shape({Shape{1, sample[0], sample[1], sample[2]}});
      return g;
    };
    ProbeReport r = probe->run(one);
    if (models.size() == 1) {
      merged = std::move(r);
      break;
    }
    std::cout << "-- " << labels[i] << "\n" << r.summary;
    for (ProbeMap& map : r.maps) {
      map.title += " (" + labels[i] + ")";
      merged.maps.push_back(std::move(map));
    }
    results[labels[i]] = nlohmann::json::parse(r.json);
  }
  // Samples first, then models: the pictures show each sample's maps of
  // every model side by side.
  std::stable_sort(merged.maps.begin(), merged.maps.end(),
                   [](const ProbeMap& a, const ProbeMap& b) { return a.sample < b.sample; });
  for (size_t i = 0; i < models.size(); ++i)
    checkpoints.push_back({{"label", labels[i]},
                           {"checkpoint", models[i].path},
                           {"model", models[i].trained.model},
                           {"sparse_layers", models[i].graph.sparse_layer_count()}});
  if (models.size() > 1) merged.json = results.dump();
  const nlohmann::json header = {
      {"checkpoint", m.path}, {"checkpoints", checkpoints},    {"model", m.trained.model},
      {"dataset", m.dataset}, {"classes", m.data.class_names}, {"split", cmd.split},
      {"target", cmd.target}, {"options", ctx.options},        {"seed", cmd.seed}};
  std::cout << merged.summary;
  for (const std::string& p : write_probe_report(cmd.out, cmd.probe, header.dump(), ctx, merged))
    std::cout << "wrote " << p << "\n";
  return 0;
}

}  // namespace sparsetrain::cli
