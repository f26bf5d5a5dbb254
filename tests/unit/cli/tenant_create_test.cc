// TenantService::Create over a real data directory (custos init, SQLite), with the control
// store's answer to the tenant's insert replaced: the row is committed, and the caller is told
// the store was unavailable, as when PostgreSQL's COMMIT succeeds but its answer is lost.

#include <gtest/gtest.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/internal/app.h"
#include "crypto/key_provider.h"
#include "testing/forwarding_control_store.h"
#include "testing/temp_dir.h"

namespace custos::cli::internal {
namespace {

class AnswerLostAfterInsert final : public testing::ForwardingControlStore {
 public:
  using ForwardingControlStore::ForwardingControlStore;
  absl::Status InsertTenant(const store::TenantRecord& t,
                            const store::PrincipalRecord& first_admin) override {
    if (auto s = ForwardingControlStore::InsertTenant(t, first_admin); !s.ok()) return s;
    return absl::UnavailableError("connection lost while committing (test)");
  }
};

class RefusedInsert final : public testing::ForwardingControlStore {
 public:
  using ForwardingControlStore::ForwardingControlStore;
  absl::Status InsertTenant(const store::TenantRecord&, const store::PrincipalRecord&) override {
    return absl::UnavailableError("refused before committing (test)");
  }
};

tenants::TenantSpec Spec() {
  tenants::TenantSpec spec;
  spec.name = "Acme";
  spec.customer_type = "enterprise";
  spec.geography = "US";
  spec.services = {"storage"};
  return spec;
}

class TenantCreateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions init;
    init.data_dir = dir_.File("data");
    init.regions_file = CUSTOS_SOURCE_DIR "/config/regions.yaml";
    ASSERT_EQ(RunInit(init), 0);
    auto app = OpenApp(init.data_dir, AppOptions{});
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = *std::move(app);
  }

  // A TenantService like the app's, over `control` instead of the app's control store.
  tenants::TenantService Service(store::ControlStore& control) {
    return tenants::TenantService(control, app_->catalog, *app_->keys, *app_->objects,
                                  *app_->events, app_->random, *app_->clock);
  }

  testing::TempDir dir_;
  std::unique_ptr<App> app_;
};

// The tenant and its admin were stored: its KEK must stay, or the stored tenant is shredded.
TEST_F(TenantCreateTest, AnInsertWhoseAnswerIsLostKeepsTheStoredTenantAndItsKey) {
  AnswerLostAfterInsert control(*app_->control);
  tenants::TenantService tenants = Service(control);
  auto created = api::CreateTenantWithAdmin(tenants, *app_->principals, Spec(), "test", "admin");
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string& id = created->tenant.id;
  auto stored = app_->tenants->Get(id);  // read back through the KEK: the name is sealed
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->name, "Acme");
  auto admin = app_->principals->Authenticate(created->admin.token);
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(admin->tenant_id, id);
}

// Nothing was stored: the KEK goes, and the caller gets the store's error.
TEST_F(TenantCreateTest, AnInsertRefusedBeforeCommittingDestroysTheKey) {
  RefusedInsert control(*app_->control);
  tenants::TenantService tenants = Service(control);
  std::string id;
  auto created = tenants.Create(
      Spec(), "test", "admin",
      [&](const tenants::Tenant& t) -> absl::StatusOr<store::PrincipalRecord> {
        id = t.id;
        auto m = app_->principals->Mint({"Acme admin", access::Role::kTenantAdmin, t.id, {}, {}});
        if (!m.ok()) return m.status();
        return m->record;
      });
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(app_->control->GetTenant(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(app_->keys->Wrap(crypto::TenantKeyId(id), "x", "aad").ok());
}

}  // namespace
}  // namespace custos::cli::internal
