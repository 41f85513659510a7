// clang-format off
#include "common/strict_fp.h"  // first: encoders and references round as written
// clang-format on
#include "format/quantize_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "format/tensor_type.h"

namespace h2o {

int nearest_int(float v) { return static_cast<int>(std::lrint(v)); }

float fit_affine(const float* x, const float* w, int n, int nmax, float rmin, float rdelta, int nstep, bool abs_error,
                 uint8_t* L, float* offset) {
  float lo = x[0], hi = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0.0f) lo = 0.0f;
  if (hi == lo) {  // all zero, or constant <= 0: the offset alone represents it
    std::fill(L, L + n, uint8_t{0});
    *offset = -lo;
    return 0.0f;
  }
  const auto error_of = [&](float diff) { return abs_error ? std::fabs(diff) : diff * diff; };
  const auto level = [&](float iscale, int i) { return std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax); };
  float iscale = static_cast<float>(nmax) / (hi - lo);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(level(iscale, i));
    best_error += w[i] * error_of(scale * static_cast<float>(L[i]) + lo - x[i]);
  }
  uint8_t trial[32];  // n <= 32 (sub-blocks of 16 or 32)
  for (int is = 0; is <= nstep; ++is) {
    // `lo` is the best offset so far (as in ggml): later grids start from it.
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (hi - lo);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = level(iscale, i);
      trial[i] = static_cast<uint8_t>(l);
      const auto lf = static_cast<float>(l);
      sum_l += w[i] * lf;
      sum_l2 += w[i] * lf * lf;
      sum_xl += w[i] * lf * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0.0f)) continue;
    // Weighted least squares for x ≈ s*l + m with these levels.
    float s = (sum_w * sum_xl - sum_x * sum_l) / det;
    float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (m > 0.0f) {  // the offset may only lower the grid; refit the scale alone
      m = 0.0f;
      s = sum_xl / sum_l2;
    }
    float err = 0.0f;
    for (int i = 0; i < n; ++i) err += w[i] * error_of(s * static_cast<float>(trial[i]) + m - x[i]);
    if (err < best_error) {
      std::copy(trial, trial + n, L);
      best_error = err;
      scale = s;
      lo = m;
    }
  }
  *offset = -lo;
  return scale;
}

