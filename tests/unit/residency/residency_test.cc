#include "residency/residency.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <numbers>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "base/errors.h"
#include "boost/json.hpp"

namespace custos::residency {
namespace {

using ::testing::HasSubstr;

const std::string kShippedCatalog = CUSTOS_SOURCE_DIR "/config/regions.yaml";

Catalog Shipped() {
  absl::StatusOr<Catalog> catalog = Catalog::FromFile(kShippedCatalog);
  EXPECT_TRUE(catalog.ok()) << catalog.status();
  return catalog.ok() ? *std::move(catalog) : Catalog();
}

// One region on the equator at `lon` degrees (1 degree = 111.195 km). `extra` is appended
// under the region, indented by four spaces (e.g. a restrictions block).
std::string RegionYaml(absl::string_view id, absl::string_view geography, double lon,
                       absl::string_view extra = "") {
  return absl::StrCat("  - id: ", id, "\n    name: Test ", id, "\n    geography: ", geography,
                      "\n    country: US\n    lat: 0\n    lon: ", absl::StrFormat("%.17g", lon),
                      "\n    operated_by: provider\n", extra);
}

Catalog Inline(absl::string_view regions_yaml) {
  absl::StatusOr<Catalog> catalog = Catalog::FromYaml(absl::StrCat("regions:\n", regions_yaml));
  EXPECT_TRUE(catalog.ok()) << catalog.status();
  return catalog.ok() ? *std::move(catalog) : Catalog();
}

TenantProfile Tenant(std::string geography, std::string customer_type = "enterprise") {
  TenantProfile p;
  p.geography = std::move(geography);
  p.customer_type = std::move(customer_type);
  p.services = {"storage"};
  return p;
}

// Asserts `status` is the region_policy_violation for `region` and `rule`.
void ExpectViolation(const absl::Status& status, absl::string_view region, absl::string_view rule) {
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_EQ(ApiCodeOf(status), "region_policy_violation");
  std::optional<std::string> details = ApiDetailsOf(status);
  ASSERT_TRUE(details.has_value());
  boost::json::object d = boost::json::parse(*details).as_object();
  EXPECT_EQ(std::string(d.at("region").as_string()), std::string(region));
  EXPECT_EQ(std::string(d.at("rule").as_string()), std::string(rule));
  EXPECT_FALSE(d.at("reason").as_string().empty());
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(region)));
}

// --- Distances -----------------------------------------------------------------------------

TEST(HaversineKm, RosettaCodeVector) {
  // Nashville BNA to Los Angeles LAX: 2887.2599506071106 km with R = 6372.8 km (Rosetta Code).
  double km = HaversineKm(36.12, -86.67, 33.94, -118.40);
  EXPECT_NEAR(km * 6372.8 / kEarthRadiusKm, 2887.2599506071106, 1e-6);
}

TEST(HaversineKm, LondonParis) {
  // Published great-circle distance between the city centres: about 343.5 km.
  EXPECT_NEAR(HaversineKm(51.5074, -0.1278, 48.8566, 2.3522), 343.5, 1.0);
}

TEST(HaversineKm, GeometricIdentities) {
  const double pi_r = std::numbers::pi * kEarthRadiusKm;
  EXPECT_DOUBLE_EQ(HaversineKm(12.5, 45.25, 12.5, 45.25), 0.0);
  EXPECT_NEAR(HaversineKm(0, 0, 90, 0), pi_r / 2, 1e-9);
  EXPECT_NEAR(HaversineKm(90, 0, -90, 0), pi_r, 1e-9);
  EXPECT_NEAR(HaversineKm(0, 0, 0, 180), pi_r, 1e-9);  // antipodes: no NaN from asin
  EXPECT_NEAR(HaversineKm(0, 179, 0, -179), HaversineKm(0, 0, 0, 2), 1e-9);  // antimeridian
  EXPECT_DOUBLE_EQ(HaversineKm(10, 20, -30, 40), HaversineKm(-30, 40, 10, 20));
}

