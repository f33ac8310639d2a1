#include "training/trainer_report.h"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace sparsetrain::report {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const long total = static_cast<long>(s + 0.5);
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", total / 3600, (total / 60) % 60, total % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", total / 60, total % 60);
  }
  return buf;
}

namespace {

// The fields of a row of the per-epoch table in metrics lines and
// checkpoints; checkpoints written before the sparsity columns lack the
// optional ones.
constexpr auto kEpochFields = [](auto& e, auto&& f) {
  f("epoch", e.epoch);
  f("loss", e.loss);
  f("train_accuracy", e.train_accuracy);
  f("test_accuracy", e.test_accuracy);
  f("test_loss", e.test_loss);
  f("lr", e.lr);
  f("seconds", e.seconds);
  f("samples_per_second", e.samples_per_second);
  f("step_ms_median", e.step_ms_median, kOptional);
  f("data_seconds", e.data_seconds, kOptional);
  f("peak_memory_bytes", e.peak_bytes);
  f("sparse_layers", e.sparse_layers, kOptional);
  f("prunable_layers", e.prunable_layers, kOptional);
  f("sparse_layer_names", e.sparse_layer_names, kOptional);
  f("phase", e.phase, kOptional);
  f("sparsity", e.sparsity, kOptional);
  f("param_memory_bytes", e.param_bytes, kOptional);
};

}  // namespace

json epoch_to_json(const EpochStats& e) { return fields_to_json(e, kEpochFields); }

EpochStats epoch_from_json(const json& j) {
  EpochStats e;
  fields_from_json(j, e, kEpochFields);
  return e;
}

std::string format_bytes(int64_t bytes) {
  constexpr double kKiB = 1024.0, kMiB = 1024.0 * 1024.0;
  char text[32];
  const double b = static_cast<double>(bytes);
  if (b >= kMiB) {
    std::snprintf(text, sizeof text, "%.2f MiB", b / kMiB);
  } else {
    std::snprintf(text, sizeof text, "%.1f KiB", b / kKiB);
  }
  return text;
}

// `sparse`: prunable layers that ran on the sparse kernels; `sparsity`: over
// all prunable weights; `param mem`: parameters plus optimizer state.
std::string table_header() {
  return "epoch      loss  train acc   test acc         lr   seconds  samples/s  sparse  sparsity"
         "  phase          param mem\n"
         "-----  --------  ---------  ---------  ---------  --------  ---------  ------  --------"
         "  ------------  ----------\n";
}

std::string table_row(const EpochStats& e) {
  char line[256];
  const std::string sparse =
      std::to_string(e.sparse_layers) + "/" + std::to_string(e.prunable_layers);
  std::snprintf(line, sizeof line,
                "%5lld  %8.4f  %8.2f%%  %8.2f%%  %9.3g  %8.1f  %9.0f  %6s  %7.2f%%  %-12s  %10s\n",
                static_cast<long long>(e.epoch), e.loss, 100.0 * e.train_accuracy,
                100.0 * e.test_accuracy, static_cast<double>(e.lr), e.seconds, e.samples_per_second,
                sparse.c_str(), 100.0 * e.sparsity, e.phase.c_str(),
                format_bytes(e.param_bytes).c_str());
  return line;
}

std::string sparse_layers_note(const EpochStats* previous, const EpochStats& e) {
  const std::vector<std::string> before =
      previous == nullptr ? std::vector<std::string>{} : previous->sparse_layer_names;
  if (e.sparse_layer_names == before) return {};
  std::string names;
  for (const std::string& n : e.sparse_layer_names) names += (names.empty() ? "" : ", ") + n;
  return "       sparse kernels (" + std::to_string(e.sparse_layers) + "/" +
         std::to_string(e.prunable_layers) + "): " + (names.empty() ? "none" : names) + "\n";
}

json kernel_choice_event(const KernelChoice& c) {
  json j = json::parse(kernel_choices_to_json({c})).at("choices").at(0);
  j["event"] = "kernel_choice";
  return j;
}

