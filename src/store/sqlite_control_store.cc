// ControlStore on one SQLite file.
#include <array>

#include "store/internal/sqlite_db.h"
#include "store/store.h"

namespace custos::store {
namespace {

using internal::Connection;
using internal::Database;

constexpr std::array<Database::Migration, 1> kMigrations = {{
    {1, R"sql(
CREATE TABLE principals(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  tenant_id TEXT,
  token_sha256 TEXT NOT NULL UNIQUE,
  attributes_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE tenants(
  id TEXT PRIMARY KEY,
  sealed_name BLOB NOT NULL,
  profile_json TEXT NOT NULL,
  geography TEXT NOT NULL,
  home_region TEXT NOT NULL,
  replica_region TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE settings(
  name TEXT PRIMARY KEY,
  value BLOB NOT NULL);
)sql"},
}};

constexpr char kPrincipalColumns[] =
    "id, name, role, tenant_id, token_sha256, attributes_json, created_at, expires_at, disabled";

PrincipalRecord ReadPrincipal(const internal::Statement& s) {
  PrincipalRecord p;
  p.id = s.Text(0);
  p.name = s.Text(1);
  p.role = s.Text(2);
  p.tenant_id = s.Text(3);
  p.token_sha256 = s.Text(4);
  p.attributes_json = s.Text(5);
  p.created_at = s.Int(6);
  if (!s.IsNull(7)) p.expires_at = s.Int(7);
  p.disabled = s.Int(8) != 0;
  return p;
}

TenantRecord ReadTenant(const internal::Statement& s) {
  TenantRecord t;
  t.id = s.Text(0);
  t.sealed_name = s.Blob(1);
  t.profile_json = s.Text(2);
  t.geography = s.Text(3);
  t.home_region = s.Text(4);
  t.replica_region = s.Text(5);
  t.state = s.Text(6);
  t.created_at = s.Int(7);
  return t;
}

constexpr char kTenantColumns[] =
    "id, sealed_name, profile_json, geography, home_region, replica_region, state, created_at";

class SqliteControlStore final : public ControlStore {
 public:
  explicit SqliteControlStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}

  absl::Status InsertPrincipal(const PrincipalRecord& p) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "INSERT INTO principals(id, name, role, tenant_id, token_sha256, attributes_json, "
          "created_at, expires_at, disabled) VALUES(?,?,?,?,?,?,?,?,?)");
      if (!s.ok()) return s.status();
      s->Bind(1, p.id).Bind(2, p.name).Bind(3, p.role).Bind(5, p.token_sha256);
      if (p.tenant_id.empty()) s->BindNull(4); else s->Bind(4, p.tenant_id);
      s->Bind(6, p.attributes_json).Bind(7, p.created_at);
      if (p.expires_at) s->Bind(8, *p.expires_at); else s->BindNull(8);
      s->Bind(9, int64_t{p.disabled ? 1 : 0});
      return s->Run();
    });
  }

  absl::StatusOr<PrincipalRecord> GetPrincipal(std::string_view id) override {
    return QueryPrincipal("id", id);
  }

  absl::StatusOr<PrincipalRecord> FindPrincipalByTokenHash(std::string_view sha256_hex) override {
    return QueryPrincipal("token_sha256", sha256_hex);
  }

  absl::Status InsertTenant(const TenantRecord& t) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "INSERT INTO tenants(id, sealed_name, profile_json, geography, home_region, "
          "replica_region, state, created_at) VALUES(?,?,?,?,?,?,?,?)");
      if (!s.ok()) return s.status();
      return s->Bind(1, t.id)
          .BindBlob(2, t.sealed_name)
          .Bind(3, t.profile_json)
          .Bind(4, t.geography)
          .Bind(5, t.home_region)
          .Bind(6, t.replica_region)
          .Bind(7, t.state)
          .Bind(8, t.created_at)
          .Run();
    });
  }

  absl::StatusOr<TenantRecord> GetTenant(std::string_view id) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<TenantRecord> {
      auto s = c.Prepare(std::string("SELECT ") + kTenantColumns + " FROM tenants WHERE id = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, id);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::NotFoundError("no such tenant");
      return ReadTenant(*s);
    });
  }

  absl::StatusOr<std::vector<TenantRecord>> ListTenants() override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::vector<TenantRecord>> {
      auto s = c.Prepare(std::string("SELECT ") + kTenantColumns +
                         " FROM tenants ORDER BY created_at, id");
      if (!s.ok()) return s.status();
      std::vector<TenantRecord> out;
      while (true) {
        auto row = s->Step();
        if (!row.ok()) return row.status();
        if (!*row) return out;
        out.push_back(ReadTenant(*s));
      }
    });
  }

  absl::StatusOr<std::string> GetSetting(std::string_view name) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::string> {
      auto s = c.Prepare("SELECT value FROM settings WHERE name = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, name);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::NotFoundError("no such setting");
      return s->Blob(0);
    });
  }

  absl::Status PutSetting(std::string_view name, std::string_view value) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "INSERT INTO settings(name, value) VALUES(?, ?) "
          "ON CONFLICT(name) DO UPDATE SET value = excluded.value");
      if (!s.ok()) return s.status();
      return s->Bind(1, name).BindBlob(2, value).Run();
    });
  }

 private:
  absl::StatusOr<PrincipalRecord> QueryPrincipal(std::string_view column, std::string_view value) {
    return db_->Read([&](Connection& c) -> absl::StatusOr<PrincipalRecord> {
      auto s = c.Prepare(std::string("SELECT ") + kPrincipalColumns + " FROM principals WHERE " +
                         std::string(column) + " = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, value);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::NotFoundError("no such principal");
      return ReadPrincipal(*s);
    });
  }

  std::unique_ptr<Database> db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ControlStore>> OpenSqliteControlStore(const std::string& path,
                                                                     bool create) {
  auto db = Database::Open(path, create, kMigrations);
  if (!db.ok()) return db.status();
  return std::make_unique<SqliteControlStore>(std::move(*db));
}

}  // namespace custos::store
