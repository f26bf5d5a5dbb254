#include "access/access.h"
#include "gtest/gtest.h"

namespace custos::access {
namespace {

Principal Make(Role role, std::string tenant = "") {
  Principal p;
  p.id = "p";
  p.role = role;
  p.tenant_id = std::move(tenant);
  return p;
}

TEST(Access, OnlyTheTenantsOwnPrincipalsReachItsDataByRole) {
  for (DataOperation op : {DataOperation::kRead, DataOperation::kWrite, DataOperation::kDelete,
                           DataOperation::kList}) {
    EXPECT_TRUE(CheckDataAccessByRole(Make(Role::kTenantAdmin, "t1"), "t1", op).ok());
    EXPECT_TRUE(CheckDataAccessByRole(Make(Role::kTenantUser, "t1"), "t1", op).ok());
    EXPECT_FALSE(CheckDataAccessByRole(Make(Role::kTenantUser, "t2"), "t1", op).ok());
    for (Role r : {Role::kAdmin, Role::kOperator, Role::kManager, Role::kLegal, Role::kAuditor}) {
      EXPECT_EQ(CheckDataAccessByRole(Make(r), "t1", op).code(),
                absl::StatusCode::kPermissionDenied)
          << RoleName(r);
    }
  }
}

TEST(Access, WhoCreatesWhom) {
  NewPrincipal user{"u", Role::kTenantUser, "t1", {}, {}};
  NewPrincipal tenant_admin{"a", Role::kTenantAdmin, "t1", {}, {}};
  // The provider's admin makes no principal of a tenant: that would be standing access.
  EXPECT_EQ(CheckCanCreate(Make(Role::kAdmin), user).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckCanCreate(Make(Role::kAdmin), tenant_admin).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CheckCanCreate(Make(Role::kTenantAdmin, "t1"), user).ok());
  EXPECT_TRUE(CheckCanCreate(Make(Role::kTenantAdmin, "t1"), tenant_admin).ok());
  EXPECT_FALSE(CheckCanCreate(Make(Role::kTenantAdmin, "t2"), user).ok());
  EXPECT_FALSE(CheckCanCreate(Make(Role::kTenantUser, "t1"), user).ok());
  NewPrincipal op{"o", Role::kOperator, "", {}, {}};
  EXPECT_FALSE(CheckCanCreate(Make(Role::kTenantAdmin, "t1"), op).ok());
  EXPECT_FALSE(CheckCanCreate(Make(Role::kOperator), op).ok());
  EXPECT_TRUE(CheckCanCreate(Make(Role::kAdmin), op).ok());
}

TEST(Access, WhoManagesWhoseCredentials) {
  auto with_id = [](Principal p, std::string id) {
    p.id = std::move(id);
    return p;
  };
  const Principal admin = with_id(Make(Role::kAdmin), "admin");
  const Principal ta = with_id(Make(Role::kTenantAdmin, "t1"), "ta");
  const Principal user = with_id(Make(Role::kTenantUser, "t1"), "user");
  const Principal stranger = with_id(Make(Role::kTenantUser, "t2"), "stranger");
  const Principal op = with_id(Make(Role::kOperator), "op");
  // The admin may disable a tenant's principal but never take it over with a new token.
  EXPECT_EQ(CheckCanManageCredential(admin, user, false).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckCanManageCredential(admin, ta, false).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CheckCanManageCredential(admin, user, true).ok());
  for (bool disable : {false, true}) {
    EXPECT_TRUE(CheckCanManageCredential(admin, op, disable).ok());
    EXPECT_TRUE(CheckCanManageCredential(ta, user, disable).ok());
    EXPECT_FALSE(CheckCanManageCredential(ta, stranger, disable).ok());
    EXPECT_FALSE(CheckCanManageCredential(ta, op, disable).ok());
    EXPECT_FALSE(CheckCanManageCredential(user, stranger, disable).ok());
    EXPECT_FALSE(CheckCanManageCredential(op, user, disable).ok());
  }
  // Anyone rotates its own token; nobody disables itself.
  for (const Principal& p : {admin, ta, user, op}) {
    EXPECT_TRUE(CheckCanManageCredential(p, p, false).ok()) << p.id;
    EXPECT_EQ(CheckCanManageCredential(p, p, true).code(), absl::StatusCode::kPermissionDenied)
        << p.id;
  }
}

TEST(Access, ValidatesNewPrincipals) {
  Principal admin = Make(Role::kAdmin);
  EXPECT_FALSE(CheckCanCreate(admin, {"", Role::kOperator, "", {}, {}}).ok());
  EXPECT_FALSE(CheckCanCreate(admin, {"x", Role::kTenantUser, "", {}, {}}).ok());
  EXPECT_FALSE(CheckCanCreate(admin, {"x", Role::kOperator, "t1", {}, {}}).ok());
  EXPECT_FALSE(
      CheckCanCreate(admin, {"x", Role::kOperator, "", {"contractor", {}, false}, {}}).ok());
  EXPECT_FALSE(
      CheckCanCreate(admin, {"x", Role::kOperator, "", {"provider", {"usa"}, false}, {}}).ok());
  EXPECT_TRUE(
      CheckCanCreate(admin, {"x", Role::kOperator, "", {"partner", {"US"}, true}, {}}).ok());
}

TEST(Access, RoleNamesRoundTrip) {
  for (Role r : {Role::kAdmin, Role::kOperator, Role::kManager, Role::kLegal, Role::kAuditor,
                 Role::kTenantAdmin, Role::kTenantUser}) {
    EXPECT_EQ(*ParseRole(RoleName(r)), r);
  }
  EXPECT_FALSE(ParseRole("root").ok());
}

}  // namespace
}  // namespace custos::access
