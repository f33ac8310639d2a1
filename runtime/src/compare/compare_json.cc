// compare.json: every field of a CompareResult (sparsetrain/compare.h).

#include <nlohmann/json.hpp>
#include <string>

#include "base/json_text.h"
#include "sparsetrain/compare.h"

namespace sparsetrain {

namespace {

using nlohmann::json;

json bins_json(const std::vector<ReliabilityBin>& bins) {
  json out = json::array();
  for (const ReliabilityBin& b : bins) {
    out.push_back({{"lower", b.lower},
                   {"upper", b.upper},
                   {"count", b.count},
                   {"confidence", b.confidence},
                   {"accuracy", b.accuracy}});
  }
  return out;
}

json model_json(const ModelStats& s) {
  return {{"group", detail::text_to_json(s.group)},
          {"label", detail::text_to_json(s.label)},
          {"path", detail::text_to_json(s.path)},
          {"accuracy", s.accuracy},
          {"nll", s.nll},
          {"ece", s.ece},
          {"mean_confidence", s.mean_confidence},
          {"uncertain_fraction", s.uncertain_fraction},
          {"class_accuracy", s.class_accuracy},
          {"reliability", bins_json(s.reliability)},
          {"weights", s.weights},
          {"nonzeros", s.nonzeros},
          {"parameters", s.parameters},
          {"sparsity", s.sparsity},
          {"noise_accuracy", s.noise_accuracy},
          {"corruption_accuracy", s.corruption_accuracy},
          {"predicted", s.predicted},
          {"confidence", s.confidence}};
}

json group_json(const GroupStats& g) {
  json pies = json::array();
  for (const Pie& p : g.top_pies) {
    pies.push_back({{"sample", p.sample},
                    {"label", p.label},
                    {"reference_mode", p.reference_mode},
                    {"group_mode", p.group_mode},
                    {"reference_share", p.reference_share},
                    {"group_share", p.group_share}});
  }
  json out = {{"name", detail::text_to_json(g.name)},
              {"models", g.models},
              {"sparsity", g.sparsity},
              {"accuracy", g.accuracy},
              {"accuracy_std", g.accuracy_std},
              {"nll", g.nll},
              {"ece", g.ece},
              {"mean_confidence", g.mean_confidence},
              {"uncertain_fraction", g.uncertain_fraction},
              {"class_accuracy", g.class_accuracy},
              {"class_accuracy_change", g.class_accuracy_change},
              {"reliability", bins_json(g.reliability)},
              {"disagreement", g.disagreement},
              {"right_to_wrong", g.right_to_wrong},
              {"wrong_to_right", g.wrong_to_right},
              {"error_correlation", g.error_correlation},
              {"noise_accuracy", g.noise_accuracy},
              {"corruption_accuracy", g.corruption_accuracy}};
  if (g.has_pies) {
    out["pies"] = {{"count", g.pie_count},
                   {"fraction", g.pie_fraction},
                   {"reference_accuracy_on_pies", g.reference_accuracy_on_pies},
                   {"reference_accuracy_off_pies", g.reference_accuracy_off_pies},
                   {"top", pies}};
  } else {
    out["pies"] = nullptr;
  }
  return out;
}

}  // namespace

std::string compare_json(const CompareResult& r) {
  const CompareOptions& o = r.options;
  json j;
  j["options"] = {{"layer", detail::text_to_json(r.layer)},
                  {"k", o.k},
                  {"metric", o.metric},
                  {"bins", o.bins},
                  {"uncertain_below", o.uncertain_below},
                  {"noise_steps", o.noise_steps},
                  {"noise_max", o.noise_max},
                  {"corruptions", o.corruptions},
                  {"severities", o.severities},
                  {"robust_limit", o.robust_limit},
                  {"potential_tolerance", o.potential_tolerance},
                  {"seed", o.seed}};
  j["dataset"] = {{"name", r.dataset},
                  {"files", detail::text_to_json(r.files)},
                  {"samples", r.samples},
                  {"robust_samples", r.robust_samples},
                  {"classes", r.class_names}};
  j["embedding_dim"] = r.embedding_dim;
  j["labels"] = r.labels;
  j["models"] = json::array();
  for (const ModelStats& s : r.models) j["models"].push_back(model_json(s));
  j["groups"] = json::array();
  for (const GroupStats& g : r.groups) j["groups"].push_back(group_json(g));
  j["pairs"] = json::array();
  for (const PairStats& p : r.pairs) {
    j["pairs"].push_back({{"model", detail::text_to_json(p.model)},
                          {"reference", detail::text_to_json(p.reference)},
                          {"disagreement", p.disagreement},
                          {"right_to_wrong", p.right_to_wrong},
                          {"wrong_to_right", p.wrong_to_right},
                          {"error_correlation", p.error_correlation},
                          {"class_accuracy_change", p.class_accuracy_change}});
  }
  j["embeddings"] = json::array();
  for (const EmbeddingPair& e : r.embeddings) {
    j["embeddings"].push_back({{"model", detail::text_to_json(e.model)},
                               {"reference", detail::text_to_json(e.reference)},
                               {"mean", e.mean},
                               {"median", e.median},
                               {"histogram", e.histogram},
                               {"least", e.least},
                               {"most", e.most},
                               {"model_neighbours", e.model_neighbours},
                               {"reference_neighbours", e.reference_neighbours},
                               {"jaccard", e.jaccard}});
  }
  j["projections"] = json::array();
  for (const Projection& p : r.projections) {
    j["projections"].push_back({{"model", detail::text_to_json(p.model)},
                                {"explained", {p.explained[0], p.explained[1]}},
                                {"samples", p.samples},
                                {"x", p.x},
                                {"y", p.y}});
  }
  j["noise_levels"] = r.noise_levels;
  j["potentials"] = json::array();
  for (const PrunePotential& p : r.potentials) {
    j["potentials"].push_back({{"distribution", p.distribution},
                               {"reference_accuracy", p.reference_accuracy},
                               {"group_accuracy", p.group_accuracy},
                               {"potential", p.potential}});
  }
  j["seconds"] = r.seconds;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace sparsetrain