// --- The shipped catalog -------------------------------------------------------------------

TEST(ShippedCatalog, LoadsWithTheExamplePolicy) {
  Catalog catalog = Shipped();
  std::map<std::string, int> per_geography;
  std::set<std::string> ids;
  for (const Region& r : catalog.regions()) {
    ++per_geography[r.geography];
    EXPECT_TRUE(ids.insert(r.id).second) << r.id;
    EXPECT_FALSE(r.due_diligence.empty()) << r.id;
  }
  for (const char* geo : {"US", "EU", "UK", "IN", "AU", "JP", "CN"}) {
    EXPECT_GE(per_geography[geo], 2) << geo;
  }
  const Region* cn = catalog.Find("cn-north");
  ASSERT_NE(cn, nullptr);
  EXPECT_NE(cn->operated_by, "provider");
  EXPECT_EQ(cn->restrictions.excluded_technologies, std::vector<std::string>{"facial_recognition"});
  const Region* gov = catalog.Find("us-gov-virginia");
  ASSERT_NE(gov, nullptr);
  EXPECT_EQ(gov->restrictions.personnel.citizenship, std::vector<std::string>{"US"});
  EXPECT_TRUE(gov->restrictions.personnel.screened);
  EXPECT_EQ(catalog.Find("nowhere"), nullptr);
}

// Independent of the code under test: admission by plain loops, distance by the chord.
std::optional<std::string> RefusedRule(const Region& r, const TenantProfile& p) {
  auto any_listed = [](const std::vector<std::string>& list, const std::vector<std::string>& vs) {
    for (const std::string& x : list) {
      for (const std::string& v : vs) {
        if (x == v) return true;
      }
    }
    return false;
  };
  if (any_listed(r.restrictions.excluded_services, p.services)) return "excluded_services";
  if (any_listed(r.restrictions.excluded_technologies, p.technologies)) {
    return "excluded_technologies";
  }
  if (any_listed(r.restrictions.excluded_customer_types, {p.customer_type})) {
    return "excluded_customer_types";
  }
  return std::nullopt;
}

double ChordKm(const Region& a, const Region& b) {
  auto xyz = [](const Region& r) {
    double lat = r.lat * std::numbers::pi / 180, lon = r.lon * std::numbers::pi / 180;
    return std::array<double, 3>{std::cos(lat) * std::cos(lon), std::cos(lat) * std::sin(lon),
                                 std::sin(lat)};
  };
  auto p = xyz(a), q = xyz(b);
  double chord = std::hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
  return 2 * kEarthRadiusKm * std::asin(chord / 2);
}

std::vector<TenantProfile> ProfilesFor(const std::string& geography) {
  TenantProfile consumer = Tenant(geography, "consumer");
  consumer.services.push_back("consumer_services");
  TenantProfile faces = Tenant(geography);
  faces.technologies = {"facial_recognition"};
  return {Tenant(geography), consumer, faces, Tenant(geography, "law_enforcement"),
          Tenant(geography, "government")};
}

