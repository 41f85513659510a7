// `h2o quantize`: a GGUF file rewritten with its matrices in another type, chosen per
// tensor as llama.cpp's llama-quantize chooses (src/llama-quant.cpp, without an
// importance matrix; dense, non-Falcon models): a single type (`q4_0`, `q8_0`, ...) or one
// of its mixes (`q4_k_m`: mostly Q4_K, with Q6_K for the output, half the attn_v and
// ffn_down layers, ...), then the same fallback for rows that are not a multiple of the
// type's block (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0, IQ4_XS ->
// IQ4_NL, and F16 when even that does not divide the row). Metadata is copied, with
// general.file_type set to the mix's id and general.quantization_version to 2. The
// encoders are ggml's reference quantizers (format/types/), so that the bytes are those
// llama-quantize writes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "format/tensor_type.h"

namespace h2o {

class GgufFile;

// A target named like llama-quantize's: "Q4_K_M", "q4_k_m", "Q8_0", "F16", ...
struct QuantMix {
  std::string_view name;  // llama-quantize's name ("Q4_K_M")
  uint32_t ftype = 0;     // llama_ftype (general.file_type)
  TensorType base = TensorType::F32;
};
// Throws h2o::Error naming the known mixes.
const QuantMix& find_quant_mix(std::string_view name);
const std::vector<QuantMix>& quant_mixes();

struct TensorPlan {
  std::string name;
  std::vector<uint64_t> ne;
  TensorType from = TensorType::F32;
  TensorType to = TensorType::F32;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string note;  // why `to` differs from the mix's base type ("fallback: ...", "output")
};

struct QuantizePlan {
  QuantMix mix;
  std::vector<TensorPlan> tensors;  // in file order
  uint64_t bytes_in = 0, bytes_out = 0, n_elements = 0;
};

struct QuantizeOptions {
  bool pure = false;               // every quantizable tensor in the base type (llama-quantize --pure)
  bool allow_requantize = false;   // quantized inputs may be decoded and quantized again
};

// The per-tensor plan for a file. Throws h2o::Error for an unknown mix, or a quantized
// input without allow_requantize.
QuantizePlan plan_quantization(const GgufFile& in, std::string_view mix, const QuantizeOptions& opts = {});

// The plan as a table: one line per tensor, then the sizes.
std::string plan_to_text(const QuantizePlan& plan);

// Writes the quantized file (tensors encoded on `threads` threads; the bytes do not depend
// on it). Throws h2o::Error on I/O failure or a non-finite value in a tensor to encode;
// no partial file is left behind. `progress(done, total)` in tensor bytes written.
void write_quantized(const GgufFile& in, const QuantizePlan& plan, const std::string& path, int threads,
                     const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace h2o
