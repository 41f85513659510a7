#include "format/quantize_k.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "format/tensor_type.h"

namespace h2o {
namespace {

constexpr size_t kSuperBlock = 256;  // ggml's QK_K
constexpr size_t kQ4KBytes = 144;
constexpr size_t kQ6KBytes = 210;
// Groups whose largest magnitude is below this are treated as all zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even: what ggml's nearest_int computes with its float trick.
int round_int(float v) { return static_cast<int>(std::lrint(v)); }

void store_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  p[0] = static_cast<uint8_t>(h & 0xFF);
  p[1] = static_cast<uint8_t>(h >> 8);
}

float load_f16(const uint8_t* p) { return fp16_to_fp32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// ---- Q4_K ---------------------------------------------------------------------------

// An affine fit x ≈ scale*L - offset, L in [0, nmax], offset >= 0 (so the grid reaches
// down to zero or below), as ggml's make_qkx2_quants: start from the grid spanning
// [min(x, 0), max(x)], then try grids slightly narrower and wider, refitting scale and
// offset by weighted least squares for each, and keep whichever has the smallest weighted
// squared error. The refit may clip a few extreme values if that lowers the total error.
struct AffineFit {
  float scale = 0.0f;
  float offset = 0.0f;
};

AffineFit fit_affine(const float* x, const float* w, int n, int nmax, uint8_t* levels) {
  constexpr float kRangeMin = -1.0f;  // the trial grids span nmax-1 .. nmax+1 steps
  constexpr float kRangeStep = 0.1f;
  constexpr int kTrials = 20;
  float lo = x[0], hi = x[0];
  float sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  lo = std::min(lo, 0.0f);
  if (hi == lo) {  // all zero, or constant <= 0: the offset alone represents it
    std::fill(levels, levels + n, uint8_t{0});
    return {0.0f, -lo};
  }
  const auto nmaxf = static_cast<float>(nmax);
  float iscale = nmaxf / (hi - lo);
  float scale = 1.0f / iscale;
  float best_err = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(round_int(iscale * (x[i] - lo)), 0, nmax);
    levels[i] = static_cast<uint8_t>(l);
    const float diff = scale * static_cast<float>(l) + lo - x[i];
    best_err += w[i] * diff * diff;
  }
  std::array<uint8_t, 32> trial{};
  for (int is = 0; is <= kTrials; ++is) {
    // Note `lo` is the best offset so far (as in ggml): later grids start from it.
    iscale = (kRangeMin + kRangeStep * static_cast<float>(is) + nmaxf) / (hi - lo);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_int(iscale * (x[i] - lo)), 0, nmax);
      trial[static_cast<size_t>(i)] = static_cast<uint8_t>(l);
      const auto lf = static_cast<float>(l);
      sum_l += w[i] * lf;
      sum_l2 += w[i] * lf * lf;
      sum_xl += w[i] * lf * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0.0f) continue;
    // Weighted least squares for x ≈ s*l + m with these levels.
    float s = (sum_w * sum_xl - sum_x * sum_l) / det;
    float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (m > 0.0f) {  // the offset may only lower the grid; refit the scale alone
      m = 0.0f;
      s = sum_xl / sum_l2;
    }
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float diff = s * static_cast<float>(trial[static_cast<size_t>(i)]) + m - x[i];
      err += w[i] * diff * diff;
    }
    if (err < best_err) {
      std::copy(trial.begin(), trial.begin() + n, levels);
      best_err = err;
      scale = s;
      lo = m;
    }
  }
  return {scale, -lo};
}

