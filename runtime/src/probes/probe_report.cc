// Writing a sample probe's report (sparsetrain/attribution.h): the JSON and
// the pictures. A sample's picture is its image, then each map over a dimmed
// grey copy of the image (or of the map's own image), each panel scaled up
// by whole pixels; the contact sheet stacks the samples' pictures.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/canvas.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"

namespace sparsetrain {
namespace {

using detail::Canvas;
using detail::Rgb;
using json = nlohmann::json;

constexpr int kPanel = 160;     // smallest panel side, pixels
constexpr int kGap = 8;         // between panels
constexpr int kTextScale = 1;   // 5x7 glyphs at 1x: 6 pixels a character
constexpr int kLine = 10;       // text line height
constexpr int kTitleLines = 2;  // a title wraps onto at most this many lines
constexpr int kCharW = 6;       // a glyph and its gap at kTextScale
constexpr float kDim = 0.45f;   // the grey image under a map, scaled to [0, kDim]
// Maps are scaled by their 99.5th percentile (of |value| when signed), so a
// few extreme pixels do not wash the rest out (as IG's authors show them).
constexpr double kClipQuantile = 0.995;

// A perceptual dark-to-bright map (black, purple, red, orange, yellow, white).
Rgb sequential(float v) {
  static constexpr std::array<std::array<float, 3>, 6> kStops = {
      {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}, {255, 255, 255}}};
  const float t = std::clamp(v, 0.0f, 1.0f) * (kStops.size() - 1);
  const size_t i = std::min<size_t>(static_cast<size_t>(t), kStops.size() - 2);
  const float f = t - static_cast<float>(i);
  std::array<uint8_t, 3> c{};
  for (int k = 0; k < 3; ++k)
    c[k] = static_cast<uint8_t>(kStops[i][k] + f * (kStops[i + 1][k] - kStops[i][k]));
  return {c[0], c[1], c[2]};
}

// Blue for negative, red for positive, v in [-1, 1].
Rgb diverging(float v) {
  const float a = std::clamp(std::abs(v), 0.0f, 1.0f);
  return v >= 0 ? Rgb{static_cast<uint8_t>(180 + 75 * a), static_cast<uint8_t>(40 * (1 - a)),
                      static_cast<uint8_t>(40 * (1 - a))}
                : Rgb{static_cast<uint8_t>(40 * (1 - a)), static_cast<uint8_t>(90 + 60 * a),
                      static_cast<uint8_t>(180 + 75 * a)};
}

Rgb blend(Rgb under, Rgb over, float alpha) {
  auto mix = [&](uint8_t u, uint8_t o) {
    return static_cast<uint8_t>(std::lround(u + alpha * (static_cast<float>(o) - u)));
  };
  return {mix(under.r, over.r), mix(under.g, over.g), mix(under.b, over.b)};
}

// A normalised (C, H, W) image back to RGB pixels (grey for one channel).
std::vector<Rgb> to_rgb(const float* x, const Dataset& d) {
  const int64_t hw = d.height * d.width;
  std::vector<Rgb> out(static_cast<size_t>(hw));
  auto level = [&](int64_t c, float v) {
    const float m = d.mean.empty() ? 0.0f : d.mean[c];
    const float s = d.stddev.empty() ? 1.0f : d.stddev[c];
    return static_cast<uint8_t>(std::clamp(std::lround((v * s + m) * 255.0f), 0L, 255L));
  };
  for (int64_t j = 0; j < hw; ++j) {
    if (d.channels >= 3) {
      out[j] = {level(0, x[j]), level(1, x[hw + j]), level(2, x[2 * hw + j])};
    } else {
      const uint8_t g = level(0, x[j]);
      out[j] = {g, g, g};
    }
  }
  return out;
}

double clip_level(const Tensor& map, bool is_signed) {
  std::vector<float> v(map.data(), map.data() + map.numel());
  for (float& x : v) x = is_signed ? std::abs(x) : std::max(x, 0.0f);
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(kClipQuantile * v.size()));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  const double top = v[k];
  return top > 0 ? top : 1.0;
}

