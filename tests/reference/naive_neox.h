// GPT-NeoX (Pythia) from a GGUF file of architecture `gptneox`, read directly: LayerNorm
// with biases, a fused QKV projection (GGUF rows: all Q, all K, all V), partial NEOX RoPE,
// exact-erf GELU, the parallel residual (model-families.md §1.5, HF semantics).
#pragma once

#include <string>
#include <vector>

#include "reference/naive_model.h"

namespace h2o::ref {

class NaiveNeox : public NaiveModel {
 public:
  explicit NaiveNeox(const std::string& gguf_path);

  const NaiveConfig& config() const override { return cfg_; }
  std::vector<Vec> step(NaiveKvStore& store, std::span<const int32_t> tokens, int first_pos,
                        const Visibility& visible, std::vector<NaiveStepStats>* stats = nullptr,
                        const NaiveKvHooks* hooks = nullptr) const override;

 private:
  struct Layer {
    Vec ln1_w, ln1_b, wqkv, bqkv, wo, bo, ln2_w, ln2_b, w_up, b_up, w_down, b_down;
  };
  NaiveConfig cfg_;
  NaiveRope rope_;
  double eps_ = 1e-5;
  bool parallel_ = true;
  Vec embd_, out_w_, norm_w_, norm_b_;
  std::vector<Layer> layers_;
};

}  // namespace h2o::ref
