#include "kernels/common/dnnl_context.h"

#include <omp.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "kernels/common/threads.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

constexpr std::size_t kScratchAlignment = 64;

// A least-recently-used map from key to an immutable, type-erased entry.
class PrimitiveCache {
 public:
  std::shared_ptr<const void> find(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }

  std::shared_ptr<const void> insert(const std::string& key, std::shared_ptr<const void> value) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it != index_.end()) return it->second->second;
    order_.emplace_front(key, std::move(value));
    index_.emplace(key, order_.begin());
    while (order_.size() > kDnnlCacheCapacity) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return order_.front().second;
  }

  std::size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return order_.size();
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    index_.clear();
    order_.clear();
  }

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const void>>;
  std::mutex mutex_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

PrimitiveCache& cache() {
  static PrimitiveCache instance;
  return instance;
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

struct ScratchBuffer {
  std::unique_ptr<void, FreeDeleter> data;
  std::size_t bytes = 0;
};

}  // namespace

const dnnl::engine& dnnl_cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& dnnl_thread_stream() {
  thread_local dnnl::stream stream(dnnl_cpu_engine());
  return stream;
}

dnnl::memory::format_tag dnnl_activation_tag(Layout layout) {
  using tag = dnnl::memory::format_tag;
  switch (layout) {
    case Layout::kPlain:
    case Layout::kNCHW:
      return tag::nchw;
    case Layout::kNHWC:
      return tag::nhwc;
    case Layout::kCHWN:
      return tag::chwn;
    case Layout::kCN:
      break;
  }
  SPARSETRAIN_ASSERT(false && "not a 4-D activation layout");
  return tag::undef;
}

DnnlKey::DnnlKey(std::string_view op, std::string_view pass) {
  text_.reserve(96);
  text_.append(op).append(1, ':').append(pass);
}

DnnlKey& DnnlKey::add(int64_t value) {
  text_.append(1, ',').append(std::to_string(value));
  return *this;
}

DnnlKey& DnnlKey::add(std::string_view text) {
  text_.append(1, ',').append(text);
  return *this;
}

namespace detail {

std::string dnnl_cache_key(const DnnlKey& key, const std::type_info& type) {
  sync_openmp_threads();
  return key.str() + '|' + type.name() + "|t" + std::to_string(omp_get_max_threads());
}

std::shared_ptr<const void> dnnl_cache_find(const std::string& key) { return cache().find(key); }

std::shared_ptr<const void> dnnl_cache_insert(const std::string& key,
                                              std::shared_ptr<const void> value) {
  return cache().insert(key, std::move(value));
}

}  // namespace detail

std::size_t dnnl_cache_size() { return cache().size(); }
void dnnl_cache_clear() { cache().clear(); }

void* dnnl_scratch(int slot, std::size_t bytes) {
  SPARSETRAIN_ASSERT(slot >= 0 && slot < kDnnlScratchSlots);
  thread_local std::array<ScratchBuffer, kDnnlScratchSlots> buffers;
  ScratchBuffer& buffer = buffers[static_cast<std::size_t>(slot)];
  if (buffer.bytes < bytes) {
    const std::size_t rounded =
        (bytes + kScratchAlignment - 1) / kScratchAlignment * kScratchAlignment;
    buffer.data.reset(std::aligned_alloc(kScratchAlignment, rounded));
    SPARSETRAIN_ASSERT(buffer.data != nullptr);
    buffer.bytes = rounded;
  }
  return buffer.data.get();
}

dnnl::memory dnnl_wrap(const dnnl::memory::desc& desc, const float* data) {
  return dnnl::memory(desc, dnnl_cpu_engine(), const_cast<float*>(data));
}

void dnnl_fail(const dnnl::error& error, const std::string& what) {
  std::fprintf(stderr, "sparsetrain: oneDNN failed in %s: %s (status %d)\n", what.c_str(),
               error.what(), static_cast<int>(error.status));
  std::abort();
}

void dnnl_run(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args,
              const char* what) {
  try {
    primitive.execute(dnnl_thread_stream(), args);
    dnnl_thread_stream().wait();
  } catch (const dnnl::error& error) {
    dnnl_fail(error, what);
  }
}

}  // namespace sparsetrain::kernels
