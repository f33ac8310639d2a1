// Training state in a checkpoint: parameters (dense, or compressed and
// masked in the sparse encoding) and RNG states. The safetensors container
// itself (format, validation, reading and writing) is checkpoint.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <utility>

#include "files/checkpoint_internal.h"
#include "sparsetrain/checkpoint.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"

namespace sparsetrain {

using namespace ckpt;

// --- parameters ----------------------------------------------------------------

namespace {

constexpr const char* kSparsePrefix = "sparse/";
constexpr const char* kSparseMetaKey = "sparse";
constexpr const char* kLegacyMaskPrefix = "mask/";
constexpr const char* kOptimOrderKey = "optim.order";
// The value of kOptimOrderKey: compressed state in increasing flat position.
constexpr const char* kOptimOrderDense = "dense-position";
constexpr const char* kCompressed = "compressed";
constexpr const char* kMasked = "masked";
constexpr int kBitsPerByte = 8;

std::string where_of(const Checkpoint& ckpt) {
  return ckpt.source().empty() ? std::string("checkpoint (in memory)")
                               : "checkpoint '" + ckpt.source() + "'";
}

// A parameter's (or optimizer slot's) values: a run that diverged never
// saves, so a NaN or an infinity is damage, refused rather than evaluated
// or pruned as if it were a model.
Tensor finite_values(const Checkpoint& ckpt, const std::string& name, const Shape* shape) {
  Tensor t = shape != nullptr ? ckpt.get(name, *shape) : ckpt.get(name);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(t[i])) {
      throw Error(where_of(ckpt) + ": tensor " + quote_text(name) + " holds " +
                  (std::isnan(t[i]) ? "NaN" : "an infinity") + " at flat position " +
                  std::to_string(i) + " (the file is damaged)");
    }
  }
  return t;
}

std::string values_name(const std::string& param) { return kSparsePrefix + param + "/values"; }
std::string bitmask_name(const std::string& param) { return kSparsePrefix + param + "/bitmask"; }

// The node owning any parameter "<node>.<name>" (weight, bias, running_mean).
std::string owner_node(const std::string& param) {
  const size_t dot = param.rfind('.');
  return dot == std::string::npos ? param : param.substr(0, dot);
}

