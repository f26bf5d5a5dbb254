#include "base/errors.h"
#include "gtest/gtest.h"
#include "http/http.h"

namespace custos::http {
namespace {

Router MakeRouter() {
  Router r;
  Handler h = [](Request&) { return Response::NoContent(); };
  r.Add("GET", "/v1/tenants/{id}", h);
  r.Add("GET", "/v1/tenants/{id}/objects", h);
  r.Add("PUT", "/v1/tenants/{id}/objects/{key...}", h);
  r.Add("GET", "/v1/tenants/{id}/objects/{key...}", h);
  return r;
}

TEST(Router, MatchesParametersAndRestOfPath) {
  Router r = MakeRouter();
  auto m = r.Find("GET", "/v1/tenants/t1/objects/a/b%20c/d");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->route, "/v1/tenants/{id}/objects/{key...}");
  EXPECT_EQ(m->params["id"], "t1");
  EXPECT_EQ(m->params["key"], "a/b c/d");
}

TEST(Router, DecodesOnceOnly) {
  Router r = MakeRouter();
  auto m = r.Find("GET", "/v1/tenants/t1/objects/%252e%252e");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->params["key"], "%2e%2e");
}

TEST(Router, KeepsEmptySegmentsInTheRestForValidation) {
  Router r = MakeRouter();
  auto m = r.Find("GET", "/v1/tenants/t1/objects/a//b/");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->params["key"], "a//b/");
}

TEST(Router, ListingIsNotAnObjectButATrailingSlashIsAnEmptyKey) {
  Router r = MakeRouter();
  auto m = r.Find("GET", "/v1/tenants/t1/objects");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->route, "/v1/tenants/{id}/objects");
  auto empty = r.Find("GET", "/v1/tenants/t1/objects/");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->route, "/v1/tenants/{id}/objects/{key...}");
  EXPECT_EQ(empty->params["key"], "");
}

TEST(Router, UnknownPathIsNotFoundAndWrongMethodIs405) {
  Router r = MakeRouter();
  EXPECT_EQ(r.Find("GET", "/v1/nothing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.Find("GET", "/v1/tenants").status().code(), absl::StatusCode::kNotFound);
  auto wrong = r.Find("DELETE", "/v1/tenants/t1");
  EXPECT_EQ(HttpStatusOf(wrong.status()), 405);
}

TEST(Router, A405NamesTheRoutesMethodsInAnAllowHeader) {
  Router r = MakeRouter();
  Response response = ErrorResponse(r.Find("POST", "/v1/tenants/t1/objects/a/b").status());
  EXPECT_EQ(response.status, 405);
  std::string allow;
  for (const auto& [name, value] : response.headers) {
    if (name == "Allow") allow = value;
  }
  // Exactly the methods MakeRouter registers for the object route, in registration order, and
  // HEAD with GET (RFC 9110 9.3.2), which finds the GET route.
  EXPECT_EQ(allow, "PUT, GET, HEAD");
  auto head = r.Find("HEAD", "/v1/tenants/t1/objects/a/b");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(r.Find("GET", "/v1/tenants/t1/objects/a/b")->route, head->route);
  EXPECT_FALSE(r.Find("HEAD", "/nowhere").ok());
}

TEST(PercentDecode, RejectsMalformedEscapes) {
  EXPECT_EQ(*PercentDecode("a%2Fb%00"), std::string("a/b\0", 4));
  for (const char* bad : {"%", "%4", "%zz", "a%g0"}) {
    EXPECT_EQ(PercentDecode(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ErrorResponse, HasTheDesignShapeAndStatus) {
  struct Case {
    absl::Status status;
    int http;
    std::string code;
  };
  const Case kCases[] = {
      {absl::InvalidArgumentError("x"), 400, "invalid_argument"},
      {absl::UnauthenticatedError("x"), 401, "unauthenticated"},
      {absl::PermissionDeniedError("x"), 403, "permission_denied"},
      {absl::NotFoundError("x"), 404, "not_found"},
      {absl::FailedPreconditionError("x"), 409, "failed_precondition"},
      {Conflict("x"), 409, "conflict"},
      {TooLarge("x"), 413, "too_large"},
      {RateLimited("x"), 429, "rate_limited"},
      {absl::UnavailableError("x"), 503, "unavailable"},
      {RegionPolicyViolation("cn-north", "excluded_services", "no"), 403,
       "region_policy_violation"},
      {absl::InternalError("secret detail"), 500, "internal"},
  };
  for (const Case& c : kCases) {
    Response r = ErrorResponse(c.status);
    EXPECT_EQ(r.status, c.http) << c.code;
    EXPECT_NE(r.body.find("{\"error\":{\"code\":\"" + c.code + "\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"details\":{"), std::string::npos) << r.body;
  }
  EXPECT_EQ(ErrorResponse(absl::InternalError("secret detail")).body.find("secret"),
            std::string::npos);
  Response policy = ErrorResponse(RegionPolicyViolation("cn-north", "excluded_services", "no"));
  EXPECT_NE(policy.body.find("\"rule\":\"excluded_services\""), std::string::npos);
}

}  // namespace
}  // namespace custos::http

namespace custos::http {
namespace {

TEST(ParseQuery, DecodesOnceSkipsEmptyPairsAndLastValueWins) {
  auto q = ParseQuery("/v1/x?a=1&&b=%2541&a=2&flag&c=x%3Dy");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(*q, (std::map<std::string, std::string>{
                    {"a", "2"}, {"b", "%41"}, {"flag", ""}, {"c", "x=y"}}));
  EXPECT_TRUE(ParseQuery("/v1/x")->empty());
  EXPECT_TRUE(ParseQuery("/v1/x?")->empty());
}

TEST(ParseQuery, MalformedEscapeIsInvalidArgument) {
  for (const char* target : {"/x?cursor=%zz", "/x?a%=1", "/x?a=%4"}) {
    auto q = ParseQuery(target);
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument) << target;
    EXPECT_EQ(q.status().message(), "malformed query string");
  }
}

}  // namespace
}  // namespace custos::http
