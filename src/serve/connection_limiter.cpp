#include "serve/connection_limiter.h"

namespace h2o::serve {

ConnectionLimiter::Verdict ConnectionLimiter::admit(const std::string& client) {
  std::lock_guard lock(mu_);
  if (open_ >= total_) {
    ++refused_;
    return Verdict::TooManyTotal;
  }
  int& n = by_client_[client];
  if (n >= per_client_) {
    ++refused_;
    return Verdict::TooManyFromClient;
  }
  ++n;
  ++open_;
  return Verdict::Admitted;
}

void ConnectionLimiter::release(const std::string& client) {
  std::lock_guard lock(mu_);
  auto it = by_client_.find(client);
  if (it == by_client_.end()) return;
  --open_;
  if (--it->second == 0) by_client_.erase(it);
}

int ConnectionLimiter::open() const {
  std::lock_guard lock(mu_);
  return open_;
}

int ConnectionLimiter::open_from(const std::string& client) const {
  std::lock_guard lock(mu_);
  auto it = by_client_.find(client);
  return it == by_client_.end() ? 0 : it->second;
}

uint64_t ConnectionLimiter::refused() const {
  std::lock_guard lock(mu_);
  return refused_;
}

}  // namespace h2o::serve
