#include "base/strings.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace custos {
namespace {

TEST(StrCat, RendersEachPieceAsFmtDoes) {
  const std::string s = "str";
  const std::string_view nul("\0", 1);
  EXPECT_EQ(StrCat("a", s, std::string_view("v"), nul, 'c', true, -7,
                   uint64_t{18446744073709551615u}, int64_t{INT64_MIN}, 1.5),
            std::string("astrv\0ctrue-718446744073709551615-92233720368547758081.5", 56));
  EXPECT_EQ(StrCat(absl::InvalidArgumentError("bad").message()), "bad");
  EXPECT_EQ(StrCat(), "");
}

}  // namespace
}  // namespace custos
