// AccessRequestService on a real SQLite control store and ledger: what Act confirms (the
// caller's second factor) is checked on the very version it then commits.
#include "access/requests.h"

#include "base/clock.h"
#include "crypto/crypto.h"
#include "gtest/gtest.h"
#include "testing/temp_dir.h"

namespace custos::access {
namespace {

Principal P(std::string id, Role role) {
  Principal p;
  p.id = std::move(id);
  p.role = role;
  return p;
}

class AccessRequestServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ =
        *crypto::KeyringKeyProvider::Create(dir_.File("keyring"), std::string(32, 'k'), random_);
    ASSERT_TRUE(keys_->CreateKey(crypto::TenantKeyId("t1")).ok());
    control_ = *store::OpenSqliteControlStore(dir_.File("control.db"), true);
    ledger_ = *ledger::Ledger::Open(*control_, crypto::Ed25519PrivateKey::Generate(random_),
                                    "test.example/log", clock_);
    events_ = std::make_unique<ledger::EventLog>(*ledger_, *control_, *keys_, std::string(32, 'p'),
                                                 random_, clock_);
    requests_ = std::make_unique<AccessRequestService>(*control_, *events_, random_, clock_);
    NewAccessRequest n;
    n.tenant_id = "t1";
    n.operations = {"read"};
    n.prefix = "logs/";
    n.justification = "customer ticket";
    n.ticket = "SUP-1";
    n.duration_minutes = 30;
    auto r = requests_->Create(operator_, n, /*lockbox=*/false, RegionPersonnel{"us-east"});
    ASSERT_TRUE(r.ok()) << r.status();
    id_ = r->id;
  }

  // Kinds of the tenant's recorded events, in order.
  std::vector<std::string> Kinds() {
    std::vector<std::string> kinds;
    auto page = events_->ReadTenantLog("t1", {});
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) return kinds;
    for (const auto& e : page->events) {
      auto v = boost::json::parse(e.record);
      kinds.emplace_back(v.at("kind").as_string());
    }
    return kinds;
  }

  RequestState StoredState() {
    auto r = requests_->Get(id_);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->state : RequestState::kPendingManager;
  }

  testing::TempDir dir_;
  crypto::OpenSslRandom random_;
  SystemClock clock_;
  std::unique_ptr<crypto::KeyProvider> keys_;
  std::unique_ptr<store::ControlStore> control_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<ledger::EventLog> events_;
  std::unique_ptr<AccessRequestService> requests_;
  const Principal operator_ = P("op", Role::kOperator);
  const Principal manager_ = P("mgr", Role::kManager);
  std::string id_;
};

TEST_F(AccessRequestServiceTest, ConfirmRunsOnlyForAnAllowedActionAndItsRefusalStopsIt) {
  int confirmations = 0;
  auto count = [&] {
    ++confirmations;
    return absl::OkStatus();
  };
  // Not allowed in this state: refused before the caller's code is asked for.
  EXPECT_EQ(requests_->Act(operator_, id_, RequestAction::kActivate, count).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(confirmations, 0);
  // Allowed, but the second factor is refused: nothing recorded, nothing changed.
  auto refused = requests_->Act(manager_, id_, RequestAction::kApprove,
                                [] { return absl::PermissionDeniedError("wrong code"); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StoredState(), RequestState::kPendingManager);
  EXPECT_EQ(Kinds(), std::vector<std::string>{"access.request"});
  // Allowed and confirmed.
  ASSERT_TRUE(requests_->Act(manager_, id_, RequestAction::kApprove, count).ok());
  EXPECT_EQ(confirmations, 1);
  EXPECT_EQ(StoredState(), RequestState::kApproved);
}

// The request changes while the caller's code is being checked (here: the manager revokes the
// approval): the activation confirmed for the approved version must not commit on the new one.
TEST_F(AccessRequestServiceTest, AnActionConfirmedOnOneVersionDoesNotCommitOnAnother) {
  ASSERT_TRUE(
      requests_->Act(manager_, id_, RequestAction::kApprove, [] { return absl::OkStatus(); }).ok());
  auto activated = requests_->Act(operator_, id_, RequestAction::kActivate, [&] {
    EXPECT_TRUE(
        requests_->Act(manager_, id_, RequestAction::kRevoke, [] { return absl::OkStatus(); })
            .ok());
    return absl::OkStatus();
  });
  EXPECT_EQ(activated.status().code(), absl::StatusCode::kAborted) << activated.status();
  EXPECT_EQ(StoredState(), RequestState::kRevoked);
  // The log says the activation was attempted after the revocation and did not happen (its
  // outcome follows it).
  EXPECT_EQ(Kinds(), (std::vector<std::string>{"access.request", "access.approve", "access.revoke",
                                               "access.activate", "outcome"}));
  auto page = events_->ReadTenantLog("t1", {});
  ASSERT_TRUE(page.ok());
  auto outcome = boost::json::parse(page->events.back().record);
  EXPECT_EQ(outcome.at("of").as_int64(), static_cast<int64_t>(page->events[3].ledger_index));
  EXPECT_EQ(outcome.at("outcome").as_string(), "conflict");
}

}  // namespace
}  // namespace custos::access
