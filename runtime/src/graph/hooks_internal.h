// The registry behind Graph::add_hook (internal).
#pragma once

#include <string>
#include <vector>

#include "sparsetrain/hooks.h"

namespace sparsetrain {

class HookRegistry {
 public:
  int64_t add(HookPoint point, std::string pattern, HookFn fn, HookOptions options);
  void remove(int64_t id);
  bool contains(int64_t id) const;
  // Is any hook attached at `point` to `node` (any node when empty)?
  bool any(HookPoint point, std::string_view node = {}) const;
  bool wants_input_grad() const;
  bool empty() const { return entries_.empty(); }
  void fire(HookEvent& event) const;
  // Changes with every add and remove (execution plans depend on the hooks).
  int64_t version() const { return version_; }

 private:
  struct Entry {
    int64_t id;
    HookPoint point;
    std::string pattern;
    HookFn fn;
    HookOptions options;
  };
  std::vector<Entry> entries_;
  int64_t next_id_ = 0;
  int64_t version_ = 0;
};

}  // namespace sparsetrain
