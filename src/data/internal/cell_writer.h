// Group commit for one cell: callers enqueue writes; one thread applies whatever has queued (up
// to max_batch) in a single transaction and calls each write's callback. Writes are applied in
// enqueue order. A batch that failed with nothing applied (store::CellStore::Apply: any error
// but an unknown outcome) is applied again one write at a time, so that a write the cell
// refuses — possibly another tenant's — fails alone instead of failing its whole batch.
//
// A write that waited in the queue longer than kMaxQueueWait (by the injected clock) is not
// applied but answered kDeadlineExceeded: a write reaches its cell within that (plus the store's
// own statement timeout) or never, which is what lets cells forget a deleted object's tombstone
// after an hour (store.h, CellWrite; the `tombstone-purge` job).
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "store/store.h"

namespace custos::data::internal {

class CellWriter {
 public:
  static constexpr absl::Duration kMaxQueueWait = absl::Minutes(10);

  // `cell` and `clock` outlive the writer.
  CellWriter(store::CellStore& cell, size_t max_batch, const Clock& clock);
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
    absl::Time enqueued_at;
  };
  void Run();

  store::CellStore& cell_;
  const size_t max_batch_;
  const Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace custos::data::internal
