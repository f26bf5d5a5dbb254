// Group commit for one cell: callers enqueue writes; one thread applies whatever has queued (up
// to max_batch) in a single transaction and calls each write's callback. Writes are applied in
// enqueue order. A batch that failed with nothing applied (store::CellStore::Apply: any error
// but an unknown outcome) is applied again one write at a time, so that a write the cell
// refuses — possibly another tenant's — fails alone instead of failing its whole batch.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "store/store.h"

namespace custos::data::internal {

class CellWriter {
 public:
  CellWriter(store::CellStore& cell, size_t max_batch);
  ~CellWriter();  // drains the queue, then stops the thread
  CellWriter(const CellWriter&) = delete;
  CellWriter& operator=(const CellWriter&) = delete;

  using Result = absl::StatusOr<store::CellWriteResult>;
  using Callback = absl::AnyInvocable<void(Result) &&>;

  // `done` runs on the writer's thread once the write's batch committed (or failed), before the
  // next batch starts, so it must be quick.
  void EnqueueAsync(store::CellWrite write, Callback done);

 private:
  struct Pending {
    store::CellWrite write;
    Callback done;
  };
  void Run();

  store::CellStore& cell_;
  const size_t max_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace custos::data::internal
