// The sealed keyring kept in the control store (the PostgreSQL layout), on both control-store
// backends: it survives reopening, shreds durably, refuses a second keyring and a wrong master
// key, and holds no key in clear.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/strings.h"
#include "cli/internal/app.h"
#include "crypto/crypto.h"
#include "crypto/key_provider.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "testing/pg_test_db.h"
#include "testing/temp_dir.h"

namespace custos::cli::internal {
namespace {

using crypto::KeyringKeyProvider;

class ControlStoreKeyringTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      auto server = testing::PgServerDsn();
      if (!server) GTEST_SKIP() << "CUSTOS_PG_DSN is not set";
      pg_ = std::make_unique<testing::PgTestDatabase>(*server);
    }
    Reopen();
  }

  void Reopen() {
    control_.reset();
    control_ = pg_ ? *store::OpenPostgresControlStore(pg_->dsn(), true)
                   : *store::OpenSqliteControlStore(dir_.File("control.db"), true);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::PgTestDatabase> pg_;
  std::unique_ptr<store::ControlStore> control_;
  crypto::OpenSslRandom random_;
  const std::string master_ = std::string(32, 'm');
};

INSTANTIATE_TEST_SUITE_P(Backends, ControlStoreKeyringTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Postgres" : "Sqlite"; });

TEST_P(ControlStoreKeyringTest, KeysSurviveReopeningAndShreddingIsDurable) {
  std::string wrapped_a, wrapped_b;
  {
    auto ring = KeyringKeyProvider::Create(ControlStoreKeyring(*control_), master_, random_);
    ASSERT_TRUE(ring.ok()) << ring.status();
    ASSERT_TRUE((*ring)->CreateKey("tenant/a").ok());
    ASSERT_TRUE((*ring)->CreateKey("tenant/b").ok());
    wrapped_a = *(*ring)->Wrap("tenant/a", "dek-a", "aad");
    wrapped_b = *(*ring)->Wrap("tenant/b", "dek-b", "aad");
  }
  EXPECT_EQ(
      KeyringKeyProvider::Create(ControlStoreKeyring(*control_), master_, random_).status().code(),
      absl::StatusCode::kAlreadyExists);
  Reopen();
  {
    auto ring = KeyringKeyProvider::Open(ControlStoreKeyring(*control_), master_, random_);
    ASSERT_TRUE(ring.ok()) << ring.status();
    EXPECT_EQ(*(*ring)->Unwrap("tenant/a", wrapped_a, "aad"), "dek-a");
    ASSERT_TRUE((*ring)->DestroyKey("tenant/a").ok());
  }
  Reopen();
  auto ring = KeyringKeyProvider::Open(ControlStoreKeyring(*control_), master_, random_);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_FALSE((*ring)->HasKey("tenant/a"));
  EXPECT_EQ((*ring)->Unwrap("tenant/a", wrapped_a, "aad").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(*(*ring)->Unwrap("tenant/b", wrapped_b, "aad"), "dek-b");
  // The stored blob is sealed: the key ids are not readable in it.
  auto blob = control_->GetSetting("keyring");
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->find("tenant/b"), std::string::npos);
}

TEST_P(ControlStoreKeyringTest, MissingKeyringAndWrongMasterKeyAreRefused) {
  EXPECT_EQ(
      KeyringKeyProvider::Open(ControlStoreKeyring(*control_), master_, random_).status().code(),
      absl::StatusCode::kNotFound);
  ASSERT_TRUE(KeyringKeyProvider::Create(ControlStoreKeyring(*control_), master_, random_).ok());
  EXPECT_EQ(KeyringKeyProvider::Open(ControlStoreKeyring(*control_), std::string(32, 'x'), random_)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

// A second handle on the same stored control store: what another custos instance sees.
std::unique_ptr<store::ControlStore> OpenAgain(const testing::TempDir& dir,
                                               const testing::PgTestDatabase* pg) {
  return pg ? *store::OpenPostgresControlStore(pg->dsn(), false)
            : *store::OpenSqliteControlStore(dir.File("control.db"), false);
}

TEST_P(ControlStoreKeyringTest, KeyCreatedByOneInstanceIsUsableByAnotherAtOnce) {
  auto other_control = OpenAgain(dir_, pg_.get());
  auto a = KeyringKeyProvider::Create(ControlStoreKeyring(*control_), master_, random_);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = KeyringKeyProvider::Open(ControlStoreKeyring(*other_control), master_, random_);
  ASSERT_TRUE(b.ok()) << b.status();

  ASSERT_TRUE((*a)->CreateKey("tenant/new").ok());
  // B opened before the key existed: a miss looks in the storage before saying kNotFound.
  EXPECT_TRUE((*b)->HasKey("tenant/new"));
  auto wrapped = (*b)->Wrap("tenant/new", "dek", "aad");
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(*(*a)->Unwrap("tenant/new", *wrapped, "aad"), "dek");
  EXPECT_EQ((*b)->Wrap("tenant/never", "x", "aad").status().code(), absl::StatusCode::kNotFound);
  // B's view is stale (it loaded before), yet its own change keeps A's key.
  ASSERT_TRUE((*a)->CreateKey("tenant/second").ok());
  ASSERT_TRUE((*b)->CreateKey("tenant/third").ok());
  EXPECT_EQ((*b)->CreateKey("tenant/second").code(), absl::StatusCode::kAlreadyExists);
  auto fresh = KeyringKeyProvider::Open(ControlStoreKeyring(*control_), master_, random_);
  ASSERT_TRUE(fresh.ok());
  for (const char* id : {"tenant/new", "tenant/second", "tenant/third"}) {
    EXPECT_TRUE((*fresh)->HasKey(id)) << id;
  }
  // A key destroyed on A is gone for B once B reloads (a change of its own, or Refresh).
  ASSERT_TRUE((*a)->DestroyKey("tenant/new").ok());
  ASSERT_TRUE((*b)->Refresh().ok());
  EXPECT_EQ((*b)->Unwrap("tenant/new", *wrapped, "aad").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ((*b)->DestroyKey("tenant/new").code(), absl::StatusCode::kNotFound);
}

TEST_P(ControlStoreKeyringTest, ConcurrentCreatesOnTwoInstancesLoseNoKey) {
  auto other_control = OpenAgain(dir_, pg_.get());
  auto a = KeyringKeyProvider::Create(ControlStoreKeyring(*control_), master_, random_);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = KeyringKeyProvider::Open(ControlStoreKeyring(*other_control), master_, random_);
  ASSERT_TRUE(b.ok()) << b.status();
  constexpr int kPerThread = 15;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    KeyringKeyProvider* ring = t % 2 == 0 ? a->get() : b->get();
    threads.emplace_back([ring, t, &failures] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::Status s = ring->CreateKey(StrCat("tenant/", t, "-", i));
        if (!s.ok()) {
          ++failures;
          ADD_FAILURE() << s;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto fresh = KeyringKeyProvider::Open(ControlStoreKeyring(*control_), master_, random_);
  ASSERT_TRUE(fresh.ok());
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      EXPECT_TRUE((*fresh)->HasKey(StrCat("tenant/", t, "-", i))) << t << "-" << i;
    }
  }
}

}  // namespace
}  // namespace custos::cli::internal
