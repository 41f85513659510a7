// The searches ggml's reference quantizers run to pick a block's scale (ggml-quants.c:
// make_qkx2_quants, make_qx_quants, make_q3_quants, quantize_row_iq4_nl_impl), shared by
// the encoders in format/types/. Written afresh from their description; each keeps ggml's
// order of float operations, so that an encoder writes the bytes llama-quantize writes
// (without an importance matrix).
#pragma once

#include <cstddef>
#include <cstdint>

namespace h2o {

// Values whose group's largest magnitude is below this are treated as all zero (ggml's
// GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even: what ggml's nearest_int computes with its float trick.
int nearest_int(float v);

// An affine fit x ≈ scale*L - offset, L in [0, nmax], offset >= 0 (make_qkx2_quants):
// start from the grid spanning [min(x, 0), max(x)], then try nstep+1 grids of
// (nmax + rmin + rdelta*i) steps over that span, refitting scale and offset by weighted
// least squares for each, and keep whichever has the smallest weighted error (squared, or
// absolute with `abs_error`). Writes the levels to L; returns the scale, offset in *offset.
float fit_affine(const float* x, const float* w, int n, int nmax, float rmin, float rdelta, int nstep, bool abs_error,
                 uint8_t* L, float* offset);

// A symmetric fit x ≈ scale*l, l in [-nmax, nmax-1] with x² weights (make_qx_quants,
// rmse_type 1): the largest-magnitude value maps to -nmax, then grids of nmax ± 0.1·i
// steps are tried and the least-squares scale of the best kept. L gets l + nmax.
float fit_symmetric(const float* x, int n, int nmax, uint8_t* L);

// Q3_K's symmetric fit (make_q3_quants with rmse): from the -nmax grid, levels are moved
// one at a time while that raises sumlx²/suml2 (up to five passes). L gets l + nmax.
float fit_q3(const float* x, int n, int nmax, uint8_t* L);

// The level of kIq4Values nearest to x (ties to the lower one), ggml's best_index_int8.
int iq4_index(float x);

// The IQ4_NL / IQ4_XS search (quantize_row_iq4_nl_impl without an importance matrix) over
// `n` values in blocks of 32: each block's scale by trying `ntry` grids either side of
// the largest value, then (n > 32) 6-bit block scales of one fp16 super-scale. Writes the
// fp16 bits of d, the packed 4-bit indices q4[n / 2] (value j and j + 16 of each block of
// 32 in one byte), and for n > 32 the 6-bit block scales (ls - 32 in [-32, 31]) into ls.
void quantize_iq4(const float* x, int n, int ntry, uint16_t* d, uint8_t* q4, int8_t* ls);

}  // namespace h2o

namespace h2o {

// The common part of ggml's Q4_K and Q5_K reference quantizers for one super-block of 256
// values: per sub-block of 32 an affine fit (fit_affine, weights rms + |x|, nmax levels,
// trial grids rmin + 0.1·i for i <= nstep), scales and mins as 6-bit multiples of fp16
// d = max scale / 63 and dmin = max min / 63, then every value requantized to the nearest
// level of the grid as stored. Writes d, dmin and the 12 packed scale bytes to head[16]
// (the blocks' first 16 bytes) and the levels (0..nmax) to L[256].
void quantize_affine_k(const float* x, int nmax, float rmin, int nstep, uint8_t* head, uint8_t* L);

}  // namespace h2o
