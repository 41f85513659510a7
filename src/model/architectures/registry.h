// One accessor per architecture file; registry.cpp lists them. Adding an architecture is
// one file in this folder plus one line here and one in registry.cpp.
#pragma once

#include "model/architecture.h"

namespace h2o {

const Architecture& llama_architecture();    // llama.cpp
const Architecture& qwen2_architecture();    // qwen2.cpp
const Architecture& gptneox_architecture();  // gptneox.cpp
const Architecture& opt_architecture();      // opt.cpp

}  // namespace h2o
