// A thread-safe front for BatchEngine: any thread submits requests; one engine thread
// admits them from a bounded queue as room frees up, runs the steps, and hands each
// sequence's events to its callback. Used by `h2o serve` and `h2o batch`.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "runtime/batch_engine.h"

namespace h2o {

struct SchedulerOptions {
  BatchOptions batch;
  int max_queue = 64;  // requests waiting for a free sequence slot; submit() refuses more
};

struct SchedulerStats {
  BatchStats engine;
  int queued = 0;  // waiting for admission
  uint64_t submitted = 0;
  uint64_t completed = 0;  // finished normally (length, eos, context)
  uint64_t cancelled = 0;
  uint64_t failed = 0;
  uint64_t last_batch_rows = 0;  // sequences in the engine during the most recent step
};

// Called on the engine thread with each event of the request; the last one has
// finished = true (stop_reason "length", "eos", "context", "cancelled" or "error: ...").
// Must return quickly (push to a queue, write to a buffer); must not call the scheduler.
using SequenceCallback = std::function<void(const SequenceEvent&)>;

class BatchScheduler {
 public:
  // Starts the engine thread.
  BatchScheduler(std::shared_ptr<const Model> model, const SchedulerOptions& opts);
  // shutdown(false) and join.
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Validates the request now (throws h2o::Error naming the problem) and queues it.
  // Throws h2o::BusyError if the queue is full or the scheduler is shutting down.
  // Returns the request id (for cancel).
  uint64_t submit(SequenceRequest req, SequenceCallback on_event);
  // Cancels a queued or running request from any thread: its KV cache is freed before the
  // next step and its callback gets a final event with stop_reason "cancelled" (unless it
  // had already finished). Unknown ids are ignored.
  void cancel(uint64_t id);
  // Stops accepting requests. finish_in_flight: let queued and running requests complete;
  // otherwise cancel them. Returns when the engine thread has stopped.
  void shutdown(bool finish_in_flight);

  SchedulerStats stats() const;
  const Model& model() const { return *model_; }

 private:
  void run();

  struct Pending {
    uint64_t id;
    SequenceRequest req;
    SequenceCallback cb;
  };
  std::shared_ptr<const Model> model_;
  SchedulerOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::vector<uint64_t> cancel_requests_;
  std::unordered_map<uint64_t, uint64_t> engine_id_;  // request id -> engine id (running)
  struct Running {
    uint64_t request_id;
    SequenceCallback cb;
  };
  std::unordered_map<uint64_t, Running> callbacks_;  // by engine id
  uint64_t next_id_ = 1;
  bool stopping_ = false, finish_in_flight_ = false;
  SchedulerStats stats_;
  std::unique_ptr<BatchEngine> engine_;  // touched by the engine thread only (stats under mu_)
  std::thread thread_;
};

}  // namespace h2o
