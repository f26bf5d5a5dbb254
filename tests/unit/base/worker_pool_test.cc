#include "base/worker_pool.h"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace custos {
namespace {

TEST(WorkerPool, SubmitAllRunsEveryJobOnThePoolsThreads) {
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::atomic<int> ran{0};
  {
    WorkerPool pool(3);
    std::vector<WorkerPool::Job> jobs;
    for (int i = 0; i < 100; ++i) {
      jobs.push_back([&] {
        std::lock_guard lock(mu);
        threads.insert(std::this_thread::get_id());
        ran.fetch_add(1);
      });
    }
    pool.SubmitAll(std::move(jobs));
  }  // the destructor runs what is queued
  EXPECT_EQ(ran.load(), 100);
  EXPECT_FALSE(threads.contains(std::this_thread::get_id()));
  EXPECT_LE(threads.size(), 3u);
}

TEST(WorkerPool, SubmitAllWakesEnoughThreadsForFewerJobsThanThreads) {
  // Two jobs that each wait (up to 30 s) for the other to start: both see the other only if
  // two threads were woken for them.
  WorkerPool pool(4);
  std::atomic<int> started{0};
  std::atomic<int> met{0};
  std::vector<WorkerPool::Job> jobs;
  for (int i = 0; i < 2; ++i) {
    jobs.emplace_back([&] {
      started.fetch_add(1);
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (started.load() < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (started.load() == 2) met.fetch_add(1);
    });
  }
  pool.SubmitAll(std::move(jobs));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(65);
  while (started.load() + met.load() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(met.load(), 2);
}

TEST(WorkerPool, TrySubmitRefusesWhenTheQueueIsFull) {
  WorkerPool pool(1, /*max_queue=*/1);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  ASSERT_TRUE(pool.TrySubmit([&, released] {
    started.set_value();
    released.wait();
  }));
  started.get_future().wait();  // the only thread is busy; the queue is empty
  std::atomic<int> ran{0};
  EXPECT_TRUE(pool.TrySubmit([&] { ran.fetch_add(1); }));   // fills the queue
  EXPECT_FALSE(pool.TrySubmit([&] { ran.fetch_add(1); }));  // refused, dropped
  release.set_value();
  // Move-only jobs are fine (the ledger hands over callbacks that own their request).
  auto owned = std::make_unique<int>(7);
  std::promise<int> got;
  std::vector<WorkerPool::Job> jobs;
  jobs.push_back([owned = std::move(owned), &got] { got.set_value(*owned); });
  pool.SubmitAll(std::move(jobs));
  EXPECT_EQ(got.get_future().get(), 7);
  EXPECT_EQ(ran.load(), 1);
}

}  // namespace
}  // namespace custos
