// The sealed keyring kept in the control store (the PostgreSQL layout), on both control-store
// backends: it survives reopening, shreds durably, refuses a second keyring and a wrong master
// key, and holds no key in clear.
#include <memory>
#include <string>

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
  EXPECT_EQ(KeyringKeyProvider::Create(ControlStoreKeyring(*control_), master_, random_)
                .status()
                .code(),
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
  EXPECT_EQ(KeyringKeyProvider::Open(ControlStoreKeyring(*control_), master_, random_)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(KeyringKeyProvider::Create(ControlStoreKeyring(*control_), master_, random_).ok());
  EXPECT_EQ(KeyringKeyProvider::Open(ControlStoreKeyring(*control_), std::string(32, 'x'),
                                     random_)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace custos::cli::internal
