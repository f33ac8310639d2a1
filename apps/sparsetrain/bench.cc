// sparsetrain bench linear: one sparse linear layer against the fastest dense
// oneDNN matmul on the same shape, per pass and for a whole training step
// (forward + backward-data + backward-weights).
//
// Method: build every operand and every oneDNN primitive up front; warm up
// all of them; pick, per pass, the faster of oneDNN's two operand forms
// (NC: batch x features, its own convention; CN: features x batch, the
// layout the sparse kernels use); then run `reps` repetitions that interleave
// dense and sparse pass by pass (dense fwd, sparse fwd, dense bwd_data, ...)
// so both sides see the same machine state, and report medians.
//
// Where the comparison favours the dense side: its backward-weights writes
// the (O, I) gradient without a bias gradient, and its CN forward adds no
// bias (oneDNN 2.6 has no optimised matmul with a per-row bias). The sparse
// side runs the dispatcher's kernels on activations kept in the kBlocked
// batch layout (no per-call packing), as a run of sparse layers does.
#include <png.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "commands.h"
#include "kernels/common/cpu.h"
#include "kernels/common/dnnl_context.h"
#include "kernels/common/threads.h"
#include "kernels/linear_sparse/linear_sparse.h"
#include "sparsetrain/error.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::cli {

namespace {

namespace sk = kernels;
using Clock = std::chrono::steady_clock;
using dnnl::memory;
using Tag = memory::format_tag;

constexpr double kSweepSparsities[] = {0.5, 0.8, 0.9, 0.95, 0.98, 0.99};
// Repetitions per operand form when choosing the dense form of each pass.
constexpr int kSelectReps = 5;

enum Pass { kFwd = 0, kBwdData = 1, kBwdWeights = 2, kTotal = 3, kNumPasses = 4 };
constexpr const char* kPassNames[kNumPasses] = {"fwd", "bwd_data", "bwd_weights", "total"};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

template <class F>
double time_ms(F&& f) {
  const Clock::time_point t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::vector<float> random_floats(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = dist(rng);
  return v;
}

// Magnitude mask: the round(sparsity * size) smallest |w| are pruned (ties
// broken by position, so the count is exact).
std::vector<uint8_t> magnitude_mask(const std::vector<float>& w, double sparsity) {
  const std::size_t size = w.size();
  const auto pruned = static_cast<std::size_t>(std::llround(sparsity * static_cast<double>(size)));
  std::vector<uint8_t> mask(size, 1);
  if (pruned == 0) return mask;
  std::vector<uint32_t> order(size);
  std::iota(order.begin(), order.end(), 0u);
  const auto smaller = [&](uint32_t a, uint32_t b) {
    const float fa = std::fabs(w[a]), fb = std::fabs(w[b]);
    return fa < fb || (fa == fb && a < b);
  };
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(pruned - 1),
                   order.end(), smaller);
  for (std::size_t k = 0; k < pruned; ++k) mask[order[k]] = 0;
  return mask;
}

// --- oneDNN matmul --------------------------------------------------------------

// C (M, N) = A (M, K) * B (K, N) [+ bias] over caller-owned plain arrays; the
// tags say whether A and B are read transposed.
struct DenseMatmul {
  dnnl::matmul prim;
  std::unordered_map<int, memory> args;
  std::string impl;

  void run(dnnl::stream& stream) const {
    prim.execute(stream, args);
    stream.wait();
  }
};

DenseMatmul make_matmul(memory::dims a_dims, Tag a_tag, float* a, memory::dims b_dims, Tag b_tag,
                        float* b, memory::dims c_dims, float* c, float* bias = nullptr) {
  constexpr auto f32 = memory::data_type::f32;
  const dnnl::engine& eng = sk::dnnl_cpu_engine();
  const memory::desc ad(a_dims, f32, a_tag), bd(b_dims, f32, b_tag), cd(c_dims, f32, Tag::ab);
  DenseMatmul m;
  m.args = {{DNNL_ARG_SRC, memory(ad, eng, a)},
            {DNNL_ARG_WEIGHTS, memory(bd, eng, b)},
            {DNNL_ARG_DST, memory(cd, eng, c)}};
  if (bias != nullptr) {
    const memory::desc biasd({1, c_dims[1]}, f32, Tag::ab);
    m.args.emplace(DNNL_ARG_BIAS, memory(biasd, eng, bias));
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, biasd, cd), eng);
    m.impl = pd.impl_info_str();
    m.prim = dnnl::matmul(pd);
  } else {
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, cd), eng);
    m.impl = pd.impl_info_str();
    m.prim = dnnl::matmul(pd);
  }
  return m;
}

