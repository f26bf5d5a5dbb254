#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "crypto/crypto.h"
#include "crypto/key_provider.h"

namespace custos::crypto {
namespace {

// Deterministic and distinct on every call, and remembers what it handed out, so a test can look
// for the key material in the file.
class RecordingRandom final : public Random {
 public:
  std::string Bytes(size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    while (out.size() < n) out += Sha256("recording random " + std::to_string(counter_++));
    out.resize(n);
    handed_out_.push_back(out);
    return out;
  }
  std::vector<std::string> HandedOut() {
    std::lock_guard<std::mutex> lock(mu_);
    return handed_out_;
  }

 private:
  std::mutex mu_;
  int counter_ = 0;
  std::vector<std::string> handed_out_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The value, or the error as text, so a failing expectation reports instead of aborting.
std::string ValueOf(const absl::StatusOr<std::string>& result) {
  return result.ok() ? *result : "error: " + result.status().ToString();
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

class KeyringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "keyring_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/keyring";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<KeyringKeyProvider> CreateRing() {
    auto ring = KeyringKeyProvider::Create(path_, master_, random_);
    EXPECT_TRUE(ring.ok()) << ring.status();
    return ring.ok() ? *std::move(ring) : nullptr;
  }
  std::unique_ptr<KeyringKeyProvider> OpenRing() {
    auto ring = KeyringKeyProvider::Open(path_, master_, random_);
    EXPECT_TRUE(ring.ok()) << ring.status();
    return ring.ok() ? *std::move(ring) : nullptr;
  }

  OpenSslRandom random_;
  const std::string master_ = random_.Bytes(kAeadKeySize);
  std::string dir_;
  std::string path_;
};

TEST_F(KeyringTest, CreateOpenRoundTrip) {
  std::string wrapped;
  {
    auto ring = CreateRing();
    ASSERT_NE(ring, nullptr);
    EXPECT_FALSE(ring->HasKey("tenant-1"));
    ASSERT_TRUE(ring->CreateKey("tenant-1").ok());
    EXPECT_TRUE(ring->HasKey("tenant-1"));
    auto w = ring->Wrap("tenant-1", "data key", "aad");
    ASSERT_TRUE(w.ok()) << w.status();
    wrapped = *w;
    EXPECT_EQ(ValueOf(ring->Unwrap("tenant-1", wrapped, "aad")), "data key");
  }
  auto ring = OpenRing();
  ASSERT_NE(ring, nullptr);
  EXPECT_TRUE(ring->HasKey("tenant-1"));
  auto unwrapped = ring->Unwrap("tenant-1", wrapped, "aad");
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.status();
  EXPECT_EQ(*unwrapped, "data key");
}

TEST_F(KeyringTest, EmptyKeyringRoundTrip) {
  ASSERT_NE(CreateRing(), nullptr);
  auto ring = OpenRing();
  ASSERT_NE(ring, nullptr);
  EXPECT_FALSE(ring->HasKey("anything"));
}

// 0277 would leave an owner-read-only file if the mode came from open() alone.
TEST_F(KeyringTest, FileIsOwnerOnlyWhateverTheUmask) {
  for (const mode_t umask : {mode_t{0}, mode_t{022}, mode_t{0277}}) {
    std::filesystem::remove(path_);
    const mode_t old_umask = ::umask(umask);
    auto ring = KeyringKeyProvider::Create(path_, master_, random_);
    const bool created_key = ring.ok() && (*ring)->CreateKey("k").ok();
    ::umask(old_umask);
    ASSERT_TRUE(created_key) << "umask " << umask;
    struct stat st;
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << "umask " << umask;
    EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
  }
}

TEST_F(KeyringTest, CreateRefusesExistingFile) {
  ASSERT_NE(CreateRing(), nullptr);
  EXPECT_EQ(KeyringKeyProvider::Create(path_, master_, random_).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(KeyringTest, OpenMissingIsNotFound) {
  EXPECT_EQ(KeyringKeyProvider::Open(path_, master_, random_).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(KeyringTest, WrongMasterKeySizeIsInvalidArgument) {
  EXPECT_EQ(KeyringKeyProvider::Create(path_, "short", random_).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_NE(CreateRing(), nullptr);
  EXPECT_EQ(KeyringKeyProvider::Open(path_, master_ + "x", random_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(KeyringTest, WrongMasterKeyIsDataLoss) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("k").ok());
  EXPECT_EQ(KeyringKeyProvider::Open(path_, random_.Bytes(kAeadKeySize), random_).status().code(),
            absl::StatusCode::kDataLoss);
}

// Every byte matters: the magic, the nonce, the sealed keys and the tag.
TEST_F(KeyringTest, FlippedByteIsDataLoss) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("k").ok());
  const std::string original = ReadAll(path_);
  for (size_t i = 0; i < original.size(); ++i) {
    std::string altered = original;
    altered[i] ^= 0x20;
    WriteAll(path_, altered);
    EXPECT_EQ(KeyringKeyProvider::Open(path_, master_, random_).status().code(),
              absl::StatusCode::kDataLoss)
        << "byte " << i;
  }
}

TEST_F(KeyringTest, TruncatedFileIsDataLoss) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("k").ok());
  const std::string original = ReadAll(path_);
  for (size_t n : {size_t{0}, size_t{5}, size_t{17}, size_t{30}, original.size() - 1}) {
    WriteAll(path_, original.substr(0, n));
    EXPECT_EQ(KeyringKeyProvider::Open(path_, master_, random_).status().code(),
              absl::StatusCode::kDataLoss)
        << "length " << n;
  }
}

TEST_F(KeyringTest, DestroyedKeyIsGoneAcrossReopen) {
  std::string wrapped;
  {
    auto ring = CreateRing();
    ASSERT_TRUE(ring->CreateKey("doomed").ok());
    ASSERT_TRUE(ring->CreateKey("kept").ok());
    wrapped = ValueOf(ring->Wrap("doomed", "dek", ""));
    ASSERT_TRUE(ring->DestroyKey("doomed").ok());
    EXPECT_FALSE(ring->HasKey("doomed"));
    EXPECT_EQ(ring->Unwrap("doomed", wrapped, "").status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(ring->Wrap("doomed", "dek", "").status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(ring->DestroyKey("doomed").code(), absl::StatusCode::kNotFound);
  }
  auto ring = OpenRing();
  EXPECT_FALSE(ring->HasKey("doomed"));
  EXPECT_TRUE(ring->HasKey("kept"));
  EXPECT_EQ(ring->Unwrap("doomed", wrapped, "").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KeyringTest, CreateKeyTwiceIsAlreadyExists) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("k").ok());
  const std::string wrapped = ValueOf(ring->Wrap("k", "dek", ""));
  EXPECT_EQ(ring->CreateKey("k").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ValueOf(ring->Unwrap("k", wrapped, "")), "dek");  // the first key was not replaced
}

TEST_F(KeyringTest, MalformedKeyIdIsInvalidArgument) {
  auto ring = CreateRing();
  for (const std::string& id : {std::string(), std::string("a b"), std::string("a\0b", 3),
                                std::string("caf\xc3\xa9"), std::string(257, 'k')}) {
    EXPECT_EQ(ring->CreateKey(id).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(ring->CreateKey(std::string(256, 'k')).ok());
  EXPECT_TRUE(ring->CreateKey("tenant/\"quoted\\id\"").ok());  // JSON escapes survive reopen
  auto reopened = OpenRing();
  EXPECT_TRUE(reopened->HasKey("tenant/\"quoted\\id\""));
}

TEST_F(KeyringTest, KeyMaterialIsNotInTheFile) {
  RecordingRandom recording;
  auto ring = KeyringKeyProvider::Create(path_, master_, recording);
  ASSERT_TRUE(ring.ok());
  ASSERT_TRUE((*ring)->CreateKey("tenant-visible-id").ok());
  ASSERT_TRUE((*ring)->CreateKey("another-tenant").ok());
  const std::string file = ReadAll(path_);
  int keys_seen = 0;
  for (const std::string& bytes : recording.HandedOut()) {
    if (bytes.size() != kAeadKeySize) continue;  // nonces are public and do appear
    ++keys_seen;
    EXPECT_EQ(file.find(bytes.substr(0, 8)), std::string::npos);
    EXPECT_EQ(file.find(absl::Base64Escape(bytes).substr(0, 12)), std::string::npos);
    EXPECT_EQ(file.find(absl::BytesToHexString(bytes).substr(0, 16)), std::string::npos);
  }
  EXPECT_EQ(keys_seen, 2);
  EXPECT_EQ(file.find("tenant-visible-id"), std::string::npos);
}

TEST_F(KeyringTest, AadMismatchIsDataLoss) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("k").ok());
  const std::string wrapped = ValueOf(ring->Wrap("k", "dek", "object A"));
  EXPECT_EQ(ring->Unwrap("k", wrapped, "object B").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ring->Unwrap("k", wrapped, "").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(KeyringTest, ValueWrappedUnderOneKeyIsRefusedUnderAnother) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("x").ok());
  ASSERT_TRUE(ring->CreateKey("y").ok());
  const std::string wrapped = ValueOf(ring->Wrap("x", "dek", "aad"));
  EXPECT_EQ(ring->Unwrap("y", wrapped, "aad").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ring->Unwrap("nobody", wrapped, "aad").status().code(), absl::StatusCode::kNotFound);
}

// Returns the same bytes every time, so two keys created from it are equal.
class StuckRandom final : public Random {
 public:
  std::string Bytes(size_t n) override { return std::string(n, '\x5a'); }
};

// Only the key id bound into the aad tells two equal keys apart.
TEST_F(KeyringTest, KeyIdIsBoundEvenWhenKeysAreEqual) {
  StuckRandom stuck;
  auto ring = KeyringKeyProvider::Create(path_, master_, stuck);
  ASSERT_TRUE(ring.ok());
  ASSERT_TRUE((*ring)->CreateKey("x").ok());
  ASSERT_TRUE((*ring)->CreateKey("y").ok());
  const std::string wrapped = ValueOf((*ring)->Wrap("x", "dek", "aad"));
  EXPECT_EQ(ValueOf((*ring)->Unwrap("x", wrapped, "aad")), "dek");
  EXPECT_EQ((*ring)->Unwrap("y", wrapped, "aad").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(KeyringTest, TamperedWrappedValueIsDataLoss) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("k").ok());
  std::string wrapped = ValueOf(ring->Wrap("k", "dek", ""));
  wrapped[wrapped.size() / 2] ^= 1;
  EXPECT_EQ(ring->Unwrap("k", wrapped, "").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ring->Unwrap("k", "short", "").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(KeyringTest, StaleTempFileIsReplaced) {
  auto ring = CreateRing();
  WriteAll(path_ + ".tmp", "left over by a crash");
  ASSERT_TRUE(ring->CreateKey("k").ok());
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
  EXPECT_TRUE(OpenRing()->HasKey("k"));
}

// A directory where the temp file must go makes every write fail, even for root.
TEST_F(KeyringTest, FailedWriteRollsBackCreateKey) {
  auto ring = CreateRing();
  ASSERT_TRUE(std::filesystem::create_directory(path_ + ".tmp"));
  EXPECT_EQ(ring->CreateKey("k").code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(ring->HasKey("k"));
  EXPECT_EQ(ring->Wrap("k", "dek", "").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove(path_ + ".tmp");
  EXPECT_TRUE(ring->CreateKey("k").ok());
  EXPECT_TRUE(OpenRing()->HasKey("k"));
}

TEST_F(KeyringTest, FailedWriteRollsBackDestroyKey) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("k").ok());
  const std::string wrapped = ValueOf(ring->Wrap("k", "dek", ""));
  ASSERT_TRUE(std::filesystem::create_directory(path_ + ".tmp"));
  EXPECT_EQ(ring->DestroyKey("k").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(ring->HasKey("k"));
  EXPECT_EQ(ValueOf(ring->Unwrap("k", wrapped, "")), "dek");
  std::filesystem::remove(path_ + ".tmp");
  EXPECT_TRUE(OpenRing()->HasKey("k"));
}

TEST_F(KeyringTest, CreateInMissingDirectoryIsUnavailable) {
  EXPECT_EQ(
      KeyringKeyProvider::Create(dir_ + "/no/such/dir/keyring", master_, random_).status().code(),
      absl::StatusCode::kUnavailable);
}

TEST_F(KeyringTest, ConcurrentWrapWhileKeysChange) {
  auto ring = CreateRing();
  ASSERT_TRUE(ring->CreateKey("stable").ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&ring, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string aad = std::to_string(t) + "/" + std::to_string(i);
        auto wrapped = ring->Wrap("stable", "dek", aad);
        ASSERT_TRUE(wrapped.ok());
        auto unwrapped = ring->Unwrap("stable", *wrapped, aad);
        ASSERT_TRUE(unwrapped.ok());
        EXPECT_EQ(*unwrapped, "dek");
      }
    });
  }
  for (int i = 0; i < 10; ++i) {
    const std::string id = "churn-" + std::to_string(i);
    ASSERT_TRUE(ring->CreateKey(id).ok());
    if (i % 2 == 0) {
      ASSERT_TRUE(ring->DestroyKey(id).ok());
    }
  }
  for (std::thread& thread : threads) thread.join();
  auto reopened = OpenRing();
  EXPECT_FALSE(reopened->HasKey("churn-0"));
  EXPECT_TRUE(reopened->HasKey("churn-1"));
}

// Two providers on one file, as two server instances given one --keyring: every key either
// creates is in the file afterwards (an unlocked compare-and-write let one drop the other's).
TEST_F(KeyringTest, TwoProvidersOnOneFileLoseNoKeys) {
  CreateRing();
  auto first = OpenRing();
  auto second = OpenRing();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      KeyringKeyProvider& ring = t % 2 ? *first : *second;
      for (int i = 0; i < 10; ++i) {
        const std::string id = "k-" + std::to_string(t) + "-" + std::to_string(i);
        ASSERT_TRUE(ring.CreateKey(id).ok()) << id;
        ASSERT_TRUE(ring.HasKey(id)) << id;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  auto reopened = OpenRing();
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 10; ++i) {
      EXPECT_TRUE(reopened->HasKey("k-" + std::to_string(t) + "-" + std::to_string(i)));
    }
  }
}

}  // namespace
}  // namespace custos::crypto
