#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "bench.h"

namespace custos::bench {

std::string GetKey(uint64_t i) { return "obj/" + std::to_string(i); }

std::string PutKey(int thread, uint64_t n) {
  return "put/t" + std::to_string(thread) + "/" + std::to_string(n);
}

namespace {

struct alignas(64) ThreadCounters {
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> errors{0};
};

}  // namespace

TimedResult RunTimed(int threads, double warmup_seconds, double seconds,
                     const std::function<bool(int, uint64_t)>& op,
                     const std::function<void(bool)>& on_window) {
  using Clock = std::chrono::steady_clock;
  std::vector<ThreadCounters> counters(threads);
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (uint64_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
        if (op(t, n)) {
          counters[t].ops.fetch_add(1, std::memory_order_relaxed);
        } else {
          counters[t].errors.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  auto total = [&] {
    uint64_t sum = 0;
    for (auto& c : counters) sum += c.ops.load(std::memory_order_relaxed);
    return sum;
  };
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup_seconds));
  if (on_window) on_window(true);
  uint64_t start_ops = total();
  Clock::time_point start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  uint64_t end_ops = total();
  Clock::time_point end = Clock::now();
  if (on_window) on_window(false);
  stop = true;
  for (auto& w : workers) w.join();
  TimedResult r;
  r.ops = end_ops - start_ops;
  r.seconds = std::chrono::duration<double>(end - start).count();
  for (auto& c : counters) r.errors += c.errors.load();
  return r;
}

}  // namespace custos::bench
