// Tensor: fp32 values in 64-byte aligned storage, a logical shape and a
// memory layout tag.
//
// The shape is always logical: a 4-D activation is (N, C, H, W) whatever its
// layout; the layout says how those elements sit in memory. Copies share
// storage (like a shared_ptr); clone() makes a deep copy.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/core/layout.h"  // Shape, Layout, offset4, shape_to_string

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// Bytes held by all live tensors of the process, and the high-water mark
// since the last reset. The executor reads these to report peak memory.
struct MemoryStats {
  int64_t current_bytes;
  int64_t peak_bytes;
};
MemoryStats memory_stats();
void reset_peak_memory();

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor.
  explicit Tensor(Shape shape, Layout layout = Layout::kPlain);

  static Tensor zeros(Shape shape, Layout layout = Layout::kPlain);
  // Uninitialised storage, for outputs that a kernel overwrites entirely.
  static Tensor empty(Shape shape, Layout layout = Layout::kPlain);
  static Tensor full(Shape shape, float value, Layout layout = Layout::kPlain);
  static Tensor from(Shape shape, const std::vector<float>& values, Layout layout = Layout::kPlain);

  bool defined() const { return storage_ != nullptr; }
  // Whether no other Tensor shares this one's storage.
  bool sole_owner() const { return storage_ != nullptr && storage_.use_count() == 1; }
  // Whether both are views of the same storage.
  bool shares_storage(const Tensor& other) const {
    return storage_ != nullptr && storage_ == other.storage_;
  }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return numel_; }
  int64_t bytes() const { return numel_ * static_cast<int64_t>(sizeof(float)); }
  Layout layout() const { return layout_; }

  float* data() { return data_; }
  const float* data() const { return data_; }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }

  Tensor clone() const;
  void fill(float value);
  void zero() { fill(0.0f); }
  // Same storage, another shape with the same element count (and layout).
  Tensor reshaped(Shape shape, Layout layout = Layout::kPlain) const;
  // Copies the values of `other` (same element count) into this tensor.
  void copy_from(const Tensor& other);
  // Bit-for-bit equality of shape and values.
  bool equals(const Tensor& other) const;

  std::string shape_string() const;
  static int64_t count(const Shape& shape);

 private:
  std::shared_ptr<float> storage_;
  float* data_ = nullptr;
  Shape shape_;
  int64_t numel_ = 0;
  Layout layout_ = Layout::kPlain;
};

// A copy of a 4-D tensor (or a 2-D one between kPlain/kCN) in another layout;
// returns `t` itself when it is already in that layout (kPlain and kNCHW
// share one memory order: a view, no copy). Cache-blocked transposes on TBB.
Tensor to_layout(const Tensor& t, Layout layout);
// to_layout calls that copied (reorders) since the process started, over all
// threads: what tests and Graph::profile() count.
int64_t reorder_count();

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
