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
#include <string>
#include <vector>

#include "sparsetrain/parameter.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {

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

// Puts every parameter's value (trainable ones and buffers) as
// "param/<name>".
void save_parameters(Checkpoint& ckpt, const std::vector<Parameter*>& params);
// Copies "param/<name>" into every parameter's value. Every parameter must
// be present with its shape; the error names the tensor and the file. All
// tensors are checked before any parameter is changed.
void load_parameters(const Checkpoint& ckpt, const std::vector<Parameter*>& params);

// Optimizer state as "optim/<param>.<slot>" and the metadata entries
// "optim.kind" and "optim.step_count".
void save_optimizer_state(Checkpoint& ckpt, const Optimizer& optimizer);
// Restores what save_optimizer_state wrote; throws Error naming the file
// when the optimizer kind differs or a state tensor does not fit `params`.
void load_optimizer_state(const Checkpoint& ckpt, Optimizer& optimizer,
                          const std::vector<Parameter*>& params);

// A generator's four state words as a U64 tensor of shape (4).
void save_rng(Checkpoint& ckpt, const std::string& name, const Rng& rng);
void load_rng(const Checkpoint& ckpt, const std::string& name, Rng& rng);

}  // namespace sparsetrain