TEST(ShippedCatalog, EveryPlacementIsTheNearestAdmittingRegionFarEnough) {
  Catalog catalog = Shipped();
  std::set<std::string> geographies;
  for (const Region& r : catalog.regions()) geographies.insert(r.geography);
  for (const std::string& geo : geographies) {
    for (TenantProfile profile : ProfilesFor(geo)) {
      // Without home_region: the first admitting region in catalog order.
      const Region* first = nullptr;
      const Region* first_admitting = nullptr;
      for (const Region& r : catalog.regions()) {
        if (r.geography != geo) continue;
        if (first == nullptr) first = &r;
        if (first_admitting == nullptr && !RefusedRule(r, profile)) first_admitting = &r;
      }
      absl::StatusOr<Placement> by_default = catalog.Place(profile);
      if (first_admitting == nullptr) {
        ExpectViolation(by_default.status(), first->id, *RefusedRule(*first, profile));
      } else if (by_default.ok()) {
        EXPECT_EQ(by_default->home_region, first_admitting->id);
      } else {
        EXPECT_EQ(by_default.status().code(), absl::StatusCode::kFailedPrecondition);
      }
      for (const Region& home : catalog.regions()) {
        if (home.geography != geo) continue;
        SCOPED_TRACE(absl::StrCat(geo, " home ", home.id, " ", profile.customer_type));
        profile.home_region = home.id;
        absl::StatusOr<Placement> placed = catalog.Place(profile);
        if (std::optional<std::string> rule = RefusedRule(home, profile)) {
          ExpectViolation(placed.status(), home.id, *rule);
          continue;
        }
        const Region* best = nullptr;
        for (const Region& r : catalog.regions()) {
          if (r.geography != geo || r.id == home.id || RefusedRule(r, profile)) continue;
          if (ChordKm(home, r) < kMinPairDistanceKm) continue;
          if (best == nullptr || ChordKm(home, r) < ChordKm(home, *best)) best = &r;
        }
        if (best == nullptr) {
          EXPECT_EQ(placed.status().code(), absl::StatusCode::kFailedPrecondition);
          continue;
        }
        ASSERT_TRUE(placed.ok()) << placed.status();
        EXPECT_EQ(placed->home_region, home.id);
        EXPECT_EQ(placed->replica_region, best->id);
        ASSERT_TRUE(placed->distance_km.has_value());
        EXPECT_GE(*placed->distance_km, kMinPairDistanceKm);
        EXPECT_NEAR(*placed->distance_km, ChordKm(home, *best), 1e-6);
      }
    }
  }
}

TEST(ShippedCatalog, DefaultPairsPerGeography) {
  Catalog catalog = Shipped();
  const std::map<std::string, std::pair<std::string, std::string>> expected = {
      {"US", {"us-east", "us-south"}},   {"USGOV", {"us-gov-virginia", "us-gov-arizona"}},
      {"CA", {"ca-central", "ca-west"}}, {"EU", {"eu-west", "eu-central"}},
      {"IN", {"in-west", "in-south"}},   {"JP", {"jp-east", "jp-south"}},
      {"AU", {"au-east", "au-west"}},    {"CN", {"cn-north", "cn-east"}}};
  for (const auto& [geo, pair] : expected) {
    absl::StatusOr<Placement> placed = catalog.Place(Tenant(geo));
    ASSERT_TRUE(placed.ok()) << geo << ": " << placed.status();
    EXPECT_EQ(placed->home_region, pair.first) << geo;
    EXPECT_EQ(placed->replica_region, pair.second) << geo;
    EXPECT_GE(placed->distance_km.value_or(0), kMinPairDistanceKm) << geo;
  }
}

TEST(ShippedCatalog, UkHasNoPairUnlessSingleRegionIsAllowed) {
  Catalog catalog = Shipped();
  TenantProfile uk = Tenant("UK");
  absl::StatusOr<Placement> placed = catalog.Place(uk);
  EXPECT_EQ(placed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(placed.status().message()), HasSubstr("allow_single_region"));
  uk.allow_single_region = true;
  placed = catalog.Place(uk);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->home_region, "uk-south");
  EXPECT_FALSE(placed->replica_region.has_value());
  EXPECT_FALSE(placed->distance_km.has_value());
}

TEST(ShippedCatalog, ExplicitHomeRegionIsHonoured) {
  TenantProfile p = Tenant("EU");
  p.home_region = "eu-north";
  absl::StatusOr<Placement> placed = Shipped().Place(p);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->home_region, "eu-north");
  EXPECT_EQ(placed->replica_region, "eu-netherlands");  // 1125 km; Frankfurt is 1187 km
}

