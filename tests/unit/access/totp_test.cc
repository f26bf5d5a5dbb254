// TOTP: RFC 6238 vectors (SHA-1, truncated to 6 digits), the ±1 step window, replay protection,
// base32, and the enrolment QR code.
#include "access/totp.h"

#include "base/errors.h"
#include "gtest/gtest.h"

namespace custos::access {
namespace {

const std::string kRfcSecret = "12345678901234567890";

TEST(Totp, Rfc6238Sha1Vectors) {
  // RFC 6238 Appendix B (SHA-1), 8-digit values; 6-digit codes are their last 6 digits.
  struct Case {
    int64_t time;
    const char* code8;
  } cases[] = {{59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
               {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"}};
  for (const auto& c : cases) {
    EXPECT_EQ(TotpCode(kRfcSecret, c.time / 30), std::string(c.code8).substr(2)) << c.time;
  }
}

TEST(Totp, WindowIsOneStepEitherSide) {
  const int64_t now = 1234567890;
  const int64_t step = now / 30;
  for (int64_t d : {-1, 0, 1}) {
    auto got = VerifyTotp(kRfcSecret, TotpCode(kRfcSecret, step + d), now, -1);
    ASSERT_TRUE(got.ok()) << d;
    EXPECT_EQ(*got, step + d);
  }
  for (int64_t d : {-2, 2}) {
    auto got = VerifyTotp(kRfcSecret, TotpCode(kRfcSecret, step + d), now, -1);
    EXPECT_TRUE(absl::IsPermissionDenied(got.status())) << d;
    EXPECT_EQ(ApiCodeOf(got.status()).value_or(""), "mfa_required");
  }
}

TEST(Totp, ReplayAndEarlierStepsAreRefused) {
  const int64_t now = 2000000000;
  const int64_t step = now / 30;
  std::string code = TotpCode(kRfcSecret, step);
  EXPECT_TRUE(VerifyTotp(kRfcSecret, code, now, step - 1).ok());
  EXPECT_FALSE(VerifyTotp(kRfcSecret, code, now, step).ok());  // the same step again
  // The previous step's code is still in the window but earlier than one used: refused.
  EXPECT_FALSE(VerifyTotp(kRfcSecret, TotpCode(kRfcSecret, step - 1), now, step).ok());
  EXPECT_TRUE(VerifyTotp(kRfcSecret, TotpCode(kRfcSecret, step + 1), now, step).ok());
}

TEST(Totp, MalformedCodesAreRefused) {
  for (const char* code : {"", "12345", "1234567", "12a456", " 12345"}) {
    EXPECT_TRUE(absl::IsPermissionDenied(VerifyTotp(kRfcSecret, code, 59, -1).status())) << code;
  }
}

TEST(Totp, Base32RoundTripsWithoutPadding) {
  EXPECT_EQ(Base32Encode(kRfcSecret), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  EXPECT_EQ(Base32Encode("f"), "MY");  // RFC 4648 vector, padding dropped
  EXPECT_EQ(Base32Encode("foobar"), "MZXW6YTBOI");
  EXPECT_EQ(*Base32Decode("MZXW6YTBOI======"), "foobar");
  EXPECT_EQ(*Base32Decode("mzxw6ytboi"), "foobar");
  EXPECT_FALSE(Base32Decode("MZ1W").ok());
}

TEST(Totp, OtpauthUriAndQrPng) {
  EXPECT_EQ(OtpauthUri("Ann Ops", "ABC"),
            "otpauth://totp/Custos:Ann%20Ops?secret=ABC&issuer=Custos");
  auto png = QrPng(OtpauthUri("a", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"));
  ASSERT_TRUE(png.ok());
  ASSERT_GT(png->size(), 8u);
  EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  auto text = QrTerminal("hello");
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("\u2588"), std::string::npos);
}

}  // namespace
}  // namespace custos::access
