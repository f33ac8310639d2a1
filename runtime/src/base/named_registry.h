// A list of named factories, safe to use from several threads, in
// registration order: the probe registry (probes/registry.cc) and the
// sparsity method registry (sparsity/methods/registry.cc). Each keeps one as
// a function-local static and registers its built-ins once before use.
#pragma once

#include <algorithm>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "sparsetrain/error.h"

namespace sparsetrain::detail {

template <typename Factory>
class NamedRegistry {
 public:
  // `caller` is the public register function and `kind` an entry with its
  // article ("a probe"), for the messages.
  NamedRegistry(std::string caller, std::string kind)
      : caller_(std::move(caller)), kind_(std::move(kind)) {}

  // Throws Error naming the caller on an empty name or factory, or a name
  // that is taken.
  void add(const std::string& name, Factory factory) {
    if (name.empty() || !factory) {
      throw Error(caller_ + ": " + kind_ + " needs a name and a factory");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::any_of(entries_.begin(), entries_.end(),
                    [&](const auto& entry) { return entry.first == name; })) {
      throw Error(caller_ + ": " + kind_ + " named '" + name + "' is already registered");
    }
    entries_.emplace_back(name, std::move(factory));
  }

  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> names;
    for (const auto& [name, factory] : entries_) names.push_back(name);
    return names;
  }

  // The factory of `name`; an empty one when none is registered so.
  Factory find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [n, factory] : entries_) {
      if (n == name) return factory;
    }
    return {};
  }

 private:
  const std::string caller_, kind_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, Factory>> entries_;
};

}  // namespace sparsetrain::detail