// The node owning a prunable weight "<node>.weight".
std::string node_of(const std::string& param) {
  const std::string suffix = ".weight";
  if (param.size() > suffix.size() &&
      param.compare(param.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return param.substr(0, param.size() - suffix.size());
  }
  return param;
}

int64_t bitmask_bytes(int64_t numel) { return (numel + kBitsPerByte - 1) / kBitsPerByte; }

// Sorted flat positions -> bitmask of `numel` bits.
std::vector<uint8_t> pack_bits(const std::vector<int64_t>& positions, int64_t numel) {
  std::vector<uint8_t> bits(static_cast<std::size_t>(bitmask_bytes(numel)), 0);
  for (const int64_t i : positions) {
    bits[static_cast<std::size_t>(i / kBitsPerByte)] |=
        static_cast<uint8_t>(1u << (i % kBitsPerByte));
  }
  return bits;
}

// The order that sorts a compressed parameter's stored entries by flat
// position: entry order[j] sits at the j-th smallest position.
std::vector<int64_t> position_order(const Parameter& p) {
  std::vector<int64_t> order(p.dense_index.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = static_cast<int64_t>(k);
  std::sort(order.begin(), order.end(), [&p](int64_t a, int64_t b) {
    return p.dense_index[static_cast<std::size_t>(a)] < p.dense_index[static_cast<std::size_t>(b)];
  });
  return order;
}

// A masked or compressed parameter as read from a file, validated.
struct SparseEntry {
  bool compressed = false;
  Shape shape;                     // dense shape
  std::vector<int64_t> positions;  // stored flat positions, increasing
  Tensor dense;                    // dense values, pruned entries zero
};

// Reads a bitmask tensor of a `numel`-entry parameter into positions.
std::vector<int64_t> read_bitmask(const Checkpoint& ckpt, const std::string& param, int64_t numel,
                                  int64_t nnz) {
  const std::string name = bitmask_name(param);
  const std::string what = where_of(ckpt) + ": tensor " + quote_text(name);
  if (!ckpt.has(name)) {
    throw Error(where_of(ckpt) + ": " + quote_text(param) +
                " is listed in the 'sparse' metadata but tensor " + quote_text(name) +
                " is missing");
  }
  const CheckpointTensor& t = ckpt.raw(name);
  const Shape expected{bitmask_bytes(numel)};
  if (t.dtype != "U8" || t.shape != expected) {
    throw Error(what + " is " + t.dtype + " " + shape_to_string(t.shape) + ", expected U8 " +
                shape_to_string(expected) + " (one bit per entry of the " + std::to_string(numel) +
                "-entry weight)");
  }
  std::vector<int64_t> positions;
  positions.reserve(static_cast<std::size_t>(std::max<int64_t>(nnz, 0)));
  for (std::size_t b = 0; b < t.bytes.size(); ++b) {
    unsigned byte = t.bytes[b];
    while (byte != 0) {
      const int bit = std::countr_zero(byte);
      const int64_t i = static_cast<int64_t>(b) * kBitsPerByte + bit;
      if (i >= numel) {
        throw Error(what + " sets bit " + std::to_string(i) + " past the weight's " +
                    std::to_string(numel) + " entries (corrupt bitmask)");
      }
      positions.push_back(i);
      byte &= byte - 1;
    }
  }
  if (static_cast<int64_t>(positions.size()) != nnz) {
    throw Error(what + " marks " + std::to_string(positions.size()) +
                " stored entries but the 'sparse' metadata says nnz " + std::to_string(nnz) +
                " (inconsistent sparse tensor " + quote_text(param) + ")");
  }
  return positions;
}

// Parses the "sparse" metadata and checks every tensor it names. Format-1
// files (no "sparse" metadata) give their "mask/<name>" tensors as masked
// entries with `legacy` set.
std::map<std::string, SparseEntry> read_sparse_entries(const Checkpoint& ckpt, bool* legacy) {
  const std::string where = where_of(ckpt);
  std::map<std::string, SparseEntry> entries;
  *legacy = false;
  const auto meta = ckpt.metadata().find(kSparseMetaKey);
  if (meta == ckpt.metadata().end()) {
    for (const std::string& name : ckpt.names()) {
      if (name.rfind(kSparsePrefix, 0) == 0) {
        throw Error(where + ": tensor " + quote_text(name) +
                    " belongs to no entry of the 'sparse' metadata (which is missing)");
      }
      if (name.rfind(kLegacyMaskPrefix, 0) != 0) continue;
      // Format 2 has no "mask/" tensors: one there is not a legacy mask but
      // a stray tensor that would silently prune the model.
      const auto format = ckpt.metadata().find("format");
      if (format != ckpt.metadata().end() && format->second != "sparsetrain-checkpoint-1") {
        throw Error(where + ": tensor " + quote_text(name) + " is not part of a " + format->second +
                    " file (masks are 'sparse/<name>/bitmask' with the "
                    "'sparse' metadata); refusing to apply it");
      }
      const std::string param = name.substr(std::strlen(kLegacyMaskPrefix));
      const std::string value_name = kParamPrefix + param;
      const Tensor dense = finite_values(ckpt, value_name, nullptr);
      const std::vector<uint8_t> mask = ckpt.get_u8(name, dense.shape());
      SparseEntry e;
      e.shape = dense.shape();
      e.dense = dense;
      for (std::size_t i = 0; i < mask.size(); ++i) {
        if (mask[i] != 0) {
          e.positions.push_back(static_cast<int64_t>(i));
        } else if (dense[static_cast<int64_t>(i)] != 0.0f) {
          // Format 1 saved pruned weights as zeros: a value outside the mask
          // means the mask does not belong to these weights.
          throw Error(where + ": tensor " + quote_text(name) + " masks flat position " +
                      std::to_string(i) + " of " + quote_text(value_name) +
                      ", which holds a nonzero weight (the mask does not match the weights)");
        }
      }
      entries[param] = std::move(e);
      *legacy = true;
    }
    return entries;
  }

  json j;
  try {
    j = json::parse(meta->second);
  } catch (const json::exception& e) {
    throw Error(where + ": metadata 'sparse' is not valid JSON: " + printable(e.what()));
  }
  if (!j.is_object()) throw Error(where + ": metadata 'sparse' is not a JSON object");
  for (const auto& [param, d] : j.items()) {
    const std::string what = where + ": sparse tensor " + quote_text(param);
    if (!d.is_object()) throw Error(what + ": its 'sparse' metadata entry is not an object");
    for (const auto& [field, unused] : d.items()) {
      if (field != "state" && field != "shape" && field != "nnz") {
        throw Error(what + ": unexpected field " + quote_text(field) + " in the 'sparse' metadata");
      }
    }
    SparseEntry e;
    const auto state = d.find("state");
    if (state == d.end() || !state->is_string() ||
        (state->get<std::string>() != kCompressed && state->get<std::string>() != kMasked)) {
      throw Error(what + ": 'state' must be \"compressed\" or \"masked\"");
    }
    e.compressed = state->get<std::string>() == kCompressed;
    const auto shape = d.find("shape");
    if (shape == d.end() || !shape->is_array() || shape->empty()) {
      throw Error(what + ": 'shape' must be a non-empty array of dimensions");
    }
    uint64_t numel = 1;
    for (const json& dim : *shape) {
      uint64_t v = 0;
      if (!as_count(dim, &v) || v == 0 || v > kMaxElements || numel > kMaxElements / v) {
        throw Error(what + ": 'shape' holds a dimension that is not a positive integer in range");
      }
      numel *= v;
      e.shape.push_back(static_cast<int64_t>(v));
    }
    uint64_t nnz = 0;
    const auto nnz_it = d.find("nnz");
    if (nnz_it == d.end() || !as_count(*nnz_it, &nnz) || nnz > numel) {
      throw Error(what + ": 'nnz' must be an integer between 0 and the " + std::to_string(numel) +
                  " entries of its shape");
    }
    e.positions = read_bitmask(ckpt, param, static_cast<int64_t>(numel), static_cast<int64_t>(nnz));
    if (e.compressed) {
      if (ckpt.has(kParamPrefix + param)) {
        throw Error(what + " is compressed but tensor " + quote_text(kParamPrefix + param) +
                    " holds it dense as well (ambiguous)");
      }
      const std::string vname = values_name(param);
      if (!ckpt.has(vname)) throw Error(what + ": tensor " + quote_text(vname) + " is missing");
      const CheckpointTensor& vt = ckpt.raw(vname);
      if (vt.dtype != "F32" || vt.shape != Shape{static_cast<int64_t>(nnz)}) {
        throw Error(where + ": tensor " + quote_text(vname) + " is " + vt.dtype + " " +
                    shape_to_string(vt.shape) + ", expected F32 (" + std::to_string(nnz) +
                    "): one value per bit set in " + quote_text(bitmask_name(param)));
      }
      const Tensor values = finite_values(ckpt, vname, nullptr);
      e.dense = Tensor::zeros(e.shape);
      for (std::size_t k = 0; k < e.positions.size(); ++k) {
        e.dense[e.positions[k]] = values[static_cast<int64_t>(k)];
      }
    } else {
      if (ckpt.has(values_name(param))) {
        throw Error(what + " is masked but tensor " + quote_text(values_name(param)) +
                    " holds compressed values too (ambiguous)");
      }
      e.dense = finite_values(ckpt, kParamPrefix + param, &e.shape);
      std::size_t next = 0;
      for (int64_t i = 0; i < e.dense.numel(); ++i) {
        const bool kept = next < e.positions.size() && e.positions[next] == i;
        if (kept) {
          ++next;
        } else if (e.dense[i] != 0.0f) {
          throw Error(where + ": tensor " + quote_text(kParamPrefix + param) +
                      " holds a nonzero value at flat position " + std::to_string(i) +
                      ", which its bitmask prunes (inconsistent masked tensor)");
        }
      }
    }
    entries[param] = std::move(e);
  }
  for (const std::string& name : ckpt.names()) {
    if (name.rfind(kSparsePrefix, 0) != 0) continue;
    const std::string rest = name.substr(std::strlen(kSparsePrefix));
    const std::size_t slash = rest.rfind('/');
    const std::string param = slash == std::string::npos ? rest : rest.substr(0, slash);
    const auto it = entries.find(param);
    if (it == entries.end() ||
        (name != bitmask_name(param) && !(it->second.compressed && name == values_name(param)))) {
      throw Error(where + ": tensor " + quote_text(name) +
                  " belongs to no entry of the 'sparse' metadata");
    }
  }
  return entries;
}

}  // namespace

void save_parameters(Checkpoint& ckpt, const std::vector<Parameter*>& params) {
  json sparse = json::object();
  for (const Parameter* p : params) {
    ckpt.remove(kParamPrefix + p->name);
    ckpt.remove(values_name(p->name));
    ckpt.remove(bitmask_name(p->name));
    if (p->compressed()) {
      const auto nnz = static_cast<int64_t>(p->dense_index.size());
      const int64_t numel = Tensor::count(p->dense_shape);
      SPARSETRAIN_ASSERT(p->value.numel() == nnz);
      const std::vector<int64_t> order = position_order(*p);
      std::vector<int64_t> positions(order.size());
      Tensor values = Tensor::empty({nnz});
      for (std::size_t j = 0; j < order.size(); ++j) {
        positions[j] = p->dense_index[static_cast<std::size_t>(order[j])];
        SPARSETRAIN_ASSERT(positions[j] >= 0 && positions[j] < numel);
        SPARSETRAIN_ASSERT(j == 0 || positions[j] > positions[j - 1]);
        values[static_cast<int64_t>(j)] = p->value[order[j]];
      }
      ckpt.put(values_name(p->name), values);
      ckpt.put_u8(bitmask_name(p->name), {bitmask_bytes(numel)}, pack_bits(positions, numel));
      sparse[p->name] = {{"state", kCompressed}, {"shape", p->dense_shape}, {"nnz", nnz}};
      continue;
    }
    ckpt.put(kParamPrefix + p->name, p->value);
    if (p->masked()) {
      const Tensor mask = to_layout(p->mask, Layout::kPlain);
      std::vector<int64_t> positions;
      for (int64_t i = 0; i < mask.numel(); ++i) {
        if (mask[i] != 0.0f) positions.push_back(i);
      }
      ckpt.put_u8(bitmask_name(p->name), {bitmask_bytes(mask.numel())},
                  pack_bits(positions, mask.numel()));
      sparse[p->name] = {{"state", kMasked},
                         {"shape", p->value.shape()},
                         {"nnz", static_cast<int64_t>(positions.size())}};
    }
  }
  if (sparse.empty()) {
    ckpt.metadata().erase(kSparseMetaKey);
  } else {
    ckpt.metadata()[kSparseMetaKey] = sparse.dump();
  }
}

void load_parameters(const Checkpoint& ckpt, const std::vector<Parameter*>& params) {
  const auto meta = ckpt.metadata().find(kSparseMetaKey);
  if (meta != ckpt.metadata().end()) {
    for (const Parameter* p : params) {
      if (!ckpt.has(kParamPrefix + p->name) && ckpt.has(values_name(p->name))) {
        throw Error(where_of(ckpt) + ": " + quote_text(p->name) +
                    " is stored compressed; load it into a graph (load_graph_parameters)");
      }
    }
  }
  std::vector<Tensor> values;
  values.reserve(params.size());
  for (const Parameter* p : params) {
    const std::string name = kParamPrefix + p->name;
    values.push_back(finite_values(ckpt, name, p->value.defined() ? &p->value.shape() : nullptr));
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    Parameter& p = *params[i];
    if (!p.value.defined()) {
      p.value = values[i];
    } else if (p.value.layout() == Layout::kPlain || p.value.layout() == Layout::kNCHW) {
      p.value.copy_from(values[i]);
    } else {
      p.value.copy_from(to_layout(values[i], p.value.layout()));
    }
  }
}

void load_graph_parameters(const Checkpoint& ckpt, Graph& graph, SparseLoad mode) {
  load_graph_parameters_except(ckpt, graph, mode, {});
}

void load_graph_parameters_except(const Checkpoint& ckpt, Graph& graph, SparseLoad mode,
                                  const std::set<std::string>& keep_nodes) {
  const std::string where = where_of(ckpt);
  bool legacy = false;
  std::map<std::string, SparseEntry> entries = read_sparse_entries(ckpt, &legacy);
  for (auto it = entries.begin(); it != entries.end();) {
    it = keep_nodes.count(owner_node(it->first)) != 0 ? entries.erase(it) : std::next(it);
  }
  std::vector<Parameter*> params = graph.parameters();
  std::erase_if(params,
                [&](const Parameter* p) { return keep_nodes.count(owner_node(p->name)) != 0; });

  // Check everything against the model before changing it.
  std::map<std::string, const Parameter*> by_name;
  for (const Parameter* p : params) by_name[p->name] = p;
  for (const auto& [name, e] : entries) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      throw Error(where + ": sparse tensor " + quote_text(name) +
                  " is not a parameter of the model");
    }
    if (!it->second->prunable()) {
      throw Error(where + ": sparse tensor " + quote_text(name) +
                  " is not a prunable weight (only conv and linear weights are pruned)");
    }
  }
  std::vector<Tensor> dense(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = *params[i];
    const Shape shape = p.compressed() ? p.dense_shape : p.value.shape();
    const auto it = entries.find(p.name);
    if (it == entries.end()) {
      if (!ckpt.has(kParamPrefix + p.name) && ckpt.has(values_name(p.name))) {
        throw Error(where + ": tensor " + quote_text(values_name(p.name)) +
                    " has no entry in the 'sparse' metadata");
      }
      dense[i] = finite_values(ckpt, kParamPrefix + p.name, &shape);
      continue;
    }
    if (it->second.shape != shape) {
      throw Error(where + ": sparse tensor " + quote_text(p.name) + " has shape " +
                  shape_to_string(it->second.shape) + ", the model's is " + shape_to_string(shape));
    }
    dense[i] = it->second.dense;
  }

  for (std::size_t i = 0; i < params.size(); ++i) {
    Parameter& p = *params[i];
    const auto it = entries.find(p.name);
    if (p.prunable()) {
      if (p.compressed()) graph.decompress(node_of(p.name));
      if (p.masked()) graph.unmask(node_of(p.name));
    }
    if (p.value.layout() == Layout::kPlain || p.value.layout() == Layout::kNCHW) {
      p.value.copy_from(dense[i]);
    } else {
      p.value.copy_from(to_layout(dense[i], p.value.layout()));
    }
    if (it == entries.end()) continue;
    const SparseEntry& e = it->second;
    Tensor mask = Tensor::zeros(e.shape);
    for (const int64_t pos : e.positions) mask[pos] = 1.0f;
    const bool compress = mode == SparseLoad::kCompressed ||
                          (mode == SparseLoad::kAsSaved && (e.compressed || legacy));
    if (compress) {
      graph.compress(node_of(p.name), mask);
    } else {
      graph.mask(node_of(p.name), mask);
    }
  }
}

