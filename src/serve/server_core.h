// What the connections of one `h2o serve` share: the model, the engine's scheduler, the
// metrics, the connection limiter and the drain flag. Owned by HttpServer, which keeps it
// alive until every connection and every engine callback is gone.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "model/model.h"
#include "runtime/batch_scheduler.h"
#include "serve/connection_limiter.h"
#include "serve/metrics.h"
#include "serve/server_options.h"

namespace h2o::serve {

struct ServerCore {
  ServerCore(std::shared_ptr<const Model> m, ServerOptions o);

  std::shared_ptr<const Model> model;
  ServerOptions opts;
  int max_prompt_tokens = 0;  // opts.max_prompt_tokens bounded by the context
  std::unique_ptr<BatchScheduler> scheduler;
  Metrics metrics;
  ConnectionLimiter limiter;
  std::atomic<bool> draining{false};
  std::atomic<int> in_flight{0};  // completion requests accepted and not yet answered in full

  // Seeds for requests without one, and response ids.
  uint64_t next_random();

 private:
  uint64_t seed_base_ = 0;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace h2o::serve
