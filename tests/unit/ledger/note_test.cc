// C2SP signed notes against the Go sumdb/note example, and strict parsing.
#include "ledger/note.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "ledger_test_util.h"

namespace custos::ledger {
namespace {

using testing::Str;
using testing::Vectors;

const boost::json::object& NoteVector() { return Vectors().at("signed_note").as_object(); }

VerifierKey VectorVerifier() { return *ParseVerifierKey(Str(NoteVector().at("verifier_key"))); }

crypto::Ed25519PrivateKey FixedKey(char fill) {
  return *crypto::Ed25519PrivateKey::FromSeed(std::string(crypto::kEd25519SeedSize, fill));
}

VerifierKey VerifierOf(std::string_view name, const crypto::Ed25519PrivateKey& key) {
  return *ParseVerifierKey(*FormatVerifierKey(name, key.PublicKey()));
}

TEST(LedgerNote, VectorKeysParse) {
  const VerifierKey v = VectorVerifier();
  EXPECT_EQ(v.name, "PeterNeumann");
  EXPECT_EQ(v.key_id, 0xc74f20a3u);
  EXPECT_EQ(v.public_key.size(), 32u);
  EXPECT_EQ(*FormatVerifierKey(v.name, v.public_key), Str(NoteVector().at("verifier_key")));

  absl::StatusOr<SignerKey> s = ParseSignerKey(Str(NoteVector().at("signer_key")));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name, "PeterNeumann");
  EXPECT_EQ(s->key_id, 0xc74f20a3u);
  EXPECT_EQ(s->key.PublicKey(), v.public_key);
  EXPECT_EQ(KeyId(v.name, v.public_key), v.key_id);
}

TEST(LedgerNote, VectorVerifiesAndSigningReproducesIt) {
  const std::string text = Str(NoteVector().at("text"));
  const std::string signed_note = Str(NoteVector().at("signed"));
  absl::StatusOr<std::string> opened = VerifyNote(signed_note, VectorVerifier());
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, text);

  // Ed25519 is deterministic, so our signer must produce the published note byte for byte.
  const SignerKey signer = *ParseSignerKey(Str(NoteVector().at("signer_key")));
  EXPECT_EQ(*SignNote(text, signer.name, signer.key), signed_note);
}