void save_optimizer_state(Checkpoint& ckpt, const Optimizer& optimizer,
                          const std::vector<Parameter*>& params) {
  for (const std::string& name : ckpt.names()) {
    if (name.rfind(kOptimPrefix, 0) == 0) ckpt.remove(name);
  }
  std::map<std::string, const Parameter*> compressed;
  for (const Parameter* p : params) {
    if (p->compressed()) compressed[p->name] = p;
  }
  for (const auto& [name, tensor] : optimizer.state_tensors()) {
    const std::size_t dot = name.rfind('.');
    const auto it =
        dot == std::string::npos ? compressed.end() : compressed.find(name.substr(0, dot));
    if (it == compressed.end() || tensor.numel() != it->second->value.numel()) {
      ckpt.put(kOptimPrefix + name, tensor);
      continue;
    }
    // Per-entry state, in increasing flat position like the values.
    const std::vector<int64_t> order = position_order(*it->second);
    Tensor sorted = Tensor::empty(tensor.shape());
    for (std::size_t j = 0; j < order.size(); ++j) {
      sorted[static_cast<int64_t>(j)] = tensor[order[j]];
    }
    ckpt.put(kOptimPrefix + name, sorted);
  }
  ckpt.metadata()[kOptimKindKey] = optimizer.kind();
  ckpt.metadata()[kOptimStepKey] = std::to_string(optimizer.step_count());
  if (params.empty()) {
    ckpt.metadata().erase(kOptimOrderKey);
  } else {
    ckpt.metadata()[kOptimOrderKey] = kOptimOrderDense;
  }
}