TEST(ShippedCatalog, RefusalByEachRestrictionKindNamesRegionAndRule) {
  Catalog catalog = Shipped();
  TenantProfile service = Tenant("CN");
  service.services = {"storage", "consumer_services"};
  ExpectViolation(catalog.Place(service).status(), "cn-north", "excluded_services");
  TenantProfile technology = Tenant("CN");
  technology.technologies = {"facial_recognition"};
  ExpectViolation(catalog.Place(technology).status(), "cn-north", "excluded_technologies");
  ExpectViolation(catalog.Place(Tenant("CN", "law_enforcement")).status(), "cn-north",
                  "excluded_customer_types");
  // Spelling variants do not slip past the policy.
  technology.technologies = {" Facial-Recognition "};
  ExpectViolation(catalog.Place(technology).status(), "cn-north", "excluded_technologies");
}

TEST(ShippedCatalog, ExplicitHomeRegionThatRefusesIsAPolicyViolation) {
  TenantProfile p = Tenant("EU");
  p.technologies = {"facial_recognition"};
  Catalog catalog = Shipped();
  EXPECT_TRUE(catalog.Place(p).ok());  // eu-west admits it
  p.home_region = "eu-france";
  ExpectViolation(catalog.Place(p).status(), "eu-france", "excluded_technologies");
  EXPECT_TRUE(Catalog::CheckAdmits(*catalog.Find("eu-west"), p).ok());
}

TEST(ShippedCatalog, BadGeographyOrHomeRegionIsInvalidArgument) {
  Catalog catalog = Shipped();
  absl::Status s = catalog.Place(Tenant("XX")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown geography XX"));
  TenantProfile p = Tenant("EU");
  p.home_region = "atlantis";
  s = catalog.Place(p).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("atlantis"));
  p.home_region = "us-east";
  s = catalog.Place(p).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("us-east"));
}

// --- Placement rules on small catalogs -----------------------------------------------------

constexpr absl::string_view kNoFaces =
    "    restrictions:\n      excluded_technologies: [facial_recognition]\n";

TEST(Place, HomeIsTheFirstAdmittingRegionInCatalogOrder) {
  Catalog c = Inline(RegionYaml("a", "G", 0, kNoFaces) + RegionYaml("b", "G", 1) +
                     RegionYaml("c", "G", 10));
  TenantProfile p = Tenant("G");
  EXPECT_EQ(c.Place(p)->home_region, "a");
  p.technologies = {"facial_recognition"};
  absl::StatusOr<Placement> placed = c.Place(p);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->home_region, "b");
  EXPECT_EQ(placed->replica_region, "c");
}

TEST(Place, ReplicaSkipsRegionsThatRefuseOrAreTooClose) {
  // From a at 0: b at 7 degrees (778 km) is too close, c at 8 (890 km) refuses, d at 9 admits.
  Catalog c =
      Inline(RegionYaml("a", "G", 0) + RegionYaml("b", "G", 7) + RegionYaml("c", "G", 8, kNoFaces) +
             RegionYaml("d", "G", 9) + RegionYaml("e", "G", 20) + RegionYaml("x", "H", 8.5));
  TenantProfile p = Tenant("G");
  EXPECT_EQ(c.Place(p)->replica_region, "c");
  p.technologies = {"facial_recognition"};
  absl::StatusOr<Placement> placed = c.Place(p);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->replica_region, "d");
  EXPECT_NEAR(*placed->distance_km, 9 * std::numbers::pi / 180 * kEarthRadiusKm, 1e-6);
}

TEST(Place, NoAdmittingRegionFarEnoughIsFailedPrecondition) {
  Catalog c = Inline(RegionYaml("a", "G", 0) + RegionYaml("b", "G", 7.2) +
                     RegionYaml("c", "G", 30, kNoFaces));
  TenantProfile p = Tenant("G");
  p.technologies = {"facial_recognition"};
  EXPECT_EQ(c.Place(p).status().code(), absl::StatusCode::kFailedPrecondition);
  p.allow_single_region = true;
  absl::StatusOr<Placement> placed = c.Place(p);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->home_region, "a");
  EXPECT_FALSE(placed->replica_region.has_value());
}

