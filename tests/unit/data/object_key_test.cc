#include <string>

#include "data/data.h"
#include "gtest/gtest.h"

namespace custos::data {
namespace {

TEST(ValidateObjectKey, AcceptsOrdinaryKeys) {
  for (std::string key :
       std::vector<std::string>{"a", "a/b/c.txt", "reports/2026 Q3.pdf", "ünïcødé/文件",
                                "a.b/..c/d..", std::string(1024, 'x')}) {
    EXPECT_TRUE(ValidateObjectKey(key).ok()) << key;
  }
}

TEST(ValidateObjectKey, RefusesTraversalEmptySegmentsAndControlCharacters) {
  const std::string kBad[] = {"",
                              "..",
                              ".",
                              "a/../b",
                              "../a",
                              "a/..",
                              "a//b",
                              "/a",
                              "a/",
                              "a/./b",
                              std::string("a\0b", 3),
                              "a\nb",
                              "a\x7f"
                              "b",
                              "a\x01",
                              "a\xc2\x85"
                              "b",  // U+0085 NEL, a C1 control
                              "\xc2\x9f",
                              std::string(1025, 'x')};
  for (const std::string& key : kBad) {
    absl::Status s = ValidateObjectKey(key);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "key of size " << key.size();
  }
}

TEST(ValidateObjectKey, RefusesInvalidUtf8) {
  for (std::string key : std::vector<std::string>{
           "\xff", "a\xc0\xaf", "\xed\xa0\x80" /* surrogate */,
           "\xf4\x90\x80\x80" /* above U+10FFFF */, "\xe2\x82" /* truncated */}) {
    EXPECT_EQ(ValidateObjectKey(key).code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace custos::data
