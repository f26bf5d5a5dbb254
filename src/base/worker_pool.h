// A fixed set of threads running submitted jobs in order of submission. The HTTP server runs
// its handlers on one (blocking store and key work, so that I/O threads never wait on disk);
// the ledger runs the callbacks of asynchronous appends on another.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace custos {

class WorkerPool {
 public:
  using Job = absl::AnyInvocable<void() &&>;

  // `max_queue` bounds TrySubmit only.
  explicit WorkerPool(int threads, size_t max_queue = std::numeric_limits<size_t>::max());
  ~WorkerPool();  // runs what is queued, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False (and `job` dropped) when the queue is full or the pool is stopping: the HTTP server
  // then answers 503 Retry-After.
  bool TrySubmit(Job job);
  // Queues all of `jobs` whatever the queue's length, under one lock, waking no more threads
  // than there are jobs: a batch of work handed over costs one hand-off, not one per job.
  void SubmitAll(std::vector<Job> jobs);

 private:
  void Run();
  const size_t max_queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace custos