TEST(Place, ExactlyFiveHundredMilesIsFarEnough) {
  // Find the longitude on the equator exactly kMinPairDistanceKm from (0, 0), to the last bit.
  double lon = kMinPairDistanceKm / kEarthRadiusKm * 180 / std::numbers::pi;
  for (int i = 0; i < 10000 && HaversineKm(0, 0, 0, lon) != kMinPairDistanceKm; ++i) {
    lon = std::nextafter(lon, HaversineKm(0, 0, 0, lon) < kMinPairDistanceKm ? 90.0 : 0.0);
  }
  ASSERT_EQ(HaversineKm(0, 0, 0, lon), kMinPairDistanceKm);
  Catalog exact = Inline(RegionYaml("a", "G", 0) + RegionYaml("b", "G", lon));
  absl::StatusOr<Placement> placed = exact.Place(Tenant("G"));
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->replica_region, "b");
  EXPECT_EQ(placed->distance_km, kMinPairDistanceKm);
  Catalog near = Inline(RegionYaml("a", "G", 0) + RegionYaml("b", "G", lon - 1e-9));
  EXPECT_EQ(near.Place(Tenant("G")).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Place, NoRegionAdmitsNamesTheFirstRefusal) {
  Catalog c = Inline(
      RegionYaml("a", "G", 0, "    restrictions:\n      excluded_customer_types: [consumer]\n") +
      RegionYaml("b", "G", 10, "    restrictions:\n      excluded_services: [ads]\n"));
  TenantProfile p = Tenant("G", "consumer");
  p.services = {"ads"};
  ExpectViolation(c.Place(p).status(), "a", "excluded_customer_types");
}

// --- Malformed catalogs --------------------------------------------------------------------

void ExpectInvalid(const std::string& yaml, absl::string_view needle) {
  absl::StatusOr<Catalog> c = Catalog::FromYaml(yaml);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(std::string(needle))) << yaml;
}