enum Form { kNC = 0, kCN = 1, kNumForms = 2 };
constexpr const char* kFormNames[kNumForms] = {"nc", "cn"};

// --- one problem ----------------------------------------------------------------

struct Problem {
  int64_t in = 0, out = 0, batch = 0;
  double sparsity = 0.0;
  // Dense operands, plain row-major; each form reads them with its own shape.
  Tensor dense_w, bias, src, dst, diff_dst, diff_src, diff_w;  // w, diff_w (O, I)
  // Sparse operands, activations kBlocked (features x batch).
  sk::LinearSparseWeights w;
  Tensor src_b, dst_b, diff_dst_b, diff_src_b, diff_values, diff_bias;
  // The dense passes in each form: [form][pass].
  std::array<std::array<DenseMatmul, 3>, kNumForms> dense;
};

Tensor flat(const std::vector<float>& v) {
  return Tensor::from({static_cast<int64_t>(v.size())}, v);
}

Tensor blocked(const std::vector<float>& plain, int64_t features, int64_t batch) {
  Tensor t = Tensor::zeros({sk::linear_sparse_blocked_size(features, batch)});
  sk::linear_sparse_to_blocked(t.data(), plain.data(), features, batch);
  return t;
}

void build(Problem& p, const BenchLinearCommand& cmd, double sparsity) {
  p.in = cmd.in;
  p.out = cmd.out;
  p.batch = cmd.batch;
  p.sparsity = sparsity;
  const int64_t i = p.in, o = p.out, n = p.batch;
  std::mt19937 rng(cmd.seed);
  std::vector<float> weights = random_floats(o * i, rng);
  const std::vector<uint8_t> mask = magnitude_mask(weights, sparsity);
  p.w = sk::linear_sparse_pack(weights.data(), mask.data(), o, i);
  for (std::size_t k = 0; k < weights.size(); ++k)
    if (mask[k] == 0) weights[k] = 0.0f;
  const std::vector<float> src = random_floats(i * n, rng);
  const std::vector<float> diff_dst = random_floats(o * n, rng);
  p.dense_w = Tensor::from({o, i}, weights);
  p.bias = flat(random_floats(o, rng));
  p.src = flat(src);
  p.diff_dst = flat(diff_dst);
  p.dst = Tensor::zeros({o * n});
  p.diff_src = Tensor::zeros({i * n});
  p.diff_w = Tensor::zeros({o, i});
  p.src_b = blocked(src, i, n);
  p.diff_dst_b = blocked(diff_dst, o, n);
  p.dst_b = Tensor::zeros({sk::linear_sparse_blocked_size(o, n)});
  p.diff_src_b = Tensor::zeros({sk::linear_sparse_blocked_size(i, n)});
  p.diff_values = Tensor::zeros({std::max<int64_t>(p.w.nnz, 1)});
  p.diff_bias = Tensor::zeros({o});

  float* w = p.dense_w.data();
  try {
    // NC (batch x features):
    //   fwd          dst (N, O) = src (N, I) * W^T (I, O) + bias
    //   bwd_data     diff_src (N, I) = diff_dst (N, O) * W (O, I)
    //   bwd_weights  diff_W (O, I) = diff_dst^T (O, N) * src (N, I)
    p.dense[kNC] = {make_matmul({n, i}, Tag::ab, p.src.data(), {i, o}, Tag::ba, w, {n, o},
                                p.dst.data(), p.bias.data()),
                    make_matmul({n, o}, Tag::ab, p.diff_dst.data(), {o, i}, Tag::ab, w, {n, i},
                                p.diff_src.data()),
                    make_matmul({o, n}, Tag::ba, p.diff_dst.data(), {n, i}, Tag::ab, p.src.data(),
                                {o, i}, p.diff_w.data())};
    // CN (features x batch):
    //   fwd          dst (O, N) = W (O, I) * src (I, N)
    //   bwd_data     diff_src (I, N) = W^T (I, O) * diff_dst (O, N)
    //   bwd_weights  diff_W (O, I) = diff_dst (O, N) * src^T (N, I)
    p.dense[kCN] = {
        make_matmul({o, i}, Tag::ab, w, {i, n}, Tag::ab, p.src.data(), {o, n}, p.dst.data()),
        make_matmul({i, o}, Tag::ba, w, {o, n}, Tag::ab, p.diff_dst.data(), {i, n},
                    p.diff_src.data()),
        make_matmul({o, n}, Tag::ab, p.diff_dst.data(), {n, i}, Tag::ba, p.src.data(), {o, i},
                    p.diff_w.data())};
  } catch (const dnnl::error& e) {
    throw Error(std::string("bench linear: oneDNN matmul could not be created: ") + e.what());
  }
}

