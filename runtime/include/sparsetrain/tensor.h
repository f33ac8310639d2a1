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
  // Uninitialised kCHWN (N, C, H, W) whose channel planes are `plane` floats
  // apart, more than a plane's N * H * W (padded planes: the executor lays
  // some activations of the sparse convolutions out so, see plane()); a
  // `plane` of N * H * W or less gives a packed tensor.
  static Tensor empty_planes(Shape shape, int64_t plane);
  // Uninitialised, with t's shape, layout and planes.
  static Tensor empty_like(const Tensor& t);

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
  // A kCHWN tensor with padded channel planes: the floats from one plane to
  // the next (more than N * H * W; what lies between planes belongs to no
  // element). 0 for every other tensor. operator[] and data() address the
  // storage: element (n, c, h, w) of a padded tensor is at
  // c * plane() + (h * W + w) * N + n. Nodes that do not declare
  // NodeTraits::padded_planes never see one (the executor hands them
  // packed()).
  int64_t plane() const { return plane_; }
  bool padded() const { return plane_ > 0; }
  // Floats from data() to the end of the last element: numel(), or up to
  // the end of a padded tensor's last plane.
  int64_t span() const;
  // The same values back to back: this tensor unless it is padded, else a
  // packed copy.
  Tensor packed() const;

  float* data() { return data_; }
  const float* data() const { return data_; }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }

  Tensor clone() const;
  void fill(float value);
  void zero() { fill(0.0f); }
  // Same storage, another shape with the same element count (and layout).
  // Not of a padded tensor (Error): reshape its packed().
  Tensor reshaped(Shape shape, Layout layout = Layout::kPlain) const;
  // Copies the values of `other` (same element count) into this tensor
  // (both padded alike, or neither padded).
  void copy_from(const Tensor& other);
  // Bit-for-bit equality of shape and values (of the elements, whatever
  // the planes).
  bool equals(const Tensor& other) const;

  std::string shape_string() const;
  static int64_t count(const Shape& shape);

 private:
  std::shared_ptr<float> storage_;
  float* data_ = nullptr;
  Shape shape_;
  int64_t numel_ = 0;
  Layout layout_ = Layout::kPlain;
  int64_t plane_ = 0;
};

// A copy of a 4-D tensor (or a 2-D one between kPlain/kCN) in another layout;
// returns `t` itself when it is already in that layout (kPlain and kNCHW
// share one memory order: a view, no copy; a padded kCHWN tensor stays
// padded). Cache-blocked transposes on TBB.
// Copies of a padded tensor into another layout are packed.
Tensor to_layout(const Tensor& t, Layout layout);
// to_layout calls that copied (reorders) since the process started, over all
// threads: what tests and Graph::profile() count.
int64_t reorder_count();

// t in the layout and channel planes of `like` (a tensor of the same shape):
// t itself when it already has them, else a copy. For a gradient that must
// match the activation it belongs to, padded planes included.
Tensor to_layout_of(const Tensor& t, const Tensor& like);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
