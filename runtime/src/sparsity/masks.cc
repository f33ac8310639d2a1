// Mask selection (sparsetrain/masks.h): distributions and kept counts
// (uniform, ERK), masks by magnitude or at random with one top-k for every
// ranking, and the sparsity and memory of a graph; plus the helpers the
// controller and the methods share (sparsity/sparsity_internal.h).
#include "sparsetrain/masks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <utility>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/rng.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {

void detail::check_sparsity(float sparsity) {
  if (!(sparsity >= 0.0f && sparsity < 1.0f)) {
    throw Error("--sparsity must be in [0, 1), got " + std::to_string(sparsity));
  }
}

// The 0/1 mask a parameter holds now: its stored positions when
// compressed, its mask when masked, its nonzeros otherwise.
Tensor detail::current_mask(const Parameter& p) {
  if (p.masked()) return p.mask.clone();
  Tensor mask = Tensor::zeros(p.compressed() ? p.dense_shape : p.value.shape());
  if (p.compressed()) {
    for (const int64_t i : p.dense_index) mask[i] = 1.0f;
  } else {
    for (int64_t i = 0; i < p.value.numel(); ++i) mask[i] = p.value[i] != 0.0f ? 1.0f : 0.0f;
  }
  return mask;
}

int64_t detail::kept_count(const Parameter& p) {
  if (p.compressed()) return p.value.numel();
  int64_t kept = 0;
  if (p.masked()) {
    for (int64_t i = 0; i < p.mask.numel(); ++i) kept += p.mask[i] != 0.0f;
  } else {
    for (int64_t i = 0; i < p.value.numel(); ++i) kept += p.value[i] != 0.0f;
  }
  return kept;
}

namespace {

using detail::check_sparsity;

// The positions of the `k` largest keys, ties going to the lower
// position: a threshold from nth_element on a copy of the keys, then one
// scan in position order (contiguous keys, so this stays fast on a few
// hundred thousand weights).
template <typename Key>
std::vector<int64_t> top_k(const std::vector<Key>& keys, int64_t k) {
  const int64_t n = static_cast<int64_t>(keys.size());
  k = std::clamp<int64_t>(k, 0, n);
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(k));
  if (k == 0) return out;
  std::vector<Key> sorted(keys);
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<Key>());
  const Key threshold = sorted[static_cast<std::size_t>(k - 1)];
  for (int64_t j = 0; j < n; ++j)
    if (keys[static_cast<std::size_t>(j)] > threshold) out.push_back(j);
  for (int64_t j = 0; j < n && static_cast<int64_t>(out.size()) < k; ++j)
    if (keys[static_cast<std::size_t>(j)] == threshold) out.push_back(j);
  return out;
}

// IEEE 754 floats mapped to unsigned integers of the same order: negatives
// have all bits flipped, the rest their sign bit set.
uint32_t ordered_bits(float x) {
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
}

}  // namespace

// The same for float keys, by radix select instead of nth_element (RigL
// runs this on every update): a histogram of the high 16 bits of the
// ordered keys finds the bucket holding the k-th largest, nth_element over
// that bucket's low bits finds it inside.
std::vector<int64_t> detail::top_k(const std::vector<float>& keys, int64_t k) {
  constexpr int kLowBits = 16;
  constexpr uint32_t kBuckets = 1u << (32 - kLowBits);
  const int64_t n = static_cast<int64_t>(keys.size());
  k = std::clamp<int64_t>(k, 0, n);
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(k));
  if (k == 0) return out;
  std::vector<uint32_t> bits(keys.size());
  std::vector<int64_t> histogram(kBuckets, 0);
  for (std::size_t j = 0; j < keys.size(); ++j) {
    bits[j] = ordered_bits(keys[j]);
    ++histogram[bits[j] >> kLowBits];
  }
  uint32_t bucket = kBuckets - 1;
  int64_t above = 0;  // keys in buckets above `bucket`
  while (above + histogram[bucket] < k) above += histogram[bucket--];
  std::vector<uint32_t> low;
  low.reserve(static_cast<std::size_t>(histogram[bucket]));
  for (const uint32_t b : bits)
    if (b >> kLowBits == bucket) low.push_back(b & (kBuckets - 1));
  const int64_t rank = k - above;  // 1-based, from the top of the bucket
  std::nth_element(low.begin(), low.begin() + (rank - 1), low.end(), std::greater<uint32_t>());
  const uint32_t threshold = (bucket << kLowBits) | low[static_cast<std::size_t>(rank - 1)];
  for (int64_t j = 0; j < n; ++j)
    if (bits[static_cast<std::size_t>(j)] > threshold) out.push_back(j);
  for (int64_t j = 0; j < n && static_cast<int64_t>(out.size()) < k; ++j)
    if (bits[static_cast<std::size_t>(j)] == threshold) out.push_back(j);
  return out;
}

