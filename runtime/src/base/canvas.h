// An RGB canvas for the pictures the runtime and the command line draw
// (probe maps, benchmark plots), with a bitmap font so no font files are
// needed, written as PNG through libpng's simplified API.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace sparsetrain::detail {

constexpr int kGlyphW = 5, kGlyphH = 7;

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0};

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
  // Text at scale `s`, top-left corner (x, y), in a 5x7 bitmap font (digits,
  // lower-case letters and a few signs); characters it lacks are blank.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 2);
  static int text_width(const std::string& s, int scale = 2) {
    return static_cast<int>(s.size()) * (kGlyphW + 1) * scale - scale;
  }

 private:
  int width_, height_;
  std::vector<uint8_t> pixels_;  // (height, width, 3) RGB
};

// Encodes in memory, then writes atomically (sparsetrain/files.h), so a
// reader never sees a half-written picture. Errors start with `what`.
void write_png(const Canvas& canvas, const std::string& path, const std::string& what);
// The PNG bytes of an RGB image (height, width, 3); errors start with `what`.
std::string encode_png(const uint8_t* rgb, int width, int height, const std::string& what);

}  // namespace sparsetrain::detail
