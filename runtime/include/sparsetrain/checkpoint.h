// Checkpoints in the safetensors layout, so other tools (the Python
// `safetensors` package, numpy, ...) can read them:
//
//   bytes 0..7   N, the header length, unsigned 64-bit little-endian
//   bytes 8..    N bytes of JSON:
//                {"__metadata__": {"key": "value", ...},
//                 "<tensor name>": {"dtype": "F32", "shape": [2, 3],
//                                   "data_offsets": [begin, end]}, ...}
//                padded with spaces so the data starts 8-byte aligned
//   then         the tensors' raw little-endian bytes; offsets are relative
//                to the start of this section, tensors are packed in name
//                order with no gaps.
//
// Metadata values are strings (the safetensors rule); structured values go
// in as JSON text. Loading validates the whole file and throws Error with a
// one-line message naming the file and the problem; nothing in a file can
// crash the process. Saving is atomic (temporary file, fsync, rename, fsync
// of the directory): a failed save leaves an existing file untouched.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/parameter.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

class Graph;
class Optimizer;

// One stored tensor: dtype name ("F32", "I32", "I64", "U8", ... see
// checkpoint_dtype_size), logical shape and raw little-endian row-major bytes.
struct CheckpointTensor {
  std::string dtype;
  Shape shape;
  std::vector<uint8_t> bytes;
};

// Bytes per element of a safetensors dtype name (F64, F32, F16, BF16,
// F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8, BOOL), 0 when the
// name is unknown.
int64_t checkpoint_dtype_size(const std::string& dtype);

