// The group-level results of compare_models: aggregates, pairs against the
// reference, PIEs, embedding overlaps, projections, prune potentials.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "compare/compare_internal.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"

namespace sparsetrain::detail {

namespace {

PairStats pair_stats(const ModelStats& m, const ModelStats& ref,
                     const std::vector<int32_t>& labels) {
  PairStats p;
  p.model = m.label;
  p.reference = ref.label;
  const std::size_t n = labels.size();
  double differ = 0, r2w = 0, w2r = 0, em = 0, er = 0, emr = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool rm = m.predicted[i] == labels[i], rr = ref.predicted[i] == labels[i];
    differ += m.predicted[i] != ref.predicted[i];
    r2w += rr && !rm;
    w2r += !rr && rm;
    em += !rm;
    er += !rr;
    emr += !rm && !rr;
  }
  const double dn = static_cast<double>(n);
  p.disagreement = differ / dn;
  p.right_to_wrong = r2w / dn;
  p.wrong_to_right = w2r / dn;
  // Pearson correlation of two 0/1 vectors (the phi coefficient).
  const double pm = em / dn, pr = er / dn;
  const double cov = emr / dn - pm * pr;
  const double var = pm * (1 - pm) * pr * (1 - pr);
  p.error_correlation = var > 0 ? cov / std::sqrt(var) : 0.0;
  p.class_accuracy_change.resize(m.class_accuracy.size());
  for (std::size_t c = 0; c < m.class_accuracy.size(); ++c)
    p.class_accuracy_change[c] = m.class_accuracy[c] - ref.class_accuracy[c];
  return p;
}

void add_pair(GroupStats& g, const PairStats& p, double& pairs) {
  g.disagreement += p.disagreement;
  g.right_to_wrong += p.right_to_wrong;
  g.wrong_to_right += p.wrong_to_right;
  g.error_correlation += p.error_correlation;
  pairs += 1;
}

void pies(const std::vector<const ModelStats*>& ref, const std::vector<const ModelStats*>& grp,
          const std::vector<int32_t>& labels, int classes, int top, GroupStats& g) {
  std::vector<std::vector<int32_t>> rp, gp;
  for (const ModelStats* m : ref) rp.push_back(m->predicted);
  for (const ModelStats* m : grp) gp.push_back(m->predicted);
  std::vector<int32_t> rmode, gmode;
  std::vector<double> rshare, gshare;
  modal_predictions(rp, classes, rmode, rshare);
  modal_predictions(gp, classes, gmode, gshare);
  const std::vector<int64_t> found = pruning_identified_exemplars(rp, gp, classes);
  g.has_pies = true;
  g.pie_count = static_cast<int64_t>(found.size());
  g.pie_fraction = static_cast<double>(found.size()) / static_cast<double>(labels.size());
  std::vector<uint8_t> is_pie(labels.size(), 0);
  for (int64_t i : found) is_pie[i] = 1;
  double on = 0, on_n = 0, off = 0, off_n = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    double right = 0;
    for (const ModelStats* m : ref) right += m->predicted[i] == labels[i];
    right /= static_cast<double>(ref.size());
    (is_pie[i] ? on : off) += right;
    (is_pie[i] ? on_n : off_n) += 1;
  }
  g.reference_accuracy_on_pies = on_n > 0 ? on / on_n : 0.0;
  g.reference_accuracy_off_pies = off_n > 0 ? off / off_n : 0.0;
  std::vector<int64_t> order = found;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return rshare[a] + gshare[a] > rshare[b] + gshare[b];
  });
  for (std::size_t j = 0; j < order.size() && j < static_cast<std::size_t>(top); ++j) {
    const int64_t i = order[j];
    g.top_pies.push_back({i, labels[i], rmode[i], gmode[i], rshare[i], gshare[i]});
  }
}

}  // namespace

