// The oneDNN side of the dense baselines: one CPU engine for the process, a
// stream per calling thread, a cache of primitives keyed by everything that
// determines them (op, pass, shape, layout, flags and the OpenMP thread count,
// which oneDNN bakes into a primitive's work split when it creates it), and
// per-thread scratch buffers for reordered weights.
//
// Internal to kernels/: oneDNN types never appear in public headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <string_view>
#include <typeinfo>
#include <unordered_map>

#include "sparsetrain/core/layout.h"

namespace sparsetrain::kernels {

// The process-wide CPU engine.
const dnnl::engine& dnnl_cpu_engine();

// An in-order stream on dnnl_cpu_engine() for the calling thread. Execution on the
// CPU engine is synchronous with the OpenMP runtime; a stream per thread keeps
// concurrent callers (e.g. TBB tasks) from sharing one.
dnnl::stream& dnnl_thread_stream();

// oneDNN's plain tag for a 4-D activation layout: kPlain/kNCHW -> nchw,
// kNHWC -> nhwc, kCHWN -> chwn. Asserts on a layout that is not 4-D.
dnnl::memory::format_tag dnnl_activation_tag(Layout layout);

// Kernels never throw: a oneDNN error (which can only come from a bug in the
// caller's descriptors) aborts with the message, the status and the op.
[[noreturn]] void dnnl_fail(const dnnl::error& error, const std::string& what);

// Runs `primitive` on the calling thread's stream and waits; a oneDNN error
// aborts through dnnl_fail naming `what` ("max pooling backward").
void dnnl_run(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args,
              const char* what);

// What a cached primitive depends on. Every key starts with the op and the
// pass and ends with the OpenMP thread count of the caller.
class DnnlKey {
 public:
  DnnlKey(std::string_view op, std::string_view pass);
  DnnlKey& add(int64_t value);
  DnnlKey& add(std::string_view text);
  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

namespace detail {
// The full cache key: `key`, the entry type and the caller's OpenMP thread
// count (after sync_openmp_threads()).
std::string dnnl_cache_key(const DnnlKey& key, const std::type_info& type);
std::shared_ptr<const void> dnnl_cache_find(const std::string& key);
// Inserts unless another thread got there first; returns the cached entry.
std::shared_ptr<const void> dnnl_cache_insert(const std::string& key,
                                              std::shared_ptr<const void> value);
}  // namespace detail

// The cached T for `key`, built by make() (which returns a T) on first use.
// Entries are immutable once built, so callers may run them concurrently. The
// cache keeps the most recently used entries (kDnnlCacheCapacity); an evicted
// entry lives on while a caller still holds it.
template <class T, class Make>
std::shared_ptr<const T> dnnl_cached(const DnnlKey& key, Make&& make) {
  const std::string full_key = detail::dnnl_cache_key(key, typeid(T));
  if (auto hit = detail::dnnl_cache_find(full_key)) return std::static_pointer_cast<const T>(hit);
  std::shared_ptr<const T> built;
  try {
    built = std::make_shared<const T>(make());
  } catch (const dnnl::error& error) {
    dnnl_fail(error, key.str());
  }
  return std::static_pointer_cast<const T>(detail::dnnl_cache_insert(full_key, std::move(built)));
}

inline constexpr std::size_t kDnnlCacheCapacity = 1024;
std::size_t dnnl_cache_size();
void dnnl_cache_clear();

// A 64-byte aligned buffer of at least `bytes`, owned by the calling thread and
// reused across calls. `slot` tells apart buffers that one call needs at the
// same time (e.g. reordered weights and a bias gradient). The contents are
// undefined on return.
inline constexpr int kDnnlScratchSlots = 4;
void* dnnl_scratch(int slot, std::size_t bytes);

// A memory object over caller-owned data (oneDNN takes a non-const handle even
// for inputs it only reads).
dnnl::memory dnnl_wrap(const dnnl::memory::desc& desc, const float* data);

}  // namespace sparsetrain::kernels
