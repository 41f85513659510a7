// `--api-key` checking for `h2o serve`: the Authorization header must be exactly
// "Bearer KEY" (the scheme name in any case, as RFC 9110 allows, one space, then the key
// byte for byte). The comparison takes the same time wherever the first difference is.
#pragma once

#include <string_view>

namespace h2o::serve {

// Equal bytes and equal length, in time that depends only on the longer length.
bool constant_time_equal(std::string_view a, std::string_view b);

// Whether an Authorization field value carries `key`. Anything else is refused: another
// scheme, extra or missing spaces, a key with bytes before, after or inside it.
bool bearer_matches(std::string_view authorization, std::string_view key);

}  // namespace h2o::serve
