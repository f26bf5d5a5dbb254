#include "gtest/gtest.h"
#include "http/http.h"

namespace custos::http {
namespace {

TEST(ParseListenAddress, TakesIpv4AndBracketedIpv6WithDecimalPorts) {
  EXPECT_EQ(*ParseListenAddress("127.0.0.1:8080"),
            std::make_pair(std::string("127.0.0.1"), uint16_t{8080}));
  EXPECT_EQ(*ParseListenAddress("0.0.0.0:0"), std::make_pair(std::string("0.0.0.0"), uint16_t{0}));
  EXPECT_EQ(*ParseListenAddress("[::1]:65535"),
            std::make_pair(std::string("::1"), uint16_t{65535}));
}

TEST(ParseListenAddress, RefusesWhatIsNotExactlyHostColonPort) {
  for (const char* bad :
       {"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:+80", "127.0.0.1: 80", "127.0.0.1:80 ",
        "127.0.0.1:-1", "127.0.0.1:65536", "127.0.0.1:000080", "::1:8080", "[::1]",
        "[127.0.0.1]:80", "localhost:80", ":80", "[::1:80"}) {
    EXPECT_EQ(ParseListenAddress(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace custos::http
