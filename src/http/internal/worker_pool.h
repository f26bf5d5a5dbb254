// A fixed set of threads running submitted jobs from a bounded queue. Blocking store and key
// work runs here so that I/O threads never wait on disk.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace custos::http::internal {

class WorkerPool {
 public:
  WorkerPool(int threads, size_t max_queue);
  ~WorkerPool();  // runs what is queued, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False (and `job` dropped) when the queue is full: the caller answers 503 Retry-After.
  bool TrySubmit(std::function<void()> job);

 private:
  void Run();
  const size_t max_queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace custos::http::internal