std::vector<int64_t> scatter_samples(int64_t n, const CompareOptions& o) {
  std::vector<int64_t> all(static_cast<std::size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  if (o.scatter_points < 0 || o.scatter_points >= n) return all;
  Rng rng(o.seed ^ 0x5ca77e7ULL);
  for (int64_t i = 0; i < o.scatter_points; ++i)
    std::swap(all[i], all[i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - i)))]);
  all.resize(static_cast<std::size_t>(o.scatter_points));
  std::sort(all.begin(), all.end());
  return all;
}

Projection project(const ModelPass& pass, const std::string& label,
                   const std::vector<int64_t>& samples) {
  Projection p;
  p.model = label;
  p.samples = samples;
  const int64_t n = static_cast<int64_t>(samples.size());
  std::vector<float> rows(static_cast<std::size_t>(n * pass.dim));
  for (int64_t i = 0; i < n; ++i)
    std::copy_n(pass.embedding.begin() + samples[i] * pass.dim, pass.dim,
                rows.begin() + i * pass.dim);
  const std::vector<float> xy = principal_components_2d(rows, n, pass.dim, p.explained);
  for (int64_t i = 0; i < n; ++i) {
    p.x.push_back(xy[i * 2]);
    p.y.push_back(xy[i * 2 + 1]);
  }
  return p;
}

void aggregate_groups(const std::vector<CompareGroup>& groups, int classes, CompareResult& r) {
  std::vector<std::vector<const ModelStats*>> members(groups.size());
  std::size_t m = 0;
  for (std::size_t gi = 0; gi < groups.size(); ++gi)
    for (std::size_t j = 0; j < groups[gi].models.size(); ++j)
      members[gi].push_back(&r.models[m++]);
  const auto& ref = members.front();
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    GroupStats g;
    g.name = groups[gi].name;
    const auto& mine = members[gi];
    g.models = static_cast<int>(mine.size());
    const double k = static_cast<double>(mine.size());
    g.class_accuracy.assign(classes, 0.0);
    std::vector<float> conf;
    std::vector<uint8_t> correct;
    for (const ModelStats* s : mine) {
      g.sparsity += s->sparsity / k;
      g.accuracy += s->accuracy / k;
      g.nll += s->nll / k;
      g.ece += s->ece / k;
      g.mean_confidence += s->mean_confidence / k;
      g.uncertain_fraction += s->uncertain_fraction / k;
      for (int c = 0; c < classes; ++c) g.class_accuracy[c] += s->class_accuracy[c] / k;
      conf.insert(conf.end(), s->confidence.begin(), s->confidence.end());
      for (std::size_t i = 0; i < s->predicted.size(); ++i)
        correct.push_back(s->predicted[i] == r.labels[i]);
      if (g.noise_accuracy.empty()) g.noise_accuracy.assign(s->noise_accuracy.size(), 0.0);
      for (std::size_t l = 0; l < s->noise_accuracy.size(); ++l)
        g.noise_accuracy[l] += s->noise_accuracy[l] / k;
      for (const auto& [name, acc] : s->corruption_accuracy) {
        auto& dst = g.corruption_accuracy[name];
        if (dst.empty()) dst.assign(acc.size(), 0.0);
        for (std::size_t v = 0; v < acc.size(); ++v) dst[v] += acc[v] / k;
      }
    }
    for (const ModelStats* s : mine)
      g.accuracy_std += (s->accuracy - g.accuracy) * (s->accuracy - g.accuracy);
    g.accuracy_std = mine.size() > 1 ? std::sqrt(g.accuracy_std / (k - 1)) : 0.0;
    g.reliability = reliability_bins(conf, correct, r.options.bins);
    double pairs = 0;
    if (gi == 0) {
      for (std::size_t a = 0; a < mine.size(); ++a)
        for (std::size_t b = a + 1; b < mine.size(); ++b)
          add_pair(g, pair_stats(*mine[b], *mine[a], r.labels), pairs);
    } else {
      for (const ModelStats* s : mine)
        for (const ModelStats* rs : ref) {
          r.pairs.push_back(pair_stats(*s, *rs, r.labels));
          add_pair(g, r.pairs.back(), pairs);
        }
    }
    if (pairs > 0) {
      g.disagreement /= pairs;
      g.right_to_wrong /= pairs;
      g.wrong_to_right /= pairs;
      g.error_correlation /= pairs;
    }
    r.groups.push_back(std::move(g));
  }
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    GroupStats& g = r.groups[gi];
    g.class_accuracy_change.resize(classes);
    for (int c = 0; c < classes; ++c)
      g.class_accuracy_change[c] = g.class_accuracy[c] - r.groups.front().class_accuracy[c];
    if (gi > 0 && ref.size() >= 2 && members[gi].size() >= 2)
      pies(ref, members[gi], r.labels, classes, r.options.top, g);
  }
}

