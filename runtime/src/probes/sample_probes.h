// The built-in sample probes (sparsetrain/attribution.h) register here:
// sample_probes.cc calls each once before the first look-up; a new probe is
// one file in this folder and one line there. Also the option readers the
// probes share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/attribution.h"

namespace sparsetrain::detail {

void register_saliency();              // saliency.cc
void register_integrated_gradients();  // integrated_gradients.cc
void register_smoothgrad();            // smoothgrad.cc
void register_spade();                 // spade.cc
void register_sis();                   // sis.cc

// The value of option `name` of a probe's context, checked: Error naming
// "--name" and what was expected.
double option_number(const ProbeContext& c, const std::string& name, double low, double high);
int64_t option_integer(const ProbeContext& c, const std::string& name, int64_t low, int64_t high);
std::string option_choice(const ProbeContext& c, const std::string& name,
                          const std::vector<std::string>& choices);

}  // namespace sparsetrain::detail