void run_sparse(Problem& p, int pass, const sk::LinearSparseKernels& k) {
  constexpr auto kBlocked = sk::BatchLayout::kBlocked;
  switch (pass) {
    case kFwd:
      sk::linear_sparse_forward(p.dst_b.data(), p.src_b.data(), p.w, p.bias.data(), p.batch,
                                kBlocked, k.fwd);
      break;
    case kBwdData:
      sk::linear_sparse_backward_data(p.diff_src_b.data(), p.diff_dst_b.data(), p.w, p.batch,
                                      kBlocked, false, k.bwd_data);
      break;
    default:
      sk::linear_sparse_backward_weights(p.diff_values.data(), p.diff_bias.data(),
                                         p.diff_dst_b.data(), p.src_b.data(), p.w, p.batch,
                                         kBlocked, k.bwd_weights);
      break;
  }
}

struct Result {
  int64_t in = 0, out = 0, batch = 0, nnz = 0;
  double sparsity = 0.0;
  int threads = 0, reps = 0;
  std::string isa, dense_impl;
  sk::LinearSparseKernels kernels{};
  std::array<double, kNumPasses> dense_ms{}, sparse_ms{};

  double speedup(int pass) const { return dense_ms[pass] / sparse_ms[pass]; }
};

Result measure(const BenchLinearCommand& cmd, double sparsity) {
  const sk::Isa isa = sk::active_isa();  // throws on a bad SPARSETRAIN_ISA
  const sk::LinearSparseKernels kernels = sk::linear_sparse_kernels(isa);
  sk::sync_openmp_threads();
  Problem p;
  build(p, cmd, sparsity);
  dnnl::stream& stream = sk::dnnl_thread_stream();

  for (int r = 0; r < cmd.warmup; ++r) {
    for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
      for (int f = 0; f < kNumForms; ++f) p.dense[f][pass].run(stream);
      run_sparse(p, pass, kernels);
    }
  }

  // The faster form per pass, both forms interleaved.
  std::array<int, 3> form{};
  for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
    std::array<std::vector<double>, kNumForms> t;
    for (int r = 0; r < kSelectReps; ++r)
      for (int f = 0; f < kNumForms; ++f)
        t[f].push_back(time_ms([&] { p.dense[f][pass].run(stream); }));
    form[pass] = median(t[kCN]) < median(t[kNC]) ? kCN : kNC;
  }

  std::array<std::vector<double>, kNumPasses> dense_t, sparse_t;
  for (int r = 0; r < cmd.reps; ++r) {
    double dense_total = 0.0, sparse_total = 0.0;
    for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
      const double d = time_ms([&] { p.dense[form[pass]][pass].run(stream); });
      const double s = time_ms([&] { run_sparse(p, pass, kernels); });
      dense_t[pass].push_back(d);
      sparse_t[pass].push_back(s);
      dense_total += d;
      sparse_total += s;
    }
    dense_t[kTotal].push_back(dense_total);
    sparse_t[kTotal].push_back(sparse_total);
  }

  Result res;
  res.in = p.in;
  res.out = p.out;
  res.batch = p.batch;
  res.nnz = p.w.nnz;
  res.sparsity = sparsity;
  res.threads = sk::num_threads();
  res.reps = cmd.reps;
  res.isa = sk::isa_name(isa);
  res.kernels = kernels;
  for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
    if (!res.dense_impl.empty()) res.dense_impl += " ";
    res.dense_impl += std::string(kPassNames[pass]) + "=" + kFormNames[form[pass]] + ":" +
                      p.dense[form[pass]][pass].impl;
  }
  for (int pass = 0; pass < kNumPasses; ++pass) {
    res.dense_ms[pass] = median(dense_t[pass]);
    res.sparse_ms[pass] = median(sparse_t[pass]);
  }
  return res;
}

