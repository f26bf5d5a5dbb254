#include "residency/residency.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numbers>
#include <span>
#include <sstream>
#include <string>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/errors.h"

namespace custos::residency {
namespace {

// A catalog is a few dozen regions; anything this large is not one.
constexpr size_t kMaxCatalogBytes = 1 << 20;

constexpr absl::string_view kTopKeys[] = {"regions"};
constexpr absl::string_view kRegionKeys[] = {"id",          "name",         "geography",
                                             "country",     "lat",          "lon",
                                             "operated_by", "restrictions", "due_diligence"};
constexpr absl::string_view kRestrictionKeys[] = {"excluded_services", "excluded_technologies",
                                                  "excluded_customer_types", "personnel"};
constexpr absl::string_view kPersonnelKeys[] = {"citizenship", "screened"};

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Region ids name cells (store schemas, directories): lowercase, digits, inner hyphens. At most
// 51 bytes: a PostgreSQL cell's schema is "custos_cell_" (12 bytes) + the id, and PostgreSQL
// identifiers are at most 63 bytes.
constexpr size_t kMaxRegionIdBytes = 63 - 12;
bool IsRegionId(absl::string_view s) {
  if (s.empty() || s.size() > kMaxRegionIdBytes || !IsLower(s.front()) || s.back() == '-') {
    return false;
  }
  return absl::c_all_of(s, [](char c) { return IsLower(c) || IsDigit(c) || c == '-'; });
}
bool IsGeography(absl::string_view s) {
  if (s.empty() || s.size() > 16 || !IsUpper(s.front())) return false;
  return absl::c_all_of(s, [](char c) { return IsUpper(c) || IsDigit(c) || c == '-'; });
}
bool IsCountry(absl::string_view s) { return s.size() == 2 && IsUpper(s[0]) && IsUpper(s[1]); }
// Restriction vocabulary: snake_case words such as consumer_services.
bool IsToken(absl::string_view s) {
  if (s.empty() || s.size() > 64 || !IsLower(s.front())) return false;
  return absl::c_all_of(s, [](char c) { return IsLower(c) || IsDigit(c) || c == '_'; });
}

std::string Quote(absl::string_view s) { return absl::StrCat("\"", absl::CHexEscape(s), "\""); }

// kInvalidArgument naming where in the document `node` is.
absl::Status Invalid(const YAML::Node& node, absl::string_view path, absl::string_view what) {
  std::string message = absl::StrCat("region catalog: ", path, ": ", what);
  const YAML::Mark mark = node.Mark();
  if (mark.line >= 0) absl::StrAppend(&message, " (line ", mark.line + 1, ")");
  return absl::InvalidArgumentError(message);
}

// `node` must be a mapping whose keys are distinct and all in `allowed`.
absl::Status CheckKeys(const YAML::Node& node, absl::string_view path,
                       std::span<const absl::string_view> allowed) {
  if (!node.IsMap()) return Invalid(node, path, "must be a mapping");
  std::vector<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return Invalid(kv.first, path, "keys must be strings");
    const std::string& key = kv.first.Scalar();
    if (!absl::c_linear_search(allowed, key)) {
      return Invalid(kv.first, path, absl::StrCat("unknown key ", Quote(key)));
    }
    if (absl::c_linear_search(seen, key)) {
      return Invalid(kv.first, path, absl::StrCat("duplicate key ", Quote(key)));
    }
    seen.push_back(key);
  }
  return absl::OkStatus();
}

// The value of `key` in `map`, or nullopt when absent or null.
std::optional<YAML::Node> Field(const YAML::Node& map, absl::string_view key) {
  YAML::Node value = map[std::string(key)];
  if (!value.IsDefined() || value.IsNull()) return std::nullopt;
  return value;
}

absl::StatusOr<std::string> ReadString(const YAML::Node& map, absl::string_view path,
                                       absl::string_view key, bool required,
                                       bool (*valid)(absl::string_view) = nullptr,
                                       absl::string_view expected = "") {
  std::optional<YAML::Node> value = Field(map, key);
  if (!value) {
    if (required) return Invalid(map, path, absl::StrCat("missing required field ", Quote(key)));
    return std::string();
  }
  const std::string field = absl::StrCat(path, ".", key);
  if (!value->IsScalar()) return Invalid(*value, field, "must be a string");
  const std::string& s = value->Scalar();
  if (required && s.empty()) return Invalid(*value, field, "must not be empty");
  if (valid != nullptr && !valid(s)) {
    return Invalid(*value, field, absl::StrCat(Quote(s), " is not ", expected));
  }
  return s;
}

absl::StatusOr<double> ReadDegrees(const YAML::Node& map, absl::string_view path,
                                   absl::string_view key, double limit) {
  std::optional<YAML::Node> value = Field(map, key);
  if (!value) return Invalid(map, path, absl::StrCat("missing required field ", Quote(key)));
  const std::string field = absl::StrCat(path, ".", key);
  double degrees = 0;
  if (!value->IsScalar() || !YAML::convert<double>::decode(*value, degrees)) {
    return Invalid(*value, field, "must be a number");
  }
  if (!(degrees >= -limit && degrees <= limit)) {  // also refuses NaN
    return Invalid(*value, field,
                   absl::StrCat(value->Scalar(), " is outside [-", limit, ", ", limit, "]"));
  }
  return degrees;
}

// A list of strings each passing `valid`; absent or null is empty. With `allow_scalar`, a single
// string is read as a one-element list.
absl::StatusOr<std::vector<std::string>> ReadList(const YAML::Node& map, absl::string_view path,
                                                  absl::string_view key, bool allow_scalar,
                                                  bool (*valid)(absl::string_view),
                                                  absl::string_view expected) {
  std::vector<std::string> out;
  std::optional<YAML::Node> value = Field(map, key);
  if (!value) return out;
  const std::string field = absl::StrCat(path, ".", key);
  auto add = [&](const YAML::Node& item) -> absl::Status {
    if (!item.IsScalar()) return Invalid(item, field, "entries must be strings");
    if (!valid(item.Scalar())) {
      return Invalid(item, field, absl::StrCat(Quote(item.Scalar()), " is not ", expected));
    }
    out.push_back(item.Scalar());
    return absl::OkStatus();
  };
  if (allow_scalar && value->IsScalar()) {
    if (absl::Status s = add(*value); !s.ok()) return s;
    return out;
  }
  if (!value->IsSequence()) return Invalid(*value, field, "must be a list");
  for (const auto& item : *value) {
    if (absl::Status s = add(item); !s.ok()) return s;
  }
  return out;
}

absl::StatusOr<PersonnelRequirement> ParsePersonnel(const YAML::Node& node,
                                                    absl::string_view path) {
  if (absl::Status s = CheckKeys(node, path, kPersonnelKeys); !s.ok()) return s;
  PersonnelRequirement personnel;
  auto citizenship = ReadList(node, path, "citizenship", /*allow_scalar=*/true, IsCountry,
                              "an ISO 3166 alpha-2 code (two uppercase letters)");
  if (!citizenship.ok()) return citizenship.status();
  personnel.citizenship = *std::move(citizenship);
  if (std::optional<YAML::Node> screened = Field(node, "screened")) {
    if (!screened->IsScalar() || !YAML::convert<bool>::decode(*screened, personnel.screened)) {
      return Invalid(*screened, absl::StrCat(path, ".screened"), "must be true or false");
    }
  }
  return personnel;
}

absl::StatusOr<Restrictions> ParseRestrictions(const YAML::Node& node, absl::string_view path) {
  if (absl::Status s = CheckKeys(node, path, kRestrictionKeys); !s.ok()) return s;
  Restrictions r;
  constexpr absl::string_view kTokenShape = "a snake_case word";
  std::pair<absl::string_view, std::vector<std::string>*> lists[] = {
      {"excluded_services", &r.excluded_services},
      {"excluded_technologies", &r.excluded_technologies},
      {"excluded_customer_types", &r.excluded_customer_types}};
  for (auto& [key, target] : lists) {
    auto list = ReadList(node, path, key, /*allow_scalar=*/false, IsToken, kTokenShape);
    if (!list.ok()) return list.status();
    *target = *std::move(list);
  }
  if (std::optional<YAML::Node> personnel = Field(node, "personnel")) {
    auto parsed = ParsePersonnel(*personnel, absl::StrCat(path, ".personnel"));
    if (!parsed.ok()) return parsed.status();
    r.personnel = *std::move(parsed);
  }
  return r;
}

absl::StatusOr<Region> ParseRegion(const YAML::Node& node, size_t index) {
  std::string path = absl::StrCat("regions[", index, "]");
  if (absl::Status s = CheckKeys(node, path, kRegionKeys); !s.ok()) return s;
  Region region;
  auto id = ReadString(node, path, "id", true, IsRegionId,
                       "a region id (lowercase letters, digits and inner hyphens, at most 51)");
  if (!id.ok()) return id.status();
  region.id = *std::move(id);
  path = absl::StrCat(path, " (", region.id, ")");

  auto name = ReadString(node, path, "name", true);
  auto geography = ReadString(node, path, "geography", true, IsGeography,
                              "a geography code (uppercase letters, digits, hyphens)");
  auto country = ReadString(node, path, "country", true, IsCountry,
                            "an ISO 3166 alpha-2 code (two uppercase letters)");
  auto lat = ReadDegrees(node, path, "lat", 90);
  auto lon = ReadDegrees(node, path, "lon", 180);
  auto operated_by = ReadString(node, path, "operated_by", true);
  auto due_diligence = ReadString(node, path, "due_diligence", false);
  for (const absl::Status& s : {name.status(), geography.status(), country.status(), lat.status(),
                                lon.status(), operated_by.status(), due_diligence.status()}) {
    if (!s.ok()) return s;
  }
  region.name = *std::move(name);
  region.geography = *std::move(geography);
  region.country = *std::move(country);
  region.lat = *lat;
  region.lon = *lon;
  region.operated_by = *std::move(operated_by);
  region.due_diligence = *std::move(due_diligence);
  if (std::optional<YAML::Node> restrictions = Field(node, "restrictions")) {
    auto parsed = ParseRestrictions(*restrictions, absl::StrCat(path, ".restrictions"));
    if (!parsed.ok()) return parsed.status();
    region.restrictions = *std::move(parsed);
  }
  return region;
}

// Counts documents without building them.
class IgnoreEvents : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// The number of YAML documents in `text`, counting at most 2. Not YAML::LoadAll: on some
// malformed input (a stray ',' where a node should start) yaml-cpp 0.7's parser reports another
// empty document forever without consuming anything, and LoadAll loops without bound
// (jbeder/yaml-cpp#1040, fixed upstream by #1319; found by tests/fuzz/regions_yaml.cc).
int CountDocuments(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  IgnoreEvents ignore;
  int n = 0;
  while (n < 2 && parser.HandleNextDocument(ignore)) ++n;
  return n;
}

absl::StatusOr<std::vector<Region>> ParseCatalog(absl::string_view yaml_text) {
  const std::string text(yaml_text);
  if (int n = CountDocuments(text); n != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "region catalog: expected one YAML document, found ", n == 2 ? "more" : "none"));
  }
  const YAML::Node root = YAML::Load(text);
  if (absl::Status s = CheckKeys(root, "top level", kTopKeys); !s.ok()) return s;
  std::optional<YAML::Node> list = Field(root, "regions");
  if (!list) return Invalid(root, "top level", "missing required field \"regions\"");
  if (!list->IsSequence() || list->size() == 0) {
    return Invalid(*list, "regions", "must be a non-empty list");
  }
  std::vector<Region> regions;
  for (size_t i = 0; i < list->size(); ++i) {
    const YAML::Node item = (*list)[i];
    absl::StatusOr<Region> region = ParseRegion(item, i);
    if (!region.ok()) return region.status();
    const bool duplicate =
        absl::c_any_of(regions, [&](const Region& r) { return r.id == region->id; });
    if (duplicate) {
      return Invalid(item, absl::StrCat("regions[", i, "].id"),
                     absl::StrCat("duplicate region id ", Quote(region->id)));
    }
    regions.push_back(*std::move(region));
  }
  return regions;
}

