#include "crypto/crypto.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <string>
#include <thread>

#include "absl/strings/escaping.h"

namespace custos::crypto {
namespace {

std::string Unhex(const char* hex) { return absl::HexStringToBytes(hex); }
std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256("abc").size(), kSha256Size);
  EXPECT_EQ(Hex(Sha256("abc")), Sha256Hex("abc"));
}

TEST(HmacSha256, Rfc4231TestCase1) {
  EXPECT_EQ(Hex(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(HmacSha256, Rfc4231TestCase2) {
  EXPECT_EQ(Hex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacSha256, EmptyKeyAndMessage) {
  EXPECT_EQ(Hex(HmacSha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

// One thread reuses one HMAC context for every key: each call must use its own key, including
// the empty key right after another (a null key would make OpenSSL keep the previous one).
TEST(HmacSha256, EachCallUsesItsOwnKeyOnOneThread) {
  const std::string case1 = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
  const std::string empty = "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad";
  EXPECT_EQ(Hex(HmacSha256(std::string(20, '\x0b'), "Hi There")), case1);
  EXPECT_EQ(Hex(HmacSha256("", "")), empty);
  EXPECT_EQ(Hex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(Hex(HmacSha256(std::string(20, '\x0b'), "Hi There")), case1);
  EXPECT_EQ(Hex(HmacSha256("", "")), empty);
}

class AeadTest : public ::testing::Test {
 protected:
  OpenSslRandom random_;
  const std::string key_ = random_.Bytes(kAeadKeySize);
};

TEST_F(AeadTest, RoundTrip) {
  for (const std::string& plaintext : {std::string(), std::string("x"), std::string(1000, 'p')}) {
    auto sealed = AeadSeal(key_, plaintext, "aad", random_);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    EXPECT_EQ(sealed->size(), plaintext.size() + kAeadOverhead);
    auto opened = AeadOpen(key_, *sealed, "aad");
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, plaintext);
  }
}

TEST_F(AeadTest, EmptyAadRoundTrip) {
  auto sealed = AeadSeal(key_, "secret", "", random_);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(AeadOpen(key_, *sealed, "").value_or("error"), "secret");
  EXPECT_EQ(AeadOpen(key_, *sealed, "x").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(AeadTest, CiphertextDoesNotContainPlaintext) {
  const std::string plaintext = "a rather recognisable plaintext";
  auto sealed = AeadSeal(key_, plaintext, "", random_);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find(plaintext), std::string::npos);
}

// Every byte of the sealed value is covered: nonce, ciphertext and tag.
TEST_F(AeadTest, TamperedByteIsDataLoss) {
  auto sealed = AeadSeal(key_, "attack at dawn", "aad", random_);
  ASSERT_TRUE(sealed.ok());
  for (size_t i = 0; i < sealed->size(); ++i) {
    std::string tampered = *sealed;
    tampered[i] ^= 0x01;
    EXPECT_EQ(AeadOpen(key_, tampered, "aad").status().code(), absl::StatusCode::kDataLoss)
        << "byte " << i;
  }
}

TEST_F(AeadTest, WrongAadIsDataLoss) {
  auto sealed = AeadSeal(key_, "attack at dawn", "tenant-a", random_);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(AeadOpen(key_, *sealed, "tenant-b").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(AeadTest, WrongKeyIsDataLoss) {
  auto sealed = AeadSeal(key_, "attack at dawn", "", random_);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(AeadOpen(random_.Bytes(kAeadKeySize), *sealed, "").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(AeadTest, TruncatedIsDataLoss) {
  auto sealed = AeadSeal(key_, "attack at dawn", "", random_);
  ASSERT_TRUE(sealed.ok());
  for (size_t n : {size_t{0}, size_t{1}, kAeadOverhead - 1, sealed->size() - 1}) {
    EXPECT_EQ(AeadOpen(key_, sealed->substr(0, n), "").status().code(), absl::StatusCode::kDataLoss)
        << "length " << n;
  }
}

TEST_F(AeadTest, WrongKeySizeIsInvalidArgument) {
  for (size_t n : {size_t{0}, size_t{16}, size_t{31}, size_t{33}}) {
    const std::string bad_key(n, 'k');
    EXPECT_EQ(AeadSeal(bad_key, "p", "", random_).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(AeadOpen(bad_key, std::string(64, 's'), "").status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(AeadTest, NoncesDiffer) {
  auto a = AeadSeal(key_, "same", "same", random_);
  auto b = AeadSeal(key_, "same", "same", random_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->substr(0, kAeadNonceSize), b->substr(0, kAeadNonceSize));
  EXPECT_NE(*a, *b);
}

// Sealing takes its nonce from this Random: known-answer tests fix it.
class FixedNonce final : public Random {
 public:
  explicit FixedNonce(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string Bytes(size_t n) override { return bytes_.substr(0, n); }

 private:
  std::string bytes_;
};

// Published AES-256-GCM vectors: NIST CAVP (GCMVS, 96-bit IV) and the GCM specification's
// test case 16 (McGrew and Viega).
struct GcmVector {
  const char* key;
  const char* nonce;
  const char* aad;
  const char* plaintext;
  const char* ciphertext_and_tag;
};
constexpr GcmVector kGcmVectors[] = {
    {"83688deb4af8007f9b713b47cfa6c73e35ea7a3aa4ecdb414dded03bf7a0fd3a", "0b459724904e010a46901cf3",
     "794a14ccd178c8ebfd1379dc704c5e208f9d8424", "33d893a2114ce06fc15d55e454cf90c3",
     "cc66bee423e3fcd4c0865715e9586696"
     "0fb291bd3dba94a1dfd8b286cfb97ac5"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

// One thread keeps one cipher context and reuses its key schedule while the key stays the same:
// each call must still use its own key and nonce, whatever the calls before it used, sealed or
// opened, succeeded or failed.
TEST(AesGcm, PublishedVectorsInAnyOrderOnOneThread) {
  auto seal = [](const GcmVector& v) {
    FixedNonce random(Unhex(v.nonce));
    return AeadSeal(Unhex(v.key), Unhex(v.plaintext), Unhex(v.aad), random);
  };
  auto sealed = [](const GcmVector& v) { return Unhex(v.nonce) + Unhex(v.ciphertext_and_tag); };
  const GcmVector& a = kGcmVectors[0];
  const GcmVector& b = kGcmVectors[1];
  for (const GcmVector* v : {&a, &a, &b, &b, &a, &b}) {
    auto s = seal(*v);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(Hex(*s), Hex(sealed(*v)));
    auto opened = AeadOpen(Unhex(v->key), sealed(*v), Unhex(v->aad));
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(Hex(*opened), v->plaintext);
  }
  // Opening under the key just used, of a value sealed under the other: no stale schedule.
  EXPECT_EQ(AeadOpen(Unhex(b.key), sealed(a), Unhex(a.aad)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(AeadOpen(Unhex(b.key), sealed(b), Unhex(a.aad)).status().code(),
            absl::StatusCode::kDataLoss);
  // After a failed open, the same key opens (the context is reset by the next nonce).
  EXPECT_EQ(Hex(AeadOpen(Unhex(b.key), sealed(b), Unhex(b.aad)).value_or("")), b.plaintext);
  // Under the key just used, with another nonce: the same bytes as from a thread whose context
  // never held a key (the nonce is set anew, not kept from the last call).
  auto seal_a_under_b_nonce = [&] {
    FixedNonce random(Unhex(b.nonce));
    return AeadSeal(Unhex(a.key), Unhex(a.plaintext), Unhex(a.aad), random).value_or("error");
  };
  ASSERT_TRUE(seal(a).ok());
  const std::string here = seal_a_under_b_nonce();
  std::string fresh;
  std::thread([&] { fresh = seal_a_under_b_nonce(); }).join();
  EXPECT_EQ(Hex(here), Hex(fresh));
  EXPECT_NE(here.substr(kAeadNonceSize), Unhex(a.ciphertext_and_tag));
  // A key that differs from the last only in its last byte is a different key.
  std::string near_b = Unhex(b.key);
  near_b.back() ^= 1;
  EXPECT_EQ(AeadOpen(near_b, sealed(b), Unhex(b.aad)).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Hex(AeadOpen(Unhex(b.key), sealed(b), Unhex(b.aad)).value_or("")), b.plaintext);
}

// The c2sp.org/XAES-256-GCM vectors: one where MSB(L) = 0, one where it is 1 (and an AAD).
TEST(Xaes, C2spVectors) {
  struct Vector {
    char key_byte;
    const char* aad;
    const char* ciphertext;
  };
  for (const Vector& v :
       {Vector{'\x01', "", "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"},
        Vector{'\x03', "c2sp.org/XAES-256-GCM",
               "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d"}}) {
    const std::string key(32, v.key_byte);
    const std::string nonce = "ABCDEFGHIJKLMNOPQRSTUVWX";
    FixedNonce random(nonce);
    auto sealed = XaesSeal(key, "XAES-256-GCM", v.aad, random);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    EXPECT_EQ(sealed->substr(0, kXaesNonceSize), nonce);
    EXPECT_EQ(Hex(sealed->substr(kXaesNonceSize)), v.ciphertext);
    auto opened = XaesOpen(key, *sealed, v.aad);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, "XAES-256-GCM");
  }
}

// c2sp.org/XAES-256-GCM's accumulated randomized vector: 10,000 seals under as many keys, nonces,
// plaintexts and AADs read from one SHAKE-128 stream, and SHAKE-128 of all the ciphertexts. On
// one thread, every call gets a new key: a subkey derived under a stale CMAC key would show.
TEST(Xaes, C2spAccumulatedVectorOnOneThread) {
  constexpr int kIterations = 10'000;
  auto shake128 = [](std::string_view in, size_t out_size) {
    std::string out(out_size, '\0');
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const bool ok =
        ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_shake128(), nullptr) == 1 &&
        EVP_DigestUpdate(ctx, in.data(), in.size()) == 1 &&
        EVP_DigestFinalXOF(ctx, reinterpret_cast<unsigned char*>(out.data()), out.size()) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? out : std::string();
  };
  // SHAKE-128's output is one stream: reading it piece by piece is reading a prefix of it.
  // Each iteration reads at most 32 + 24 + 1 + 255 + 1 + 255 bytes.
  const std::string stream = shake128("", kIterations * 568);
  ASSERT_FALSE(stream.empty());
  size_t at = 0;
  auto read = [&](size_t n) {
    std::string piece = stream.substr(at, n);
    at += n;
    return piece;
  };
  std::string ciphertexts;
  for (int i = 0; i < kIterations; ++i) {
    const std::string key = read(32);
    const std::string nonce = read(24);
    const std::string plaintext = read(static_cast<unsigned char>(read(1)[0]));
    const std::string aad = read(static_cast<unsigned char>(read(1)[0]));
    FixedNonce random(nonce);
    auto sealed = XaesSeal(key, plaintext, aad, random);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    auto opened = XaesOpen(key, *sealed, aad);
    ASSERT_TRUE(opened.ok()) << i << ": " << opened.status();
    ASSERT_EQ(*opened, plaintext) << i;
    ciphertexts += sealed->substr(kXaesNonceSize);
  }
  EXPECT_EQ(Hex(shake128(ciphertexts, 32)),
            "e6b9edf2df6cec60c8cbd864e2211b597fb69a529160cd040d56c0c210081939");
}

// One key sealing many records, then another, then the first again: what a thread of the
// server does across tenants. Each seal opens on a fresh thread.
TEST(Xaes, KeysTakenInTurnOnOneThreadSealAsOnAFreshThread) {
  const std::string a(32, 'a'), b(32, 'b');
  const std::string near_a = std::string(31, 'a') + static_cast<char>('a' ^ 1);
  int n = 0;
  for (const std::string* key : {&a, &a, &b, &a, &near_a, &b, &b}) {
    const std::string nonce = std::string(23, 'n') + static_cast<char>('0' + n++);
    FixedNonce random(nonce);
    const std::string here = XaesSeal(*key, "record", "aad", random).value_or("error");
    std::string fresh;
    std::thread([&] {
      FixedNonce r(nonce);
      fresh = XaesSeal(*key, "record", "aad", r).value_or("error");
    }).join();
    EXPECT_EQ(Hex(here), Hex(fresh)) << n;
    std::string opened_fresh;
    std::thread([&] { opened_fresh = XaesOpen(*key, here, "aad").value_or("error"); }).join();
    EXPECT_EQ(opened_fresh, "record") << n;
  }
}

TEST(Xaes, TamperedNonceCiphertextAadOrKeyIsDataLoss) {
  OpenSslRandom random;
  const std::string key(32, 'k');
  const std::string sealed = *XaesSeal(key, "record", "aad", random);
  ASSERT_EQ(sealed.size(), 6 + kXaesOverhead);
  for (size_t at : {size_t{0}, size_t{13}, kXaesNonceSize, sealed.size() - 1}) {
    std::string bad = sealed;
    bad[at] ^= 1;  // the first nonce half changes the subkey, the second the GCM nonce
    EXPECT_EQ(XaesOpen(key, bad, "aad").status().code(), absl::StatusCode::kDataLoss) << at;
  }
  EXPECT_EQ(XaesOpen(key, sealed, "other").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(XaesOpen(std::string(32, 'j'), sealed, "aad").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(XaesOpen(key, sealed.substr(0, kXaesOverhead - 1), "aad").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(XaesSeal("short", "x", "", random).status().code(), absl::StatusCode::kInvalidArgument);
}

// RFC 8032 section 7.1, tests 1 and 2.
struct Rfc8032Vector {
  const char* secret;
  const char* public_key;
  const char* message;
  const char* signature;
};
constexpr Rfc8032Vector kRfc8032[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
};

TEST(Ed25519, Rfc8032Vectors) {
  for (const Rfc8032Vector& v : kRfc8032) {
    auto key = Ed25519PrivateKey::FromSeed(Unhex(v.secret));
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(Hex(key->PublicKey()), v.public_key);
    EXPECT_EQ(Hex(key->Seed()), v.secret);
    const std::string message = Unhex(v.message);
    EXPECT_EQ(Hex(key->Sign(message)), v.signature);
    EXPECT_TRUE(Ed25519Verify(Unhex(v.public_key), message, Unhex(v.signature)));
  }
}

TEST(Ed25519, SignVerify) {
  OpenSslRandom random;
  const Ed25519PrivateKey key = Ed25519PrivateKey::Generate(random);
  const std::string signature = key.Sign("checkpoint body");
  EXPECT_EQ(signature.size(), kEd25519SignatureSize);
  EXPECT_EQ(key.PublicKey().size(), kEd25519PublicKeySize);
  EXPECT_TRUE(Ed25519Verify(key.PublicKey(), "checkpoint body", signature));
  EXPECT_FALSE(Ed25519Verify(key.PublicKey(), "checkpoint bodY", signature));
  EXPECT_FALSE(Ed25519Verify(key.PublicKey(), "", signature));

  std::string bad_signature = signature;
  bad_signature[10] ^= 0x40;
  EXPECT_FALSE(Ed25519Verify(key.PublicKey(), "checkpoint body", bad_signature));

  const Ed25519PrivateKey other = Ed25519PrivateKey::Generate(random);
  EXPECT_NE(other.PublicKey(), key.PublicKey());
  EXPECT_FALSE(Ed25519Verify(other.PublicKey(), "checkpoint body", signature));
}

TEST(Ed25519, SeedRoundTrip) {
  OpenSslRandom random;
  const Ed25519PrivateKey key = Ed25519PrivateKey::Generate(random);
  auto again = Ed25519PrivateKey::FromSeed(key.Seed());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->PublicKey(), key.PublicKey());
  EXPECT_EQ(again->Sign("m"), key.Sign("m"));  // Ed25519 signatures are deterministic
}

TEST(Ed25519, MovedKeyStillSigns) {
  auto key = Ed25519PrivateKey::FromSeed(Unhex(kRfc8032[0].secret));
  ASSERT_TRUE(key.ok());
  Ed25519PrivateKey moved = *std::move(key);
  EXPECT_EQ(Hex(moved.Sign("")), kRfc8032[0].signature);
  auto other = Ed25519PrivateKey::FromSeed(Unhex(kRfc8032[1].secret));
  ASSERT_TRUE(other.ok());
  moved = *std::move(other);
  EXPECT_EQ(Hex(moved.PublicKey()), kRfc8032[1].public_key);
}

TEST(Ed25519, BadSeedSizeIsInvalidArgument) {
  for (size_t n : {size_t{0}, size_t{31}, size_t{33}, size_t{64}}) {
    EXPECT_EQ(Ed25519PrivateKey::FromSeed(std::string(n, 's')).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(Ed25519, MalformedSizesVerifyFalse) {
  const Rfc8032Vector& v = kRfc8032[0];
  const std::string public_key = Unhex(v.public_key);
  const std::string signature = Unhex(v.signature);
  EXPECT_FALSE(Ed25519Verify("", "", signature));
  EXPECT_FALSE(Ed25519Verify(public_key.substr(1), "", signature));
  EXPECT_FALSE(Ed25519Verify(public_key + "x", "", signature));
  EXPECT_FALSE(Ed25519Verify(public_key, "", ""));
  EXPECT_FALSE(Ed25519Verify(public_key, "", signature.substr(1)));
  EXPECT_FALSE(Ed25519Verify(public_key, "", signature + "x"));
  // A well-sized but invalid point or scalar verifies false too.
  EXPECT_FALSE(Ed25519Verify(std::string(32, '\xff'), "", signature));
  EXPECT_FALSE(Ed25519Verify(public_key, "", std::string(64, '\xff')));
}

TEST(OpenSslRandom, Bytes) {
  OpenSslRandom random;
  EXPECT_EQ(random.Bytes(0), "");
  EXPECT_EQ(random.Bytes(1).size(), 1u);
  const std::string a = random.Bytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, random.Bytes(32));
  // Larger than one DRBG request (64 KiB): OpenSSL splits it; every part is filled.
  const std::string big = random.Bytes(200000);
  ASSERT_EQ(big.size(), 200000u);
  EXPECT_NE(big.substr(0, 65536), big.substr(65536, 65536));
  EXPECT_NE(big.substr(131072, 65536), std::string(65536, '\0'));
  EXPECT_NE(big.substr(200000 - 32), std::string(32, '\0'));
}

TEST(ConstantTimeEquals, ComparesContentsAndSizes) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

}  // namespace
}  // namespace custos::crypto
