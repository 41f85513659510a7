// Error type used across the library. Every failure that a user can cause (bad file,
// bad flag, bad request) is reported as an h2o::Error with a one-line message that
// names the problem; front ends print it and exit non-zero (or answer HTTP 4xx).
#pragma once

#include <stdexcept>
#include <string>

namespace h2o {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The request was valid but there is no room for it now (queue or sequence limit):
// servers answer 429/503 instead of 400.
class BusyError : public Error {
 public:
  using Error::Error;
};

}  // namespace h2o
