#include "model/convert.h"

#include <fmt/format.h>

#include <filesystem>
#include <vector>

#include "common/check.h"
#include "common/thread_pool.h"
#include "format/gguf.h"
#include "model/architecture.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace h2o {
namespace {

// One tensor of the output: its GGUF name, shape, type and where its values come from.
struct OutTensor {
  std::string name;
  int64_t rows = 1, cols = 0;
  TensorType type = TensorType::F32;
  const Matrix* matrix = nullptr;  // rows decoded one by one
  const float* vector = nullptr;   // [cols]
};

// llama.cpp's general.file_type of a file whose matrices are all `t` (llama_ftype).
uint32_t file_type_of(TensorType t) {
  switch (t) {
    case TensorType::F32: return 0;
    case TensorType::F16: return 1;
    case TensorType::Q4_0: return 2;
    case TensorType::Q8_0: return 7;
    case TensorType::BF16: return 32;
    default: return 0;
  }
}

}  // namespace

ConvertResult convert_to_gguf(const ConvertOptions& opts, const std::function<void(uint64_t, uint64_t)>& progress) {
  if (opts.output.empty()) fail("convert: no output file given (-o)");
  const auto model = Model::load({opts.input, opts.tokenizer_path});
  const Architecture& arch = model->architecture();
  const ModelConfig& c = model->config();
  const ModelWeights& w = model->weights();
  const size_t block = traits(opts.type).block_elems;

  std::vector<OutTensor> plan;
  for_each_tensor(arch, c, [&](const TensorRef& r) {
    const Matrix& m = r.per_layer ? w.layers[static_cast<size_t>(r.layer)].mat(r.layer_role) : w.mat(r.model_role);
    const float* v = r.per_layer ? w.layers[static_cast<size_t>(r.layer)].vec(r.layer_role) : w.vec(r.model_role);
    OutTensor t{r.gguf_name, r.shape.rows, r.shape.cols};
    if (!r.per_layer && r.model_role == ModelRole::Output && m.data == w.mat(ModelRole::TokenEmbd).data) return;  // tied
    if (!r.per_layer && r.model_role == ModelRole::RopeFreqs && !v && !c.rope_factors.empty()) v = c.rope_factors.data();
    if (r.kind == TensorKind::Matrix && m.data) {
      t.matrix = &m;
      t.type = opts.type;
      if (t.cols % static_cast<int64_t>(block) != 0)
        fail("convert: {} has rows of {} values, not a multiple of the {} block size {}", t.name, t.cols,
             traits(opts.type).name, block);
    } else if (r.kind == TensorKind::Vector && v) {
      t.vector = v;
    } else {
      return;  // absent optional tensor
    }
    plan.push_back(std::move(t));
  });

  GgufWriter out;
  out.set_string("general.architecture", std::string(arch.name));
  out.set_string("general.name", std::filesystem::path(opts.input).filename().string());
  out.set_u32("general.file_type", file_type_of(opts.type));
  arch.write_gguf(c, out);
  write_vocabulary_gguf(model->tokenizer().vocabulary(), out, static_cast<size_t>(c.vocab_size));

  ConvertResult res;
  res.arch = std::string(arch.name);
  res.n_tensors = plan.size();
  uint64_t total = 0;
  for (const OutTensor& t : plan) {
    std::vector<uint64_t> ne{static_cast<uint64_t>(t.cols)};
    if (t.matrix) ne.push_back(static_cast<uint64_t>(t.rows));
    out.declare_tensor(t.name, ne, t.type);
    total += row_bytes(t.type, static_cast<size_t>(t.cols)) * static_cast<uint64_t>(t.rows);
  }
  ThreadPool pool(opts.threads);
  uint64_t done = 0;
  if (progress) progress(0, total);
  std::vector<uint8_t> chunk;
  out.write_streamed(opts.output, [&](size_t index, const GgufWriter::DataSink& sink) {
    const OutTensor& t = plan[index];
    const size_t cols = static_cast<size_t>(t.cols);
    if (t.vector) {
      sink(std::span(reinterpret_cast<const uint8_t*>(t.vector), cols * sizeof(float)));
      done += cols * sizeof(float);
      return;
    }
    const size_t rb = row_bytes(t.type, cols), rows = static_cast<size_t>(t.rows);
    const size_t per_chunk = std::max<size_t>(1, (size_t{1} << 20) / cols);
    for (size_t r0 = 0; r0 < rows; r0 += per_chunk) {
      const size_t n = std::min(per_chunk, rows - r0);
      chunk.resize(n * rb);
      pool.parallel_for(n, [&](size_t b, size_t e) {
        std::vector<float> row(cols);
        for (size_t r = b; r < e; ++r) {
          dequantize_row(t.matrix->type, t.matrix->row(static_cast<int>(r0 + r)), row.data(), cols);
          quantize_row(t.type, row.data(), chunk.data() + r * rb, cols);
        }
      });
      sink(chunk);
      done += chunk.size();
      if (progress) progress(done, total);
    }
  });
  std::error_code ec;
  const auto size = std::filesystem::file_size(opts.output, ec);
  res.file_bytes = ec ? 0 : static_cast<uint64_t>(size);
  return res;
}

}  // namespace h2o