// The phase shown in the table: the method's, except that a run whose masks
// came fixed from elsewhere (retraining a pruned checkpoint) has no method
// phase yet holds compressed or masked weights, and says so.
const char* shown_phase(SparsityPhase phase, Graph& graph) {
  if (phase != SparsityPhase::kDense) return phase_name(phase);
  bool masked = false;
  for (const Parameter* p : graph.parameters()) {
    if (p->compressed()) return phase_name(SparsityPhase::kCompressed);
    masked = masked || p->masked();
  }
  return phase_name(masked ? SparsityPhase::kMasked : SparsityPhase::kDense);
}

std::string densities_text(const std::vector<PrunableLayer>& layers,
                           const std::vector<double>& densities) {
  std::string text;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    char item[160];
    std::snprintf(item, sizeof item, "%s%s %.3f", text.empty() ? "" : ", ", layers[l].node.c_str(),
                  densities[l]);
    text += item;
  }
  return text;
}

json pruned_layer_names(const SparsityController& c) {
  json names = json::array();
  if (c.schedule().active())
    for (const PrunableLayer& l : c.layers()) names.push_back(l.node);
  return names;
}

// The run header's sparsity lines: the schedule, then the density of every
// pruned layer (as it is now; before the first pruning the planned one, or
// the layer names when the global distribution decides at each pruning).
void log_sparsity_header(std::ostream& log, SparsityController& c, Graph& graph,
                         const std::string& kernels) {
  const SparsitySchedule& s = c.schedule();
  if (!s.active()) return;
  log << "sparsity: " << s.describe() << "\n";
  std::string dense;
  if (c.dense_first_last()) {
    const std::vector<PrunableLayer> all = prunable_layers(graph, /*dense_first_last=*/false);
    if (all.size() > 2) dense = "; dense: " + all.front().node + ", " + all.back().node;
  }
  switch (c.phase()) {
    case SparsityPhase::kCompressed:
      log << "compressed layers (density): " << densities_text(c.layers(), c.densities()) << dense
          << "; kernels " << kernels << "\n";
      break;
    case SparsityPhase::kMasked:
      log << "masked layers (density, dense kernels): " << densities_text(c.layers(), c.densities())
          << dense << "\n";
      break;
    default:
      if (s.distribution == Distribution::kGlobal) {
        std::string names;
        for (const PrunableLayer& l : c.layers()) names += (names.empty() ? "" : ", ") + l.node;
        log << "pruned layers (densities by global magnitude at each pruning): " << names << dense
            << "\n";
      } else {
        log << "pruned layers (density at the target): "
            << densities_text(c.layers(), layer_densities(c.layers(), s.sparsity, s.distribution))
            << dense << "\n";
      }
  }
}

json sparsity_event_json(const SparsityEvent& ev, const SparsityController& c,
                         int64_t steps_per_epoch) {
  json densities = json::object();
  for (std::size_t l = 0; l < c.layers().size(); ++l)
    densities[c.layers()[l].node] = ev.densities[l];
  json j = {{"event", "sparsity"},
            {"kind", ev.kind},
            {"step", ev.step},
            {"epoch", static_cast<double>(ev.step) / static_cast<double>(steps_per_epoch)},
            {"phase", phase_name(ev.phase)},
            {"sparsity", ev.sparsity},
            {"densities", densities}};
  if (ev.kind == "update") {
    j["drop_fraction"] = ev.drop_fraction;
    j["regrown"] = ev.regrown;
  }
  return j;
}

std::string sparsity_event_line(const SparsityEvent& ev, const SparsityController& c,
                                int64_t steps_per_epoch) {
  char head[160];
  std::snprintf(head, sizeof head, "step %lld (epoch %.2f): %s, sparsity %.3f (",
                static_cast<long long>(ev.step),
                static_cast<double>(ev.step) / static_cast<double>(steps_per_epoch),
                phase_name(ev.phase), ev.sparsity);
  return head + densities_text(c.layers(), ev.densities) + ")\n";
}

}  // namespace sparsetrain::report