void quantize_q4_k_block(const float* x, uint8_t* out) {
  constexpr int kSub = 32;  // values per sub-block
  constexpr int kNSub = 8;
  std::array<uint8_t, kSuperBlock> levels{};
  std::array<float, kNSub> scales{}, offsets{};
  float max_scale = 0.0f, max_offset = 0.0f;
  for (int j = 0; j < kNSub; ++j) {
    const float* xs = x + j * kSub;
    // ggml's weighting: each value counts by its magnitude plus the sub-block's RMS.
    float sum_x2 = 0.0f;
    for (int l = 0; l < kSub; ++l) sum_x2 += xs[l] * xs[l];
    const float rms = std::sqrt(sum_x2 / static_cast<float>(kSub));
    std::array<float, kSub> w{};
    for (int l = 0; l < kSub; ++l) w[static_cast<size_t>(l)] = rms + std::fabs(xs[l]);
    const AffineFit f = fit_affine(xs, w.data(), kSub, 15, levels.data() + j * kSub);
    scales[static_cast<size_t>(j)] = f.scale;
    offsets[static_cast<size_t>(j)] = f.offset;
    max_scale = std::max(max_scale, f.scale);
    max_offset = std::max(max_offset, f.offset);
  }

  // Sub-block scales and offsets become 6-bit multiples of d = max/63 and dmin = max/63.
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_offset = max_offset > 0.0f ? 63.0f / max_offset : 0.0f;
  std::array<uint8_t, kNSub> qscale{}, qoffset{};
  uint8_t* packed = out + 4;
  std::memset(packed, 0, 12);
  for (int j = 0; j < kNSub; ++j) {
    const auto ls = static_cast<uint8_t>(std::clamp(round_int(inv_scale * scales[static_cast<size_t>(j)]), 0, 63));
    const auto lm = static_cast<uint8_t>(std::clamp(round_int(inv_offset * offsets[static_cast<size_t>(j)]), 0, 63));
    qscale[static_cast<size_t>(j)] = ls;
    qoffset[static_cast<size_t>(j)] = lm;
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((ls >> 4) << 6));
      packed[j] = static_cast<uint8_t>(packed[j] | ((lm >> 4) << 6));
    }
  }
  store_f16(out, max_scale / 63.0f);
  store_f16(out + 2, max_offset / 63.0f);

  // Requantize every value against the scales as the decoder will see them (after the
  // fp16 and 6-bit rounding): the nearest level of the stored grid.
  const float d = load_f16(out), dmin = load_f16(out + 2);
  for (int j = 0; j < kNSub; ++j) {
    const float dj = d * static_cast<float>(qscale[static_cast<size_t>(j)]);
    if (dj == 0.0f) continue;  // every level decodes to -mj; keep the fit's levels
    const float mj = dmin * static_cast<float>(qoffset[static_cast<size_t>(j)]);
    for (int l = 0; l < kSub; ++l) {
      const int q = std::clamp(round_int((x[j * kSub + l] + mj) / dj), 0, 15);
      levels[static_cast<size_t>(j * kSub + l)] = static_cast<uint8_t>(q);
    }
  }

  // Nibbles: each 64-value chunk c fills bytes 32c..32c+31, first half low, second high.
  uint8_t* qs = out + 16;
  for (size_t c = 0; c < kSuperBlock / 64; ++c) {
    for (size_t l = 0; l < 32; ++l) {
      qs[32 * c + l] = static_cast<uint8_t>(levels[64 * c + l] | (levels[64 * c + l + 32] << 4));
    }
  }
}

// ---- Q6_K ---------------------------------------------------------------------------

