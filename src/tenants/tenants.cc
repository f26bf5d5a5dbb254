#include "tenants/tenants.h"

#include "absl/strings/ascii.h"
#include "base/errors.h"
#include "base/ids.h"
#include "base/strings.h"
#include "base/utf8.h"
#include "boost/json.hpp"
#include "spdlog/spdlog.h"

namespace custos::tenants {
namespace {

std::string NameAad(std::string_view tenant_id) {
  return StrCat("custos tenant-name v1", std::string_view("\0", 1), tenant_id);
}

boost::json::array ToJson(const std::vector<std::string>& v) {
  boost::json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::vector<std::string> FromJson(const boost::json::value* v) {
  std::vector<std::string> out;
  if (v == nullptr || !v->is_array()) return out;
  for (const auto& x : v->as_array()) {
    if (x.is_string()) out.emplace_back(x.as_string());
  }
  return out;
}

std::string ProfileJson(const TenantSpec& s) {
  return boost::json::serialize(boost::json::object{
      {"customer_type", s.customer_type},
      {"services", ToJson(s.services)},
      {"technologies", ToJson(s.technologies)},
      {"lockbox", s.lockbox},
      {"retention_days", s.retention_days},
  });
}

absl::Status ValidateToken(std::string_view field, std::string_view v) {
  if (v.empty() || v.size() > 64) {
    return absl::InvalidArgumentError(StrCat(field, " must be 1..64 characters"));
  }
  for (char c : v) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '-')) {
      return absl::InvalidArgumentError(
          StrCat(field, " may contain only letters, digits, '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSpec(const TenantSpec& spec) {
  if (spec.name.empty() || spec.name.size() > 200) {
    return absl::InvalidArgumentError("name must be 1..200 bytes");
  }
  if (HasControlCharacter(spec.name)) {
    return absl::InvalidArgumentError("name has a control character");
  }
  if (auto s = ValidateToken("customer_type", spec.customer_type); !s.ok()) return s;
  if (auto s = ValidateToken("geography", spec.geography); !s.ok()) return s;
  for (const auto& v : spec.services) {
    if (auto s = ValidateToken("services[]", v); !s.ok()) return s;
  }
  for (const auto& v : spec.technologies) {
    if (auto s = ValidateToken("technologies[]", v); !s.ok()) return s;
  }
  if (spec.retention_days < 0 || spec.retention_days > 3650) {
    return absl::InvalidArgumentError("retention_days must be 0..3650");
  }
  return absl::OkStatus();
}

TenantService::TenantService(store::ControlStore& store, const residency::Catalog& catalog,
                             crypto::KeyProvider& keys, data::ObjectService& objects,
                             ledger::EventLog& events, Random& random, const Clock& clock)
    : store_(store),
      catalog_(catalog),
      keys_(keys),
      objects_(objects),
      events_(events),
      random_(random),
      clock_(clock) {}

absl::StatusOr<Tenant> TenantService::Create(const TenantSpec& spec, std::string_view actor_id,
                                             std::string_view actor_role, FirstAdmin first_admin) {
  if (auto s = ValidateSpec(spec); !s.ok()) return s;
  residency::TenantProfile profile{spec.customer_type, spec.geography,   spec.services,
                                   spec.technologies,  spec.home_region, spec.allow_single_region};
  auto placement = catalog_.Place(profile);
  if (!placement.ok()) return placement.status();

  Tenant t;
  t.id = NewId(random_);
  t.name = spec.name;
  t.customer_type = spec.customer_type;
  t.geography = spec.geography;
  t.home_region = placement->home_region;
  t.replica_region = placement->replica_region.value_or("");
  t.services = spec.services;
  t.technologies = spec.technologies;
  t.lockbox = spec.lockbox;
  t.retention_days = spec.retention_days;
  t.state = "active";
  t.created_at = absl::ToUnixSeconds(clock_.Now());

  const std::string kek = crypto::TenantKeyId(t.id);
  if (auto s = keys_.CreateKey(kek); !s.ok()) return s;
  auto undo_key = [&](absl::Status s) {
    // No tenant exists to read what was sealed under it (its name, its record key and records, a
    // first data key); those rows stay behind, unreadable: crypto-shredded.
    (void)keys_.DestroyKey(kek);
    return s;
  };
  auto sealed_name = keys_.Wrap(kek, t.name, NameAad(t.id));
  if (!sealed_name.ok()) return undo_key(sealed_name.status());
  auto admin = first_admin(t);
  if (!admin.ok()) return undo_key(admin.status());
  boost::json::object fields{{"actor", actor_id},
                             {"role", actor_role},
                             {"geography", t.geography},
                             {"home_region", t.home_region},
                             {"replica_region", t.replica_region},
                             {"customer_type", t.customer_type},
                             {"services", ToJson(t.services)},
                             {"technologies", ToJson(t.technologies)}};
  auto logged = events_.Record({"tenant.create", t.id, std::move(fields)});
  if (!logged.ok()) return undo_key(logged.status());
  // The log now says the tenant was created: a failure from here on is recorded as its outcome
  // (sealed before the KEK is destroyed; the public entry pair shows it anyway).
  auto failed = [&](absl::Status s) {
    boost::json::object outcome{{"actor", actor_id},
                                {"role", actor_role},
                                {"of", logged->ledger_index},
                                {"outcome", ErrorCodeOf(s)}};
    if (auto o = events_.Record({"outcome", t.id, std::move(outcome)}); !o.ok()) {
      spdlog::error("outcome of tenant.create not recorded: {}", o.status().ToString());
    }
    return undo_key(std::move(s));
  };
  if (auto s = objects_.InitTenant(t.cells()); !s.ok()) return failed(s);

  store::TenantRecord r;
  r.id = t.id;
  r.sealed_name = *sealed_name;
  r.profile_json = ProfileJson(spec);
  r.geography = t.geography;
  r.home_region = t.home_region;
  r.replica_region = t.replica_region;
  r.state = t.state;
  r.created_at = t.created_at;
  if (auto s = store_.InsertTenant(r, *admin); !s.ok()) {
    // An error may come after the commit (PostgreSQL's COMMIT done, its answer lost): look
    // before destroying the KEK, which would shred a tenant that was stored after all.
    auto stored = store_.GetTenant(t.id);
    if (!stored.ok() && absl::IsNotFound(stored.status())) return failed(s);
    if (!stored.ok()) {
      spdlog::error(
          "tenant {}: insert answered {}, and whether it was stored is unknown ({}); "
          "its key is kept",
          t.id, s.ToString(), stored.status().ToString());
      return s;
    }
    spdlog::warn("tenant {}: insert answered {}, but the tenant was stored", t.id, s.ToString());
  }
  std::lock_guard lock(cache_mu_);
  cache_[t.id] = t;
  return t;
}

absl::StatusOr<Tenant> TenantService::Get(const std::string& id) {
  {
    std::lock_guard lock(cache_mu_);
    if (auto it = cache_.find(id); it != cache_.end()) return it->second;
  }
  auto r = store_.GetTenant(id);
  if (!r.ok()) return r.status();
  Tenant t;
  t.id = r->id;
  auto name = keys_.Unwrap(crypto::TenantKeyId(t.id), r->sealed_name, NameAad(t.id));
  if (!name.ok()) return name.status();
  t.name = std::move(*name);
  t.geography = r->geography;
  t.home_region = r->home_region;
  t.replica_region = r->replica_region;
  t.state = r->state;
  t.created_at = r->created_at;
  boost::system::error_code ec;
  auto profile = boost::json::parse(r->profile_json, ec);
  if (ec || !profile.is_object()) return absl::DataLossError("stored tenant profile is corrupt");
  const auto& p = profile.as_object();
  if (auto* v = p.if_contains("customer_type"); v && v->is_string()) {
    t.customer_type = v->as_string();
  }
  t.services = FromJson(p.if_contains("services"));
  t.technologies = FromJson(p.if_contains("technologies"));
  if (auto* v = p.if_contains("lockbox"); v && v->is_bool()) t.lockbox = v->as_bool();
  if (auto* v = p.if_contains("retention_days"); v && v->is_int64()) {
    t.retention_days = static_cast<int>(v->as_int64());
  }
  std::lock_guard lock(cache_mu_);
  cache_[t.id] = t;
  return t;
}

}  // namespace custos::tenants