void load_optimizer_state(const Checkpoint& ckpt, Optimizer& optimizer,
                          const std::vector<Parameter*>& params) {
  const std::string where = where_of(ckpt);
  const auto kind = ckpt.metadata().find(kOptimKindKey);
  if (kind == ckpt.metadata().end()) {
    throw Error(where + ": holds no optimizer state (metadata '" + std::string(kOptimKindKey) +
                "' is missing)");
  }
  if (kind->second != optimizer.kind()) {
    throw Error(where + ": optimizer state is for '" + printable(kind->second) +
                "' but this run uses '" + optimizer.kind() + "'");
  }
  const std::string& steps_text = ckpt.meta(kOptimStepKey);
  int64_t steps = -1;
  const auto [end, ec] =
      std::from_chars(steps_text.data(), steps_text.data() + steps_text.size(), steps);
  if (ec != std::errc() || end != steps_text.data() + steps_text.size() || steps < 0) {
    throw Error(where + ": metadata '" + std::string(kOptimStepKey) + "' is " +
                quote_text(steps_text) + ", expected a non-negative integer");
  }
  const auto order_meta = ckpt.metadata().find(kOptimOrderKey);
  const bool by_position = order_meta != ckpt.metadata().end();
  if (by_position && order_meta->second != kOptimOrderDense) {
    throw Error(where + ": metadata '" + std::string(kOptimOrderKey) + "' is " +
                quote_text(order_meta->second) + ", expected '" + kOptimOrderDense + "'");
  }
  std::map<std::string, const Parameter*> compressed;
  for (const Parameter* p : params) {
    if (p->compressed()) compressed[p->name] = p;
  }
  std::vector<std::pair<std::string, Tensor>> state;
  const std::string prefix = kOptimPrefix;
  for (const std::string& name : ckpt.names()) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string slot_name = name.substr(prefix.size());
    Tensor t = finite_values(ckpt, name, nullptr);
    const std::size_t dot = slot_name.rfind('.');
    const auto it = !by_position || dot == std::string::npos
                        ? compressed.end()
                        : compressed.find(slot_name.substr(0, dot));
    if (it != compressed.end() && t.shape() == it->second->value.shape()) {
      // Back from increasing flat position to the kernels' order.
      const std::vector<int64_t> order = position_order(*it->second);
      Tensor stored = Tensor::empty(t.shape());
      for (std::size_t j = 0; j < order.size(); ++j) stored[order[j]] = t[static_cast<int64_t>(j)];
      t = stored;
    }
    state.emplace_back(slot_name, t);
  }
  try {
    optimizer.load_state_tensors(state, params);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  optimizer.set_step_count(steps);
}

