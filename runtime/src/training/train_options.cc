// TrainOptions: validation, the models' recommended hyper-parameters, and
// the JSON form stored in metrics and checkpoints, all read from the rows of
// the settings schema (options.cc).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "base/json_text.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/probes.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"
#include "training/retrain.h"
#include "transfer/finetune.h"

namespace sparsetrain {

using json = nlohmann::json;

void validate(const TrainOptions& o) {
  for (const OptionRow& row : option_rows()) check_option(row, o);
  // Rules across settings.
  const auto datasets = dataset_names();
  if (!o.classes.empty() &&
      std::find(datasets.begin(), datasets.end(), o.dataset) != datasets.end()) {
    parse_class_list(o.classes, dataset_geometry(o.dataset).num_classes);
  }
  validate_sparsity_options(o);
  detail::validate_retrain_options(o);
  detail::validate_transfer_options(o);
  for (const auto& p : o.probes) make_probe(p);  // throws naming an unknown one
  if (!o.kernel_choices.empty() && o.kernels != "auto" && o.kernels != "auto-fixed") {
    throw Error(
        "--kernel-choices replays the choices of --kernels auto or auto-fixed; with "
        "--kernels " +
        o.kernels + " every compressed layer is forced " + o.kernels + " (drop one of the two)");
  }
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

namespace {

// Text members go through text_to_json: a non-UTF-8 path survives.
template <class T>
json to_json_value(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return detail::text_to_json(v);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    json a = json::array();
    for (const std::string& s : v) a.push_back(detail::text_to_json(s));
    return a;
  } else {
    return v;
  }
}

template <class T>
void from_json_value(const json& j, T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    v = detail::json_to_text(j);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    v.clear();
    for (const json& s : j) v.push_back(detail::json_to_text(s));
  } else {
    j.get_to(v);
  }
}

}  // namespace

std::string options_to_json(const TrainOptions& o) {
  json j = json::object();
  for (const OptionRow& row : option_rows()) {
    if (row.saved)
      std::visit([&](auto m) { j[std::string(row.key)] = to_json_value(o.*m); }, row.member);
  }
  return j.dump();
}

TrainOptions options_from_json(const std::string& text) {
  TrainOptions o;
  try {
    const json j = json::parse(text);
    for (const OptionRow& row : option_rows()) {
      const auto it = j.find(std::string(row.key));
      if (!row.saved || it == j.end()) continue;  // older checkpoints: the default
      std::visit([&](auto m) { from_json_value(*it, o.*m); }, row.member);
    }
  } catch (const json::exception& e) {
    throw Error(std::string("run options: not valid JSON: ") + e.what());
  }
  return o;
}

}  // namespace sparsetrain
