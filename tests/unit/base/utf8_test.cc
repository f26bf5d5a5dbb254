#include "base/utf8.h"

#include "gtest/gtest.h"

namespace custos {
namespace {

TEST(Utf8, ValidatesAsRfc3629) {
  for (std::string_view ok : {"", "abc", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                              "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_TRUE(IsValidUtf8(ok)) << ok;
  }
  for (std::string_view bad :
       {"\xff", "a\xfe", "\xc3", "\xc0\xaf" /* overlong */, "\xe0\x80\xaf" /* overlong */,
        "\xed\xa0\x80" /* surrogate */, "\xf4\x90\x80\x80" /* above U+10FFFF */,
        "\xe6\x97" /* truncated */, "\x80" /* lone continuation */}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
  }
}

TEST(Utf8, ReplacesEachByteThatStartsNoCharacter) {
  EXPECT_EQ(Utf8OrReplaced("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(Utf8OrReplaced("a\xff"
                           "b"),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(Utf8OrReplaced("\xe6\x97"), "\xef\xbf\xbd\xef\xbf\xbd");  // truncated: two bytes
  EXPECT_TRUE(IsValidUtf8(Utf8OrReplaced("\xed\xa0\x80\xc0\xaf\xf8")));
}

TEST(Utf8, FindsC0C1AndDeleteControls) {
  for (std::string_view plain : {"", "abc", "caf\xc3\xa9", "\xc2\xa0" /* U+00A0 */,
                                 "\xc2" /* a prefix cut inside a sequence */}) {
    EXPECT_FALSE(HasControlCharacter(plain)) << plain;
  }
  const std::string_view kControls[] = {std::string_view("\0", 1),
                                        "a\tb",
                                        "\x7f",
                                        "\xc2\x80",
                                        "x\xc2\x85"
                                        "y",
                                        "\xc2\x9f"};
  for (std::string_view control : kControls) {
    EXPECT_TRUE(HasControlCharacter(control)) << control;
  }
}

}  // namespace
}  // namespace custos
