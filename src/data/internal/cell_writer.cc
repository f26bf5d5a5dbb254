#include "data/internal/cell_writer.h"

#include <span>
#include <vector>

namespace custos::data::internal {

CellWriter::CellWriter(store::CellStore& cell, size_t max_batch)
    : cell_(cell), max_batch_(max_batch), thread_([this] { Run(); }) {}

CellWriter::~CellWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void CellWriter::EnqueueAsync(store::CellWrite write, Callback done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({std::move(write), std::move(done)});
  }
  cv_.notify_one();
}

void CellWriter::Run() {
  std::vector<Pending> batch;
  std::vector<store::CellWrite> writes;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    writes.clear();
    for (Pending& p : batch) writes.push_back(std::move(p.write));
    absl::StatusOr<std::vector<store::CellWriteResult>> results = cell_.Apply(writes);
    if (!results.ok() && writes.size() > 1 && !store::MayHaveApplied(results.status())) {
      for (size_t i = 0; i < batch.size(); ++i) {
        auto one = cell_.Apply(std::span(writes).subspan(i, 1));
        std::move(batch[i].done)(one.ok() ? Result(one->front()) : Result(one.status()));
      }
    } else {
      for (size_t i = 0; i < batch.size(); ++i) {
        Result r = results.ok() ? Result((*results)[i]) : Result(results.status());
        std::move(batch[i].done)(std::move(r));
      }
    }
    batch.clear();
  }
}

}  // namespace custos::data::internal