namespace {

using detail::top_k;

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

// Masks from per-weight scores: the top counts[l] of each layer, or (global,
// counts empty) the top round((1 - sparsity) N) over all layers together.
template <typename LayerScores>
std::vector<Tensor> masks_from_scores(const std::vector<PrunableLayer>& layers,
                                      const LayerScores& scores, float sparsity,
                                      Distribution distribution) {
  check_sparsity(sparsity);
  std::vector<Tensor> masks;
  masks.reserve(layers.size());
  for (const PrunableLayer& l : layers) masks.push_back(Tensor::zeros(l.shape));
  if (distribution != Distribution::kGlobal) {
    const std::vector<int64_t> counts = layer_keep_counts(layers, sparsity, distribution);
    for (std::size_t l = 0; l < layers.size(); ++l)
      for (const int64_t i : top_k(scores[l], counts[l])) masks[l][i] = 1.0f;
    return masks;
  }
  // One ranking over the concatenation of all layers (flat position
  // offset[l] + i), so ties go to the earlier layer, then the lower index.
  std::vector<int64_t> offset(layers.size() + 1, 0);
  for (std::size_t l = 0; l < layers.size(); ++l) offset[l + 1] = offset[l] + masks[l].numel();
  const int64_t total = offset.back();
  const int64_t keep = std::clamp<int64_t>(
      std::llround((1.0 - static_cast<double>(sparsity)) * static_cast<double>(total)), 0, total);
  using Value = std::decay_t<decltype(scores[0][0])>;
  std::vector<Value> all(static_cast<std::size_t>(total));
  for (std::size_t l = 0; l < layers.size(); ++l)
    std::copy(scores[l].begin(), scores[l].end(), all.begin() + offset[l]);
  for (const int64_t g : top_k(all, keep)) {
    const std::size_t l = static_cast<std::size_t>(
        std::upper_bound(offset.begin(), offset.end(), g) - offset.begin() - 1);
    masks[l][g - offset[l]] = 1.0f;
  }
  return masks;
}

}  // namespace

// --- mask selection ------------------------------------------------------------

namespace {

// Each distribution and its name in options, recipes and messages.
constexpr std::pair<Distribution, const char*> kDistributionNames[] = {
    {Distribution::kGlobal, "global"},
    {Distribution::kUniform, "uniform"},
    {Distribution::kErk, "erk"},
};

}  // namespace

Distribution parse_distribution(const std::string& name) {
  std::vector<std::string> known;
  for (const auto& [distribution, text] : kDistributionNames) {
    if (name == text) return distribution;
    known.emplace_back(text);
  }
  throw Error("--distribution: unknown distribution '" + name + "' (expected " +
              detail::join_or(known) + ")");
}

const char* distribution_name(Distribution distribution) {
  for (const auto& [d, text] : kDistributionNames)
    if (d == distribution) return text;
  return "?";
}

