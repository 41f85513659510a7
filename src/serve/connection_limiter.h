// Admission of TCP connections by `h2o serve`: at most `total` open at once and at most
// `per_client` from one client address. Thread-safe; a refusal costs nothing but a
// counter, so a client that opens connections in a loop cannot make the server block or
// allocate.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace h2o::serve {

class ConnectionLimiter {
 public:
  enum class Verdict { Admitted, TooManyTotal, TooManyFromClient };

  ConnectionLimiter(int total, int per_client) : total_(total), per_client_(per_client) {}
  // Counts the connection in when admitted; every admitted one needs one release().
  Verdict admit(const std::string& client);
  void release(const std::string& client);

  int open() const;
  int open_from(const std::string& client) const;
  uint64_t refused() const;

 private:
  mutable std::mutex mu_;
  const int total_, per_client_;
  int open_ = 0;
  uint64_t refused_ = 0;
  std::unordered_map<std::string, int> by_client_;  // only clients with open connections
};

}  // namespace h2o::serve
