// The PNG plot of a sweep (libpng's simplified API), drawn with a 5x7 bitmap
// font so the program needs no font files.
#include <png.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_common.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"

namespace sparsetrain::cli::bench {

namespace {

// A 5x7 bitmap font: 7 rows per glyph, bit 4 the leftmost pixel.
struct Glyph {
  char c;
  std::array<uint8_t, 7> rows;
};
constexpr Glyph kFont[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}},
    {'b', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}},
    {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}},
    {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
    {'g', {0x00, 0x00, 0x0F, 0x11, 0x0F, 0x01, 0x0E}},
    {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}},
    {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}},
    {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}},
    {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}},
    {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'u', {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}},
    {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'w', {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}},
    {'x', {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}},
    {'y', {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}},
};
constexpr int kGlyphW = 5, kGlyphH = 7;

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrid{225, 225, 225}, kLine{31, 97, 180},
    kEven{200, 60, 60};

class Canvas {
 public:
  Canvas(int width, int height)
      : width_(width),
        height_(height),
        pixels_(static_cast<std::size_t>(width * height * 3), 255) {}

  int width() const { return width_; }
  int height() const { return height_; }
  const uint8_t* data() const { return pixels_.data(); }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    uint8_t* px = &pixels_[static_cast<std::size_t>((y * width_ + x) * 3)];
    px[0] = c.r;
    px[1] = c.g;
    px[2] = c.b;
  }
  void rect(int x0, int y0, int x1, int y1, Rgb c) {  // inclusive corners
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  // Bresenham, `thick` pixels wide; `dash` > 0 draws dash-long segments with gaps.
  void line(int x0, int y0, int x1, int y1, Rgb c, int thick = 1, int dash = 0) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, step = 0;
    for (;;) {
      if (dash == 0 || (step / dash) % 2 == 0) rect(x0, y0, x0 + thick - 1, y0 + thick - 1, c);
      ++step;
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
  // Text at scale `s`, top-left corner (x, y); characters the font lacks are blank.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 2) {
    for (const char ch : s) {
      for (const Glyph& g : kFont) {
        if (g.c != ch) continue;
        for (int row = 0; row < kGlyphH; ++row)
          for (int col = 0; col < kGlyphW; ++col)
            if ((g.rows[static_cast<std::size_t>(row)] >> (kGlyphW - 1 - col)) & 1)
              rect(x + col * scale, y + row * scale, x + col * scale + scale - 1,
                   y + row * scale + scale - 1, c);
      }
      x += (kGlyphW + 1) * scale;
    }
  }
  static int text_width(const std::string& s, int scale = 2) {
    return static_cast<int>(s.size()) * (kGlyphW + 1) * scale - scale;
  }

 private:
  int width_, height_;
  std::vector<uint8_t> pixels_;  // (height, width, 3) RGB
};

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Encodes in memory, then writes atomically (sparsetrain/files.h), so a
// reader never sees a half-written plot.
void write_png(const Canvas& canvas, const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(canvas.width());
  image.height = static_cast<png_uint_32>(canvas.height());
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (png_image_write_to_memory(&image, nullptr, &size, 0, canvas.data(), 0, nullptr) == 0) {
    throw Error("--plot " + path + ": cannot encode the PNG (" + image.message + ")");
  }
  std::string bytes(size, '\0');
  if (png_image_write_to_memory(&image, bytes.data(), &size, 0, canvas.data(), 0, nullptr) == 0) {
    throw Error("--plot " + path + ": cannot encode the PNG (" + image.message + ")");
  }
  bytes.resize(size);
  write_file_atomic(path, bytes, "--plot " + path);
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
  write_png(c, path);
}

}  // namespace sparsetrain::cli::bench
