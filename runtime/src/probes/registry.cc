// The probe registry (sparsetrain/probes.h).
#include "probes/registry.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <string>

#include "sparsetrain/error.h"
#include "sparsetrain/probes.h"

namespace sparsetrain {
namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, ProbeFactory>& registry() {
  static std::map<std::string, ProbeFactory> r;
  return r;
}

void register_builtin_probes() {
  static std::once_flag once;
  std::call_once(once, [] { detail::register_activation_stats(); });
}

}  // namespace

void register_probe(const std::string& name, ProbeFactory factory) {
  if (name.empty() || !factory) throw Error("register_probe: a probe needs a name and a factory");
  std::lock_guard<std::mutex> lock(registry_mutex());
  if (!registry().emplace(name, std::move(factory)).second) {
    throw Error("register_probe: a probe named '" + name + "' is already registered");
  }
}

std::vector<std::string> probe_names() {
  register_builtin_probes();
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Probe> make_probe(const std::string& name) {
  register_builtin_probes();
  ProbeFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    const auto it = registry().find(name);
    if (it != registry().end()) factory = it->second;
  }
  if (!factory) {
    std::string known;
    for (const std::string& n : probe_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("--probe: unknown probe '" + name + "' (expected " + known + ")");
  }
  return factory();
}

}  // namespace sparsetrain
