// Small helpers for throwing h2o::Error with formatted messages.
#pragma once

#include <fmt/format.h>

#include "common/error.h"

namespace h2o {

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace h2o
