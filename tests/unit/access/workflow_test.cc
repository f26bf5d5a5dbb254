// The access-request state machine, eligibility and grant checks, by table.
#include "access/workflow.h"

#include "base/errors.h"
#include "gtest/gtest.h"

namespace custos::access {
namespace {

constexpr int64_t kT0 = 1'800'000'000;

Principal P(std::string id, Role role, std::string tenant = "") {
  Principal p;
  p.id = std::move(id);
  p.role = role;
  p.tenant_id = std::move(tenant);
  return p;
}

const Principal kOperator = P("op", Role::kOperator);
const Principal kOtherOperator = P("op2", Role::kOperator);
const Principal kManager = P("mgr", Role::kManager);
const Principal kTenantAdmin = P("ta", Role::kTenantAdmin, "t1");
const Principal kOtherTenantAdmin = P("ta2", Role::kTenantAdmin, "t2");
const Principal kAdmin = P("adm", Role::kAdmin);
const Principal kAuditor = P("aud", Role::kAuditor);

NewAccessRequest Valid() {
  NewAccessRequest n;
  n.tenant_id = "t1";
  n.operations = {"read", "list"};
  n.prefix = "logs/";
  n.justification = "customer ticket: cannot read logs";
  n.ticket = "SUP-1";
  n.duration_minutes = 30;
  return n;
}

AccessRequest Filed(bool lockbox) {
  return NewRequest(Valid(), "r1", kOperator, lockbox, kT0, WorkflowOptions{});
}

AccessRequest Must(const absl::StatusOr<AccessRequest>& r) {
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : AccessRequest{};
}

AccessRequest Active(bool lockbox = false) {
  WorkflowOptions o;
  AccessRequest r = Must(Transition(Filed(lockbox), RequestAction::kApprove, kManager, kT0 + 1, o));
  if (lockbox) r = Must(Transition(r, RequestAction::kApprove, kTenantAdmin, kT0 + 2, o));
  return Must(Transition(r, RequestAction::kActivate, kOperator, kT0 + 3, o, "g1"));
}

TEST(Workflow, ValidationNamesTheBadField) {
  WorkflowOptions o;
  EXPECT_TRUE(ValidateNewRequest(Valid(), o).ok());
  struct Case {
    const char* name;
    void (*mutate)(NewAccessRequest&);
  } cases[] = {
      {"no operations", [](NewAccessRequest& n) { n.operations.clear(); }},
      {"unknown operation", [](NewAccessRequest& n) { n.operations = {"admin"}; }},
      {"repeated operation",
       [](NewAccessRequest& n) {
         n.operations = {"read", "read"};
       }},
      {"control char prefix", [](NewAccessRequest& n) { n.prefix = "a\nb"; }},
      {"dotdot prefix", [](NewAccessRequest& n) { n.prefix = "a/../b"; }},
      {"leading slash", [](NewAccessRequest& n) { n.prefix = "/a"; }},
      {"empty justification", [](NewAccessRequest& n) { n.justification.clear(); }},
      {"empty ticket", [](NewAccessRequest& n) { n.ticket.clear(); }},
      {"NUL in justification",
       [](NewAccessRequest& n) { n.justification += std::string(1, '\0'); }},
      {"escape in justification", [](NewAccessRequest& n) { n.justification += "\x1b[2J"; }},
      {"C1 in justification", [](NewAccessRequest& n) { n.justification += "\xc2\x9b"; }},
      {"line break in ticket", [](NewAccessRequest& n) { n.ticket = "T-1\nT-2"; }},
      {"zero duration", [](NewAccessRequest& n) { n.duration_minutes = 0; }},
      {"over cap", [](NewAccessRequest& n) { n.duration_minutes = 481; }},
      {"bad purpose", [](NewAccessRequest& n) { n.purpose = "marketing"; }},
      {"no tenant", [](NewAccessRequest& n) { n.tenant_id.clear(); }},
  };
  for (const auto& c : cases) {
    NewAccessRequest n = Valid();
    c.mutate(n);
    EXPECT_TRUE(absl::IsInvalidArgument(ValidateNewRequest(n, o))) << c.name;
  }
  NewAccessRequest multiline = Valid();
  multiline.justification = "Customer case 42:\r\n\tdisk full on their replica\n";
  EXPECT_TRUE(ValidateNewRequest(multiline, o).ok());
  NewAccessRequest at_cap = Valid();
  at_cap.duration_minutes = 480;
  EXPECT_TRUE(ValidateNewRequest(at_cap, o).ok());
}

TEST(Workflow, EligibilityRulesAreNamed) {
  RegionPersonnel open{"us-east", "provider", {}, false};
  RegionPersonnel gov{"us-gov-virginia", "provider", {"US"}, true};
  RegionPersonnel partner{"cn-north", "Example Partner", {"CN"}, true};
  auto with = [](std::string employer, std::vector<std::string> cit, bool screened) {
    Principal p = P("op", Role::kOperator);
    p.attributes.employer = std::move(employer);
    p.attributes.citizenship = std::move(cit);
    p.attributes.screened = screened;
    return p;
  };
  struct Case {
    Principal who;
    RegionPersonnel region;
    const char* rule;  // nullptr = eligible
  } cases[] = {
      {with("provider", {}, false), open, nullptr},
      {with("subcontractor", {"US"}, true), open, "employer"},
      {with("subcontractor", {"US"}, true), gov, "employer"},
      {with("provider", {"FR"}, true), gov, "personnel.citizenship"},
      {with("provider", {"US"}, false), gov, "personnel.screened"},
      {with("provider", {"FR", "US"}, true), gov, nullptr},
      {with("provider", {"CN"}, true), partner, "operated_by"},
      {with("partner", {"CN"}, true), partner, nullptr},
      {with("partner", {}, false), open, "operated_by"},
      {P("aud", Role::kAuditor), open, "role"},
      {P("ta", Role::kTenantAdmin, "t1"), open, "role"},
  };
  for (const auto& c : cases) {
    absl::Status s = CheckEligible(c.who, c.region);
    if (c.rule == nullptr) {
      EXPECT_TRUE(s.ok()) << s;
    } else {
      EXPECT_TRUE(absl::IsPermissionDenied(s)) << c.rule;
      auto details = ApiDetailsOf(s);
      ASSERT_TRUE(details.has_value()) << c.rule;
      EXPECT_NE(details->find(std::string("\"rule\":\"") + c.rule + "\""), std::string::npos)
          << *details;
    }
  }
}

TEST(Workflow, WithoutLockboxManagerApprovalSuffices) {
  WorkflowOptions o;
  AccessRequest r = Filed(false);
  EXPECT_EQ(r.state, RequestState::kPendingManager);
  EXPECT_EQ(r.expires_at, kT0 + o.pending_ttl_seconds);
  r = Must(Transition(r, RequestAction::kApprove, kManager, kT0 + 10, o));
  EXPECT_EQ(r.state, RequestState::kApproved);
  r = Must(Transition(r, RequestAction::kActivate, kOperator, kT0 + 20, o, "g1"));
  EXPECT_EQ(r.state, RequestState::kActive);
  EXPECT_EQ(r.grant_id, "g1");
  EXPECT_EQ(r.expires_at, kT0 + 20 + 30 * 60);  // counted from activation
  ASSERT_EQ(r.history.size(), 3u);
  EXPECT_EQ(r.history[2].action, "activate");
}

TEST(Workflow, LockboxNeedsTheTenantAdmin) {
  WorkflowOptions o;
  AccessRequest r = Must(Transition(Filed(true), RequestAction::kApprove, kManager, kT0, o));
  EXPECT_EQ(r.state, RequestState::kPendingCustomer);
  EXPECT_TRUE(
      absl::IsPermissionDenied(Transition(r, RequestAction::kApprove, kManager, kT0, o).status()));
  EXPECT_TRUE(absl::IsPermissionDenied(
      Transition(r, RequestAction::kApprove, kOtherTenantAdmin, kT0, o).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      Transition(r, RequestAction::kActivate, kOperator, kT0, o, "g").status()));
  r = Must(Transition(r, RequestAction::kApprove, kTenantAdmin, kT0, o));
  EXPECT_EQ(r.state, RequestState::kApproved);
}

TEST(Workflow, NobodyApprovesTheirOwnRequest) {
  WorkflowOptions o;
  AccessRequest mine = NewRequest(Valid(), "r2", kManager, false, kT0, o);
  auto s = Transition(mine, RequestAction::kApprove, kManager, kT0, o).status();
  EXPECT_TRUE(absl::IsPermissionDenied(s));
  EXPECT_NE(ApiDetailsOf(s).value_or("").find("self_approval"), std::string::npos);
  EXPECT_TRUE(
      absl::IsPermissionDenied(Transition(mine, RequestAction::kDeny, kManager, kT0, o).status()));
}

TEST(Workflow, TransitionsTable) {
  WorkflowOptions o;
  struct Case {
    const char* name;
    AccessRequest from;
    RequestAction action;
    Principal actor;
    absl::StatusCode want;
    RequestState to;
  };
  AccessRequest approved =
      Must(Transition(Filed(false), RequestAction::kApprove, kManager, kT0, o));
  AccessRequest active = Active();
  AccessRequest denied = Must(Transition(Filed(false), RequestAction::kDeny, kManager, kT0, o));
  const auto ok = absl::StatusCode::kOk;
  const auto perm = absl::StatusCode::kPermissionDenied;
  const auto pre = absl::StatusCode::kFailedPrecondition;
  Case cases[] = {
      {"operator approves", Filed(false), RequestAction::kApprove, kOtherOperator, perm, {}},
      {"admin approves", Filed(false), RequestAction::kApprove, kAdmin, perm, {}},
      {"manager denies", Filed(false), RequestAction::kDeny, kManager, ok, RequestState::kDenied},
      {"activate pending", Filed(false), RequestAction::kActivate, kOperator, pre, {}},
      {"other activates", approved, RequestAction::kActivate, kOtherOperator, perm, {}},
      {"approve approved", approved, RequestAction::kApprove, kManager, pre, {}},
      {"deny approved", approved, RequestAction::kDeny, kManager, pre, {}},
      {"revoke approved", approved, RequestAction::kRevoke, kManager, ok, RequestState::kRevoked},
      {"tenant revokes", active, RequestAction::kRevoke, kTenantAdmin, ok, RequestState::kRevoked},
      {"admin revokes", active, RequestAction::kRevoke, kAdmin, ok, RequestState::kRevoked},
      {"other tenant revokes", active, RequestAction::kRevoke, kOtherTenantAdmin, perm, {}},
      {"auditor revokes", active, RequestAction::kRevoke, kAuditor, perm, {}},
      {"operator closes", active, RequestAction::kClose, kOperator, ok, RequestState::kClosed},
      {"manager closes", active, RequestAction::kClose, kManager, perm, {}},
      {"activate twice", active, RequestAction::kActivate, kOperator, pre, {}},
      {"revoke denied", denied, RequestAction::kRevoke, kManager, pre, {}},
      {"approve denied", denied, RequestAction::kApprove, kManager, pre, {}},
      {"close denied", denied, RequestAction::kClose, kOperator, pre, {}},
  };
  for (const auto& c : cases) {
    auto r = Transition(c.from, c.action, c.actor, kT0 + 5, o, "g2");
    EXPECT_EQ(r.status().code(), c.want) << c.name << ": " << r.status();
    if (r.ok()) {
      EXPECT_EQ(r->state, c.to) << c.name;
      EXPECT_EQ(r->history.size(), c.from.history.size() + 1) << c.name;
      EXPECT_FALSE(IsLive(r->state) && c.to != RequestState::kActive) << c.name;
    }
  }
}

TEST(Workflow, ExpiryOfPendingApprovedAndActive) {
  WorkflowOptions o;
  AccessRequest pending = Filed(false);
  EXPECT_FALSE(IsDue(pending, kT0 + o.pending_ttl_seconds - 1));
  EXPECT_TRUE(IsDue(pending, kT0 + o.pending_ttl_seconds));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      Transition(pending, RequestAction::kApprove, kManager, kT0 + o.pending_ttl_seconds, o)
          .status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      Transition(pending, RequestAction::kExpire, Principal{}, kT0, o).status()));
  AccessRequest e = Must(
      Transition(pending, RequestAction::kExpire, Principal{}, kT0 + o.pending_ttl_seconds, o));
  EXPECT_EQ(e.state, RequestState::kExpired);
  EXPECT_FALSE(IsDue(e, kT0 + 10 * o.pending_ttl_seconds));