std::vector<PrunableLayer> prunable_layers(Graph& graph, bool dense_first_last) {
  std::vector<PrunableLayer> layers;
  for (int i = 0; i < graph.size(); ++i) {
    Node& n = graph.node(NodeId{i});
    if (nodes::as_prunable(n) == nullptr || !graph.prunable(n.name())) continue;
    PrunableLayer l;
    l.node = n.name();
    l.param = n.name() + ".weight";
    const Parameter& p = graph.parameter(l.param);
    l.shape = p.compressed() ? p.dense_shape : p.value.shape();
    layers.push_back(std::move(l));
  }
  if (dense_first_last && layers.size() > 2) {
    layers.erase(layers.begin());
    layers.pop_back();
  }
  return layers;
}

bool auto_dense_first_last(Graph& graph) {
  for (int i = 0; i < graph.size(); ++i) {
    Node& n = graph.node(NodeId{i});
    if (nodes::as_prunable(n) != nullptr && !graph.prunable(n.name())) return false;
  }
  return has_convolutions(graph);
}

bool has_convolutions(Graph& graph) {
  for (int i = 0; i < graph.size(); ++i)
    if (graph.node(NodeId{i}).traits().convolution) return true;
  return false;
}

std::vector<int64_t> layer_keep_counts(const std::vector<PrunableLayer>& layers, float sparsity,
                                       Distribution distribution) {
  check_sparsity(sparsity);
  if (distribution == Distribution::kGlobal) {
    throw Error(
        "layer_keep_counts: the global distribution depends on the weights' magnitudes "
        "(use magnitude_masks)");
  }
  const std::size_t count = layers.size();
  const double density = 1.0 - static_cast<double>(sparsity);
  std::vector<double> numel(count);
  double total = 0;
  for (std::size_t l = 0; l < count; ++l) {
    numel[l] = static_cast<double>(Tensor::count(layers[l].shape));
    total += numel[l];
  }
  std::vector<double> share(count);
  if (distribution == Distribution::kUniform) {
    for (std::size_t l = 0; l < count; ++l) share[l] = density * numel[l];
  } else {
    // ERK (Evci et al. 2020, sec. 3; Mocanu et al. 2018 for ER): layer l
    // keeps eps * raw_l * n_l weights, raw_l = sum(dims) / prod(dims), with
    // eps solving sum_l kept_l = density * N. A layer with eps * raw_l > 1
    // is made dense and eps re-solved over the rest; eps only grows when a
    // layer leaves, so every layer over 1 can leave at once.
    std::vector<double> raw(count);
    for (std::size_t l = 0; l < count; ++l) {
      double sum = 0;
      for (const int64_t d : layers[l].shape) sum += static_cast<double>(d);
      raw[l] = sum / numel[l];
    }
    std::vector<bool> dense(count, false);
    double eps = 0;
    for (;;) {
      double rhs = density * total, divisor = 0;
      for (std::size_t l = 0; l < count; ++l) {
        if (dense[l]) {
          rhs -= numel[l];
        } else {
          divisor += raw[l] * numel[l];
        }
      }
      eps = divisor > 0 ? rhs / divisor : 0.0;
      bool changed = false;
      for (std::size_t l = 0; l < count; ++l) {
        if (!dense[l] && eps * raw[l] > 1.0) {
          dense[l] = true;
          changed = true;
        }
      }
      if (!changed) break;
    }
    for (std::size_t l = 0; l < count; ++l)
      share[l] = dense[l] ? numel[l] : eps * raw[l] * numel[l];
  }
  // Largest remainders: floor every share, then hand the missing weights to
  // the layers with the largest fractional parts (earlier layers on ties).
  const int64_t target = std::llround(density * total);
  std::vector<int64_t> kept(count);
  int64_t assigned = 0;
  for (std::size_t l = 0; l < count; ++l) {
    kept[l] = std::min(static_cast<int64_t>(std::floor(share[l])), static_cast<int64_t>(numel[l]));
    assigned += kept[l];
  }
  std::vector<int64_t> order = iota(static_cast<int64_t>(count));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return share[a] - std::floor(share[a]) > share[b] - std::floor(share[b]);
  });
  while (assigned < target) {
    bool gave = false;
    for (const int64_t l : order) {
      if (assigned == target) break;
      if (kept[l] < static_cast<int64_t>(numel[l])) {
        ++kept[l];
        ++assigned;
        gave = true;
      }
    }
    SPARSETRAIN_ASSERT(gave);
  }
  return kept;
}

