// The "activation-stats" probe: mean, standard deviation, fraction of zeros
// and dead units of every node's output over the passes it watched.
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "probes/registry.h"
#include "sparsetrain/error.h"
#include "sparsetrain/probes.h"

namespace sparsetrain {

void detail::register_activation_stats() {
  register_probe("activation-stats", [] { return std::make_unique<ActivationStatsProbe>(); });
}

void ActivationStatsProbe::attach(Graph& graph, const std::string& pattern) {
  handle_ = graph.add_hook(HookPoint::kAfterForward, pattern, [this](HookEvent& ev) {
    if (ev.output && ev.output->defined()) observe(ev.node, ev.node_type, *ev.output);
  });
}

void ActivationStatsProbe::detach() { handle_.remove(); }
void ActivationStatsProbe::reset() { acc_.clear(); }

void ActivationStatsProbe::observe(const std::string& node, const std::string& type,
                                   const Tensor& t) {
  Accumulator* a = nullptr;
  for (auto& x : acc_)
    if (x.node == node) a = &x;
  if (a == nullptr) {
    acc_.emplace_back();
    a = &acc_.back();
    a->node = node;
    a->type = type;
  }
  const int64_t units = t.rank() >= 2 ? t.dim(1) : 1;
  if (a->alive.empty()) a->alive.assign(units, 0);
  const float* d = t.data();
  const int64_t n = t.numel();
  // Unit (channel / feature) of element i for each layout.
  const int64_t batch = t.rank() >= 1 ? t.dim(0) : 1;
  const int64_t spatial = t.rank() == 4 ? t.dim(2) * t.dim(3) : 1;
  double sum = 0, sum_sq = 0;
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = d[i];
    sum += v;
    sum_sq += v * v;
    zeros += v == 0.0;
  }
  auto unit_of = [&](int64_t i) -> int64_t {
    switch (t.layout()) {
      case Layout::kNHWC:
        return i % units;
      case Layout::kCN:
        return i / batch;
      case Layout::kCHWN:
        return i / (batch * spatial);
      default:
        return (i / spatial) % units;
    }
  };
  for (int64_t i = 0; i < n; ++i)
    if (d[i] != 0.0f) a->alive[unit_of(i)] = 1;
  a->samples += batch;
  a->elements += n;
  a->zeros += zeros;
  a->sum += sum;
  a->sum_sq += sum_sq;
}

std::vector<ActivationStats> ActivationStatsProbe::results() const {
  std::vector<ActivationStats> out;
  for (const auto& a : acc_) {
    ActivationStats s;
    s.node = a.node;
    s.type = a.type;
    s.samples = a.samples;
    s.elements = a.elements;
    if (a.elements > 0) {
      s.mean = a.sum / a.elements;
      s.stddev = std::sqrt(std::max(0.0, a.sum_sq / a.elements - s.mean * s.mean));
      s.zero_fraction = static_cast<double>(a.zeros) / a.elements;
    }
    s.units = static_cast<int64_t>(a.alive.size());
    for (char alive : a.alive) s.dead_units += alive ? 0 : 1;
    out.push_back(s);
  }
  return out;
}

std::string ActivationStatsProbe::to_json() const {
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& s : results()) {
    nodes.push_back({{"node", s.node},
                     {"type", s.type},
                     {"samples", s.samples},
                     {"mean", s.mean},
                     {"std", s.stddev},
                     {"zero_fraction", s.zero_fraction},
                     {"units", s.units},
                     {"dead_units", s.dead_units}});
  }
  return nlohmann::json({{"probe", "activation-stats"}, {"nodes", nodes}}).dump(2) + "\n";
}

void ActivationStatsProbe::write_json(const std::string& path) const {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  write_file_atomic(path, to_json());
}

std::string ActivationStatsProbe::write(const std::string& folder) const {
  const std::string path =
      (std::filesystem::path(folder.empty() ? "." : folder) / "activation-stats.json").string();
  write_json(path);
  return path;
}

}  // namespace sparsetrain
