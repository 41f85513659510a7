// OPT (OPTForCausalLM) from a Hugging Face directory, read directly (config.json and
// model.safetensors through a few lines of its own; nlohmann::json parses the header):
// learned positions at row p + 2, LayerNorm with biases, biases on every projection,
// q scaled by head_dim^-0.5 after its bias, ReLU, pre- or post-LayerNorm blocks,
// project_in/out, tied head (model-families.md §2.6, HF semantics).
#pragma once

#include <string>
#include <vector>

#include "reference/naive_model.h"

namespace h2o::ref {

class NaiveOpt : public NaiveModel {
 public:
  explicit NaiveOpt(const std::string& hf_dir);

  const NaiveConfig& config() const override { return cfg_; }
  std::vector<Vec> step(NaiveKvStore& store, std::span<const int32_t> tokens, int first_pos,
                        const Visibility& visible, std::vector<NaiveStepStats>* stats = nullptr,
                        const NaiveKvHooks* hooks = nullptr) const override;

 private:
  struct Layer {
    Vec ln1_w, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo, ln2_w, ln2_b, w1, b1, w2, b2;
  };
  NaiveConfig cfg_;
  int proj_dim_ = 0;  // word_embed_proj_dim
  bool pre_ln_ = true;
  NaiveRope rope_;  // n_rot 0: OPT has learned positions, no rotary embedding
  Vec embed_, pos_, project_in_, project_out_, final_w_, final_b_;
  std::vector<Layer> layers_;
};

}  // namespace h2o::ref