namespace {

// The largest-magnitude value of x[0..n) (the first of equals), and its magnitude.
float signed_max(const float* x, int n, float* amax) {
  float max = 0.0f;
  *amax = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > *amax) {
      *amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

}  // namespace

float fit_symmetric(const float* x, int n, int nmax, uint8_t* L) {
  float amax = 0.0f;
  const float max = signed_max(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, uint8_t{0});
    return 0.0f;
  }
  const auto level = [&](float iscale, int i) { return std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1); };
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
    for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(level(iscale, i) + nmax);
  };
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  sums(iscale, sumlx, suml2);
  set_levels(iscale);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  // Minimising sum w (x - s*l)^2 over s leaves an error of sum w x^2 - sumlx^2/suml2, so
  // the best grid is the one with the largest sumlx^2/suml2 (= scale*sumlx).
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, sumlx, suml2);
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      set_levels(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

float fit_q3(const float* x, int n, int nmax, uint8_t* L) {
  float amax = 0.0f;
  const float max = signed_max(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, uint8_t{0});
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  int l[32];  // n <= 32
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    l[i] = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l[i]);
    suml2 += w * static_cast<float>(l[i]) * static_cast<float>(l[i]);
  }
  // Move one level at a time to its least-squares value given the others, while that
  // raises sumlx^2 / suml2 (the error's reduction).
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const auto li = static_cast<float>(l[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx > 0.0f) {
        float sl2 = suml2 - w * li * li;
        const int new_l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != l[i]) {
          const auto nl = static_cast<float>(new_l);
          slx += w * x[i] * nl;
          sl2 += w * nl * nl;
          if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
            l[i] = new_l;
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(l[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

int iq4_index(float x) {
  const int8_t* v = kIq4Values;
  if (x <= static_cast<float>(v[0])) return 0;
  if (x >= static_cast<float>(v[15])) return 15;
  int lo = 0, hi = 15;  // v[lo] <= x < v[hi]: bisect
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < static_cast<float>(v[mid])) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return x - static_cast<float>(v[hi - 1]) < static_cast<float>(v[hi]) - x ? hi - 1 : hi;
}

void quantize_iq4(const float* x, int n, int ntry, uint16_t* d_out, uint8_t* q4, int8_t* ls) {
  constexpr int kBlock = 32;
  const int nb = n / kBlock;
  const auto v0 = static_cast<float>(kIq4Values[0]);
  uint8_t L[256] = {};  // n <= 256
  float scales[8] = {};
  float max_scale = 0.0f, amax_scale = 0.0f;
  for (int ib = 0; ib < nb; ++ib) {
    const float* xb = x + ib * kBlock;
    uint8_t* Lb = L + ib * kBlock;
    float amax = 0.0f;
    const float max = signed_max(xb, kBlock, &amax);
    if (amax < kGroupMaxEps) {
      scales[ib] = 0.0f;
      continue;
    }
    // Weighted (x²) least squares of the scale for the levels nearest x / d.
    const auto fit = [&](float id, float& sumqx, float& sumq2, bool keep) {
      sumqx = sumq2 = 0.0f;
      for (int j = 0; j < kBlock; ++j) {
        const int l = iq4_index(id * xb[j]);
        if (keep) Lb[j] = static_cast<uint8_t>(l);
        const auto q = static_cast<float>(kIq4Values[l]);
        const float w = xb[j] * xb[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
      }
    };
    float d = ntry > 0 ? -max / v0 : max / v0;
    float sumqx = 0.0f, sumq2 = 0.0f;
    fit(1.0f / d, sumqx, sumq2, true);
    d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      fit(static_cast<float>(itry + kIq4Values[0]) / max, sumqx, sumq2, false);
      if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    if (std::fabs(d) > amax_scale) {
      amax_scale = std::fabs(d);
      max_scale = d;
    }
  }
  if (nb > 1) {
    // 6-bit block scales of one super-scale d = -max/32 (requantized against the
    // unrounded d, as ggml does).
    const float d = -max_scale / 32.0f;
    *d_out = fp32_to_fp16(d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int ib = 0; ib < nb; ++ib) {
      const int l = std::clamp(nearest_int(id * scales[ib]), -32, 31);
      const float dl = d * static_cast<float>(l);
      const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
      for (int j = 0; j < kBlock; ++j) L[ib * kBlock + j] = static_cast<uint8_t>(iq4_index(idl * x[ib * kBlock + j]));
      ls[ib] = static_cast<int8_t>(l);
    }
  } else {
    *d_out = fp32_to_fp16(scales[0]);
    if (ntry > 0) {
      const float id = scales[0] != 0.0f ? 1.0f / scales[0] : 0.0f;
      for (int j = 0; j < n; ++j) L[j] = static_cast<uint8_t>(iq4_index(id * x[j]));
    }
  }
  for (int ib = 0; ib < nb; ++ib) {
    for (int j = 0; j < 16; ++j) {
      q4[16 * ib + j] = static_cast<uint8_t>(L[kBlock * ib + j] | (L[kBlock * ib + 16 + j] << 4));
    }
  }
}

}  // namespace h2o

namespace h2o {

void quantize_affine_k(const float* x, int nmax, float rmin, int nstep, uint8_t* head, uint8_t* L) {
  float scales[8], mins[8];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    // ggml's weighting: each value counts by its magnitude plus the sub-block's RMS.
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float rms = std::sqrt(sum_x2 / 32.0f);
    float w[32];
    for (int l = 0; l < 32; ++l) w[l] = rms + std::fabs(xs[l]);
    scales[j] = fit_affine(xs, w, 32, nmax, rmin, 0.1f, nstep, false, L + 32 * j, &mins[j]);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  // 6-bit multiples of d and dmin (ggml stores nearest_int as uint8_t, then caps at 63).
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  uint8_t* s = head + 4;
  std::memset(s, 0, 12);
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      s[j] = ls;
      s[j + 4] = lm;
    } else {
      s[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((ls >> 4) << 6));
      s[j] = static_cast<uint8_t>(s[j] | ((lm >> 4) << 6));
    }
  }
  const uint16_t d16 = fp32_to_fp16(max_scale / 63.0f), dmin16 = fp32_to_fp16(max_min / 63.0f);
  head[0] = static_cast<uint8_t>(d16 & 0xFF);
  head[1] = static_cast<uint8_t>(d16 >> 8);
  head[2] = static_cast<uint8_t>(dmin16 & 0xFF);
  head[3] = static_cast<uint8_t>(dmin16 >> 8);
  // Requantize against the scales as the decoder will see them.
  const float d = fp16_to_fp32(d16), dmin = fp16_to_fp32(dmin16);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc = 0, m = 0;
    q4_k_scale_min(j, s, &sc, &m);
    const float dj = d * static_cast<float>(sc);
    if (dj == 0.0f) continue;  // every level decodes to -dm: keep the fit's levels
    const float dm = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) L[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + dm) / dj), 0, nmax));
  }
}

}  // namespace h2o
