// sparsetrain probe NAME: an attribution probe (sparsetrain/attribution.h) on
// chosen samples of a dataset with a checkpoint's model; writes
// DIR/NAME.json and the pictures.
#include <cstdio>
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
  sub->add_option("--checkpoint", cmd.checkpoint, "checkpoint.safetensors (or its run folder)")
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

int run_probe(ProbeCommand& cmd) {
  check_threads(cmd.threads);
  set_num_threads(cmd.threads);
  std::map<std::string, std::string> given;
  for (const auto& [name, option] : cmd.probe_flags)
    if (option->count() > 0) given[name] = cmd.given[name];
  std::unique_ptr<SampleProbe> probe = make_sample_probe(cmd.probe);
  if (cmd.split != "test" && cmd.split != "train")
    throw Error("--split: expected test or train, got '" + cmd.split + "'");
  ModelOnData m = load_model_on_data(cmd.checkpoint, cmd.dataset, cmd.classes, cmd.data_dir,
                                     cmd.split == "test" ? Split::kTest : Split::kTrain, -1);
  // Compressed layers run on the sparse kernels (nothing timed).
  m.graph.set_sparse_kernels("sparse");
  ProbeContext ctx;
  ctx.graph = &m.graph;
  ctx.data = &m.data;
  ctx.indices = parse_indices(cmd.indices);
  ctx.images = dataset_images(m.data, ctx.indices);
  ctx.targets = resolve_targets(cmd.target, m.graph, m.data, ctx.indices, ctx.images);
  ctx.options = resolve_probe_options(cmd.probe, given);
  ctx.seed = cmd.seed;
  const std::string path = m.path;
  const Shape sample{m.data.channels, m.data.height, m.data.width};
  ctx.model_copy = [path, sample] {
    Graph g;
    load_model_checkpoint(path, zoo_factory(), g);
    g.set_sparse_kernels("sparse");
    g.node(g.find("input")).output_shape({Shape{1, sample[0], sample[1], sample[2]}});
    return g;
  };

  probe->check(ctx);
  std::string opts;
  for (const auto& [k, v] : ctx.options) opts += " --" + k + " " + v;
  std::printf(
      "probe %s: checkpoint %s (model %s, %d of %d layers compressed), dataset %s%s %s "
      "split, samples %s, target %s%s\n",
      cmd.probe.c_str(), m.path.c_str(), m.trained.model.c_str(), m.graph.sparse_layer_count(),
      m.graph.prunable_layer_count(), m.dataset.c_str(),
      m.classes.empty() ? "" : (" classes " + m.classes).c_str(), cmd.split.c_str(),
      cmd.indices.c_str(), cmd.target.c_str(), opts.c_str());
  std::fflush(stdout);
  const ProbeReport report = probe->run(ctx);
  const nlohmann::json header = {{"checkpoint", m.path},   {"model", m.trained.model},
                                 {"dataset", m.dataset},   {"classes", m.data.class_names},
                                 {"split", cmd.split},     {"target", cmd.target},
                                 {"options", ctx.options}, {"seed", cmd.seed}};
  std::cout << report.summary;
  for (const std::string& p : write_probe_report(cmd.out, cmd.probe, header.dump(), ctx, report))
    std::cout << "wrote " << p << "\n";
  return 0;
}

}  // namespace sparsetrain::cli
