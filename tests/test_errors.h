// Checks on user-facing errors: every failure a user can cause is an h2o::Error with a
// one-line message that names its source.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "common/error.h"

namespace h2o::test {

// The message of the h2o::Error that `f` throws, or "" if it returns normally.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// `msg` ("" meaning no error was thrown) is one line, starts with "<source>: " and contains
// `expected`. On success the message is attached for the test log.
inline ::testing::AssertionResult is_error(const std::string& msg, const std::string& source,
                                           const std::string& expected) {
  if (msg.empty()) return ::testing::AssertionFailure() << "no error";
  if (!msg.starts_with(source + ": ")) {
    return ::testing::AssertionFailure() << "message does not start with \"" << source << ": \": " << msg;
  }
  if (msg.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "message is not one line: " << msg;
  if (msg.find(expected) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks \"" << expected << "\": " << msg;
  }
  return ::testing::AssertionSuccess() << msg;
}

}  // namespace h2o::test
