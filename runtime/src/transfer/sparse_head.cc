// Finetune mode sparse-head (transfer/sparse_head.h): the features are
// standardised, an elastic-net path is solved over them (elastic_net.h), a
// point is chosen by validation accuracy or head density, and that head is
// written back in the raw feature space, compressed.

#include "transfer/sparse_head.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>

#include "sparsetrain/error.h"
#include "sparsetrain/files.h"
#include "transfer/elastic_net.h"

namespace sparsetrain::detail {
namespace {

using json = nlohmann::json;

constexpr double kMinStddev = 1e-12;  // a constant feature is centred, not scaled
constexpr int kTableEvery = 10;       // path points per table row (and the last)
constexpr const char* kReportFile = "sparse_head.json";

// The rows of one part of the training features, standardised.
struct Part {
  std::vector<float> x;  // (n, d) row-major
  std::vector<int32_t> y;
  int64_t n = 0;
  ElasticNetData data(int64_t d, int k) const { return {x.data(), n, d, y.data(), k}; }
};

struct Scale {
  std::vector<double> mean, stddev;  // (d)
};

Scale fit_scale(const Dataset& set, const std::vector<int64_t>& rows, int64_t d) {
  Scale s{std::vector<double>(d, 0.0), std::vector<double>(d, 0.0)};
  for (const int64_t r : rows)
    for (int64_t j = 0; j < d; ++j) s.mean[j] += set.values[r * d + j];
  for (double& m : s.mean) m /= static_cast<double>(rows.size());
  for (const int64_t r : rows) {
    for (int64_t j = 0; j < d; ++j) {
      const double c = set.values[r * d + j] - s.mean[j];
      s.stddev[j] += c * c;
    }
  }
  for (double& v : s.stddev) {
    v = std::sqrt(v / static_cast<double>(rows.size()));
    if (v < kMinStddev) v = 1.0;
  }
  return s;
}

Part standardise(const Dataset& set, const std::vector<int64_t>& rows, const Scale& s, int64_t d) {
  Part p;
  p.n = static_cast<int64_t>(rows.size());
  p.x.resize(static_cast<std::size_t>(p.n * d));
  p.y.resize(static_cast<std::size_t>(p.n));
  for (int64_t i = 0; i < p.n; ++i) {
    const int64_t r = rows[i];
    for (int64_t j = 0; j < d; ++j) {
      p.x[i * d + j] = static_cast<float>((set.values[r * d + j] - s.mean[j]) / s.stddev[j]);
    }
    p.y[i] = set.labels[r];
  }
  return p;
}

std::vector<int64_t> all_rows(int64_t n) {
  std::vector<int64_t> rows(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[i] = i;
  return rows;
}

// Mean cross-entropy of a solution on a part.
double mean_loss(const ElasticNetSolution& s, const Part& p, int64_t d, int k) {
  double total = 0;
  std::vector<double> z(k);
  for (int64_t i = 0; i < p.n; ++i) {
    double top = -INFINITY;
    for (int c = 0; c < k; ++c) {
      double v = s.bias[c];
      for (int64_t j = 0; j < d; ++j) v += s.weight[c * d + j] * p.x[i * d + j];
      z[c] = v;
      top = std::max(top, v);
    }
    double sum = 0;
    for (int c = 0; c < k; ++c) sum += std::exp(z[c] - top);
    total += top + std::log(sum) - z[p.y[i]];
  }
  return p.n ? total / static_cast<double>(p.n) : 0.0;
}

// "relu2[17]", or "layer3[5,2,7]" for (C, H, W) features.
std::string feature_name(const std::string& node, const Dataset& set, int64_t j) {
  if (set.height == 1 && set.width == 1) return node + "[" + std::to_string(j) + "]";
  const int64_t hw = set.height * set.width;
  return node + "[" + std::to_string(j / hw) + "," + std::to_string(j % hw / set.width) + "," +
         std::to_string(j % set.width) + "]";
}

std::string percent(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", 100.0 * v);
  return text;
}

// Writes the chosen head, in the raw feature space, into the head graph.
void write_head(Graph& g, const std::string& head, const ElasticNetSolution& s, const Scale& scale,
                int64_t d, int k) {
  Parameter& w = g.parameter(head + ".weight");
  Parameter& b = g.parameter(head + ".bias");
  if (w.compressed()) g.decompress(head);
  std::vector<float> raw(static_cast<std::size_t>(k * d), 0.0f);  // (k, d)
  Tensor mask = Tensor::zeros({k, d});
  for (int c = 0; c < k; ++c) {
    double shift = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double v = s.weight[c * d + j];
      if (v == 0.0) continue;
      raw[c * d + j] = static_cast<float>(v / scale.stddev[j]);
      mask[c * d + j] = 1.0f;
      shift += v * scale.mean[j] / scale.stddev[j];
    }
    b.value[c] = static_cast<float>(s.bias[c] - shift);
  }
  if (s.nonzero() == 0) {
    std::fill(w.value.data(), w.value.data() + w.value.numel(), 0.0f);
    return;
  }
  g.compress(head, mask);
  for (std::size_t i = 0; i < w.dense_index.size(); ++i) w.value[i] = raw[w.dense_index[i]];
}

}  // namespace

SparseHeadFit fit_sparse_head(const TrainOptions& o, const Dataset& train, const Dataset& test,
                              Graph& head_graph, const std::string& head,
                              const std::string& feature_node, std::ostream& log,
                              const std::function<void(const json&)>& emit) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t d = train.image_numel();
  const int k = train.num_classes;
  bool has_bias = false;
  for (Parameter* p : head_graph.parameters()) has_bias |= p->name == head + ".bias";
  if (!has_bias) throw Error("--mode sparse-head: the head '" + head + "' has no bias");