void embedding_pairs(const std::vector<std::vector<int64_t>>& neighbours, CompareResult& r) {
  const int64_t n = r.samples, k = r.options.k;
  const int keep = r.options.domino_neighbours;
  for (std::size_t m = 1; m < neighbours.size(); ++m) {
    EmbeddingPair e;
    e.model = r.models[m].label;
    e.reference = r.models.front().label;
    e.jaccard = neighbour_jaccard(neighbours[m], neighbours.front(), n, k);
    e.mean = std::accumulate(e.jaccard.begin(), e.jaccard.end(), 0.0) / static_cast<double>(n);
    std::vector<int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return e.jaccard[a] < e.jaccard[b]; });
    e.median = e.jaccard[order[n / 2]];
    e.histogram.assign(20, 0);
    for (float j : e.jaccard) e.histogram[std::min(19, static_cast<int>(j * 20.0f))]++;
    const int64_t top = std::min<int64_t>(r.options.top, n);
    e.least.assign(order.begin(), order.begin() + top);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return e.jaccard[a] > e.jaccard[b]; });
    e.most.assign(order.begin(), order.begin() + top);
    for (const auto* list : {&e.least, &e.most}) {
      for (int64_t i : *list) {
        const int64_t c = std::min<int64_t>(keep, k);
        e.model_neighbours.emplace_back(neighbours[m].begin() + i * k,
                                        neighbours[m].begin() + i * k + c);
        e.reference_neighbours.emplace_back(neighbours.front().begin() + i * k,
                                            neighbours.front().begin() + i * k + c);
      }
    }
    r.embeddings.push_back(std::move(e));
  }
}

void prune_potentials(CompareResult& r) {
  if (r.groups.size() < 2) return;
  const GroupStats& ref = r.groups.front();
  auto add = [&](const std::string& name, auto&& accuracy_of) {
    PrunePotential p;
    p.distribution = name;
    p.reference_accuracy = accuracy_of(ref);
    std::vector<double> sparsity;
    for (std::size_t g = 1; g < r.groups.size(); ++g) {
      sparsity.push_back(r.groups[g].sparsity);
      p.group_accuracy.push_back(accuracy_of(r.groups[g]));
    }
    p.potential = prune_potential(sparsity, p.group_accuracy, ref.sparsity, p.reference_accuracy,
                                  r.options.potential_tolerance);
    p.group_accuracy.insert(p.group_accuracy.begin(), p.reference_accuracy);
    r.potentials.push_back(std::move(p));
  };
  add("clean", [](const GroupStats& g) { return g.accuracy; });
  if (r.robust_samples == 0) return;
  for (std::size_t l = 0; l < r.noise_levels.size(); ++l) {
    if (r.noise_levels[l] == 0.0) continue;
    char name[32];
    std::snprintf(name, sizeof name, "noise %.2f", r.noise_levels[l]);
    add(name, [l](const GroupStats& g) { return g.noise_accuracy[l]; });
  }
  for (const std::string& c : r.options.corruptions) {
    add(c, [&c](const GroupStats& g) {
      const auto& v = g.corruption_accuracy.at(c);
      return v.empty() ? 0.0
                       : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    });
  }
}

}  // namespace sparsetrain::detail
