// The PNG plot of a sweep (libpng's simplified API), drawn with a 5x7 bitmap
// font so the program needs no font files.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "base/canvas.h"
#include "bench_common.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"

namespace sparsetrain::cli::bench {

namespace {

using detail::Canvas;
using detail::kBlack;
using detail::kGlyphH;
using detail::kWhite;
using detail::Rgb;
constexpr Rgb kGrid{225, 225, 225}, kLine{31, 97, 180}, kEven{200, 60, 60};

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

void plot_speedups(const std::vector<SweepPoint>& points, const std::string& title,
                   const std::string& path) {
  constexpr int kWidth = 720, kHeight = 480;
  constexpr int kLeft = 80, kRight = 30, kTop = 60, kBottom = 70;
  constexpr double kXMin = 0.5, kXMax = 1.0, kXStep = 0.1;
  Canvas c(kWidth, kHeight);
  const int x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom, y1 = kTop;

  double top = 1.0;
  for (const SweepPoint& p : points) top = std::max(top, p.speedup);
  // A tick step of 1, 2 or 5 times a power of ten, with at most 8 steps.
  double step = 1.0;
  for (double base = 1.0;; base *= 10.0) {
    if (top / base <= 8.0) {
      step = base;
      break;
    }
    if (top / (2.0 * base) <= 8.0) {
      step = 2.0 * base;
      break;
    }
    if (top / (5.0 * base) <= 8.0) {
      step = 5.0 * base;
      break;
    }
  }
  const double y_max = step * std::ceil(top * 1.08 / step);
  const auto px = [&](double s) {
    return x0 + static_cast<int>(std::lround((s - kXMin) / (kXMax - kXMin) * (x1 - x0)));
  };
  const auto py = [&](double v) {
    return y0 - static_cast<int>(std::lround(v / y_max * (y0 - y1)));
  };

  for (double v = 0.0; v <= y_max + 1e-9; v += step) {
    const int y = py(v);
    c.line(x0, y, x1, y, kGrid);
    c.line(x0 - 6, y, x0, y, kBlack);
    const std::string label = fixed(v, step < 1.0 ? 1 : 0);
    c.text(x0 - 12 - Canvas::text_width(label), y - kGlyphH, label, kBlack);
  }
  for (double s = kXMin; s <= kXMax + 1e-9; s += kXStep) {
    const int x = px(s);
    c.line(x, y0, x, y1, kGrid);
    c.line(x, y0, x, y0 + 6, kBlack);
    const std::string label = fixed(s, 1);
    c.text(x - Canvas::text_width(label) / 2, y0 + 12, label, kBlack);
  }
  c.line(x0, y0, x1, y0, kBlack, 2);
  c.line(x0, y0, x0, y1, kBlack, 2);
  c.line(x0, py(1.0), x1, py(1.0), kEven, 1, 6);

  c.text((kWidth - Canvas::text_width(title)) / 2, 12, title, kBlack);
  c.text((x0 + x1 - Canvas::text_width("sparsity")) / 2, y0 + 40, "sparsity", kBlack);
  c.text(8, y1 - 24, "speed-up (x)", kBlack);

  for (std::size_t k = 1; k < points.size(); ++k)
    c.line(px(points[k - 1].sparsity), py(points[k - 1].speedup), px(points[k].sparsity),
           py(points[k].speedup), kLine, 2);
  for (const SweepPoint& p : points) {
    const int x = px(p.sparsity), y = py(p.speedup);
    c.rect(x - 4, y - 4, x + 4, y + 4, kLine);
    const std::string label = fixed(p.speedup, 1);
    c.text(std::max(x0 + 6, x - Canvas::text_width(label) - 8), y - 22, label, kLine);
  }
  detail::write_png(c, path, "--plot " + path);
}

}  // namespace sparsetrain::cli::bench