// A symmetric fit x ≈ scale*l, l in [-nmax, nmax-1], as ggml's make_qx_quants with its
// x² weighting (rmse_type 1): the largest-magnitude value maps to -nmax (the end with the
// extra level), then grids of nmax ± 0.9 steps are tried and the least-squares scale of
// the one with the smallest weighted error is kept. Levels are stored offset by nmax.
float fit_symmetric(const float* x, int n, int nmax, uint8_t* levels) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(levels, levels + n, uint8_t{0});
    return 0.0f;
  }
  const auto nmaxf = static_cast<float>(nmax);
  const auto level = [&](float iscale, int i) { return std::clamp(round_int(iscale * x[i]), -nmax, nmax - 1); };
  const auto sums = [&](float iscale, float& sumlx, float& suml2) {
    sumlx = suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const auto l = static_cast<float>(level(iscale, i));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
  };
  const auto set_levels = [&](float iscale) {
    for (int i = 0; i < n; ++i) levels[i] = static_cast<uint8_t>(level(iscale, i) + nmax);
  };
  float iscale = -nmaxf / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  sums(iscale, sumlx, suml2);
  set_levels(iscale);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  // Minimising sum w (x - s*l)^2 over s leaves an error of sum w x^2 - sumlx^2/suml2, so
  // the best grid is the one with the largest sumlx^2/suml2 (= scale*sumlx).
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmaxf + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, sumlx, suml2);
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      set_levels(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q6_k_block(const float* x, uint8_t* out) {
  constexpr int kSub = 16;
  constexpr int kNSub = 16;
  std::array<uint8_t, kSuperBlock> levels{};  // 0..63, i.e. q + 32
  std::array<float, kNSub> scales{};
  float max_scale = 0.0f, max_abs_scale = 0.0f;
  for (int j = 0; j < kNSub; ++j) {
    const float s = fit_symmetric(x + j * kSub, kSub, 32, levels.data() + j * kSub);
    scales[static_cast<size_t>(j)] = s;
    if (std::fabs(s) > max_abs_scale) {
      max_abs_scale = std::fabs(s);
      max_scale = s;
    }
  }
  if (max_abs_scale < kGroupMaxEps) {  // all (near) zero: an all-zero block decodes to 0
    std::memset(out, 0, kQ6KBytes);
    return;
  }

  // int8 sub-block scales: the largest-magnitude one becomes -128 (the scales' signs
  // follow the fits, whose largest value maps to the negative end).
  const float iscale = -128.0f / max_scale;
  auto* sc = reinterpret_cast<int8_t*>(out + 192);
  for (int j = 0; j < kNSub; ++j) {
    sc[j] = static_cast<int8_t>(std::clamp(round_int(iscale * scales[static_cast<size_t>(j)]), -128, 127));
  }
  store_f16(out + 208, 1.0f / iscale);

  // Requantize against the stored scales (fp16 d times the int8 sub-block scale).
  const float d = load_f16(out + 208);
  for (int j = 0; j < kNSub; ++j) {
    const float dj = d * static_cast<float>(sc[j]);
    if (dj == 0.0f) continue;  // decodes to zero whatever the levels
    for (int l = 0; l < kSub; ++l) {
      const int q = std::clamp(round_int(x[j * kSub + l] / dj), -32, 31);
      levels[static_cast<size_t>(j * kSub + l)] = static_cast<uint8_t>(q + 32);
    }
  }

  // Bit planes, per half of 128 values (see the header for the layout).
  for (size_t h = 0; h < 2; ++h) {
    uint8_t* ql = out + 64 * h;
    uint8_t* qh = out + 128 + 32 * h;
    const uint8_t* lv = levels.data() + 128 * h;
    for (size_t l = 0; l < 32; ++l) {
      const uint8_t q1 = lv[l], q2 = lv[l + 32], q3 = lv[l + 64], q4 = lv[l + 96];
      ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

void check_length(const char* type, size_t n) {
  if (n % kSuperBlock != 0) fail("{}: a row of {} values is not a multiple of {}", type, n, kSuperBlock);
}

}  // namespace

void quantize_row_q4_k(const float* src, uint8_t* dst, size_t n) {
  check_length("Q4_K", n);
  for (size_t b = 0; b < n / kSuperBlock; ++b) quantize_q4_k_block(src + b * kSuperBlock, dst + b * kQ4KBytes);
}

void quantize_row_q6_k(const float* src, uint8_t* dst, size_t n) {
  check_length("Q6_K", n);
  for (size_t b = 0; b < n / kSuperBlock; ++b) quantize_q6_k_block(src + b * kSuperBlock, dst + b * kQ6KBytes);
}

}  // namespace h2o
