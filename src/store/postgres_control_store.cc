// ControlStore on PostgreSQL: schema custos_control of the given server.
//
// Same tables and semantics as sqlite_control_store.cc; binary columns are BYTEA, identifiers
// that are ordered are COLLATE "C" (bytewise, as SQLite). Durability comes from the server
// (fsync=on, synchronous_commit=on: see internal/pg_pool.h).
#include <array>
#include <mutex>
#include <optional>
#include <string>

#include "base/errors.h"
#include "base/strings.h"
#include "store/internal/ledger_rules.h"
#include "store/internal/pg_pool.h"
#include "store/internal/pg_values.h"
#include "store/store.h"

namespace custos::store {
namespace {

using internal::Bytes;
using internal::PgMigration;
using internal::PgPool;
using internal::PgStatement;
using internal::ReadBytes;

constexpr char kControlSchema[] = "custos_control";

constexpr std::array<PgMigration, 6> kMigrations = {{
    {1, R"sql(
CREATE TABLE principals(
  id TEXT COLLATE "C" PRIMARY KEY,
  name TEXT NOT NULL,
  sealed_name BYTEA NOT NULL,
  role TEXT NOT NULL,
  tenant_id TEXT COLLATE "C",
  token_sha256 TEXT COLLATE "C" NOT NULL UNIQUE,
  attributes_json TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  disabled BOOLEAN NOT NULL DEFAULT FALSE);
CREATE TABLE tenants(
  id TEXT COLLATE "C" PRIMARY KEY,
  sealed_name BYTEA NOT NULL,
  profile_json TEXT NOT NULL,
  geography TEXT NOT NULL,
  home_region TEXT NOT NULL,
  replica_region TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL);
CREATE TABLE settings(
  name TEXT COLLATE "C" PRIMARY KEY,
  value BYTEA NOT NULL);
)sql"},
    {2, R"sql(
CREATE TABLE ledger_tiles(
  level INTEGER NOT NULL,
  idx BIGINT NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY(level, idx));
CREATE TABLE ledger_state(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  size BIGINT NOT NULL,
  frontier BYTEA NOT NULL);
INSERT INTO ledger_state(id, size, frontier) VALUES(1, 0, decode('', 'hex'));
CREATE TABLE ledger_checkpoints(
  size BIGINT PRIMARY KEY,
  note TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL);
CREATE TABLE ledger_records(
  tenant_id TEXT COLLATE "C" NOT NULL,
  first_index BIGINT NOT NULL,
  last_index BIGINT NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY(tenant_id, first_index));
-- Sealed records are random bytes: do not try to compress them.
ALTER TABLE ledger_records ALTER COLUMN data SET STORAGE EXTERNAL;
)sql"},
    // A tenant's log resumes at an index: find its first group by last_index in O(log n).
    // Partial tiles are stored as one row per batch that extended them (store.h LedgerTile);
    // the partial tiles of version 2, stored whole, become one such row each.
    {3, R"sql(
CREATE INDEX ledger_records_by_last ON ledger_records(tenant_id, last_index);
CREATE TABLE ledger_tile_parts(
  level INTEGER NOT NULL,
  idx BIGINT NOT NULL,
  start INTEGER NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY(level, idx, start));
INSERT INTO ledger_tile_parts(level, idx, start, data)
  SELECT level, idx, 0, data FROM ledger_tiles
  WHERE (level >= 0 AND octet_length(data) < 8192)
     OR (level = -1 AND (idx + 1) * 256 > (SELECT size FROM ledger_state WHERE id = 1));
DELETE FROM ledger_tiles
  WHERE (level >= 0 AND octet_length(data) < 8192)
     OR (level = -1 AND (idx + 1) * 256 > (SELECT size FROM ledger_state WHERE id = 1));
)sql"},
    {4, R"sql(
CREATE TABLE access_requests(
  id TEXT COLLATE "C" PRIMARY KEY,
  tenant_id TEXT COLLATE "C" NOT NULL,
  requester TEXT COLLATE "C" NOT NULL,
  state TEXT NOT NULL,
  grant_id TEXT COLLATE "C",
  expires_at BIGINT,
  created_at BIGINT NOT NULL,
  body_json TEXT NOT NULL,
  version BIGINT NOT NULL);
CREATE UNIQUE INDEX access_requests_grant ON access_requests(grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX access_requests_tenant ON access_requests(tenant_id, created_at);
CREATE INDEX access_requests_due ON access_requests(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE principal_mfa(
  principal_id TEXT COLLATE "C" PRIMARY KEY,
  sealed_secret BYTEA NOT NULL,
  last_step BIGINT NOT NULL,
  enrolled_at BIGINT NOT NULL);
CREATE TABLE consents(
  tenant_id TEXT COLLATE "C" NOT NULL,
  purpose TEXT COLLATE "C" NOT NULL,
  granted BOOLEAN NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY(tenant_id, purpose));
CREATE TABLE audit_verdicts(
  grant_id TEXT COLLATE "C" NOT NULL,
  period TEXT COLLATE "C" NOT NULL,
  auditor TEXT COLLATE "C" NOT NULL,
  verdict TEXT NOT NULL,
  note TEXT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY(period, grant_id, auditor));
)sql"},
    {6, R"sql(
CREATE TABLE job_leases(
  name TEXT COLLATE "C" PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  last_run_ms BIGINT NOT NULL DEFAULT 0);
)sql"},
    {7, R"sql(
ALTER TABLE principal_mfa ADD COLUMN failure_window_start BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN failure_count BIGINT NOT NULL DEFAULT 0;
)sql"},
}};

#define CUSTOS_PRINCIPAL_COLUMNS                                                                 \
  "id, name, role, tenant_id, token_sha256, attributes_json, created_at, expires_at, disabled, " \
  "sealed_name"
#define CUSTOS_ACCESS_REQUEST_COLUMNS \
  "id, tenant_id, requester, state, grant_id, expires_at, created_at, body_json, version"
#define CUSTOS_TENANT_COLUMNS \
  "id, sealed_name, profile_json, geography, home_region, replica_region, state, created_at"

// A ledger batch's writes after the state row is locked — its tile parts, its record groups and
// the new state — go as one statement when there are at most this many of each (tiles that the
// batch fills still go one by one, once per 256 entries at most): one round trip instead of one
// per row. Larger batches (many tenants) take the row-by-row path.
constexpr size_t kMaxPartsPerWrite = 4;
constexpr size_t kMaxGroupsPerWrite = 8;

std::string LedgerWriteName(size_t parts, size_t groups) {
  return StrCat("ledger_write_", parts, "_", groups);
}

// Writes a batch's tile parts and record groups and moves the state row from $old_size to the
// new size and frontier, all or nothing: if the stored size is no longer $old_size (another
// instance appended) nothing is written and the statement returns 0 rows instead of 1. Being one
// statement it is atomic by itself, so a sequencer that knows the current state needs no lock
// and one round trip (PostgresControlStore::SequenceLedgerBatch). Parameters are column-major:
// parts' levels, indexes, starts and data, then the groups' tenants, first and last indexes and
// data, then the new size, the frontier and the old size.
std::string LedgerWriteSql(size_t parts, size_t groups) {
  const size_t next = 1 + 4 * (parts + groups);
  std::string sql =
      StrCat("WITH moved AS (UPDATE ledger_state SET size = $", next, ", frontier = $", next + 1,
             " WHERE id = 1 AND size = $", next + 2, " RETURNING 1)");
  if (parts > 0) {
    sql += StrCat(
        ", parts AS (INSERT INTO ledger_tile_parts(level, idx, start, data) SELECT * FROM "
        "(VALUES ",
        internal::ColumnMajorValues(parts, 4, 1, "",
                                    {"::integer", "::bigint", "::integer", "::bytea"}),
        ") AS v WHERE EXISTS (SELECT FROM moved))");
  }
  if (groups > 0) {
    sql += StrCat(
        ", records AS (INSERT INTO ledger_records(tenant_id, first_index, last_index, data) "
        "SELECT * FROM (VALUES ",
        internal::ColumnMajorValues(groups, 4, 1 + 4 * parts, "",
                                    {"::text", "::bigint", "::bigint", "::bytea"}),
        ") AS v WHERE EXISTS (SELECT FROM moved))");
  }
  sql += " SELECT FROM moved";
  return sql;
}

const std::vector<PgStatement>& Statements() {
  static const auto* kStatements = [] {
    auto* statements = new std::vector<PgStatement>{
        {"insert_principal", "INSERT INTO principals(" CUSTOS_PRINCIPAL_COLUMNS
                             ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"},
        {"principal_by_id", "SELECT " CUSTOS_PRINCIPAL_COLUMNS " FROM principals WHERE id = $1"},
        {"principal_by_token",
         "SELECT " CUSTOS_PRINCIPAL_COLUMNS " FROM principals WHERE token_sha256 = $1"},
        {"set_principal_credential",
         "UPDATE principals SET token_sha256 = $2, disabled = $3 WHERE id = $1"},
        {"insert_tenant",
         "INSERT INTO tenants(" CUSTOS_TENANT_COLUMNS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8)"},
        {"tenant_by_id", "SELECT " CUSTOS_TENANT_COLUMNS " FROM tenants WHERE id = $1"},
        {"list_tenants", "SELECT " CUSTOS_TENANT_COLUMNS " FROM tenants ORDER BY created_at, id"},
        {"get_setting", "SELECT value FROM settings WHERE name = $1"},
        {"put_setting",
         "INSERT INTO settings(name, value) VALUES($1, $2) "
         "ON CONFLICT(name) DO UPDATE SET value = EXCLUDED.value"},
        {"cas_setting", "UPDATE settings SET value = $2 WHERE name = $1 AND value = $3"},
        {"create_setting",
         "INSERT INTO settings(name, value) VALUES($1, $2) ON CONFLICT(name) DO NOTHING"},
        {"take_job_lease",
         "INSERT INTO job_leases(name, holder, expires_at_ms) VALUES($1, $2, $4) "
         "ON CONFLICT(name) DO UPDATE SET holder = EXCLUDED.holder, "
         "expires_at_ms = EXCLUDED.expires_at_ms "
         "WHERE job_leases.holder = EXCLUDED.holder OR job_leases.expires_at_ms <= $3 "
         "OR job_leases.expires_at_ms > $4 + 3600000"},
        {"read_job_lease",
         "SELECT holder, expires_at_ms, last_run_ms FROM job_leases WHERE name = $1"},
        {"record_job_run",
         "UPDATE job_leases SET last_run_ms = $3 WHERE name = $1 AND holder = $2"},
        {"release_job_lease",
         "UPDATE job_leases SET expires_at_ms = 0 WHERE name = $1 AND holder = $2"},
        {"lock_ledger_state", "SELECT size, frontier FROM ledger_state WHERE id = 1 FOR UPDATE"},
        {"insert_tile_part",
         "INSERT INTO ledger_tile_parts(level, idx, start, data) VALUES($1, $2, $3, $4)"},
        // The batch that fills a tile: its earlier parts and the new bytes become one row.
        {"fill_tile",
         "WITH parts AS (DELETE FROM ledger_tile_parts WHERE level = $1 AND idx = $2 "
         "RETURNING start, data) "
         "INSERT INTO ledger_tiles(level, idx, data) "
         "SELECT $1, $2, COALESCE((SELECT string_agg(data, ''::bytea ORDER BY start) FROM parts), "
         "''::bytea) || $3"},
        {"max_checkpoint", "SELECT MAX(size) FROM ledger_checkpoints"},
        {"insert_record_group",
         "INSERT INTO ledger_records(tenant_id, first_index, last_index, data) "
         "VALUES($1, $2, $3, $4)"},
        {"update_ledger_state", "UPDATE ledger_state SET size = $1, frontier = $2 WHERE id = 1"},
        {"ledger_state", "SELECT size, frontier FROM ledger_state WHERE id = 1"},
        // One statement, one snapshot: the whole tile, or else its parts in order (the batch that
        // fills a tile replaces its parts in one transaction, so never a mix).
        {"get_tile",
         "SELECT 0, -1, data FROM ledger_tiles WHERE level = $1 AND idx = $2 "
         "UNION ALL SELECT 1, start, data FROM ledger_tile_parts WHERE level = $1 AND idx = $2 "
         "ORDER BY 1, 2"},
        {"insert_checkpoint",
         "INSERT INTO ledger_checkpoints(size, note, created_at_ms) VALUES($1, $2, $3)"},
        {"latest_checkpoint",
         "SELECT size, note, created_at_ms FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"},
        {"record_groups",
         "SELECT first_index, last_index, data FROM ledger_records "
         "WHERE tenant_id = $1 AND last_index >= $2 ORDER BY last_index LIMIT $3"},
        {"insert_access_request", "INSERT INTO access_requests(" CUSTOS_ACCESS_REQUEST_COLUMNS
                                  ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)"},
        {"update_access_request",
         "UPDATE access_requests SET tenant_id = $2, requester = $3, state = $4, grant_id = $5, "
         "expires_at = $6, created_at = $7, body_json = $8, version = $9 "
         "WHERE id = $1 AND version = $9 - 1"},
        {"access_request_by_id",
         "SELECT " CUSTOS_ACCESS_REQUEST_COLUMNS " FROM access_requests WHERE id = $1"},
        {"access_request_by_grant",
         "SELECT " CUSTOS_ACCESS_REQUEST_COLUMNS " FROM access_requests WHERE grant_id = $1"},
        {"list_access_requests",
         "SELECT " CUSTOS_ACCESS_REQUEST_COLUMNS " FROM access_requests "
         "WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR state = $2) "
         "AND ($3::text IS NULL OR requester = $3) ORDER BY created_at, id"},
        {"due_access_requests",
         "SELECT " CUSTOS_ACCESS_REQUEST_COLUMNS " FROM access_requests "
         "WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at, id"},
        {"put_mfa",
         "INSERT INTO principal_mfa(principal_id, sealed_secret, last_step, enrolled_at) "
         "VALUES($1,$2,$3,$4) ON CONFLICT(principal_id) DO UPDATE SET "
         "sealed_secret = EXCLUDED.sealed_secret, enrolled_at = EXCLUDED.enrolled_at, "
         "last_step = GREATEST(principal_mfa.last_step, EXCLUDED.last_step)"},
        {"get_mfa",
         "SELECT sealed_secret, last_step, enrolled_at, failure_window_start, failure_count "
         "FROM principal_mfa WHERE principal_id = $1"},
        // Both SET expressions read the row as it was before the update.
        {"take_totp_attempt",
         "UPDATE principal_mfa SET "
         "failure_count = CASE WHEN $2 - failure_window_start < $3 THEN failure_count + 1 ELSE 1 "
         "END, "
         "failure_window_start = CASE WHEN $2 - failure_window_start < $3 "
         "THEN failure_window_start ELSE $2 END "
         "WHERE principal_id = $1 AND NOT ($2 - failure_window_start < $3 AND failure_count >= "
         "$4)"},
        {"return_totp_attempt",
         "UPDATE principal_mfa SET failure_count = failure_count - 1 "
         "WHERE principal_id = $1 AND failure_count > 0"},
        {"mfa_exists", "SELECT 1 FROM principal_mfa WHERE principal_id = $1"},
        {"consume_totp_step",
         "UPDATE principal_mfa SET last_step = $2 WHERE principal_id = $1 AND last_step < $2"},
        {"set_consent",
         "INSERT INTO consents(tenant_id, purpose, granted, updated_at) VALUES($1,$2,$3,$4) "
         "ON CONFLICT(tenant_id, purpose) DO UPDATE SET granted = EXCLUDED.granted, "
         "updated_at = EXCLUDED.updated_at"},
        {"has_consent", "SELECT granted FROM consents WHERE tenant_id = $1 AND purpose = $2"},
        {"insert_audit_verdict",
         "INSERT INTO audit_verdicts(grant_id, period, auditor, verdict, note, at) "
         "VALUES($1,$2,$3,$4,$5,$6)"},
        {"list_audit_verdicts",
         "SELECT grant_id, period, auditor, verdict, note, at FROM audit_verdicts "
         "WHERE period = $1 ORDER BY at, grant_id, auditor"},
    };
    for (size_t parts = 0; parts <= kMaxPartsPerWrite; ++parts) {
      for (size_t groups = 0; groups <= kMaxGroupsPerWrite; ++groups) {
        statements->push_back({LedgerWriteName(parts, groups), LedgerWriteSql(parts, groups)});
      }
    }
    return statements;
  }();
  return *kStatements;
}

PrincipalRecord ReadPrincipal(const pqxx::row& r) {
  PrincipalRecord p;
  p.id = r[0].as<std::string>();
  p.name = r[1].as<std::string>();
  p.role = r[2].as<std::string>();
  if (!r[3].is_null()) p.tenant_id = r[3].as<std::string>();
  p.token_sha256 = r[4].as<std::string>();
  p.attributes_json = r[5].as<std::string>();
  p.created_at = r[6].as<int64_t>();
  if (!r[7].is_null()) p.expires_at = r[7].as<int64_t>();
  p.disabled = r[8].as<bool>();
  p.sealed_name = ReadBytes(r[9]);
  return p;
}

AccessRequestRecord ReadAccessRequest(const pqxx::row& r) {
  AccessRequestRecord a;
  a.id = r[0].as<std::string>();
  a.tenant_id = r[1].as<std::string>();
  a.requester = r[2].as<std::string>();
  a.state = r[3].as<std::string>();
  if (!r[4].is_null()) a.grant_id = r[4].as<std::string>();
  if (!r[5].is_null()) a.expires_at = r[5].as<int64_t>();
  a.created_at = r[6].as<int64_t>();
  a.body_json = r[7].as<std::string>();
  a.version = r[8].as<int64_t>();
  return a;
}

TenantRecord ReadTenant(const pqxx::row& r) {
  TenantRecord t;
  t.id = r[0].as<std::string>();
  t.sealed_name = ReadBytes(r[1]);
  t.profile_json = r[2].as<std::string>();
  t.geography = r[3].as<std::string>();
  t.home_region = r[4].as<std::string>();
  t.replica_region = r[5].as<std::string>();
  t.state = r[6].as<std::string>();
  t.created_at = r[7].as<int64_t>();
  return t;
}

class PostgresControlStore final : public ControlStore {
 public:
  explicit PostgresControlStore(std::unique_ptr<PgPool> pool) : pool_(std::move(pool)) {}

  absl::Status InsertPrincipal(const PrincipalRecord& p) override {
    if (auto s = CheckPrincipalText(p); !s.ok()) return s;
    return pool_->Write("insert principal", [&](pqxx::work& txn) -> absl::Status {
      InsertPrincipalRow(txn, p);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<PrincipalRecord> GetPrincipal(std::string_view id) override {
    return QueryPrincipal("principal_by_id", id);
  }

  absl::StatusOr<PrincipalRecord> FindPrincipalByTokenHash(std::string_view sha256_hex) override {
    return QueryPrincipal("principal_by_token", sha256_hex);
  }

  absl::Status SetPrincipalCredential(std::string_view id, std::string_view token_sha256,
                                      bool disabled) override {
    if (auto s = internal::CheckText({id, token_sha256}); !s.ok()) return s;
    return pool_->Write("set principal credential", [&](pqxx::work& txn) -> absl::Status {
      const pqxx::result r = txn.exec_prepared("set_principal_credential", std::string(id),
                                               std::string(token_sha256), disabled);
      if (r.affected_rows() != 1) return absl::NotFoundError("no such principal");
      return absl::OkStatus();
    });
  }

  absl::Status InsertTenant(const TenantRecord& t, const PrincipalRecord& first_admin) override {
    if (auto s = internal::CheckText(
            {t.id, t.profile_json, t.geography, t.home_region, t.replica_region, t.state});
        !s.ok()) {
      return s;
    }
    if (auto s = CheckPrincipalText(first_admin); !s.ok()) return s;
    return pool_->Write("insert tenant", [&](pqxx::work& txn) -> absl::Status {
      txn.exec_prepared0("insert_tenant", t.id, Bytes(t.sealed_name), t.profile_json, t.geography,
                         t.home_region, t.replica_region, t.state, t.created_at);
      InsertPrincipalRow(txn, first_admin);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<TenantRecord> GetTenant(std::string_view id) override {
    if (internal::CannotBeText(id)) return absl::NotFoundError("no such tenant");
    return pool_->Read("get tenant",
                       [&](pqxx::nontransaction& txn) -> absl::StatusOr<TenantRecord> {
                         auto r = txn.exec_prepared("tenant_by_id", std::string(id));
                         if (r.empty()) return absl::NotFoundError("no such tenant");
                         return ReadTenant(r[0]);
                       });
  }

  absl::StatusOr<std::vector<TenantRecord>> ListTenants() override {
    return pool_->Read("list tenants",
                       [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::vector<TenantRecord>> {
                         std::vector<TenantRecord> out;
                         for (const auto& row : txn.exec_prepared("list_tenants")) {
                           out.push_back(ReadTenant(row));
                         }
                         return out;
                       });
  }

  absl::StatusOr<std::string> GetSetting(std::string_view name) override {
    if (internal::CannotBeText(name)) return absl::NotFoundError("no such setting");
    return pool_->Read("get setting",
                       [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::string> {
                         auto r = txn.exec_prepared("get_setting", std::string(name));
                         if (r.empty()) return absl::NotFoundError("no such setting");
                         return ReadBytes(r[0][0]);
                       });
  }

  absl::Status PutSetting(std::string_view name, std::string_view value) override {
    if (auto s = internal::CheckText({name}); !s.ok()) return s;
    return pool_->Write("put setting", [&](pqxx::work& txn) -> absl::Status {
      txn.exec_prepared0("put_setting", std::string(name), Bytes(value));
      return absl::OkStatus();
    });
  }

  absl::Status CompareAndSwapSetting(std::string_view name,
                                     std::optional<std::string_view> expected,
                                     std::string_view value) override {
    if (auto s = internal::CheckText({name}); !s.ok()) return s;
    return pool_->Write("compare and swap setting", [&](pqxx::work& txn) -> absl::Status {
      // Read committed suffices: the UPDATE re-checks its WHERE on the latest committed row
      // after waiting for a concurrent writer, and the INSERT meets the primary key.
      const pqxx::result r =
          expected
              ? txn.exec_prepared("cas_setting", std::string(name), Bytes(value), Bytes(*expected))
              : txn.exec_prepared("create_setting", std::string(name), Bytes(value));
      if (r.affected_rows() != 1) {
        return absl::AbortedError(StrCat("setting ", name, " was changed by another writer"));
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<JobLease> AcquireJobLease(std::string_view name, std::string_view holder,
                                           int64_t now_ms, int64_t expires_at_ms) override {
    if (auto s = internal::CheckText({name, holder}); !s.ok()) return s;
    return pool_->Write("acquire job lease", [&](pqxx::work& txn) -> absl::StatusOr<JobLease> {
      // The upsert's WHERE is re-checked on the latest row after any concurrent writer
      // committed, so of instances racing for an expired lease exactly one takes it.
      txn.exec_prepared0("take_job_lease", std::string(name), std::string(holder), now_ms,
                         expires_at_ms);
      auto r = txn.exec_prepared("read_job_lease", std::string(name));
      if (r.empty()) return absl::InternalError("job lease row missing after upsert");
      return JobLease{r[0][0].as<std::string>(), r[0][1].as<int64_t>(), r[0][2].as<int64_t>()};
    });
  }

  absl::Status RecordJobRun(std::string_view name, std::string_view holder,
                            int64_t ran_at_ms) override {
    if (auto s = internal::CheckText({name, holder}); !s.ok()) return s;
    return pool_->Write("record job run", [&](pqxx::work& txn) -> absl::Status {
      auto r =
          txn.exec_prepared("record_job_run", std::string(name), std::string(holder), ran_at_ms);
      if (r.affected_rows() != 1) {
        return absl::AbortedError(StrCat("job lease ", name, " is held by another instance"));
      }
      return absl::OkStatus();
    });
  }

  absl::Status ReleaseJobLease(std::string_view name, std::string_view holder) override {
    if (auto s = internal::CheckText({name, holder}); !s.ok()) return s;
    return pool_->Write("release job lease", [&](pqxx::work& txn) -> absl::Status {
      txn.exec_prepared0("release_job_lease", std::string(name), std::string(holder));
      return absl::OkStatus();
    });
  }

  absl::Status SequenceLedgerBatch(LedgerBatchBuilder build) override {
    // Most batches follow this instance's own previous one: built on the state it wrote, they
    // commit as one conditional statement (LedgerWriteSql), without the row lock and in one
    // round trip instead of four. If another instance appended meanwhile, that statement writes
    // nothing and the batch is built again on the state read under the lock; the lock stays in
    // use until a locked batch finds that nobody else appended since this instance's last one.
    std::optional<LedgerState> known;  // the state this instance's last batch led to
    bool optimistic = false;
    {
      std::lock_guard lock(known_mu_);
      known = known_;
      optimistic = known_.has_value() && !contended_;
    }
    if (optimistic) {
      // A builder that refuses the state this instance knows is asked again under the lock.
      auto built = build(*known);
      if (built.ok() && FitsOneStatement(*built)) {
        absl::StatusOr<bool> moved = pool_->WriteStatement(
            "commit ledger batch", [&](pqxx::transaction_base& txn) -> absl::StatusOr<bool> {
              return WriteLedgerRows(txn, *built);
            });
        LedgerState after{built->new_size, std::move(built->frontier)};
        if (!moved.ok()) return SettleUncertainCommit(moved.status(), after);
        if (*moved) {
          Remember(std::move(after), /*contended=*/false);
          return absl::OkStatus();
        }
        Remember(std::nullopt, /*contended=*/true);  // another instance appended: lock
      }
    }
    std::optional<LedgerState> written;  // the state the batch leads to, once it is written
    bool contended = true;  // whether another instance appended since this one's last batch
    absl::Status s = pool_->Write("commit ledger batch", [&](pqxx::work& txn) -> absl::Status {
      // The state row stays locked until commit: another instance's sequencer waits here and
      // then builds its batch on the state this one committed, so the log never forks. If this
      // process dies, PostgreSQL rolls the transaction back when the connection drops, which
      // frees the row for the others (no leader to elect, nothing to take over).
      auto r = txn.exec_prepared("lock_ledger_state");
      if (r.empty()) return absl::DataLossError("ledger state row is missing");
      LedgerState state{static_cast<uint64_t>(r[0][0].as<int64_t>()), ReadBytes(r[0][1])};
      contended = !known || state.size != known->size;
      auto built = build(state);
      if (!built.ok()) return built.status();
      const LedgerBatch& b = *built;
      if (b.old_size != state.size || b.new_size < b.old_size) {
        return absl::InternalError("ledger batch does not extend the stored size");
      }
      for (const LedgerRecordGroup& g : b.records) {
        if (auto c = internal::CheckText({g.tenant_id}); !c.ok()) return c;
      }
      for (const LedgerTile& t : b.tiles) {
        if (t.fills) {
          txn.exec_prepared0("fill_tile", t.level, static_cast<int64_t>(t.index), Bytes(t.data));
        }
      }
      if (FitsOneStatement(b, /*with_fills=*/true)) {
        if (!WriteLedgerRows(txn, b)) return absl::InternalError("the locked state moved");
      } else {
        for (const LedgerTile& t : b.tiles) {
          if (t.fills) continue;
          txn.exec_prepared0("insert_tile_part", t.level, static_cast<int64_t>(t.index),
                             static_cast<int32_t>(t.start), Bytes(t.data));
        }
        for (const LedgerRecordGroup& g : b.records) {
          txn.exec_prepared0("insert_record_group", g.tenant_id,
                             static_cast<int64_t>(g.first_index),
                             static_cast<int64_t>(g.last_index), Bytes(g.data));
        }
        txn.exec_prepared0("update_ledger_state", static_cast<int64_t>(b.new_size),
                           Bytes(b.frontier));
      }
      written = LedgerState{b.new_size, b.frontier};
      return absl::OkStatus();
    });
    if (!s.ok()) return written ? SettleUncertainCommit(s, *written) : s;
    Remember(std::move(written), contended);
    return absl::OkStatus();
  }

  absl::StatusOr<LedgerState> LoadLedgerState() override {
    return pool_->Read(
        "load ledger state", [&](pqxx::nontransaction& txn) -> absl::StatusOr<LedgerState> {
          auto r = txn.exec_prepared("ledger_state");
          if (r.empty()) return absl::DataLossError("ledger state row is missing");
          return LedgerState{static_cast<uint64_t>(r[0][0].as<int64_t>()), ReadBytes(r[0][1])};
        });
  }

  absl::StatusOr<std::string> ReadLedgerTile(int level, uint64_t index) override {
    return pool_->Read("read ledger tile",
                       [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::string> {
                         auto r = txn.exec_prepared("get_tile", level, static_cast<int64_t>(index));
                         if (r.empty()) return absl::NotFoundError("no such tile");
                         if (r[0][0].as<int>() == 0) return ReadBytes(r[0][2]);  // whole
                         std::string out;
                         for (const auto& row : r) out += ReadBytes(row[2]);
                         return out;
                       });
  }

  absl::Status PutCheckpoint(const LedgerCheckpoint& cp) override {
    if (auto s = internal::CheckText({cp.note}); !s.ok()) return s;
    return pool_->Write("put checkpoint", [&](pqxx::work& txn) -> absl::Status {
      // The state row lock orders checkpoint writers (and batches): the latest checkpoint read
      // next cannot change before this one is inserted.
      auto state = txn.exec_prepared("lock_ledger_state");
      if (state.empty()) return absl::DataLossError("ledger state row is missing");
      auto latest = txn.exec_prepared("max_checkpoint");
      std::optional<uint64_t> latest_size;
      if (!latest.empty() && !latest[0][0].is_null()) {
        latest_size = static_cast<uint64_t>(latest[0][0].as<int64_t>());
      }
      if (auto s = internal::CheckCheckpointOrder(
              cp.size, static_cast<uint64_t>(state[0][0].as<int64_t>()), latest_size);
          !s.ok()) {
        return s;
      }
      txn.exec_prepared0("insert_checkpoint", static_cast<int64_t>(cp.size), cp.note,
                         cp.created_at_ms);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<LedgerCheckpoint> LatestCheckpoint() override {
    return pool_->Read("latest checkpoint",
                       [&](pqxx::nontransaction& txn) -> absl::StatusOr<LedgerCheckpoint> {
                         auto r = txn.exec_prepared("latest_checkpoint");
                         if (r.empty()) return absl::NotFoundError("no checkpoint");
                         return LedgerCheckpoint{static_cast<uint64_t>(r[0][0].as<int64_t>()),
                                                 r[0][1].as<std::string>(), r[0][2].as<int64_t>()};
                       });
  }

  absl::StatusOr<std::vector<LedgerRecordGroup>> ReadRecordGroups(std::string_view tenant_id,
                                                                  uint64_t from_index,
                                                                  int limit) override {
    if (internal::CannotBeText(tenant_id)) return std::vector<LedgerRecordGroup>{};
    return pool_->Read(
        "read record groups",
        [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::vector<LedgerRecordGroup>> {
          std::vector<LedgerRecordGroup> out;
          for (const auto& row :
               txn.exec_prepared("record_groups", std::string(tenant_id),
                                 static_cast<int64_t>(from_index), static_cast<int64_t>(limit))) {
            out.push_back({std::string(tenant_id), static_cast<uint64_t>(row[0].as<int64_t>()),
                           static_cast<uint64_t>(row[1].as<int64_t>()), ReadBytes(row[2])});
          }
          return out;
        });
  }

  absl::Status InsertAccessRequest(const AccessRequestRecord& r) override {
    return WriteAccessRequest("insert_access_request", r, /*update=*/false);
  }

  absl::Status UpdateAccessRequest(const AccessRequestRecord& r) override {
    return WriteAccessRequest("update_access_request", r, /*update=*/true);
  }

  absl::StatusOr<AccessRequestRecord> GetAccessRequest(std::string_view id) override {
    return QueryAccessRequest("access_request_by_id", id);
  }

  absl::StatusOr<AccessRequestRecord> FindAccessRequestByGrant(std::string_view grant_id) override {
    return QueryAccessRequest("access_request_by_grant", grant_id);
  }

  absl::StatusOr<std::vector<AccessRequestRecord>> ListAccessRequests(
      const AccessRequestFilter& f) override {
    for (const auto* v : {&f.tenant_id, &f.state, &f.requester}) {
      if (*v && internal::CannotBeText(**v)) return std::vector<AccessRequestRecord>{};
    }
    auto c = [](const std::optional<std::string>& v) { return v ? v->c_str() : nullptr; };
    return pool_->Read(
        "list access requests",
        [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::vector<AccessRequestRecord>> {
          std::vector<AccessRequestRecord> out;
          for (const auto& row : txn.exec_prepared("list_access_requests", c(f.tenant_id),
                                                   c(f.state), c(f.requester))) {
            out.push_back(ReadAccessRequest(row));
          }
          return out;
        });
  }

  absl::StatusOr<std::vector<AccessRequestRecord>> ListDueAccessRequests(int64_t now) override {
    return pool_->Read(
        "due access requests",
        [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::vector<AccessRequestRecord>> {
          std::vector<AccessRequestRecord> out;
          for (const auto& row : txn.exec_prepared("due_access_requests", now)) {
            out.push_back(ReadAccessRequest(row));
          }
          return out;
        });
  }

  absl::Status PutMfa(const MfaRecord& r) override {
    if (auto s = internal::CheckText({r.principal_id}); !s.ok()) return s;
    return pool_->Write("put mfa", [&](pqxx::work& txn) -> absl::Status {
      txn.exec_prepared0("put_mfa", r.principal_id, Bytes(r.sealed_secret), r.last_step,
                         r.enrolled_at);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<MfaRecord> GetMfa(std::string_view principal_id) override {
    if (internal::CannotBeText(principal_id)) return absl::NotFoundError("not enrolled");
    return pool_->Read("get mfa", [&](pqxx::nontransaction& txn) -> absl::StatusOr<MfaRecord> {
      auto r = txn.exec_prepared("get_mfa", std::string(principal_id));
      if (r.empty()) return absl::NotFoundError("not enrolled");
      return MfaRecord{std::string(principal_id), ReadBytes(r[0][0]),    r[0][1].as<int64_t>(),
                       r[0][2].as<int64_t>(),     r[0][3].as<int64_t>(), r[0][4].as<int64_t>()};
    });
  }

  absl::Status TakeTotpAttempt(std::string_view principal_id, int64_t now, int64_t window_s,
                               int64_t max) override {
    if (auto s = internal::CheckText({principal_id}); !s.ok()) return s;
    return pool_->Write("take totp attempt", [&](pqxx::work& txn) -> absl::Status {
      // Concurrent takes serialise on the row: each re-reads it after the other committed.
      auto r =
          txn.exec_prepared0("take_totp_attempt", std::string(principal_id), now, window_s, max);
      if (r.affected_rows() == 1) return absl::OkStatus();
      if (txn.exec_prepared("mfa_exists", std::string(principal_id)).empty()) {
        return absl::NotFoundError("not enrolled");
      }
      return absl::ResourceExhaustedError("no code checks left in this window");
    });
  }

  absl::Status ReturnTotpAttempt(std::string_view principal_id) override {
    if (auto s = internal::CheckText({principal_id}); !s.ok()) return s;
    return pool_->Write("return totp attempt", [&](pqxx::work& txn) -> absl::Status {
      txn.exec_prepared0("return_totp_attempt", std::string(principal_id));
      return absl::OkStatus();
    });
  }

  absl::Status ConsumeTotpStep(std::string_view principal_id, int64_t step) override {
    if (auto s = internal::CheckText({principal_id}); !s.ok()) return s;
    return pool_->Write("consume totp step", [&](pqxx::work& txn) -> absl::Status {
      auto r = txn.exec_prepared0("consume_totp_step", std::string(principal_id), step);
      if (r.affected_rows() != 1) {
        return absl::AlreadyExistsError("this or a later time step was used already");
      }
      return absl::OkStatus();
    });
  }

  absl::Status SetConsent(std::string_view tenant_id, std::string_view purpose, bool granted,
                          int64_t at) override {
    if (auto s = internal::CheckText({tenant_id, purpose}); !s.ok()) return s;
    return pool_->Write("set consent", [&](pqxx::work& txn) -> absl::Status {
      txn.exec_prepared0("set_consent", std::string(tenant_id), std::string(purpose), granted, at);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<bool> HasConsent(std::string_view tenant_id, std::string_view purpose) override {
    if (internal::CannotBeText(tenant_id) || internal::CannotBeText(purpose)) return false;
    return pool_->Read("has consent", [&](pqxx::nontransaction& txn) -> absl::StatusOr<bool> {
      auto r = txn.exec_prepared("has_consent", std::string(tenant_id), std::string(purpose));
      return !r.empty() && r[0][0].as<bool>();
    });
  }

  absl::Status InsertAuditVerdict(const AuditVerdictRecord& v) override {
    if (auto s = internal::CheckText({v.grant_id, v.period, v.auditor, v.verdict, v.note});
        !s.ok()) {
      return s;
    }
    return pool_->Write("insert audit verdict", [&](pqxx::work& txn) -> absl::Status {
      txn.exec_prepared0("insert_audit_verdict", v.grant_id, v.period, v.auditor, v.verdict, v.note,
                         v.at);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<AuditVerdictRecord>> ListAuditVerdicts(
      std::string_view period) override {
    if (internal::CannotBeText(period)) return std::vector<AuditVerdictRecord>{};
    return pool_->Read(
        "list audit verdicts",
        [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::vector<AuditVerdictRecord>> {
          std::vector<AuditVerdictRecord> out;
          for (const auto& row : txn.exec_prepared("list_audit_verdicts", std::string(period))) {
            out.push_back({row[0].as<std::string>(), row[1].as<std::string>(),
                           row[2].as<std::string>(), row[3].as<std::string>(),
                           row[4].as<std::string>(), row[5].as<int64_t>()});
          }
          return out;
        });
  }

 private:
  static absl::Status CheckPrincipalText(const PrincipalRecord& p) {
    return internal::CheckText(
        {p.id, p.name, p.role, p.tenant_id, p.token_sha256, p.attributes_json});
  }

  static void InsertPrincipalRow(pqxx::work& txn, const PrincipalRecord& p) {
    const std::string expires = p.expires_at ? std::to_string(*p.expires_at) : "";
    txn.exec_prepared0("insert_principal", p.id, p.name, p.role,
                       p.tenant_id.empty() ? nullptr : p.tenant_id.c_str(), p.token_sha256,
                       p.attributes_json, p.created_at, p.expires_at ? expires.c_str() : nullptr,
                       p.disabled, Bytes(p.sealed_name));
  }

  absl::Status WriteAccessRequest(const char* statement, const AccessRequestRecord& r,
                                  bool update) {
    if (auto s =
            internal::CheckText({r.id, r.tenant_id, r.requester, r.state, r.grant_id, r.body_json});
        !s.ok()) {
      return s;
    }
    std::string expires = r.expires_at ? std::to_string(*r.expires_at) : "";
    return pool_->Write(statement, [&](pqxx::work& txn) -> absl::Status {
      auto result = txn.exec_prepared0(statement, r.id, r.tenant_id, r.requester, r.state,
                                       r.grant_id.empty() ? nullptr : r.grant_id.c_str(),
                                       r.expires_at ? expires.c_str() : nullptr, r.created_at,
                                       r.body_json, r.version);
      if (update && result.affected_rows() != 1) {
        return Conflict("the access request changed meanwhile");
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<AccessRequestRecord> QueryAccessRequest(const char* statement,
                                                         std::string_view value) {
    if (internal::CannotBeText(value)) return absl::NotFoundError("no such access request");
    return pool_->Read("get access request",
                       [&](pqxx::nontransaction& txn) -> absl::StatusOr<AccessRequestRecord> {
                         auto r = txn.exec_prepared(statement, std::string(value));
                         if (r.empty()) return absl::NotFoundError("no such access request");
                         return ReadAccessRequest(r[0]);
                       });
  }

  absl::StatusOr<PrincipalRecord> QueryPrincipal(const char* statement, std::string_view value) {
    if (internal::CannotBeText(value)) return absl::NotFoundError("no such principal");
    return pool_->Read("get principal",
                       [&](pqxx::nontransaction& txn) -> absl::StatusOr<PrincipalRecord> {
                         auto r = txn.exec_prepared(statement, std::string(value));
                         if (r.empty()) return absl::NotFoundError("no such principal");
                         return ReadPrincipal(r[0]);
                       });
  }

  // The batch's tile parts (`parts` of them, tiles it fills left out), record groups and new
  // state in one statement (LedgerWriteSql).
  // Whether `b` is written by one LedgerWriteSql statement: its parts and groups within the
  // prepared shapes and, unless the caller writes them first, no tile it fills.
  static bool FitsOneStatement(const LedgerBatch& b, bool with_fills = false) {
    size_t parts = 0;
    for (const LedgerTile& t : b.tiles) {
      if (!t.fills) {
        ++parts;
      } else if (!with_fills) {
        return false;
      }
    }
    if (parts > kMaxPartsPerWrite || b.records.size() > kMaxGroupsPerWrite) return false;
    for (const LedgerRecordGroup& g : b.records) {
      if (internal::CannotBeText(g.tenant_id)) return false;  // refused by the locked path
    }
    return true;
  }

  // Runs LedgerWriteSql for `b` (FitsOneStatement); false if the stored size was not
  // b.old_size, and then nothing was written.
  static bool WriteLedgerRows(pqxx::transaction_base& txn, const LedgerBatch& b) {
    std::vector<int32_t> levels, starts;
    std::vector<int64_t> tile_indexes, firsts, lasts;
    std::vector<pqxx::binarystring> tile_data, group_data;
    std::vector<std::string> tenants;
    for (const LedgerTile& t : b.tiles) {
      if (t.fills) continue;
      levels.push_back(t.level);
      tile_indexes.push_back(static_cast<int64_t>(t.index));
      starts.push_back(static_cast<int32_t>(t.start));
      tile_data.push_back(Bytes(t.data));
    }
    for (const LedgerRecordGroup& g : b.records) {
      tenants.push_back(g.tenant_id);
      firsts.push_back(static_cast<int64_t>(g.first_index));
      lasts.push_back(static_cast<int64_t>(g.last_index));
      group_data.push_back(Bytes(g.data));
    }
    using pqxx::prepare::make_dynamic_params;
    pqxx::result moved = txn.exec_prepared(
        LedgerWriteName(levels.size(), b.records.size()), make_dynamic_params(levels),
        make_dynamic_params(tile_indexes), make_dynamic_params(starts),
        make_dynamic_params(tile_data), make_dynamic_params(tenants), make_dynamic_params(firsts),
        make_dynamic_params(lasts), make_dynamic_params(group_data),
        static_cast<int64_t>(b.new_size), Bytes(b.frontier), static_cast<int64_t>(b.old_size));
    return moved.size() == 1;
  }

  // `failed` ended the write of a batch leading to `after`. If the connection failed, COMMIT
  // (or the one-statement batch) may have been sent and executed: if the stored state is exactly
  // `after` (no other batch ends at this size with this frontier), the batch was committed.
  // If the server executes it only after this read, or the read fails (a network partition),
  // the error stands (MayHaveApplied): the batch's callers are told "not recorded", and the
  // ledger settles the batch from a later state of the log and records an outcome for entries
  // it finds (ledger.h TakeRecordedAfterRefusal) — the log never claims those accesses alone.
  absl::Status SettleUncertainCommit(const absl::Status& failed, const LedgerState& after) {
    Remember(std::nullopt, /*contended=*/true);  // whatever happened, read it under the lock
    if (!absl::IsUnavailable(failed) || after.size == 0) return failed;
    auto state = LoadLedgerState();
    if (state.ok() && state->size == after.size && state->frontier == after.frontier) {
      return absl::OkStatus();
    }
    return failed;
  }

  // Records the state this instance's last batch led to (none: unknown) for the next batch.
  void Remember(std::optional<LedgerState> state, bool contended) {
    std::lock_guard lock(known_mu_);
    known_ = std::move(state);
    contended_ = contended;
  }

  std::unique_ptr<PgPool> pool_;
  std::mutex known_mu_;
  std::optional<LedgerState> known_;  // guarded by known_mu_
  bool contended_ = true;             // guarded by known_mu_: another instance appends too
};

}  // namespace

absl::StatusOr<std::unique_ptr<ControlStore>> OpenPostgresControlStore(const std::string& dsn,
                                                                       bool create) {
  PgPool::Options options;
  options.dsn = dsn;
  options.schema = kControlSchema;
  options.statements = Statements();
  options.max_connections = 16;
  options.max_idle = options.max_connections;  // as for cells: reconnecting costs a server fork
  // Each statement of a ledger batch well under the ledger's bound on one batch commit (15 s,
  // ledger.cc kCommitBound), after which a waiting caller is answered "not recorded". This
  // bounds each statement, not the batch's handful together (nor the wait for a connection),
  // so a server that slows every statement to just under it can still make a commit land after
  // its caller gave up: Ledger::Append logs that case ("outcome unknown"). The control store's
  // statements are small; only a hung or overloaded server comes near this.
  options.statement_timeout = absl::Seconds(10);
  auto pool = PgPool::Open(std::move(options), kMigrations, create);
  if (!pool.ok()) return pool.status();
  return std::make_unique<PostgresControlStore>(std::move(*pool));
}

}  // namespace custos::store