class Checkpoint {
 public:
  // Stores a float tensor as F32 in plain row-major order (a tensor in
  // another layout is reordered first). Replaces a tensor of the same name.
  // Throws Error on an undefined tensor or the reserved name "__metadata__".
  void put(const std::string& name, const Tensor& t);
  // Stores raw bytes; throws Error on an unknown dtype or when the byte
  // count is not shape product x dtype size.
  void put_raw(const std::string& name, const std::string& dtype, const Shape& shape,
               std::vector<uint8_t> bytes);
  // Typed integer tensors (masks, indices, counters).
  void put_i32(const std::string& name, const Shape& shape, const std::vector<int32_t>& values);
  void put_i64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values);
  void put_u8(const std::string& name, const Shape& shape, const std::vector<uint8_t>& values);
  void remove(const std::string& name);

  bool has(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  // The stored tensor; throws Error naming the file and the tensor when absent.
  const CheckpointTensor& raw(const std::string& name) const;
  // An F32 tensor (plain layout). Throws Error naming the file and the tensor
  // when it is absent, not F32, or (first overload) not of expected_shape.
  Tensor get(const std::string& name, const Shape& expected_shape) const;
  Tensor get(const std::string& name) const;
  // Typed integer tensors; same checks (dtype must match exactly).
  std::vector<int32_t> get_i32(const std::string& name, const Shape& expected_shape) const;
  std::vector<int64_t> get_i64(const std::string& name, const Shape& expected_shape) const;
  std::vector<uint8_t> get_u8(const std::string& name, const Shape& expected_shape) const;

  std::map<std::string, std::string>& metadata() { return metadata_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // A metadata value; throws Error naming the file and the key when absent.
  const std::string& meta(const std::string& key) const;

  // Writes atomically to `path`; throws Error naming the path on failure
  // (the previous file at `path`, if any, is left as it was).
  void save(const std::string& path) const;
  // Reads and validates a whole file; throws Error naming the file and the
  // problem.
  static Checkpoint load(const std::string& path);

  // The file this checkpoint was loaded from ("" when built in memory); used
  // in error messages.
  const std::string& source() const { return source_; }

 private:
  const CheckpointTensor& find(const std::string& name, const std::string& dtype,
                               const Shape* expected_shape) const;
  std::string where() const;

  std::map<std::string, CheckpointTensor> tensors_;
  std::map<std::string, std::string> metadata_;
  std::string source_;
};

// --- parameters -----------------------------------------------------------
//
// A parameter is stored according to its state (DESIGN.md "Parameters and
// sparsity"):
//
//   dense       "param/<name>"           F32, its shape
//   masked      "param/<name>"           F32, its shape (pruned entries zero)
//               "sparse/<name>/bitmask"  U8 (ceil(numel / 8))
//   compressed  "sparse/<name>/values"   F32 (nnz)
//               "sparse/<name>/bitmask"  U8 (ceil(numel / 8))
//
// The bitmask covers the dense (logical, row-major) shape: flat position i
// is stored when bit (i mod 8) of byte i / 8 is set, least significant bit
// first (numpy: np.unpackbits(b, bitorder="little")[:numel]); the unused
// bits of the last byte are zero. "values" holds the stored entries in
// increasing flat position, whatever order the sparse kernels keep them in,
// so the file does not depend on a kernel's packing. The metadata entry
// "sparse" describes every masked or compressed parameter as JSON:
//   {"<name>": {"state": "compressed" | "masked", "shape": [..], "nnz": k}}
// A bitmask costs 1/8 byte per dense entry; at 90% sparsity a compressed
// weight with its momentum takes (0.1 x 4 x 2 + 1/8) / 8 = 11.6% of the
// dense bytes. (Delta-coded positions would be smaller only below about 6%
// density, and could not be read with one numpy call.)
//
// Files of format 1 (each sparse weight saved dense plus a U8 "mask/<name>"
// of the dense shape, optimizer state in the kernels' order) still load.

// Puts every parameter (trainable ones and buffers) in the form above and
// sets (or removes) the "sparse" metadata.
void save_parameters(Checkpoint& ckpt, const std::vector<Parameter*>& params);
// Copies "param/<name>" into every parameter's value. Every parameter must
// be present with its shape; the error names the tensor and the file. All
// tensors are checked before any parameter is changed. Parameters stored
// masked or compressed need a graph: load_graph_parameters.
void load_parameters(const Checkpoint& ckpt, const std::vector<Parameter*>& params);

// How masked and compressed weights of a checkpoint come back.
enum class SparseLoad : uint8_t {
  kAsSaved,     // in the state they were saved in (format 1: compressed)
  kCompressed,  // every stored mask compressed (nonzeros only, sparse kernels)
  kMasked,      // every stored mask as a masked dense weight
};
// Loads every parameter of `graph` (Graph::parameters), restoring masks
// with Graph::compress / Graph::mask after undoing the graph's own
// compression or masks. Everything is validated before the graph changes:
// a missing, truncated or inconsistent tensor (bitmask count against the
// values, a kept weight outside the mask, a shape that is not the model's)
// throws Error naming the file and the tensor.
void load_graph_parameters(const Checkpoint& ckpt, Graph& graph,
                           SparseLoad mode = SparseLoad::kAsSaved);
// As load_graph_parameters, except that the parameters of the nodes named in
// `keep_nodes` keep the values they have in the graph and the checkpoint's
// tensors for them are not read (a new classifier head in transfer
// fine-tuning, which has another shape).
void load_graph_parameters_except(const Checkpoint& ckpt, Graph& graph, SparseLoad mode,
                                  const std::set<std::string>& keep_nodes);

// Optimizer state as "optim/<param>.<slot>" and the metadata entries
// "optim.kind" and "optim.step_count". With `params`, the state of a
// compressed parameter is written in increasing flat position (the order of
// its "sparse/<name>/values"), and the metadata "optim.order" says so;
// without, in the optimizer's own order (right only for dense parameters).
void save_optimizer_state(Checkpoint& ckpt, const Optimizer& optimizer,
                          const std::vector<Parameter*>& params = {});
// Restores what save_optimizer_state wrote; throws Error naming the file
// when the optimizer kind differs or a state tensor does not fit `params`.
// Compressed parameters must already hold their saved masks
// (load_graph_parameters).
void load_optimizer_state(const Checkpoint& ckpt, Optimizer& optimizer,
                          const std::vector<Parameter*>& params);

// A generator's four state words as a U64 tensor of shape (4).
void save_rng(Checkpoint& ckpt, const std::string& name, const Rng& rng);
void load_rng(const Checkpoint& ckpt, const std::string& name, Rng& rng);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
