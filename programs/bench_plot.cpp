// The benchmark report's plot: speedup over fp16 against bits per weight, drawn on a small raster with a
// 3x5 pixel font and written with libpng.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <png.h>

#include "isa/dtype.h"
#include "isa/error.h"
#include "programs/bench.h"

namespace anybit::bench {

namespace {

// A small raster canvas with a 3x5 pixel font, enough for axis ticks and a legend.
struct Canvas {
  int w, h;
  std::vector<std::uint8_t> rgb;
  Canvas(int width, int height) : w(width), h(height), rgb(static_cast<std::size_t>(width * height * 3), 255) {}
  void dot(int x, int y, std::array<std::uint8_t, 3> c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    std::copy(c.begin(), c.end(), rgb.begin() + (static_cast<std::ptrdiff_t>(y) * w + x) * 3);
  }
  void line(double x0, double y0, double x1, double y1, std::array<std::uint8_t, 3> c, int thick = 1) {
    const int steps = static_cast<int>(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0))) + 1;
    for (int i = 0; i <= steps; ++i) {
      const double t = static_cast<double>(i) / steps;
      for (int dx = 0; dx < thick; ++dx)
        for (int dy = 0; dy < thick; ++dy)
          dot(static_cast<int>(std::lround(x0 + (x1 - x0) * t)) + dx, static_cast<int>(std::lround(y0 + (y1 - y0) * t)) + dy, c);
    }
  }
  void text(int x, int y, const std::string& s, int scale = 2) {
    static const std::map<char, std::array<std::uint8_t, 5>> glyphs = {
        {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
        {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
        {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {'=', {0, 7, 0, 7, 0}},
        {'M', {5, 7, 7, 5, 5}}, {'b', {4, 4, 7, 5, 7}}, {'i', {2, 0, 2, 2, 2}}, {'t', {2, 7, 2, 2, 3}},
        {'s', {3, 4, 2, 1, 6}}, {'p', {7, 5, 7, 4, 4}}, {'e', {7, 5, 7, 4, 7}}, {'d', {1, 1, 7, 5, 7}},
        {'u', {0, 5, 5, 5, 7}}, {'x', {0, 5, 2, 5, 0}}, {'v', {0, 5, 5, 5, 2}}, {'f', {3, 4, 6, 4, 4}},
        {'o', {0, 7, 5, 5, 7}}, {'r', {0, 7, 4, 4, 4}}, {'m', {0, 7, 7, 5, 5}}, {'l', {2, 2, 2, 2, 3}},
        {'a', {0, 7, 1, 7, 7}}, {'h', {4, 4, 7, 5, 5}}, {'H', {5, 5, 7, 5, 5}}, {'(', {1, 2, 2, 2, 1}},
        {')', {4, 2, 2, 2, 4}}, {'/', {1, 1, 2, 4, 4}}, {'-', {0, 0, 7, 0, 0}}, {',', {0, 0, 0, 2, 4}},
        {'w', {0, 5, 5, 7, 7}}, {'g', {7, 5, 7, 1, 7}}, {'c', {0, 7, 4, 4, 7}}, {'n', {0, 7, 5, 5, 5}}, {'k', {4, 5, 6, 5, 5}},
        {'S', {7, 4, 7, 1, 7}}, {'D', {6, 5, 5, 5, 6}}};
    for (char ch : s) {
      auto it = glyphs.find(ch);
      if (it != glyphs.end())
        for (int r = 0; r < 5; ++r)
          for (int col = 0; col < 3; ++col)
            if (it->second[r] >> (2 - col) & 1)
              for (int a = 0; a < scale; ++a)
                for (int b = 0; b < scale; ++b) dot(x + col * scale + a, y + r * scale + b, {0, 0, 0});
      x += 4 * scale;
    }
  }
};

}  // namespace

void write_plot(const Report& r, const std::string& path) {
  // Speedup over fp16 against bits per weight, one line per M (the best format of each width).
  std::map<std::int64_t, std::map<int, double>> lines;
  double top = 1;
  for (const auto& row : r.rows) {
    const auto& h = row.models.at("H100 SXM");
    const double fp16 = row.measured_ms >= 0 && row.cublas_ms > 0 ? row.cublas_ms : h.fp16_s;
    const double t = row.measured_ms >= 0 && row.cublas_ms > 0 ? row.measured_ms : h.time_s;
    const int bits = isa::parse_dtype(row.format.substr(0, row.format.find(' '))).bits();
    auto& v = lines[row.M][bits];
    v = std::max(v, fp16 / t);
    top = std::max(top, v);
  }
  top = std::ceil(top);
  Canvas c(900, 560);
  const double x0 = 80, y0 = 480, x1 = 700, y1 = 40;
  auto X = [&](double bits) { return x0 + (bits - 1) / 7.0 * (x1 - x0); };
  auto Y = [&](double s) { return y0 - s / top * (y0 - y1); };
  c.line(x0, y0, x1, y0, {0, 0, 0}, 2);
  c.line(x0, y0, x0, y1, {0, 0, 0}, 2);
  for (int b = 1; b <= 8; ++b) {
    c.line(X(b), y0, X(b), y0 + 6, {0, 0, 0});
    c.text(static_cast<int>(X(b)) - 3, static_cast<int>(y0) + 12, std::to_string(b));
  }
  for (int s = 0; s <= static_cast<int>(top); ++s) {
    c.line(x0 - 6, Y(s), x1, Y(s), {210, 210, 210});
    c.text(static_cast<int>(x0) - 30, static_cast<int>(Y(s)) - 5, std::to_string(s));
  }
  c.text(static_cast<int>((x0 + x1) / 2) - 40, static_cast<int>(y0) + 40, "bits/weight");
  c.text(10, 12, r.rows.size() && r.rows[0].measured_ms >= 0 ? "speedup vs fp16 (measured)" : "speedup vs fp16 (modeled, H100)");
  const std::array<std::array<std::uint8_t, 3>, 6> colors = {{{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}, {140, 86, 75}}};
  int k = 0;
  for (const auto& [M, points] : lines) {
    const auto col = colors[static_cast<std::size_t>(k) % colors.size()];
    double px = -1, py = -1;
    for (const auto& [bits, s] : points) {
      const double x = X(bits), y = Y(s);
      if (px >= 0) c.line(px, py, x, y, col, 2);
      for (int dx = -3; dx <= 3; ++dx)
        for (int dy = -3; dy <= 3; ++dy) c.dot(static_cast<int>(x) + dx, static_cast<int>(y) + dy, col);
      px = x, py = y;
    }
    c.line(720, 60 + 24.0 * k, 750, 60 + 24.0 * k, col, 3);
    c.text(760, 54 + 24 * k, fmt::format("M={}", M));
    ++k;
  }
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) throw Error(fmt::format("cannot write '{}'", path));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    throw Error(fmt::format("writing '{}' failed", path));
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(c.w), static_cast<png_uint_32>(c.h), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < c.h; ++y) png_write_row(png, c.rgb.data() + static_cast<std::ptrdiff_t>(y) * c.w * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

}  // namespace anybit::bench