void save_rng(Checkpoint& ckpt, const std::string& name, const Rng& rng) {
  const auto& s = rng.state();
  std::vector<uint8_t> bytes(sizeof(uint64_t) * s.size());
  std::memcpy(bytes.data(), s.data(), bytes.size());
  ckpt.put_raw(name, "U64", {static_cast<int64_t>(s.size())}, std::move(bytes));
}

void load_rng(const Checkpoint& ckpt, const std::string& name, Rng& rng) {
  std::array<uint64_t, 4> s{};
  const Shape shape{static_cast<int64_t>(s.size())};
  const CheckpointTensor& t = ckpt.raw(name);
  const std::string where = ckpt.source().empty() ? std::string("checkpoint (in memory)")
                                                  : "checkpoint '" + ckpt.source() + "'";
  if (t.dtype != "U64" || t.shape != shape) {
    throw Error(where + ": tensor '" + name + "' is " + t.dtype + " " + shape_to_string(t.shape) +
                ", expected U64 (4) generator state");
  }
  std::memcpy(s.data(), t.bytes.data(), sizeof(uint64_t) * s.size());
  if (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0) {
    throw Error(where + ": tensor '" + name + "' is an all-zero generator state");
  }
  rng.set_state(s);
}

}  // namespace sparsetrain
