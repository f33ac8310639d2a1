// The sample probe registry and the option readers (sparsetrain/attribution.h).
#include "probes/sample_probes.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <string>

#include "base/named_registry.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

detail::NamedRegistry<SampleProbeFactory>& registry() {
  static detail::NamedRegistry<SampleProbeFactory> r("register_sample_probe", "a probe");
  return r;
}

void register_builtin_sample_probes() {
  static std::once_flag once;
  std::call_once(once, [] {
    detail::register_saliency();
    detail::register_integrated_gradients();
    detail::register_smoothgrad();
    detail::register_spade();
    detail::register_sis();
  });
}

const std::string& option_text(const ProbeContext& c, const std::string& name) {
  const auto it = c.options.find(name);
  if (it == c.options.end()) throw Error("probe option --" + name + " is missing");
  return it->second;
}

}  // namespace

void register_sample_probe(const std::string& name, SampleProbeFactory factory) {
  registry().add(name, std::move(factory));
}

std::vector<std::string> sample_probe_names() {
  register_builtin_sample_probes();
  std::vector<std::string> names = registry().names();
  std::sort(names.begin(), names.end());
  return names;
}

std::unique_ptr<SampleProbe> make_sample_probe(const std::string& name) {
  register_builtin_sample_probes();
  const SampleProbeFactory factory = registry().find(name);
  if (!factory) {
    std::string known;
    for (const std::string& n : sample_probe_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown probe '" + name + "' (expected one of " + known + ")");
  }
  return factory();
}

std::map<std::string, std::string> resolve_probe_options(
    const std::string& probe, const std::map<std::string, std::string>& given) {
  const std::vector<ProbeOption> declared = make_sample_probe(probe)->options();
  std::map<std::string, std::string> out;
  for (const ProbeOption& o : declared) out[o.name] = o.default_value;
  for (const auto& [name, value] : given) {
    if (!out.count(name)) {
      std::string known;
      for (const ProbeOption& o : declared) known += (known.empty() ? "--" : ", --") + o.name;
      throw Error("--" + name + " is not an option of probe " + probe +
                  (known.empty() ? " (it has none)" : " (its options: " + known + ")"));
    }
    out[name] = value;
  }
  return out;
}

namespace detail {

double option_number(const ProbeContext& c, const std::string& name, double low, double high) {
  const std::string& text = option_text(c, name);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < low || v > high) {
    throw Error("--" + name + ": expected a number in [" + std::to_string(low) + ", " +
                std::to_string(high) + "], got '" + text + "'");
  }
  return v;
}

int64_t option_integer(const ProbeContext& c, const std::string& name, int64_t low, int64_t high) {
  const std::string& text = option_text(c, name);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < low || v > high) {
    throw Error("--" + name + ": expected a whole number from " + std::to_string(low) + " to " +
                std::to_string(high) + ", got '" + text + "'");
  }
  return v;
}

std::string option_choice(const ProbeContext& c, const std::string& name,
                          const std::vector<std::string>& choices) {
  const std::string& text = option_text(c, name);
  if (std::find(choices.begin(), choices.end(), text) != choices.end()) return text;
  std::string known;
  for (const std::string& k : choices) known += (known.empty() ? "" : ", ") + k;
  throw Error("--" + name + ": unknown value '" + text + "' (expected " + known + ")");
}

}  // namespace detail
}  // namespace sparsetrain
