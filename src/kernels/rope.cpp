#include "kernels/rope.h"

#include <cmath>

namespace h2o {

// powf, cosf and sinf in float, as llama2.c's run.c computes them (the stories260K golden).
void rope(float* x, int n_heads, int head_dim, int rope_dim, int pos, float base, RopeStyle style) {
  const int half = rope_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<long>(h) * head_dim;
    for (int i = 0; i < rope_dim; i += 2) {
      const float freq = 1.0f / powf(base, static_cast<float>(i) / static_cast<float>(rope_dim));
      const float angle = static_cast<float>(pos) * freq;
      const float c = cosf(angle), s = sinf(angle);
      // NORMAL pairs adjacent values; NEOX pairs value i/2 with i/2 + rope_dim/2.
      const int a = style == RopeStyle::Normal ? i : i / 2;
      const int b = style == RopeStyle::Normal ? i + 1 : i / 2 + half;
      const float v0 = v[a], v1 = v[b];
      v[a] = v0 * c - v1 * s;
      v[b] = v0 * s + v1 * c;
    }
  }
}

}  // namespace h2o