TEST(FromYaml, RejectsMalformedCatalogsNamingTheProblem) {
  const std::string ok = RegionYaml("a", "G", 0);
  EXPECT_TRUE(Catalog::FromYaml("regions:\n" + ok).ok());
  ExpectInvalid("regions:\n" + ok + "    latitude: 3\n", "unknown key \"latitude\"");
  ExpectInvalid("regions:\n" + ok + "    lat: 3\n", "duplicate key \"lat\"");
  ExpectInvalid("regions:\n" + ok + "version: 2\n", "unknown key \"version\"");
  ExpectInvalid("regions:\n" + ok + "    restrictions: {excluded_people: [x]}\n",
                "unknown key \"excluded_people\"");
  ExpectInvalid("regions:\n" + ok + "    restrictions: {personnel: {clearance: secret}}\n",
                "unknown key \"clearance\"");
  ExpectInvalid("regions:\n  - {id: a, name: A, geography: G, country: US, lat: 0, lon: 0}\n",
                "missing required field \"operated_by\"");
  ExpectInvalid(
      "regions:\n  - {id: a, name: A, geography: G, country: US, lon: 0, "
      "operated_by: p}\n",
      "missing required field \"lat\"");
  ExpectInvalid("regions:\n" + ok + RegionYaml("a", "H", 10), "duplicate region id \"a\"");
  ExpectInvalid("regions:\n" + RegionYaml("a", "G", 181), "regions[0] (a).lon");
  ExpectInvalid(
      "regions:\n  - {id: a, name: A, geography: G, country: US, lat: 90.5, lon: 0, "
      "operated_by: p}\n",
      "regions[0] (a).lat: 90.5 is outside [-90, 90]");
  ExpectInvalid(
      "regions:\n  - {id: a, name: A, geography: G, country: US, lat: north, lon: 0, "
      "operated_by: p}\n",
      "lat: must be a number");
  ExpectInvalid(
      "regions:\n  - {id: a, name: A, geography: G, country: US, lat: .nan, lon: 0, "
      "operated_by: p}\n",
      "lat");
  ExpectInvalid("regions:\n" + ok + "    restrictions: {personnel: {citizenship: [usa]}}\n",
                "\"usa\" is not an ISO 3166 alpha-2 code");
  ExpectInvalid("regions:\n" + ok + "    restrictions: {personnel: {screened: maybe}}\n",
                "screened: must be true or false");
  ExpectInvalid("regions:\n" + ok + "    restrictions: {excluded_services: consumer}\n",
                "excluded_services: must be a list");
  ExpectInvalid("regions:\n" + ok + "    restrictions: {excluded_services: [Consumer Apps]}\n",
                "is not a snake_case word");
  ExpectInvalid("regions:\n" + RegionYaml("Bad_Id", "G", 0), "is not a region id");
  // 51 bytes at most: "custos_cell_" + the id must fit a PostgreSQL identifier (63 bytes).
  ExpectInvalid("regions:\n" + RegionYaml(std::string(52, 'a'), "G", 0), "at most 51");
  EXPECT_TRUE(Catalog::FromYaml("regions:\n" + RegionYaml(std::string(51, 'a'), "G", 0)).ok());
  ExpectInvalid(
      "regions:\n  - {id: a, name: A, geography: G, country: USA, lat: 0, lon: 0, "
      "operated_by: p}\n",
      "country");
  ExpectInvalid("regions: []\n", "non-empty list");
  ExpectInvalid("regions: {a: 1}\n", "non-empty list");
  ExpectInvalid("", "one YAML document");
  ExpectInvalid("regions:\n" + ok + "---\nregions:\n" + ok, "one YAML document");
  ExpectInvalid("- just a list\n", "must be a mapping");
  ExpectInvalid("regions: [\n", "malformed YAML");
  ExpectInvalid("regions: &r [*r]\n", "must be a mapping");
  ExpectInvalid(std::string(100000, '['), "malformed YAML");
}

TEST(FromYaml, CitizenshipMayBeASingleString) {
  absl::StatusOr<Catalog> c =
      Catalog::FromYaml("regions:\n" + RegionYaml("a", "G", 0) +
                        "    restrictions:\n      personnel: {citizenship: JP, screened: yes}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->regions()[0].restrictions.personnel.citizenship, std::vector<std::string>{"JP"});
  EXPECT_TRUE(c->regions()[0].restrictions.personnel.screened);
}

TEST(FromYaml, TruncatedCatalogsNeverThrow) {
  absl::StatusOr<Catalog> full = Catalog::FromFile(kShippedCatalog);
  ASSERT_TRUE(full.ok());
  std::FILE* f = std::fopen(kShippedCatalog.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string text(1 << 16, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), f));
  std::fclose(f);
  for (size_t n = 0; n < text.size(); n += 97) {
    absl::StatusOr<Catalog> c = Catalog::FromYaml(std::string_view(text).substr(0, n));
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << n;
    }
  }
}

TEST(FromFile, MissingFileIsNotFound) {
  absl::StatusOr<Catalog> c = Catalog::FromFile("/nonexistent/regions.yaml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("/nonexistent/regions.yaml"));
}

}  // namespace
}  // namespace custos::residency

namespace custos::residency {
namespace {

// yaml-cpp 0.7's LoadAll never returns on a stray ',' where a node should start (found by
// tests/fuzz/regions_yaml.cc; its reproducer is kept in tests/fuzz/crashes/regions_yaml/).
TEST(CatalogFromYaml, StrayCommaIsRefusedNotALoop) {
  for (const char* text : {",\n", "regions:\n  - id: a\n  , id: b\n", "a: 1\n---\nb: 2\n", ""}) {
    absl::StatusOr<Catalog> catalog = Catalog::FromYaml(text);
    EXPECT_EQ(catalog.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

}  // namespace
}  // namespace custos::residency
