// C2SP tlog-checkpoint bodies: format, strict parse, and signing as a note.
#include "ledger/checkpoint.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "ledger/merkle.h"

namespace custos::ledger {
namespace {

TEST(LedgerCheckpoint, SpecExampleParses) {
  absl::StatusOr<Checkpoint> cp = ParseCheckpoint(
      "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ(cp->origin, "example.com/behind-the-sofa");
  EXPECT_EQ(cp->size, 20852163u);
  EXPECT_EQ(absl::Base64Escape(cp->root_hash), "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=");
  EXPECT_TRUE(cp->extensions.empty());
}

TEST(LedgerCheckpoint, FormatAndParseRoundTrip) {
  const Checkpoint empty{"custos.example/0a1b2c3d", 0, EmptyRoot(), {}};
  EXPECT_EQ(*FormatCheckpoint(empty),
            "custos.example/0a1b2c3d\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
  const Checkpoint cases[] = {
      empty,
      {"o", UINT64_MAX, LeafHash("x"), {}},
      {"custos.example/x", 42, LeafHash("y"), {"ext one", "ext two"}},
  };
  for (const Checkpoint& c : cases) {
    absl::StatusOr<std::string> text = FormatCheckpoint(c);
    ASSERT_TRUE(text.ok()) << text.status();
    absl::StatusOr<Checkpoint> back = ParseCheckpoint(*text);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, c);
  }
}

TEST(LedgerCheckpoint, FormatRefusesBadFields) {
  EXPECT_FALSE(FormatCheckpoint({"", 1, EmptyRoot(), {}}).ok());
  EXPECT_FALSE(FormatCheckpoint({"a\nb", 1, EmptyRoot(), {}}).ok());
  EXPECT_FALSE(FormatCheckpoint({"o", 1, "short", {}}).ok());
  EXPECT_FALSE(FormatCheckpoint({"o", 1, EmptyRoot(), {""}}).ok());
  EXPECT_FALSE(FormatCheckpoint({"o", 1, EmptyRoot(), {"x\ny"}}).ok());
}

TEST(LedgerCheckpoint, MalformedTextIsRefused) {
  const std::string root = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
  const std::string cases[] = {
      "",
      "\n",
      "o\n0\n",                 // no root
      "o\n0\n" + root,          // no final newline
      "\n0\n" + root + "\n",    // empty origin
      "o\n\n" + root + "\n",    // empty size
      "o\n00\n" + root + "\n",  // leading zero
      "o\n01\n" + root + "\n",
      "o\n-1\n" + root + "\n",
      "o\n+1\n" + root + "\n",
      "o\n 1\n" + root + "\n",
      "o\n1.0\n" + root + "\n",
      "o\n0x10\n" + root + "\n",
      "o\n18446744073709551616\n" + root + "\n",          // UINT64_MAX + 1
      "o\n1\n" + root.substr(0, root.size() - 1) + "\n",  // unpadded base64
      "o\n1\n" + absl::Base64Escape(std::string(31, 'a')) + "\n",
      "o\n1\n" + absl::Base64Escape(std::string(33, 'a')) + "\n",
      "o\n1\n" + root + "\n\n",  // empty extension line
      "o\n1\n" + root + "\nok\n\n",
      "o\r\n1\n" + root + "\n",  // control character
      "o\n1\n" + root + "\nbad\tchar\n",
  };
  for (const std::string& text : cases) {
    EXPECT_EQ(ParseCheckpoint(text).status().code(), absl::StatusCode::kInvalidArgument)
        << absl::CEscape(text);
  }
}

TEST(LedgerCheckpoint, SignedCheckpointOpensOnlyForItsOriginAndKey) {
  const crypto::Ed25519PrivateKey key =
      *crypto::Ed25519PrivateKey::FromSeed(std::string(crypto::kEd25519SeedSize, '\x09'));
  const Checkpoint cp{"custos.example/0a1b2c3d", 7, LeafHash("root"), {}};
  absl::StatusOr<std::string> signed_cp = SignCheckpoint(cp, cp.origin, key);
  ASSERT_TRUE(signed_cp.ok()) << signed_cp.status();
  const VerifierKey vkey = *ParseVerifierKey(*FormatVerifierKey(cp.origin, key.PublicKey()));
  absl::StatusOr<Checkpoint> opened = OpenCheckpoint(*signed_cp, vkey, cp.origin);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, cp);
  EXPECT_EQ(OpenCheckpoint(*signed_cp, vkey, "custos.example/other").status().code(),
            absl::StatusCode::kInvalidArgument);
  const crypto::Ed25519PrivateKey other =
      *crypto::Ed25519PrivateKey::FromSeed(std::string(crypto::kEd25519SeedSize, '\x0a'));
  const VerifierKey other_vkey =
      *ParseVerifierKey(*FormatVerifierKey(cp.origin, other.PublicKey()));
  EXPECT_EQ(OpenCheckpoint(*signed_cp, other_vkey, cp.origin).status().code(),
            absl::StatusCode::kUnauthenticated);
  // A validly signed note whose text is not a checkpoint.
  const std::string not_cp = *SignNote("hello\n", cp.origin, key);
  EXPECT_EQ(OpenCheckpoint(not_cp, vkey, cp.origin).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace custos::ledger
