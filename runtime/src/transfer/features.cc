// Deep features of one node, computed with inference passes and cached on
// disk (transfer/features.h).

#include "transfer/features.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/error.h"
#include "sparsetrain/hooks.h"

namespace sparsetrain::detail {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCacheFormat = "sparsetrain-features-1";
constexpr const char* kNoCache = "none";

// FNV-1a, 64 bits (Fowler, Noll, Vo), twice with different offsets for a
// 128-bit key: a cache key, not a defence against crafted collisions.
class Digest {
 public:
  void bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
      a_ = (a_ ^ p[i]) * kPrime;
      b_ = (b_ ^ p[i]) * kPrime;
    }
  }
  void text(const std::string& s) {
    const uint64_t n = s.size();
    bytes(&n, sizeof n);
    bytes(s.data(), s.size());
  }
  template <class T>
  void values(const std::vector<T>& v) {
    const uint64_t n = v.size();
    bytes(&n, sizeof n);
    bytes(v.data(), v.size() * sizeof(T));
  }
  void number(int64_t v) { bytes(&v, sizeof v); }
  std::string hex() const {
    char out[33];
    std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(a_),
                  static_cast<unsigned long long>(b_));
    return out;
  }

 private:
  static constexpr uint64_t kPrime = 0x100000001b3ULL;
  uint64_t a_ = 0xcbf29ce484222325ULL;
  uint64_t b_ = 0x84222325cbf29ce4ULL;
};

NodeId node_or_throw(Graph& graph, const std::string& node) {
  const NodeId id = graph.find(node);
  if (id.index < 0) throw Error("features: the model has no node '" + node + "'");
  return id;
}

// The sample shape of a node's output: (C, H, W), or (F, 1, 1).
Shape sample_shape_of(Graph& graph, NodeId id) {
  const Shape s = graph.shape_of(id);
  if (s.size() == 2) return {s[1], 1, 1};
  if (s.size() == 4) return {s[1], s[2], s[3]};
  throw Error("features: node '" + graph.node(id).name() + "' outputs " + shape_to_string(s) +
              "; features need (N, F) or (N, C, H, W)");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string split_prefix(bool train) { return train ? "train/" : "test/"; }

void put_split(Checkpoint& ck, const Dataset& d, bool train) {
  const std::string p = split_prefix(train);
  ck.put(p + "values", Tensor::from({d.size(), d.channels, d.height, d.width}, d.values));
  ck.put_i32(p + "labels", {d.size()}, d.labels);
}

// The split as computed features, from a cache file whose key matched.
Dataset get_split(const Checkpoint& ck, const Dataset& images, const Shape& sample, bool train) {
  const std::string p = split_prefix(train);
  Dataset d = images;
  d.pixels = {};
  d.channels = sample[0];
  d.height = sample[1];
  d.width = sample[2];
  const Tensor values = ck.get(p + "values", {images.size(), sample[0], sample[1], sample[2]});
  d.values.assign(values.data(), values.data() + values.numel());
  if (ck.get_i32(p + "labels", {images.size()}) != images.labels) {
    throw Error("its " + p + "labels differ from the data's");
  }
  return d;
}

}  // namespace

Dataset node_features(Graph& graph, const std::string& node, const Dataset& data,
                      int64_t batch_size) {
  const NodeId id = node_or_throw(graph, node);
  const Shape sample = sample_shape_of(graph, id);
  const int64_t per_sample = sample[0] * sample[1] * sample[2];
  Dataset out = data;
  out.pixels = {};
  out.channels = sample[0];
  out.height = sample[1];
  out.width = sample[2];
  out.values.assign(static_cast<std::size_t>(data.size() * per_sample), 0.0f);
  int64_t row = 0;
  // The node's output of each batch, in plain (N, ...) order.
  HookHandle hook = graph.add_hook(HookPoint::kAfterForward, node, [&](HookEvent& ev) {
    if (ev.node != node || ev.output == nullptr) return;
    const Tensor& t = *ev.output;
    const Tensor plain = to_layout(t, t.rank() == 4 ? Layout::kNCHW : Layout::kPlain);
    std::copy(plain.data(), plain.data() + plain.numel(), out.values.data() + row * per_sample);
    row += plain.dim(0);
  });
  Loader loader(data, batch_size, /*shuffle=*/false, AugmentOptions{}, /*seed=*/0);
  loader.start_epoch(0);
  Batch batch;
  while (loader.next(batch)) {
    const int64_t before = row;
    graph.forward(batch.images, ExecMode::kInference);
    if (row != before + batch.images.dim(0)) {
      throw Error("features: node '" + node + "' did not run in the forward pass");
    }
  }
  graph.release();
  return out;
}