  // A seeded share of the training samples chooses the point.
  const std::vector<int64_t> order = epoch_permutation(train.size(), o.seed, 0);
  const auto held = static_cast<int64_t>(std::llround(o.val_fraction * train.size()));
  if (held < 1 || held >= train.size()) {
    throw Error("--val-fraction " + std::to_string(o.val_fraction) + " of " +
                std::to_string(train.size()) +
                " training samples leaves no validation or no fitting sample");
  }
  std::vector<int64_t> val_rows(order.begin(), order.begin() + held);
  std::vector<int64_t> fit_rows(order.begin() + held, order.end());
  std::sort(val_rows.begin(), val_rows.end());
  std::sort(fit_rows.begin(), fit_rows.end());
  const Scale scale = fit_scale(train, fit_rows, d);
  const Part fit = standardise(train, fit_rows, scale, d);
  const Part val = standardise(train, val_rows, scale, d);
  const Part tst = standardise(test, all_rows(test.size()), scale, d);

  ElasticNetOptions eo;
  eo.alpha = o.head_alpha;
  eo.path_points = static_cast<int>(o.path_points);
  log << "sparse head over " << feature_node << " (" << d << " features, " << k
      << " classes): elastic net, alpha " << o.head_alpha << ", " << o.path_points
      << " lambdas from lambda_max down to lambda_max/1000; " << fit.n << " samples fit, " << val.n
      << " held out to choose\n";
  log << "point      lambda  nonzero  per class   train acc    val acc   test acc\n"
      << "-----  ----------  -------  ---------  ----------  ---------  ---------\n";
  json path = json::array();
  std::vector<double> val_acc;
  const auto on_point = [&](int index, const ElasticNetSolution& s) {
    const std::vector<int64_t> per_class = s.nonzero_per_class();
    json point = {{"point", index + 1},
                  {"lambda", s.lambda},
                  {"nonzero", s.nonzero()},
                  {"nonzero_per_class", per_class},
                  {"density", static_cast<double>(s.nonzero()) / static_cast<double>(k * d)},
                  {"train_accuracy", elastic_net_accuracy(s, fit.data(d, k))},
                  {"val_accuracy", elastic_net_accuracy(s, val.data(d, k))},
                  {"test_accuracy", elastic_net_accuracy(s, tst.data(d, k))},
                  {"iterations", s.iterations},
                  {"converged", s.converged}};
    val_acc.push_back(point["val_accuracy"].get<double>());
    if (index % kTableEvery == 0 || index + 1 == o.path_points) {
      const auto [lo, hi] = std::minmax_element(per_class.begin(), per_class.end());
      char row[160];
      std::snprintf(
          row, sizeof row, "%5d  %10.3e  %7lld  %4lld-%-4lld  %10s  %9s  %9s\n", index + 1,
          s.lambda, static_cast<long long>(s.nonzero()), static_cast<long long>(*lo),
          static_cast<long long>(*hi), percent(point["train_accuracy"]).c_str(),
          percent(point["val_accuracy"]).c_str(), percent(point["test_accuracy"]).c_str());
      log << row << std::flush;
    }
    json event = point;
    event["event"] = "path_point";
    emit(event);
    path.push_back(std::move(point));
    return true;
  };
  const std::vector<ElasticNetSolution> solutions = elastic_net_path(fit.data(d, k), eo, on_point);

