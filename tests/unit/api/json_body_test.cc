#include "api/internal/json_body.h"
#include "gtest/gtest.h"

namespace custos::api::internal {
namespace {

TEST(JsonBody, RefusesMalformedNonObjectAndUnknownFields) {
  EXPECT_FALSE(JsonBody::Parse("{", {"a"}).ok());
  EXPECT_FALSE(JsonBody::Parse("[1]", {"a"}).ok());
  EXPECT_FALSE(JsonBody::Parse("", {"a"}).ok());
  auto unknown = JsonBody::Parse(R"({"a":1,"b":2})", {"a"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(std::string(unknown.status().message()).find("'b'"), std::string::npos);
}

TEST(JsonBody, ChecksTypesAndRanges) {
  auto b = JsonBody::Parse(R"({"s":5,"b":"yes","n":1.5,"l":["x",1],"big":99,"nul":null})",
                           {"s", "b", "n", "l", "big", "nul"});
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->String("s").ok());
  EXPECT_FALSE(b->Bool("b", false).ok());
  EXPECT_FALSE(b->Int("n", 0, 0, 10).ok());
  EXPECT_FALSE(b->StringList("l").ok());
  EXPECT_FALSE(b->Int("big", 0, 0, 10).ok());
  // null reads as absent: the default, and "missing" for required fields.
  EXPECT_EQ(*b->Int("nul", 7, 0, 10), 7);
  EXPECT_FALSE(b->String("nul").ok());
}

TEST(JsonBody, SingleStringReadsAsOneElementListWhenAllowed) {
  auto b = JsonBody::Parse(R"({"c":"US"})", {"c"});
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->StringList("c").ok());
  EXPECT_EQ(*b->StringList("c", true), std::vector<std::string>{"US"});
}

}  // namespace
}  // namespace custos::api::internal