nlohmann::ordered_json to_json(const Result& r) {
  nlohmann::ordered_json dense, sparse, speedup;
  for (int pass = 0; pass < kNumPasses; ++pass) {
    dense[kPassNames[pass]] = r.dense_ms[pass];
    sparse[kPassNames[pass]] = r.sparse_ms[pass];
    if (pass != kTotal) speedup[kPassNames[pass]] = r.speedup(pass);
  }
  return {{"in", r.in},
          {"out", r.out},
          {"batch", r.batch},
          {"sparsity", r.sparsity},
          {"nnz", r.nnz},
          {"threads", r.threads},
          {"isa", r.isa},
          {"dense_impl", r.dense_impl},
          {"sparse_kernels",
           {{"fwd", r.kernels.fwd->name},
            {"bwd_data", r.kernels.bwd_data->name},
            {"bwd_weights", r.kernels.bwd_weights->name}}},
          {"dense_ms", dense},
          {"sparse_ms", sparse},
          {"speedup", speedup},
          {"speedup_total", r.speedup(kTotal)},
          {"reps", r.reps}};
}

void print_header(const Result& r, bool sweep) {
  std::printf("bench linear: batch %lld x %lld -> %lld", static_cast<long long>(r.batch),
              static_cast<long long>(r.in), static_cast<long long>(r.out));
  if (!sweep)
    std::printf(", sparsity %.2f (nnz %lld of %lld)", r.sparsity, static_cast<long long>(r.nnz),
                static_cast<long long>(r.in * r.out));
  std::printf(", ISA %s, %d threads, medians of %d reps\n", r.isa.c_str(), r.threads, r.reps);
  std::printf("sparse kernels: fwd=%s bwd_data=%s bwd_weights=%s\n", r.kernels.fwd->name,
              r.kernels.bwd_data->name, r.kernels.bwd_weights->name);
  if (!sweep) std::printf("dense (oneDNN matmul): %s\n", r.dense_impl.c_str());
}

void print_table(const Result& r) {
  print_header(r, false);
  std::printf("\n%-12s %10s %10s %9s\n", "pass", "dense ms", "sparse ms", "speed-up");
  for (int pass = 0; pass < kNumPasses; ++pass)
    std::printf("%-12s %10.3f %10.3f %8.2fx\n", kPassNames[pass], r.dense_ms[pass],
                r.sparse_ms[pass], r.speedup(pass));
}

// --- the plot ---------------------------------------------------------------------

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

// Writes through a temporary file in the same directory, then renames, so a
// reader never sees a half-written plot.
void write_png(const Canvas& canvas, const std::string& path) {
  const std::string tmp = path + ".tmp";
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(canvas.width());
  image.height = static_cast<png_uint_32>(canvas.height());
  image.format = PNG_FORMAT_RGB;
  if (png_image_write_to_file(&image, tmp.c_str(), 0, canvas.data(), 0, nullptr) == 0) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw Error("--plot " + path + ": cannot write the PNG (" + image.message + ")");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error("--plot " + path + ": cannot rename " + tmp + " into place");
  }
}

// Speed-up of the whole step against sparsity, with a dashed break-even line.
void plot_sweep(const std::vector<Result>& results, const std::string& path) {
  constexpr int kWidth = 720, kHeight = 480;
  constexpr int kLeft = 80, kRight = 30, kTop = 60, kBottom = 70;
  constexpr double kXMin = 0.5, kXMax = 1.0, kXStep = 0.1;
  Canvas c(kWidth, kHeight);
  const int x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom, y1 = kTop;

  double top = 1.0;
  for (const Result& r : results) top = std::max(top, r.speedup(kTotal));
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

  const Result& r0 = results.front();
  const std::string title = "speed-up vs sparsity: b" + std::to_string(r0.batch) + " " +
                            std::to_string(r0.in) + "->" + std::to_string(r0.out) + ", " +
                            std::to_string(r0.threads) + " threads, " + r0.isa;
  c.text((kWidth - Canvas::text_width(title)) / 2, 12, title, kBlack);
  c.text((x0 + x1 - Canvas::text_width("sparsity")) / 2, y0 + 40, "sparsity", kBlack);
  c.text(8, y1 - 24, "speed-up (x)", kBlack);

  for (std::size_t k = 1; k < results.size(); ++k)
    c.line(px(results[k - 1].sparsity), py(results[k - 1].speedup(kTotal)), px(results[k].sparsity),
           py(results[k].speedup(kTotal)), kLine, 2);
  for (const Result& r : results) {
    const int x = px(r.sparsity), y = py(r.speedup(kTotal));
    c.rect(x - 4, y - 4, x + 4, y + 4, kLine);
    const std::string label = fixed(r.speedup(kTotal), 1);
    c.text(std::max(x0 + 6, x - Canvas::text_width(label) - 8), y - 22, label, kLine);
  }
  write_png(c, path);
}

