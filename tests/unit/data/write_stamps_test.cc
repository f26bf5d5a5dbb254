#include "data/internal/write_stamps.h"

#include "gtest/gtest.h"

namespace custos::data::internal {
namespace {

TEST(WriteStamps, FollowTheClockAndNameTheInstance) {
  WriteStamps stamps(0x2a5);
  const absl::Time t = absl::FromUnixMicros(1'800'000'000'000'000);
  const int64_t s = stamps.Next(t);
  EXPECT_EQ(s >> WriteStamps::kInstanceBits, 1'800'000'000'000'000);
  EXPECT_EQ(s & 0x3ff, 0x2a5);
  EXPECT_EQ(stamps.Next(t + absl::Seconds(1)) >> WriteStamps::kInstanceBits, 1'800'000'001'000'000);
  // Only the low bits name the instance.
  EXPECT_EQ(WriteStamps(0xfc01).Next(t) & 0x3ff, 1);
}

TEST(WriteStamps, NeverRepeatOrGoBack) {
  WriteStamps stamps(7);
  const absl::Time t = absl::FromUnixMicros(1'800'000'000'000'000);
  int64_t last = stamps.Next(t);
  for (absl::Time now : {t, t - absl::Hours(1), t - absl::Microseconds(1), t}) {
    const int64_t s = stamps.Next(now);
    EXPECT_GT(s, last);
    EXPECT_EQ(s & 0x3ff, 7);
    last = s;
  }
}

// Shown another instance's later stamp (same microsecond or an hour ahead), the next stamp is
// above it, even from a clock that is behind.
TEST(WriteStamps, MovePastAStampTheyAreShown) {
  const absl::Time t = absl::FromUnixMicros(1'800'000'000'000'000);
  WriteStamps ahead(1000), behind(3);
  for (absl::Duration lead : {absl::ZeroDuration(), absl::Hours(1)}) {
    const int64_t theirs = ahead.Next(t + lead);
    behind.Observe(theirs);
    EXPECT_GT(behind.Next(t), theirs);
  }
  // A lower stamp shown changes nothing.
  const int64_t before = behind.Next(t);
  behind.Observe(1);
  EXPECT_GT(behind.Next(t), before);
}

}  // namespace
}  // namespace custos::data::internal
