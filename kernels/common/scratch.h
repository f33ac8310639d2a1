// A pool of 64-byte aligned buffers reused across calls (a fresh allocation
// of a multi-megabyte per-call array would page-fault on every pass), one pool
// per element type. Each call takes its own buffer, so concurrent and nested
// calls never share one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {

template <class T>
class ScratchPool {
 public:
  static constexpr std::size_t kAlign = 64;

  struct Buffer {
    T* data = nullptr;
    std::size_t count = 0;
    ~Buffer() { std::free(data); }
  };

  static ScratchPool& instance() {
    static ScratchPool* pool = new ScratchPool();  // never destroyed: used at exit by late callers
    return *pool;
  }

  std::unique_ptr<Buffer> acquire(std::size_t count) {
    std::unique_ptr<Buffer> buffer;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        buffer = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!buffer) buffer = std::make_unique<Buffer>();
    if (buffer->count < count) {
      std::free(buffer->data);
      const std::size_t bytes =
          (std::max<std::size_t>(count, 1) * sizeof(T) + kAlign - 1) / kAlign * kAlign;
      buffer->data = static_cast<T*>(std::aligned_alloc(kAlign, bytes));
      SPARSETRAIN_ASSERT(buffer->data != nullptr);
      buffer->count = count;
    }
    return buffer;
  }

  void release(std::unique_ptr<Buffer> buffer) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(buffer));
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Buffer>> free_;
};

// A buffer of `count` T taken from the pool for one scope.
template <class T>
class Scratch {
 public:
  explicit Scratch(std::size_t count) : buffer_(ScratchPool<T>::instance().acquire(count)) {}
  ~Scratch() { ScratchPool<T>::instance().release(std::move(buffer_)); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() const { return buffer_->data; }

 private:
  std::unique_ptr<typename ScratchPool<T>::Buffer> buffer_;
};

}  // namespace sparsetrain::kernels