std::string feature_key(Graph& graph, const std::string& node, const Dataset& data) {
  const NodeId id = node_or_throw(graph, node);
  Digest h;
  h.text(kCacheFormat);
  h.text(node);
  for (int i = 0; i <= id.index; ++i) {
    Node& n = graph.node(NodeId{i});
    h.text(n.name());
    h.text(n.type());
    h.values(graph.shape_of(NodeId{i}));
    for (const NodeId in : graph.inputs_of(NodeId{i})) h.number(in.index);
    for (const Parameter* p : n.parameters()) {
      h.text(p->name);
      h.values(p->value.shape());
      h.number(static_cast<int64_t>(p->value.layout()));
      h.bytes(p->value.data(), static_cast<std::size_t>(p->value.numel()) * sizeof(float));
      h.values(p->dense_index);
      if (p->masked()) {
        h.bytes(p->mask.data(), static_cast<std::size_t>(p->mask.numel()) * sizeof(float));
      }
    }
  }
  h.text(data.name);
  h.values(std::vector<int64_t>{data.size(), data.channels, data.height, data.width});
  h.values(data.mean);
  h.values(data.stddev);
  h.values(data.labels);
  h.values(data.pixels);
  h.values(data.values);
  return h.hex();
}

std::string default_feature_cache_dir() {
  // Beside the datasets' user cache: <cache>/sparsetrain/features.
  const std::string data = user_data_cache_dir();
  return data.empty() ? std::string() : (fs::path(data).parent_path() / "features").string();
}

CachedFeatures cached_features(Graph& graph, const std::string& node, const Dataset& train,
                               const Dataset& test, int64_t batch_size,
                               const std::string& cache_dir) {
  const auto t0 = std::chrono::steady_clock::now();
  const NodeId id = node_or_throw(graph, node);
  const Shape sample = sample_shape_of(graph, id);
  const std::string dir = cache_dir.empty() ? default_feature_cache_dir() : cache_dir;
  const bool use_disk = !dir.empty() && dir != kNoCache;
  const std::string key = feature_key(graph, node, train) + feature_key(graph, node, test);
  const std::string features_text = "features of '" + node + "' " + shape_to_string(sample);
  CachedFeatures out;
  std::string problem;
  const fs::path file = fs::path(dir) / (key + ".safetensors");
  std::error_code ec;
  if (use_disk && fs::exists(file, ec)) {
    try {
      const Checkpoint ck = Checkpoint::load(file.string());
      if (ck.meta("format") != kCacheFormat || ck.meta("key") != key) {
        throw Error("another key");
      }
      out.train = get_split(ck, train, sample, true);
      out.test = get_split(ck, test, sample, false);
      std::ostringstream note;
      note << std::fixed << std::setprecision(2) << features_text << ": read from the cache "
           << file.string() << " (" << seconds_since(t0) << " s)";
      out.note = note.str();
      return out;
    } catch (const Error& e) {
      problem =
          "; the cache file there was not usable (" + std::string(e.what()) + ") and is replaced";
    }
  }
  out.train = node_features(graph, node, train, batch_size);
  out.test = node_features(graph, node, test, batch_size);
  std::ostringstream note;
  note << std::fixed << std::setprecision(2) << features_text << ": computed in "
       << seconds_since(t0) << " s (" << out.train.size() + out.test.size()
       << " samples, inference only)";
  if (use_disk) {
    try {
      fs::create_directories(dir, ec);
      if (ec) throw Error("cannot create '" + dir + "': " + ec.message());
      Checkpoint ck;
      ck.metadata()["format"] = kCacheFormat;
      ck.metadata()["key"] = key;
      ck.metadata()["node"] = node;
      put_split(ck, out.train, true);
      put_split(ck, out.test, false);
      ck.save(file.string());
      note << ", cached in " << file.string() << problem;
    } catch (const Error& e) {
      note << "; not cached: " << e.what();
    }
  }
  out.note = note.str();
  return out;
}

}  // namespace sparsetrain::detail