TEST(LedgerNote, ModifiedVectorFails) {
  const std::string signed_note = Str(NoteVector().at("signed"));
  const VerifierKey key = VectorVerifier();

  std::string changed_text = signed_note;
  changed_text[3] = 'X';
  EXPECT_EQ(VerifyNote(changed_text, key).status().code(), absl::StatusCode::kUnauthenticated);

  // Flip one bit of the signature (inside the base64, keeping it canonical).
  const size_t sig_at = signed_note.rfind(' ') + 10;
  std::string changed_sig = signed_note;
  changed_sig[sig_at] = changed_sig[sig_at] == 'A' ? 'B' : 'A';
  EXPECT_EQ(VerifyNote(changed_sig, key).status().code(), absl::StatusCode::kUnauthenticated);

  // Same name, other key: the signature is someone else's, so ours is missing.
  const VerifierKey other = VerifierOf("PeterNeumann", FixedKey(1));
  EXPECT_EQ(VerifyNote(signed_note, other).status().code(), absl::StatusCode::kUnauthenticated);

  // A key id that matches but a different public key: the signature must fail.
  VerifierKey forged = key;
  forged.public_key = FixedKey(2).PublicKey();
  EXPECT_EQ(VerifyNote(signed_note, forged).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(LedgerNote, RoundTripsAndIgnoresOtherSigners) {
  const crypto::Ed25519PrivateKey ours = FixedKey(3);
  const crypto::Ed25519PrivateKey theirs = FixedKey(4);
  const std::string text = "custos test v1\n\nbody after an empty line\n";
  const std::string ours_signed = *SignNote(text, "custos.example/ab12", ours);
  const std::string theirs_signed = *SignNote(text, "witness.example/w1", theirs);
  const std::string their_line = theirs_signed.substr(text.size() + 1);

  EXPECT_EQ(*VerifyNote(ours_signed, VerifierOf("custos.example/ab12", ours)), text);
  // Cosigned: either order, each key finds its own line.
  const std::string both = ours_signed + their_line;
  EXPECT_EQ(*VerifyNote(both, VerifierOf("custos.example/ab12", ours)), text);
  EXPECT_EQ(*VerifyNote(both, VerifierOf("witness.example/w1", theirs)), text);
  EXPECT_EQ(VerifyNote(theirs_signed, VerifierOf("custos.example/ab12", ours)).status().code(),
            absl::StatusCode::kUnauthenticated);
  // An unknown signature type from an unknown key is ignored too.
  const std::string odd = absl::StrCat(ours_signed, "\xE2\x80\x94 other ",
                                       absl::Base64Escape(std::string(40, '\x07')), "\n");
  EXPECT_EQ(*VerifyNote(odd, VerifierOf("custos.example/ab12", ours)), text);
}

TEST(LedgerNote, MalformedNotesAreRefused) {
  const std::string good = Str(NoteVector().at("signed"));
  const VerifierKey key = VectorVerifier();
  const size_t blank = good.rfind("\n\n");
  const std::string text = good.substr(0, blank + 1);
  const std::string sig_line = good.substr(blank + 2);
  const std::string sig_b64 =
      sig_line.substr(sig_line.rfind(' ') + 1, sig_line.size() - sig_line.rfind(' ') - 2);
  const std::string em = "\xE2\x80\x94 ";

  const std::string cases[] = {
      "",
      text,                                                  // no signatures at all
      text + "\n",                                           // blank line, no signatures
      good.substr(0, good.size() - 1),                       // last line without newline
      text + sig_line,                                       // no blank line
      good + "extra line\n",                                 // a line that is not a signature
      good + "\n",                                           // trailing blank line
      text + "\n-- PeterNeumann " + sig_b64 + "\n",          // ASCII dashes
      text + "\n" + em + "PeterNeumann  " + sig_b64 + "\n",  // two spaces
      text + "\n" + em + "PeterNeumann " + sig_b64 + " \n",  // trailing space
      text + "\n" + em + "PeterNeumann\n",                   // no signature
      text + "\n" + em + " " + sig_b64 + "\n",               // empty name
      text + "\n" + em + "Peter+Neumann " + sig_b64 + "\n",  // '+' in name
      text + "\n" + em + "PeterNeumann " + sig_b64.substr(0, sig_b64.size() - 1) + "\n",
      text + "\n" + em + "PeterNeumann " + sig_b64 + "=\n",
      text + "\n" + em + "PeterNeumann !!!!\n",  // not base64
      text + "\n" + em + "PeterNeumann AAAA\n",  // 3 bytes: shorter than a key id
      "tab\there\n\n" + sig_line,                // control character
      "cr\r\n\n" + sig_line,
      "bad utf8 \xC3\x28\n\n" + sig_line,
      "overlong \xC0\xAF\n\n" + sig_line,
      "surrogate \xED\xA0\x80\n\n" + sig_line,
      good + sig_line,  // the same key's (valid) signature twice
  };
  for (const std::string& note : cases) {
    EXPECT_EQ(VerifyNote(note, key).status().code(), absl::StatusCode::kInvalidArgument)
        << absl::CEscape(note);
  }
  // Too large, and too many signatures.
  EXPECT_EQ(VerifyNote(good, key, good.size() - 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string crowded = good;
  for (size_t i = 0; i < kMaxNoteSignatures; ++i) crowded += sig_line;
  EXPECT_EQ(VerifyNote(crowded, key).status().code(), absl::StatusCode::kInvalidArgument);
  // A note text that itself ends in a blank line still verifies only with its real signature.
  EXPECT_EQ(VerifyNote(good, key).status().code(), absl::StatusCode::kOk);
}

TEST(LedgerNote, SignRefusesBadTextOrName) {
  const crypto::Ed25519PrivateKey key = FixedKey(5);
  EXPECT_FALSE(SignNote("", "name", key).ok());
  EXPECT_FALSE(SignNote("no newline", "name", key).ok());
  EXPECT_FALSE(SignNote("tab\t\n", "name", key).ok());
  EXPECT_FALSE(SignNote("bad \xff\n", "name", key).ok());
  EXPECT_FALSE(SignNote(std::string(kMaxNoteBytes, 'a') + "\n", "name", key).ok());
  for (const char* name :
       {"", "a b", "a+b", "a\tb", "a\nb", "nbsp\xC2\xA0", "em\xE2\x80\x83", "bad\xff"}) {
    EXPECT_FALSE(SignNote("text\n", name, key).ok()) << absl::CEscape(name);
    EXPECT_FALSE(FormatVerifierKey(name, key.PublicKey()).ok()) << absl::CEscape(name);
  }
  EXPECT_TRUE(SignNote("text\n", "custos.example/\xC3\xA9t\xC3\xA9", key).ok());
  EXPECT_TRUE(SignNote("\n", "n", key).ok());
  EXPECT_FALSE(FormatVerifierKey("name", "short").ok());
}

TEST(LedgerNote, SignsUpToTheSizeTheVerifierAccepts) {
  const crypto::Ed25519PrivateKey key = FixedKey(6);
  const std::string one_line = *SignNote("a\n", "n", key);
  const size_t overhead = one_line.size() - 2;
  const std::string text = std::string(kMaxNoteBytes - overhead - 1, 'a') + "\n";
  absl::StatusOr<std::string> largest = SignNote(text, "n", key);
  ASSERT_TRUE(largest.ok()) << largest.status();
  EXPECT_EQ(largest->size(), kMaxNoteBytes);
  EXPECT_TRUE(VerifyNote(*largest, VerifierOf("n", key)).ok());
  EXPECT_EQ(SignNote("a" + text, "n", key).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LedgerNote, MalformedKeysAreRefused) {
  const std::string vkey = Str(NoteVector().at("verifier_key"));
  const std::string skey = Str(NoteVector().at("signer_key"));
  const std::string cases[] = {
      "",
      "PeterNeumann",
      "PeterNeumann+c74f20a3",
      "PeterNeumann+c74f20a3+",
      "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",              // empty name
      "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // uppercase id
      "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",   // 7 hex digits
      "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // wrong id
      "PeterNewmann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // other name
      "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",   // bad base64
      "PeterNeumann+c74f20a3+AhpcZ2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  // type byte 2
      "PeterNeumann+c74f20a3+" + absl::Base64Escape("\x01" + std::string(31, 'a')),
      "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      skey,  // a signer key is not a verifier key
  };
  for (const std::string& k : cases) {
    EXPECT_EQ(ParseVerifierKey(k).status().code(), absl::StatusCode::kInvalidArgument) << k;
  }
  EXPECT_FALSE(ParseSignerKey(vkey).ok());
  EXPECT_FALSE(ParseSignerKey(absl::StrReplaceAll(skey, {{"c74f20a3", "c74f20a4"}})).ok());
  EXPECT_FALSE(ParseSignerKey("PRIVATE+KEY+").ok());
}

}  // namespace
}  // namespace custos::ledger
