#include "base/worker_pool.h"

namespace custos {

WorkerPool::WorkerPool(int threads, size_t max_queue) : max_queue_(max_queue) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool WorkerPool::TrySubmit(Job job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= max_queue_) return false;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void WorkerPool::SubmitAll(std::vector<Job> jobs) {
  const size_t n = jobs.size();
  {
    std::lock_guard lock(mu_);
    for (Job& job : jobs) queue_.push_back(std::move(job));
  }
  if (n >= threads_.size()) {
    cv_.notify_all();
  } else {
    for (size_t i = 0; i < n; ++i) cv_.notify_one();
  }
}

void WorkerPool::Run() {
  while (true) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(job)();
  }
}

}  // namespace custos