std::vector<double> layer_densities(const std::vector<PrunableLayer>& layers, float sparsity,
                                    Distribution distribution) {
  const std::vector<int64_t> kept = layer_keep_counts(layers, sparsity, distribution);
  std::vector<double> densities(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l)
    densities[l] =
        static_cast<double>(kept[l]) / static_cast<double>(Tensor::count(layers[l].shape));
  return densities;
}

std::vector<Tensor> magnitude_masks(Graph& graph, const std::vector<PrunableLayer>& layers,
                                    float sparsity, Distribution distribution) {
  std::vector<std::vector<float>> magnitudes(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Tensor w = dense_value(graph.parameter(layers[l].param));
    if (w.shape() != layers[l].shape) {
      throw Error("magnitude_masks: '" + layers[l].param + "' has shape " + w.shape_string() +
                  ", the layer list says " + shape_to_string(layers[l].shape));
    }
    magnitudes[l].resize(static_cast<std::size_t>(w.numel()));
    for (int64_t i = 0; i < w.numel(); ++i) magnitudes[l][i] = std::fabs(w[i]);
  }
  return masks_from_scores(layers, magnitudes, sparsity, distribution);
}

std::vector<Tensor> random_masks(const std::vector<PrunableLayer>& layers, float sparsity,
                                 Distribution distribution, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<uint64_t>> keys(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    keys[l].resize(static_cast<std::size_t>(Tensor::count(layers[l].shape)));
    for (uint64_t& k : keys[l]) k = rng.next();
  }
  return masks_from_scores(layers, keys, sparsity, distribution);
}

double SparsityReport::prunable_sparsity() const {
  return prunable_total > 0
             ? 1.0 - static_cast<double>(prunable_nonzero) / static_cast<double>(prunable_total)
             : 0.0;
}

double SparsityReport::params_sparsity() const {
  return params_total > 0
             ? 1.0 - static_cast<double>(params_nonzero) / static_cast<double>(params_total)
             : 0.0;
}

SparsityReport sparsity_report(Graph& graph) {
  SparsityReport r;
  for (const Parameter* p : graph.parameters()) {
    if (!p->trainable()) continue;
    int64_t nonzero = p->value.numel();
    if (!p->compressed()) {
      nonzero = 0;
      for (int64_t i = 0; i < p->value.numel(); ++i) nonzero += p->value[i] != 0.0f;
    }
    r.params_total += p->dense_numel();
    r.params_nonzero += nonzero;
    if (p->prunable()) {
      r.prunable_total += p->dense_numel();
      r.prunable_nonzero += nonzero;
    }
  }
  return r;
}

int64_t parameter_memory_bytes(Graph& graph, Optimizer* optimizer) {
  int64_t bytes = 0;
  for (const Parameter* p : graph.parameters()) {
    if (!p->trainable()) continue;
    bytes += p->value.bytes();
    bytes += static_cast<int64_t>(p->dense_index.size() * sizeof(int64_t));
    if (p->masked()) bytes += p->mask.bytes();
    if (optimizer == nullptr) continue;
    if (const Optimizer::ParamState* state = optimizer->state_of(p->name)) {
      for (const Tensor& slot : state->slot)
        if (slot.defined()) bytes += slot.bytes();
    }
  }
  return bytes;
}

}  // namespace sparsetrain
