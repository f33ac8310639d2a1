// The built-in probes register here (registry.cc calls each once, before the
// first look-up); a new probe is one file in this folder and one line in
// register_builtin_probes. Registration is explicit because a static
// library drops an object file nothing refers to, self-registration with it.
#pragma once

namespace sparsetrain::detail {

void register_activation_stats();  // activation_stats.cc

}  // namespace sparsetrain::detail