// A panel's title under it, wrapped at spaces to the panel's width.
void draw_title(Canvas& c, int x, int y, int width, const std::string& title) {
  const size_t per_line = static_cast<size_t>(std::max(1, width / kCharW));
  std::string rest = title;
  for (int line = 0; line < kTitleLines && !rest.empty(); ++line) {
    size_t cut = rest.size();
    if (cut > per_line && line + 1 < kTitleLines) {
      cut = rest.rfind(' ', per_line);
      if (cut == std::string::npos || cut == 0) cut = per_line;
    }
    c.text(x, y + line * kLine, rest.substr(0, cut), detail::kBlack, kTextScale);
    rest = cut < rest.size() ? rest.substr(rest[cut] == ' ' ? cut + 1 : cut) : "";
  }
}

struct Layout2 {
  int scale, side_w, side_h;
};

Layout2 panel_size(const Dataset& d) {
  const int scale = std::max(1, kPanel / static_cast<int>(std::max(d.height, d.width)));
  return {scale, static_cast<int>(d.width) * scale, static_cast<int>(d.height) * scale};
}

void draw_pixels(Canvas& c, int x0, int y0, const std::vector<Rgb>& px, const Dataset& d,
                 int scale) {
  for (int64_t y = 0; y < d.height; ++y)
    for (int64_t x = 0; x < d.width; ++x) {
      const int px0 = x0 + static_cast<int>(x) * scale, py0 = y0 + static_cast<int>(y) * scale;
      c.rect(px0, py0, px0 + scale - 1, py0 + scale - 1, px[y * d.width + x]);
    }
}

// The panels of one sample at (x0, y0): image, then the maps, titles below.
void draw_sample(Canvas& c, int x0, int y0, const ProbeContext& ctx, int64_t sample,
                 const std::vector<const ProbeMap*>& maps, const std::string& caption) {
  const Dataset& d = *ctx.data;
  const Layout2 p = panel_size(d);
  const int64_t per = d.image_numel();
  const std::vector<Rgb> image = to_rgb(ctx.images.data() + sample * per, d);
  c.text(x0, y0, caption, detail::kBlack, kTextScale);
  const int top = y0 + kLine + 2;
  draw_pixels(c, x0, top, image, d, p.scale);
  c.text(x0, top + p.side_h + 3, "input", detail::kBlack, kTextScale);
  int x = x0 + p.side_w + kGap;
  for (const ProbeMap* m : maps) {
    const std::vector<Rgb> under = m->image.defined() ? to_rgb(m->image.data(), d) : image;
    if (!m->map.defined()) {
      draw_pixels(c, x, top, under, d, p.scale);
      draw_title(c, x, top + p.side_h + 3, p.side_w, m->title);
      x += p.side_w + kGap;
      continue;
    }
    const double clip = clip_level(m->map, m->is_signed);
    std::vector<Rgb> px(under.size());
    for (size_t j = 0; j < px.size(); ++j) {
      const Rgb u = under[j];
      const float grey = kDim * (0.299f * u.r + 0.587f * u.g + 0.114f * u.b);
      const Rgb dim{static_cast<uint8_t>(grey), static_cast<uint8_t>(grey),
                    static_cast<uint8_t>(grey)};
      const float v = static_cast<float>(m->map[static_cast<int64_t>(j)] / clip);
      const float a = std::clamp(m->is_signed ? std::abs(v) : v, 0.0f, 1.0f);
      px[j] = blend(dim, m->is_signed ? diverging(v) : sequential(v), std::sqrt(a));
    }
    draw_pixels(c, x, top, px, d, p.scale);
    draw_title(c, x, top + p.side_h + 3, p.side_w, m->title);
    x += p.side_w + kGap;
  }
}

std::string class_name(const Dataset& d, int32_t k) {
  return k >= 0 && k < static_cast<int32_t>(d.class_names.size()) ? d.class_names[k]
                                                                  : std::to_string(k);
}

}  // namespace

