// Regions, placement and the human-rights due-diligence policy. A pure core: the catalog is a
// value loaded once from YAML; pairing and policy checks are functions of it with no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace custos::residency {

// 500 miles, the minimum distance between a tenant's home and replica regions.
inline constexpr double kMinPairDistanceKm = 804.672;
// Mean Earth radius used for all distances (IUGG), per DESIGN.md.
inline constexpr double kEarthRadiusKm = 6371.0088;

struct PersonnelRequirement {
  std::vector<std::string> citizenship;  // ISO 3166 alpha-2; empty = any
  bool screened = false;                 // operators must be security-screened
};

struct Restrictions {
  std::vector<std::string> excluded_services;
  std::vector<std::string> excluded_technologies;
  std::vector<std::string> excluded_customer_types;
  PersonnelRequirement personnel;
};

struct Region {
  std::string id;         // e.g. "eu-west"
  std::string name;       // e.g. "Dublin"
  std::string geography;  // e.g. "EU"
  std::string country;    // ISO 3166 alpha-2
  double lat = 0;
  double lon = 0;
  std::string operated_by;  // "provider" or the local partner's name
  Restrictions restrictions;
  std::string due_diligence;  // short human-rights due-diligence note
};

// What a tenant asks for; checked against each candidate region's restrictions.
struct TenantProfile {
  std::string customer_type;  // e.g. "enterprise", "consumer", "law_enforcement", "government"
  std::string geography;
  std::vector<std::string> services;      // e.g. "storage", "consumer_services"
  std::vector<std::string> technologies;  // e.g. "facial_recognition"
  std::optional<std::string> home_region;
  bool allow_single_region = false;
};

struct Placement {
  std::string home_region;
  std::optional<std::string> replica_region;  // absent only with allow_single_region
  std::optional<double> distance_km;          // home to replica
};

class Catalog {
 public:
  // Parses a regions.yaml document (see config/regions.yaml). kInvalidArgument naming the field
  // for malformed input: missing fields, duplicate ids, lat/lon out of range, unknown keys.
  static absl::StatusOr<Catalog> FromYaml(std::string_view yaml_text);
  static absl::StatusOr<Catalog> FromFile(const std::string& path);

  const std::vector<Region>& regions() const { return regions_; }
  const Region* Find(std::string_view id) const;  // nullptr if unknown

  // Chooses home and replica per DESIGN.md: home = profile.home_region if given (must exist, be in
  // the geography and admit the tenant), else the first admitting region of the geography in
  // catalog order; replica = the nearest admitting region of the same geography at
  // >= kMinPairDistanceKm from home. Errors:
  //  - kInvalidArgument: unknown geography or unknown home_region, or home_region outside it.
  //  - kPermissionDenied with API code region_policy_violation (base/errors.h
  //    RegionPolicyViolation) naming region, rule ("excluded_services", "excluded_technologies",
  //    "excluded_customer_types") and reason, when the requested home region refuses the tenant,
  //    or when no region of the geography admits it (then naming the first region's refusal).
  //  - kFailedPrecondition: no admitting region far enough away, unless allow_single_region.
  absl::StatusOr<Placement> Place(const TenantProfile& profile) const;

  // OK if `region` admits the tenant; else the region_policy_violation status described above.
  static absl::Status CheckAdmits(const Region& region, const TenantProfile& profile);

 private:
  std::vector<Region> regions_;
};

// Great-circle distance in km (haversine, kEarthRadiusKm).
double HaversineKm(double lat1, double lon1, double lat2, double lon2);

}  // namespace custos::residency
