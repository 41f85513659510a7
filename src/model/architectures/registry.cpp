#include "model/architectures/registry.h"

namespace h2o {

const std::vector<const Architecture*>& architectures() {
  static const std::vector<const Architecture*> all{
      &llama_architecture(),
      &qwen2_architecture(),
      &gptneox_architecture(),
      &opt_architecture(),
  };
  return all;
}

}  // namespace h2o