  // The choice: the densest head within --head-density, else the best
  // validation accuracy (the sparser point on ties).
  std::size_t chosen = 0;
  std::string chosen_by;
  if (o.head_density > 0) {
    for (std::size_t i = 0; i < solutions.size(); ++i) {
      if (path[i]["density"].get<double>() <= o.head_density) chosen = i;
    }
    chosen_by = "the densest head with at most " + percent(o.head_density) + " nonzero weights";
  } else {
    for (std::size_t i = 1; i < solutions.size(); ++i) {
      if (val_acc[i] > val_acc[chosen]) chosen = i;
    }
    chosen_by = "the best validation accuracy";
  }
  const ElasticNetSolution& s = solutions[chosen];
  write_head(head_graph, head, s, scale, d, k);

  json classes = json::array();
  for (int c = 0; c < k; ++c) {
    json features = json::array();
    std::vector<int64_t> used;
    for (int64_t j = 0; j < d; ++j)
      if (s.weight[c * d + j] != 0.0) used.push_back(j);
    std::sort(used.begin(), used.end(), [&](int64_t a, int64_t b) {
      return std::fabs(s.weight[c * d + a]) > std::fabs(s.weight[c * d + b]);
    });
    for (const int64_t j : used) {
      features.push_back({{"feature", j},
                          {"name", feature_name(feature_node, train, j)},
                          {"weight", s.weight[c * d + j]},
                          {"raw_weight", s.weight[c * d + j] / scale.stddev[j]}});
    }
    classes.push_back(
        {{"class", c},
         {"name", c < static_cast<int>(train.class_names.size()) ? train.class_names[c]
                                                                 : std::to_string(c)},
         {"nonzero", used.size()},
         {"features", features}});
  }
  SparseHeadFit out;
  out.report = {{"feature_node", feature_node},
                {"features", d},
                {"classes", k},
                {"alpha", o.head_alpha},
                {"fit_samples", fit.n},
                {"val_samples", val.n},
                {"path", path},
                {"chosen_point", chosen + 1},
                {"chosen_by", chosen_by},
                {"class_features", classes}};
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log << "chosen: point " << chosen + 1 << " (" << chosen_by << "), " << s.nonzero() << " of "
      << k * d << " weights nonzero (" << percent(path[chosen]["density"].get<double>())
      << "), validation accuracy " << percent(val_acc[chosen]) << "\n";
  if (!o.out_dir.empty()) {
    const std::string file = (std::filesystem::path(o.out_dir) / kReportFile).string();
    write_file_atomic(file, out.report.dump(1) + "\n", "sparse-head report " + file);
    log << "per-class features: " << file << "\n";
  }
  EpochStats& e = out.stats;
  e.epoch = 1;
  e.loss = mean_loss(s, fit, d, k);
  e.train_accuracy = path[chosen]["train_accuracy"].get<double>();
  e.seconds = seconds;
  e.samples_per_second = seconds > 0 ? static_cast<double>(fit.n) / seconds : 0.0;
  return out;
}

}  // namespace sparsetrain::detail
