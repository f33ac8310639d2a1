// smoothgrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding
// noise"): the mean of another probe's maps over --samples copies of each
// input with Gaussian noise of standard deviation --noise times the input's
// range (max - min over its values). --of names the probe (saliency or
// integrated-gradients); its own options pass through.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "probes/sample_probes.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"

namespace sparsetrain {
namespace {

using json = nlohmann::json;

const std::vector<std::string>& inner_probes() {
  static const std::vector<std::string> names{"saliency", "integrated-gradients"};
  return names;
}

class SmoothGrad final : public SampleProbe {
 public:
  std::vector<ProbeOption> options() const override {
    std::vector<ProbeOption> o{
        {"of", "saliency", "the probe whose maps are averaged: saliency or integrated-gradients"},
        {"noise", "0.15", "noise standard deviation as a fraction of each input's value range"},
        {"samples", "25", "noisy copies per input"}};
    // The inner probes' options, each once (same name, same meaning).
    for (const std::string& name : inner_probes())
      for (const ProbeOption& p : make_sample_probe(name)->options())
        if (std::none_of(o.begin(), o.end(),
                         [&](const ProbeOption& q) { return q.name == p.name; }))
          o.push_back(p);
    return o;
  }

  // The context of the inner probe: its own options.
  static ProbeContext inner_context(const ProbeContext& c, const SampleProbe& inner) {
    ProbeContext i = c;
    i.options.clear();
    for (const ProbeOption& p : inner.options()) i.options[p.name] = c.options.at(p.name);
    return i;
  }

  void check(const ProbeContext& c) const override {
    const std::string of = detail::option_choice(c, "of", inner_probes());
    detail::option_number(c, "noise", 0.0, 10.0);
    detail::option_integer(c, "samples", 1, 10000);
    const std::unique_ptr<SampleProbe> inner = make_sample_probe(of);
    inner->check(inner_context(c, *inner));
  }

  ProbeReport run(const ProbeContext& c) override {
    check(c);
    const std::string of = c.options.at("of");
    const double noise = detail::option_number(c, "noise", 0.0, 10.0);
    const int64_t count = detail::option_integer(c, "samples", 1, 10000);
    std::unique_ptr<SampleProbe> inner = make_sample_probe(of);
    ProbeContext noisy = inner_context(c, *inner);

    const int64_t n = c.images.dim(0), per = c.images.numel() / n;
    std::vector<float> sigma(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const auto [lo, hi] =
          std::minmax_element(c.images.data() + i * per, c.images.data() + (i + 1) * per);
      sigma[i] = static_cast<float>(noise) * (*hi - *lo);
    }
    Rng rng(c.seed ^ 0x5a00ffULL);
    std::vector<ProbeMap> sum;  // per inner map: the running sum
    for (int64_t s = 0; s < count; ++s) {
      noisy.images = c.images.clone();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < per; ++j) noisy.images[i * per + j] += sigma[i] * rng.normal();
      noisy.seed = c.seed + static_cast<uint64_t>(s);
      const ProbeReport one = inner->run(noisy);
      if (sum.empty()) {
        sum = one.maps;
        for (ProbeMap& m : sum) m.map = m.map.clone();
        continue;
      }
      for (size_t k = 0; k < sum.size(); ++k)
        for (int64_t j = 0; j < sum[k].map.numel(); ++j) sum[k].map[j] += one.maps[k].map[j];
    }
    ProbeReport r;
    json samples = json::array();
    for (ProbeMap& m : sum) {
      for (int64_t j = 0; j < m.map.numel(); ++j) m.map[j] /= static_cast<float>(count);
      m.title = "smoothgrad " + m.title;
      samples.push_back({{"index", c.indices[static_cast<size_t>(m.sample)]},
                         {"target", c.targets[static_cast<size_t>(m.sample)]},
                         {"noise_stddev", sigma[static_cast<size_t>(m.sample)]},
                         {"map", std::vector<float>(m.map.data(), m.map.data() + m.map.numel())}});
    }
    r.maps = std::move(sum);
    r.json = json{{"of", of},
                  {"noise", noise},
                  {"samples_per_input", count},
                  {"inner_options", noisy.options},
                  {"map_shape", {c.images.dim(2), c.images.dim(3)}},
                  {"samples", samples}}
                 .dump();
    std::ostringstream summary;
    summary << "smoothgrad of " << of << ": " << count << " noisy copies per input, noise " << noise
            << " of each input's range\n";
    r.summary = summary.str();
    return r;
  }
};

}  // namespace

namespace detail {
void register_smoothgrad() {
  register_sample_probe("smoothgrad", [] { return std::make_unique<SmoothGrad>(); });
}
}  // namespace detail

}  // namespace sparsetrain