// Profile values are compared in the catalog's vocabulary (lowercase snake_case), so
// "Facial-Recognition" cannot slip past an exclusion of facial_recognition.
std::string Normalize(absl::string_view value) {
  std::string out = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  for (char& c : out) {
    if (c == '-' || c == ' ') c = '_';
  }
  return out;
}

// The first of `requested` that `excluded` lists, if any.
std::optional<std::string> FirstExcluded(const std::vector<std::string>& excluded,
                                         std::span<const std::string> requested) {
  for (const std::string& value : requested) {
    std::string normalized = Normalize(value);
    if (absl::c_linear_search(excluded, normalized)) return normalized;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<Catalog> Catalog::FromYaml(std::string_view yaml_text) {
  if (yaml_text.size() > kMaxCatalogBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("region catalog: larger than ", kMaxCatalogBytes, " bytes"));
  }
  absl::StatusOr<std::vector<Region>> regions;
  try {
    regions = ParseCatalog(absl::string_view(yaml_text.data(), yaml_text.size()));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("region catalog: malformed YAML: ", e.what()));
  }
  if (!regions.ok()) return regions.status();
  Catalog catalog;
  catalog.regions_ = *std::move(regions);
  return catalog;
}

absl::StatusOr<Catalog> Catalog::FromFile(const std::string& path) {
  using File = std::unique_ptr<std::FILE, decltype(&std::fclose)>;
  File file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return absl::ErrnoToStatus(errno, absl::StrCat("opening region catalog ", path));
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
    text.append(buffer, n);
    if (text.size() > kMaxCatalogBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("region catalog ", path, ": larger than ", kMaxCatalogBytes, " bytes"));
    }
  }
  if (std::ferror(file.get())) {
    return absl::ErrnoToStatus(errno, absl::StrCat("reading region catalog ", path));
  }
  absl::StatusOr<Catalog> catalog = FromYaml(text);
  if (!catalog.ok()) {
    return absl::Status(catalog.status().code(),
                        absl::StrCat(path, ": ", catalog.status().message()));
  }
  return catalog;
}

