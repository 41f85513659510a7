#include "runtime/batch_scheduler.h"

#include <algorithm>

#include "common/check.h"

namespace h2o {

BatchScheduler::BatchScheduler(std::shared_ptr<const Model> model, const SchedulerOptions& opts)
    : model_(std::move(model)), opts_(opts) {
  if (opts_.max_queue < 0) fail("queue length: must be >= 0, got {}", opts_.max_queue);
  engine_ = std::make_unique<BatchEngine>(model_, opts_.batch);
  thread_ = std::thread([this] { run(); });
}

BatchScheduler::~BatchScheduler() { shutdown(false); }

uint64_t BatchScheduler::submit(SequenceRequest req, SequenceCallback on_event) {
  validate_request(*model_, req);
  std::lock_guard lock(mu_);
  if (stopping_) throw BusyError("the server is shutting down");
  // Room: free sequence slots plus the waiting queue.
  const int free_slots = opts_.batch.max_sequences - stats_.engine.sequences;
  if (static_cast<int>(queue_.size()) >= opts_.max_queue + std::max(0, free_slots))
    throw BusyError(fmt::format("too many requests: {} waiting (queue limit {})", queue_.size(), opts_.max_queue));
  const uint64_t id = next_id_++;
  queue_.push_back(Pending{id, std::move(req), std::move(on_event)});
  ++stats_.submitted;
  stats_.queued = static_cast<int>(queue_.size());
  cv_.notify_one();
  return id;
}

void BatchScheduler::cancel(uint64_t id) {
  std::lock_guard lock(mu_);
  cancel_requests_.push_back(id);
  cv_.notify_one();
}

void BatchScheduler::shutdown(bool finish_in_flight) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      finish_in_flight_ = finish_in_flight;
    }
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

SchedulerStats BatchScheduler::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void BatchScheduler::run() {
  // Callbacks run outside the lock: collect (callback, event) pairs, then call them.
  struct Delivery {
    SequenceCallback cb;
    SequenceEvent event;
  };
  std::vector<Delivery> out;
  for (;;) {
    out.clear();
    bool stop_now = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !cancel_requests_.empty() || !engine_->empty(); });
      if (stopping_ && !finish_in_flight_) {
        // Cancel everything, queued and running.
        for (Pending& p : queue_) cancel_requests_.push_back(p.id);
        for (const auto& [rid, eid] : engine_id_) cancel_requests_.push_back(rid);
      }
      // Cancellations: queued requests leave the queue; running ones leave the engine.
      for (uint64_t rid : cancel_requests_) {
        auto q = std::find_if(queue_.begin(), queue_.end(), [rid](const Pending& p) { return p.id == rid; });
        if (q != queue_.end()) {
          out.push_back({std::move(q->cb), SequenceEvent::end(rid, "cancelled")});
          queue_.erase(q);
          ++stats_.cancelled;
          continue;
        }
        auto r = engine_id_.find(rid);
        if (r == engine_id_.end()) continue;  // finished already, or unknown
        engine_->cancel(r->second);
        auto cb = callbacks_.find(r->second);
        out.push_back({std::move(cb->second.cb), SequenceEvent::end(rid, "cancelled")});
        callbacks_.erase(cb);
        engine_id_.erase(r);
        ++stats_.cancelled;
      }
      cancel_requests_.clear();
      // Admission: fill free sequence slots from the queue, oldest first.
      while (!queue_.empty() && !engine_->full()) {
        Pending p = std::move(queue_.front());
        queue_.pop_front();
        try {
          const uint64_t eid = engine_->add(std::move(p.req));
          engine_id_[p.id] = eid;
          callbacks_[eid] = Running{p.id, std::move(p.cb)};
        } catch (const Error& e) {
          out.push_back({std::move(p.cb), SequenceEvent::end(p.id, std::string("error: ") + e.what())});
          ++stats_.failed;
        }
      }
      stats_.queued = static_cast<int>(queue_.size());
      stats_.engine = engine_->stats();
      stop_now = stopping_ && queue_.empty() && engine_->empty();
    }
    for (Delivery& d : out) d.cb(d.event);
    if (stop_now) return;
    if (engine_->empty()) continue;

    // The step runs without the lock: submit() and cancel() stay responsive meanwhile.
    std::vector<SequenceEvent> events;
    std::string error;
    const auto in_step = static_cast<uint64_t>(engine_->stats().sequences);
    try {
      events = engine_->step();
    } catch (const std::exception& e) {
      error = e.what();
    }
    out.clear();
    {
      std::lock_guard lock(mu_);
      if (!error.empty()) {
        // An engine failure ends every running sequence with the message; the engine stays usable.
        for (auto& [eid, running] : callbacks_) {
          engine_->cancel(eid);
          out.push_back({std::move(running.cb), SequenceEvent::end(running.request_id, "error: " + error)});
          engine_id_.erase(running.request_id);
          ++stats_.failed;
        }
        callbacks_.clear();
      }
      for (SequenceEvent& e : events) {
        auto it = callbacks_.find(e.id);
        if (it == callbacks_.end()) continue;
        e.id = it->second.request_id;
        if (e.finished) {
          out.push_back({std::move(it->second.cb), e});
          engine_id_.erase(it->second.request_id);
          callbacks_.erase(it);
          ++stats_.completed;
        } else {
          out.push_back({it->second.cb, e});
        }
      }
      stats_.last_batch_rows = in_step;
      stats_.engine = engine_->stats();
    }
    for (Delivery& d : out) d.cb(d.event);
  }
}

}  // namespace h2o
