// The probe registry (sparsetrain/probes.h).
#include "probes/registry.h"

#include <algorithm>
#include <mutex>
#include <string>

#include "base/named_registry.h"
#include "sparsetrain/error.h"
#include "sparsetrain/probes.h"

namespace sparsetrain {
namespace {

detail::NamedRegistry<ProbeFactory>& registry() {
  static detail::NamedRegistry<ProbeFactory> r("register_probe", "a probe");
  return r;
}

void register_builtin_probes() {
  static std::once_flag once;
  std::call_once(once, [] { detail::register_activation_stats(); });
}

}  // namespace

void register_probe(const std::string& name, ProbeFactory factory) {
  registry().add(name, std::move(factory));
}

std::vector<std::string> probe_names() {
  register_builtin_probes();
  std::vector<std::string> names = registry().names();
  std::sort(names.begin(), names.end());
  return names;
}

std::unique_ptr<Probe> make_probe(const std::string& name) {
  register_builtin_probes();
  const ProbeFactory factory = registry().find(name);
  if (!factory) {
    std::string known;
    for (const std::string& n : probe_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("--probe: unknown probe '" + name + "' (expected " + known + ")");
  }
  return factory();
}

}  // namespace sparsetrain
