#include "api/internal/requests.h"

#include "gtest/gtest.h"

namespace custos::api::internal {
namespace {

TEST(ParseTenantSpec, DefaultsAndTypes) {
  auto spec = ParseTenantSpec(R"({"name":"A","customer_type":"enterprise","geography":"US",)"
                              R"("services":["storage"],"technologies":[],"lockbox":true})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "A");
  EXPECT_EQ(spec->retention_days, 90);
  EXPECT_TRUE(spec->lockbox);
  EXPECT_EQ(spec->services, std::vector<std::string>{"storage"});
  EXPECT_TRUE(spec->technologies.empty());
  EXPECT_FALSE(spec->home_region.has_value());
  // The contract's optional fields are home_region, allow_single_region and retention_days;
  // services, technologies and lockbox are required (null is absent), not defaulted.
  for (const char* bad : {R"({"name":"A","customer_type":"e","geography":"US",)"
                          R"("technologies":[],"lockbox":false})",
                          R"({"name":"A","customer_type":"e","geography":"US",)"
                          R"("services":[],"lockbox":false})",
                          R"({"name":"A","customer_type":"e","geography":"US",)"
                          R"("services":[],"technologies":[]})",
                          R"({"name":"A","customer_type":"e","geography":"US",)"
                          R"("services":[],"technologies":[],"lockbox":null})"}) {
    EXPECT_EQ(ParseTenantSpec(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseTenantSpec(R"({"name":"A","customer_type":"e","geography":"US",)"
                            R"("retention_days":"9"})")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ParseTenantSpec(R"({"name":"A","customer_type":"e","geography":"US","x":1})").status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ParseNewPrincipal, AttributesAndExpiry) {
  auto n =
      ParseNewPrincipal(R"({"name":"B","role":"tenant_user","tenant_id":"t1","expires_in_days":7,)"
                        R"("attributes":{"citizenship":"US","screened":true}})");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->role, access::Role::kTenantUser);
  EXPECT_EQ(n->tenant_id, "t1");
  EXPECT_EQ(n->expires_in_days, 7);
  EXPECT_EQ(n->attributes.citizenship, std::vector<std::string>{"US"});
  EXPECT_TRUE(n->attributes.screened);
  EXPECT_EQ(ParseNewPrincipal(R"({"name":"B","role":"root"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ParseNewPrincipal(R"({"name":"B","role":"operator","expires_in_days":0})").status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ParseNewAccessRequest, FieldsDefaultsAndShape) {
  auto n = ParseNewAccessRequest(R"({"tenant_id":"t1","operations":["read","list"],"prefix":"",)"
                                 R"("justification":"j","ticket":"T-1","duration_minutes":30})");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->tenant_id, "t1");
  EXPECT_EQ(n->operations, (std::vector<std::string>{"read", "list"}));
  EXPECT_EQ(n->prefix, "");
  EXPECT_EQ(n->purpose, "support");
  EXPECT_EQ(n->duration_minutes, 30);
  // Shape errors only; the values (481 minutes, unknown operations) are ValidateNewRequest's.
  for (const char* bad :
       {R"({"tenant_id":"t1","operations":["read"],"prefix":"","justification":"j","ticket":"T"})",
        R"({"tenant_id":"t1","operations":"read","prefix":"","justification":"j","ticket":"T",)"
        R"("duration_minutes":5})",
        R"({"tenant_id":"t1","operations":["read"],"prefix":"","justification":"j","ticket":"T",)"
        R"("duration_minutes":1.5})",
        R"({"tenant_id":"t1","operations":["read"],"prefix":"","justification":"j",)"
        R"("duration_minutes":5})",
        R"({"tenant_id":"t1","operations":["read"],"prefix":"","justification":"j","ticket":"T",)"
        R"("duration_minutes":5,"extra":1})",
        // No prefix is not the whole tenant: that is asked for as "".
        R"({"tenant_id":"t1","operations":["read"],"justification":"j","ticket":"T",)"
        R"("duration_minutes":5})",
        "{not json"}) {
    EXPECT_EQ(ParseNewAccessRequest(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(ParseAuditVerdict, VerdictPeriodAndNote) {
  auto v = ParseAuditVerdict(R"({"grant_id":"g1","period":"2026H2","verdict":"inconclusive"})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->grant_id, "g1");
  EXPECT_EQ(v->period, "2026H2");
  EXPECT_EQ(v->verdict, "inconclusive");
  EXPECT_EQ(v->note, "");
  const std::string long_note = std::string(R"({"grant_id":"g","period":"2026-11",)") +
                                R"("verdict":"compliant","note":")" + std::string(4001, 'x') +
                                R"("})";
  for (const std::string& bad :
       {std::string(R"({"grant_id":"g","period":"2026-11","verdict":"meh"})"),
        std::string(R"({"grant_id":"g","period":"2026-13","verdict":"compliant"})"),
        std::string(R"({"grant_id":7,"period":"2026-11","verdict":"compliant"})"),
        std::string(R"({"period":"2026-11","verdict":"compliant"})"), long_note}) {
    EXPECT_EQ(ParseAuditVerdict(bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ParseAdvanceSeconds, RequiredAndBounded) {
  EXPECT_EQ(*ParseAdvanceSeconds(R"({"advance_seconds":60})"), 60);
  EXPECT_FALSE(ParseAdvanceSeconds(R"({"advance_seconds":null})").ok());
  EXPECT_FALSE(ParseAdvanceSeconds(R"({"advance_seconds":-1})").ok());
  EXPECT_FALSE(ParseAdvanceSeconds("{}").ok());
}

TEST(QueryUint, CanonicalDecimalOnly) {
  Query q{{"a", "0"},  {"b", "18446744073709551615"}, {"c", "01"},
          {"d", "+1"}, {"e", "18446744073709551616"}, {"f", ""}};
  EXPECT_EQ(*QueryUint(q, "a"), 0u);
  EXPECT_EQ(*QueryUint(q, "b"), UINT64_MAX);
  for (const char* bad : {"c", "d", "e", "f", "missing"}) {
    EXPECT_EQ(QueryUint(q, bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseListQuery, CursorIsAValidKeyInWebSafeBase64) {
  auto q = ParseListQuery({{"prefix", "dir/"}, {"limit", "5"}, {"cursor", "ZGlyL2I"}});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->prefix, "dir/");
  EXPECT_EQ(q->limit, 5);
  EXPECT_EQ(q->start_after, "dir/b");
  EXPECT_EQ(ParseListQuery({})->limit, 100);
  // "a/../b" decodes but is not a valid key.
  EXPECT_FALSE(ParseListQuery({{"cursor", "YS8uLi9i"}}).ok());
  EXPECT_FALSE(ParseListQuery({{"cursor", "!!!"}}).ok());
  EXPECT_FALSE(ParseListQuery({{"limit", "1001"}}).ok());
  EXPECT_FALSE(ParseListQuery({{"prefix", std::string("a\x01", 2)}}).ok());
}

TEST(ParseAccessLogQuery, DatesRolesAndCursor) {
  auto f = ParseAccessLogQuery({{"from", "2026-01-02"},
                                {"to", "2026-01-02T00:00:01Z"},
                                {"role", "operator"},
                                {"cursor", "42"},
                                {"limit", "10"}});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f->to_ms - *f->from_ms, 1000);
  EXPECT_EQ(f->role, "operator");
  EXPECT_EQ(f->start_index, 42u);
  EXPECT_EQ(f->limit, 10);
  EXPECT_FALSE(ParseAccessLogQuery({{"from", "yesterday"}}).ok());
  auto bad_cursor = ParseAccessLogQuery({{"cursor", "-1"}});
  EXPECT_EQ(bad_cursor.status().message(), "malformed cursor");
  // A role filter names a role the log can hold; a misspelt one is refused, not empty.
  EXPECT_EQ(ParseAccessLogQuery({{"role", "system"}})->role, "system");
  EXPECT_EQ(ParseAccessLogQuery({{"role", "tenant_admin"}})->role, "tenant_admin");
  for (const char* bad : {"bogus", "", "Operator", "operator "}) {
    EXPECT_EQ(ParseAccessLogQuery({{"role", bad}}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace custos::api::internal
