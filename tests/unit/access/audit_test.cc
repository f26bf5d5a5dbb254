// Sampled audits: periods, rates and the sampling PRF.
#include "access/audit.h"

#include "crypto/crypto.h"
#include "gtest/gtest.h"

namespace custos::access {
namespace {

TEST(Audit, Periods) {
  auto m = ParseAuditPeriod("2026-02");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->start, 1769904000);  // 2026-02-01T00:00:00Z
  EXPECT_EQ(m->end, 1772323200);    // 2026-03-01T00:00:00Z
  auto dec = ParseAuditPeriod("2026-12");
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec->end, 1798761600);  // 2027-01-01
  auto h2 = ParseAuditPeriod("2026H2");
  ASSERT_TRUE(h2.ok());
  EXPECT_EQ(h2->start, 1782864000);  // 2026-07-01
  EXPECT_EQ(h2->end, 1798761600);
  for (const char* bad : {"", "2026", "2026-13", "2026-00", "2026H3", "26-01", "2026-1", "x026H1",
                          "2026-01-01", "1969-12"}) {
    EXPECT_FALSE(ParseAuditPeriod(bad).ok()) << bad;
  }
}

TEST(Audit, Rates) {
  EXPECT_DOUBLE_EQ(*ParseSampleRate("0.25"), 0.25);
  EXPECT_DOUBLE_EQ(*ParseSampleRate("1"), 1.0);
  for (const char* bad : {"", "0", "1.5", "-0.1", "abc", "1e-3", "nan"}) {
    EXPECT_FALSE(ParseSampleRate(bad).ok()) << bad;
  }
}

TEST(Audit, SamplingIsTheHmacBelowTheThreshold) {
  const std::string seed(32, '\x07');
  int sampled_half = 0;
  for (int i = 0; i < 200; ++i) {
    std::string id = "grant-" + std::to_string(i);
    std::string h = crypto::HmacSha256(seed, id);
    // rate 0.5: sampled iff the top bit is clear.
    bool expect_half = (static_cast<unsigned char>(h[0]) & 0x80) == 0;
    EXPECT_EQ(IsSampled(seed, id, 0.5), expect_half) << id;
    // rate 1/256: sampled iff the first byte is zero.
    EXPECT_EQ(IsSampled(seed, id, 1.0 / 256), h[0] == 0) << id;
    EXPECT_TRUE(IsSampled(seed, id, 1.0));
    sampled_half += expect_half;
  }
  EXPECT_GT(sampled_half, 60);
  EXPECT_LT(sampled_half, 140);
  // Deterministic: another seed gives another sample.
  int differ = 0;
  for (int i = 0; i < 50; ++i) {
    std::string id = "g" + std::to_string(i);
    differ += IsSampled(seed, id, 0.5) != IsSampled(std::string(32, '\x08'), id, 0.5);
  }
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace custos::access