void validate(const BenchLinearCommand& cmd) {
  const auto positive = [](int64_t v, const char* flag) {
    if (v < 1) throw Error(std::string(flag) + " must be at least 1, got " + std::to_string(v));
  };
  positive(cmd.in, "--in");
  positive(cmd.out, "--out");
  positive(cmd.batch, "--batch");
  positive(cmd.reps, "--reps");
  if (!(cmd.sparsity >= 0.0 && cmd.sparsity < 1.0)) {
    char got[32];
    std::snprintf(got, sizeof got, "%g", cmd.sparsity);
    throw Error(std::string("--sparsity must be in [0, 1), got ") + got);
  }
  if (cmd.warmup < 0) throw Error("--warmup must be at least 0, got " + std::to_string(cmd.warmup));
  if (cmd.threads < 0)
    throw Error("--threads must be at least 0 (0: all cores), got " + std::to_string(cmd.threads));
}

int run_bench_linear(BenchLinearCommand& cmd) {
  validate(cmd);
  sk::set_num_threads(cmd.threads);
  if (!cmd.sweep) {
    const Result r = measure(cmd, cmd.sparsity);
    if (cmd.json) {
      std::cout << to_json(r).dump(2) << "\n";
    } else {
      print_table(r);
    }
    return 0;
  }

  const std::string plot = !cmd.plot.empty() ? cmd.plot
                                             : "bench-linear-" + std::to_string(cmd.in) + "x" +
                                                   std::to_string(cmd.out) + "-b" +
                                                   std::to_string(cmd.batch) + ".png";
  std::vector<Result> results;
  for (const double s : kSweepSparsities) {
    results.push_back(measure(cmd, s));
    if (cmd.json) continue;
    const Result& r = results.back();
    if (results.size() == 1) {
      print_header(r, true);
      std::printf("\n%-8s %10s %10s %9s %8s %9s %12s\n", "sparsity", "dense ms", "sparse ms",
                  "speed-up", "fwd", "bwd_data", "bwd_weights");
    }
    std::printf("%-8.2f %10.3f %10.3f %8.2fx %7.2fx %8.2fx %11.2fx\n", r.sparsity,
                r.dense_ms[kTotal], r.sparse_ms[kTotal], r.speedup(kTotal), r.speedup(kFwd),
                r.speedup(kBwdData), r.speedup(kBwdWeights));
    std::fflush(stdout);
  }
  plot_sweep(results, plot);
  if (cmd.json) {
    nlohmann::ordered_json all = nlohmann::ordered_json::array();
    for (const Result& r : results) all.push_back(to_json(r));
    std::cout << all.dump(2) << "\n";
    std::fprintf(stderr, "plot: %s\n", plot.c_str());
  } else {
    std::printf("\nplot: %s\n", plot.c_str());
  }
  return 0;
}

}  // namespace

CLI::App* add_bench(CLI::App& app, BenchCommand& cmd) {
  CLI::App* sub = app.add_subcommand("bench", "Micro-benchmarks: sparse kernels against dense");
  sub->require_subcommand(1, 1);
  BenchLinearCommand& l = cmd.linear;
  CLI::App* lin = sub->add_subcommand(
      "linear", "One linear layer: sparse kernels against the fastest oneDNN matmul, per pass");
  lin->add_option("--in", l.in, "Input features")->capture_default_str();
  lin->add_option("--out", l.out, "Output features")->capture_default_str();
  lin->add_option("--batch", l.batch, "Batch size")->capture_default_str();
  lin->add_option("--sparsity", l.sparsity, "Fraction of weights pruned, in [0, 1)")
      ->capture_default_str();
  lin->add_option("--threads", l.threads, "Threads (0: all cores)")->capture_default_str();
  lin->add_option("--reps", l.reps, "Timed repetitions (medians are reported)")
      ->capture_default_str();
  lin->add_option("--warmup", l.warmup, "Untimed repetitions first")->capture_default_str();
  lin->add_option("--seed", l.seed, "Seed of the random operands")->capture_default_str();
  lin->add_flag("--json", l.json, "Print one JSON object (an array with --sweep)");
  lin->add_flag("--sweep", l.sweep, "Sparsities 0.5 .. 0.99 (ignores --sparsity), writes a plot");
  lin->add_option("--plot", l.plot,
                  "PNG of the sweep (default bench-linear-<in>x<out>-b<batch>.png)");
  cmd.linear_app = lin;
  return sub;
}

int run_bench(BenchCommand& cmd) {
  if (cmd.linear_app != nullptr && cmd.linear_app->parsed()) return run_bench_linear(cmd.linear);
  return 0;
}

}  // namespace sparsetrain::cli
