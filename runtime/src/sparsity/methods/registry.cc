// The sparsity method registry (sparsetrain/sparsity_method.h).
#include "sparsity/methods/registry.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "sparsetrain/error.h"
#include "sparsetrain/sparsity_method.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {
namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

// In registration order (the unknown-method message lists them so).
std::vector<std::pair<std::string, SparsityMethodFactory>>& registry() {
  static std::vector<std::pair<std::string, SparsityMethodFactory>> r;
  return r;
}

void add(const std::string& name, SparsityMethodFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto& r = registry();
  if (std::any_of(r.begin(), r.end(), [&](const auto& entry) { return entry.first == name; })) {
    throw Error("register_sparsity_method: a sparsity method named '" + name +
                "' is already registered");
  }
  r.emplace_back(name, std::move(factory));
}

void register_builtin_sparsity_methods() {
  static std::once_flag once;
  std::call_once(once, [] {
    add("static", detail::make_static_method);
    add("acdc", detail::make_acdc_method);
    add("gmp", detail::make_gmp_method);
    add("rigl", detail::make_rigl_method);
  });
}

}  // namespace

void register_sparsity_method(const std::string& name, SparsityMethodFactory factory) {
  if (name.empty() || !factory) {
    throw Error("register_sparsity_method: a sparsity method needs a name and a factory");
  }
  register_builtin_sparsity_methods();  // the built-ins stay first
  add(name, std::move(factory));
}

std::vector<std::string> sparsity_method_names() {
  register_builtin_sparsity_methods();
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<SparsityMethod> make_sparsity_method(const std::string& name) {
  register_builtin_sparsity_methods();
  SparsityMethodFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    for (const auto& [n, f] : registry())
      if (n == name) factory = f;
  }
  if (!factory) {
    throw Error("--sparsity-method: unknown method '" + name + "' (expected " +
                detail::join_or(sparsity_method_names()) + ")");
  }
  std::unique_ptr<SparsityMethod> method = factory();
  if (method == nullptr)
    throw Error("make_sparsity_method: the factory of '" + name + "' gave none");
  return method;
}

}  // namespace sparsetrain