std::vector<std::string> write_probe_report(const std::string& dir, const std::string& name,
                                            const std::string& header, const ProbeContext& ctx,
                                            const ProbeReport& report) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("--out: cannot create directory '" + dir + "': " + ec.message());
  std::vector<std::string> written;
  const Dataset& d = *ctx.data;

  json j = header.empty() ? json::object() : json::parse(header);
  json samples = json::array();
  for (size_t i = 0; i < ctx.indices.size(); ++i)
    samples.push_back({{"index", ctx.indices[i]},
                       {"label", d.labels[static_cast<size_t>(ctx.indices[i])]},
                       {"target", ctx.targets[i]}});
  j["probe"] = name;
  j["samples"] = samples;
  j["results"] = json::parse(report.json);
  const std::string json_path = (fs::path(dir) / (name + ".json")).string();
  write_file_atomic(json_path, j.dump(1), "--out " + json_path);
  written.push_back(json_path);
  if (report.maps.empty() || ctx.images.rank() != 4) return written;

  // One picture per sample, then the sheet of all of them.
  const Layout2 p = panel_size(d);
  std::vector<std::vector<const ProbeMap*>> per_sample(ctx.indices.size());
  for (const ProbeMap& m : report.maps) {
    if (m.sample < 0 || m.sample >= static_cast<int64_t>(ctx.indices.size()) ||
        (m.map.defined() && m.map.numel() != d.height * d.width) ||
        (!m.map.defined() && m.image.numel() != d.image_numel())) {
      throw Error("probe " + name + ": a map of sample " + std::to_string(m.sample) +
                  " does not fit the samples or the image size");
    }
    per_sample[static_cast<size_t>(m.sample)].push_back(&m);
  }
  size_t most = 0;
  for (const auto& maps : per_sample) most = std::max(most, maps.size());
  const int width = kGap + static_cast<int>(most + 1) * (p.side_w + kGap);
  const int row_h = kLine + 2 + p.side_h + 3 + kTitleLines * kLine + kGap;
  // The model's prediction on each sample, for the captions.
  const Tensor logits = class_logits(*ctx.graph, ctx.images);
  const int64_t k = logits.dim(1);
  auto caption = [&](size_t i) {
    const int32_t label = d.labels[static_cast<size_t>(ctx.indices[i])];
    const float* row = logits.data() + static_cast<int64_t>(i) * k;
    const int64_t best = std::max_element(row, row + k) - row;
    double sum = 0;
    for (int64_t c = 0; c < k; ++c) sum += std::exp(static_cast<double>(row[c] - row[best]));
    char p[16];
    std::snprintf(p, sizeof p, "%.2f", 1.0 / sum);
    return "sample " + std::to_string(ctx.indices[i]) + ": label " + class_name(d, label) +
           ", target " + class_name(d, ctx.targets[i]) + ", predicted " +
           class_name(d, static_cast<int32_t>(best)) + " (p " + p + ")";
  };
  const int min_width = 8 + 6 * static_cast<int>(caption(0).size() + 8);
  Canvas sheet(std::max(width, min_width), kGap + static_cast<int>(ctx.indices.size()) * row_h);
  for (size_t i = 0; i < ctx.indices.size(); ++i) {
    Canvas one(std::max(width, min_width), kGap + row_h);
    draw_sample(one, kGap, kGap, ctx, static_cast<int64_t>(i), per_sample[i], caption(i));
    const std::string path =
        (fs::path(dir) / (name + "-" + std::to_string(ctx.indices[i]) + ".png")).string();
    detail::write_png(one, path, "--out " + path);
    written.push_back(path);
    draw_sample(sheet, kGap, kGap + static_cast<int>(i) * row_h, ctx, static_cast<int64_t>(i),
                per_sample[i], caption(i));
  }
  const std::string sheet_path = (fs::path(dir) / (name + "-sheet.png")).string();
  detail::write_png(sheet, sheet_path, "--out " + sheet_path);
  written.push_back(sheet_path);
  return written;
}

}  // namespace sparsetrain