  AccessRequest active = Active();
  const int64_t end = *active.expires_at;
  EXPECT_TRUE(CheckGrant(active, kOperator, "t1", DataOperation::kRead, "logs/a", end - 1).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(
      CheckGrant(active, kOperator, "t1", DataOperation::kRead, "logs/a", end)));
  EXPECT_EQ(Must(Transition(active, RequestAction::kExpire, Principal{}, end, o)).state,
            RequestState::kExpired);
}

TEST(Workflow, GrantScope) {
  AccessRequest g = Active();
  const int64_t now = kT0 + 60;
  EXPECT_TRUE(CheckGrant(g, kOperator, "t1", DataOperation::kRead, "logs/x", now).ok());
  EXPECT_TRUE(CheckGrant(g, kOperator, "t1", DataOperation::kList, "logs/", now).ok());
  EXPECT_TRUE(CheckGrant(g, kOperator, "t1", DataOperation::kList, "logs/2026", now).ok());
  struct Case {
    const char* name;
    Principal who;
    const char* tenant;
    DataOperation op;
    const char* resource;
  } refused[] = {
      {"other prefix", kOperator, "t1", DataOperation::kRead, "secrets/x"},
      {"wider listing", kOperator, "t1", DataOperation::kList, ""},
      {"other operation", kOperator, "t1", DataOperation::kWrite, "logs/x"},
      {"delete", kOperator, "t1", DataOperation::kDelete, "logs/x"},
      {"other tenant", kOperator, "t2", DataOperation::kRead, "logs/x"},
      {"other principal", kOtherOperator, "t1", DataOperation::kRead, "logs/x"},
  };
  for (const auto& c : refused) {
    EXPECT_TRUE(absl::IsPermissionDenied(CheckGrant(g, c.who, c.tenant, c.op, c.resource, now)))
        << c.name;
  }
  AccessRequest revoked = Must(Transition(g, RequestAction::kRevoke, kManager, now, {}));
  EXPECT_TRUE(absl::IsPermissionDenied(
      CheckGrant(revoked, kOperator, "t1", DataOperation::kRead, "logs/x", now)));
}

TEST(Workflow, WhoMayView) {
  AccessRequest r = Filed(false);
  EXPECT_TRUE(CheckCanView(r, kOperator).ok());
  EXPECT_TRUE(CheckCanView(r, kManager).ok());
  EXPECT_TRUE(CheckCanView(r, kAuditor).ok());
  EXPECT_TRUE(CheckCanView(r, kTenantAdmin).ok());
  EXPECT_TRUE(absl::IsNotFound(CheckCanView(r, kOtherOperator)));
  EXPECT_TRUE(absl::IsNotFound(CheckCanView(r, kOtherTenantAdmin)));
}

}  // namespace
}  // namespace custos::access
