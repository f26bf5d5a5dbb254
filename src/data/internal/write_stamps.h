// Stamps for store::CellWrite (store.h): the order in which every cell applies the writes of
// one object, whichever instance made them and whichever order they arrive in.
//
// A hybrid clock: the wall clock's microseconds shifted left by 10 bits, plus 10 bits naming
// this instance (ClaimWriteInstance in data.h: instances differ unless 1,024 started between
// them, and then only writes in the same microsecond can tie; docs/deploy.md). It never repeats or
// goes back (a stamp is above the last one made, even if the clock moved back), and it moves
// past any stamp it is shown: an instance that lost a race to a later stamp sends its write
// again above it. Good for 285 years from 1970. Not thread-safe: the caller serialises.
#pragma once

#include <algorithm>
#include <cstdint>

#include "absl/time/time.h"

namespace custos::data::internal {

class WriteStamps {
 public:
  static constexpr int kInstanceBits = 10;

  explicit WriteStamps(uint32_t instance) : instance_(instance & ((1 << kInstanceBits) - 1)) {}

  // A stamp above every stamp made or observed so far, from `now` when the clock is ahead.
  int64_t Next(absl::Time now) {
    int64_t ticks = std::max<int64_t>(absl::ToUnixMicros(now), 0);
    ticks = std::max(ticks, (last_ >> kInstanceBits) + 1);
    last_ = (ticks << kInstanceBits) | instance_;
    return last_;
  }

  // Makes the next stamp exceed `stamp`.
  void Observe(int64_t stamp) { last_ = std::max(last_, stamp); }

 private:
  int64_t instance_;
  int64_t last_ = 0;
};

}  // namespace custos::data::internal
