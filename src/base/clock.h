// Time seams. Everything a promise dates (expiry, retention, TOTP steps, report periods) reads a
// Clock passed in; internal pacing (batch deadlines, timeouts) uses std::chrono::steady_clock.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace custos {

class Clock {
 public:
  virtual ~Clock() = default;
  // Thread-safe.
  virtual absl::Time Now() const = 0;
};

// The wall clock.
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

// Real time plus an offset that tests move forward (`custos serve --fake-clock`).
// Thread-safe. Never goes backwards: Advance() rejects negative steps at the caller.
class OffsetClock final : public Clock {
 public:
  absl::Time Now() const override {
    return absl::Now() + absl::Seconds(offset_seconds_.load(std::memory_order_acquire));
  }
  void Advance(int64_t seconds) { offset_seconds_.fetch_add(seconds, std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> offset_seconds_{0};
};

}  // namespace custos