const Region* Catalog::Find(std::string_view id) const {
  auto it = absl::c_find_if(regions_, [&](const Region& r) { return r.id == id; });
  return it == regions_.end() ? nullptr : &*it;
}

absl::Status Catalog::CheckAdmits(const Region& region, const TenantProfile& profile) {
  const Restrictions& r = region.restrictions;
  if (auto service = FirstExcluded(r.excluded_services, profile.services)) {
    return RegionPolicyViolation(region.id, "excluded_services",
                                 absl::StrCat("service ", *service, " is excluded in ", region.id));
  }
  if (auto technology = FirstExcluded(r.excluded_technologies, profile.technologies)) {
    return RegionPolicyViolation(
        region.id, "excluded_technologies",
        absl::StrCat("technology ", *technology, " is excluded in ", region.id));
  }
  const std::string customer_type[] = {profile.customer_type};
  if (auto type = FirstExcluded(r.excluded_customer_types, customer_type)) {
    return RegionPolicyViolation(
        region.id, "excluded_customer_types",
        absl::StrCat("customer type ", *type, " is excluded in ", region.id));
  }
  return absl::OkStatus();
}

absl::StatusOr<Placement> Catalog::Place(const TenantProfile& profile) const {
  std::vector<const Region*> candidates;
  for (const Region& r : regions_) {
    if (r.geography == profile.geography) candidates.push_back(&r);
  }
  if (candidates.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown geography ", absl::CHexEscape(profile.geography)));
  }

  const Region* home = nullptr;
  if (profile.home_region) {
    home = Find(*profile.home_region);
    if (home == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown home_region ", absl::CHexEscape(*profile.home_region)));
    }
    if (home->geography != profile.geography) {
      return absl::InvalidArgumentError(absl::StrCat("home_region ", home->id, " is in geography ",
                                                     home->geography, ", not ", profile.geography));
    }
    if (absl::Status s = CheckAdmits(*home, profile); !s.ok()) return s;
  } else {
    absl::Status first_refusal;
    for (const Region* r : candidates) {
      absl::Status s = CheckAdmits(*r, profile);
      if (s.ok()) {
        home = r;
        break;
      }
      if (first_refusal.ok()) first_refusal = std::move(s);
    }
    if (home == nullptr) return first_refusal;
  }

  const Region* replica = nullptr;
  double replica_km = 0;
  for (const Region* r : candidates) {
    if (r == home) continue;
    const double km = HaversineKm(home->lat, home->lon, r->lat, r->lon);
    if (km < kMinPairDistanceKm || (replica != nullptr && km >= replica_km)) continue;
    if (!CheckAdmits(*r, profile).ok()) continue;
    replica = r;
    replica_km = km;
  }

  Placement placement{.home_region = home->id};
  if (replica != nullptr) {
    placement.replica_region = replica->id;
    placement.distance_km = replica_km;
  } else if (!profile.allow_single_region) {
    return absl::FailedPreconditionError(
        absl::StrCat("no region of geography ", profile.geography, " admits the tenant at least ",
                     kMinPairDistanceKm, " km (500 miles) from ", home->id,
                     "; set allow_single_region to accept a single region"));
  }
  return placement;
}

double HaversineKm(double lat1, double lon1, double lat2, double lon2) {
  constexpr double kRadiansPerDegree = std::numbers::pi / 180.0;
  const double phi1 = lat1 * kRadiansPerDegree;
  const double phi2 = lat2 * kRadiansPerDegree;
  const double sin_dphi = std::sin((phi2 - phi1) / 2);
  const double sin_dlambda = std::sin((lon2 - lon1) * kRadiansPerDegree / 2);
  const double a =
      sin_dphi * sin_dphi + std::cos(phi1) * std::cos(phi2) * sin_dlambda * sin_dlambda;
  return 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(a)));
}

}  // namespace custos::residency
