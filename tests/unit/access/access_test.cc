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
  EXPECT_TRUE(CheckCanCreate(Make(Role::kAdmin), user).ok());
  EXPECT_TRUE(CheckCanCreate(Make(Role::kTenantAdmin, "t1"), user).ok());
  EXPECT_FALSE(CheckCanCreate(Make(Role::kTenantAdmin, "t2"), user).ok());
  EXPECT_FALSE(CheckCanCreate(Make(Role::kTenantUser, "t1"), user).ok());
  NewPrincipal op{"o", Role::kOperator, "", {}, {}};
  EXPECT_FALSE(CheckCanCreate(Make(Role::kTenantAdmin, "t1"), op).ok());
  EXPECT_FALSE(CheckCanCreate(Make(Role::kOperator), op).ok());
  EXPECT_TRUE(CheckCanCreate(Make(Role::kAdmin), op).ok());
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
