// saliency: the gradient of the target's score with respect to the input
// (Simonyan et al. 2014), one probe pass per chunk of samples. Modes:
// "magnitude" (the default): |d score / d x|, the largest over channels;
// "gradient": the signed gradient summed over channels; "gradient-x-input":
// the gradient times the input, summed over channels.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "probes/sample_probes.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

using json = nlohmann::json;

enum class Mode { kMagnitude, kGradient, kGradientTimesInput };

// Per sample (H, W) maps of (N, C, H, W) gradients `g` of inputs `x`.
Tensor reduce_channels(const Tensor& g, const Tensor& x, Mode mode) {
  const int64_t n = g.dim(0), c = g.dim(1), hw = g.dim(2) * g.dim(3);
  Tensor out = Tensor::zeros({n, g.dim(2), g.dim(3)});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* gp = g.data() + (i * c + ch) * hw;  // (H, W)
      const float* xp = x.data() + (i * c + ch) * hw;  // (H, W)
      float* o = out.data() + i * hw;                  // (H, W)
      switch (mode) {
        case Mode::kMagnitude:
          for (int64_t j = 0; j < hw; ++j) o[j] = std::max(o[j], std::abs(gp[j]));
          break;
        case Mode::kGradient:
          for (int64_t j = 0; j < hw; ++j) o[j] += gp[j];
          break;
        case Mode::kGradientTimesInput:
          for (int64_t j = 0; j < hw; ++j) o[j] += gp[j] * xp[j];
          break;
      }
    }
  return out;
}

class Saliency final : public SampleProbe {
 public:
  std::vector<ProbeOption> options() const override {
    return {{"mode", "magnitude",
             "magnitude (|gradient|, largest over channels), gradient (signed, summed over "
             "channels) or gradient-x-input"},
            {"score", "logit", "the target's score: logit, probability or log-probability"}};
  }

  void check(const ProbeContext& c) const override {
    detail::option_choice(c, "mode", {"magnitude", "gradient", "gradient-x-input"});
    parse_class_score(c.options.at("score"));
  }

  ProbeReport run(const ProbeContext& c) override {
    check(c);
    const std::string mode = c.options.at("mode");
    const ClassScore score = parse_class_score(c.options.at("score"));
    if (c.images.rank() != 4) throw Error("saliency: the model's input is not an image");
    const ScoreGradient sg = class_score_gradient(*c.graph, c.images, c.targets, score);
    const Mode m = mode == "magnitude"  ? Mode::kMagnitude
                   : mode == "gradient" ? Mode::kGradient
                                        : Mode::kGradientTimesInput;
    const Tensor maps = reduce_channels(sg.input_grad, c.images, m);
    const int64_t per = c.images.numel() / c.images.dim(0);  // C * H * W
    const int64_t h = maps.dim(1), w = maps.dim(2);
    ProbeReport r;
    json samples = json::array();
    std::ostringstream summary;
    for (size_t i = 0; i < c.indices.size(); ++i) {
      Tensor map = Tensor::empty({h, w});
      std::copy_n(maps.data() + static_cast<int64_t>(i) * h * w, h * w, map.data());
      const float* gp = sg.input_grad.data() + static_cast<int64_t>(i) * per;
      samples.push_back({{"index", c.indices[i]},
                         {"label", c.data->labels[static_cast<size_t>(c.indices[i])]},
                         {"target", c.targets[i]},
                         {"predicted", sg.predicted[i]},
                         {"score", sg.score[i]},
                         {"probability", sg.probability[i]},
                         {"map", std::vector<float>(map.data(), map.data() + h * w)},
                         {"gradient", std::vector<float>(gp, gp + per)}});
      summary << "sample " << c.indices[i] << ": target " << c.targets[i] << ", predicted "
              << sg.predicted[i] << " (p = " << sg.probability[i] << ")\n";
      r.maps.push_back({.sample = static_cast<int64_t>(i),
                        .title = mode == "magnitude" ? "saliency" : mode,
                        .map = map,
                        .is_signed = mode != "magnitude",
                        .image = {}});
    }
    r.json = json{{"mode", mode},
                  {"score", class_score_name(score)},
                  {"map_shape", {h, w}},
                  {"samples", samples}}
                 .dump();
    r.summary = summary.str();
    return r;
  }
};

}  // namespace

namespace detail {
void register_saliency() {
  register_sample_probe("saliency", [] { return std::make_unique<Saliency>(); });
}
}  // namespace detail

}  // namespace sparsetrain
