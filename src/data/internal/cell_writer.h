// Group commit for one cell: callers enqueue writes; one thread applies whatever has queued (up
// to max_batch) in a single transaction and completes each caller's future. Writes are applied in
// enqueue order.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "store/store.h"

namespace custos::data::internal {

class CellWriter {
 public:
  CellWriter(store::CellStore& cell, size_t max_batch);
  ~CellWriter();  // drains the queue, then stops the thread
  CellWriter(const CellWriter&) = delete;
  CellWriter& operator=(const CellWriter&) = delete;

  std::future<absl::StatusOr<store::CellWriteResult>> Enqueue(store::CellWrite write);

 private:
  struct Pending {
    store::CellWrite write;
    std::promise<absl::StatusOr<store::CellWriteResult>> done;
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
