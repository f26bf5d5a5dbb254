// ControlStore on one SQLite file.
#include <array>
#include <optional>

#include "base/errors.h"
#include "base/strings.h"
#include "store/internal/ledger_rules.h"
#include "store/internal/sqlite_db.h"
#include "store/store.h"

namespace custos::store {
namespace {

using internal::Connection;
using internal::Database;

constexpr std::array<Database::Migration, 6> kMigrations = {{
    {1, R"sql(
CREATE TABLE principals(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  sealed_name BLOB NOT NULL,
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
    {2, R"sql(
CREATE TABLE ledger_tiles(
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY(level, idx)) WITHOUT ROWID;
CREATE TABLE ledger_state(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  size INTEGER NOT NULL,
  frontier BLOB NOT NULL);
INSERT INTO ledger_state(id, size, frontier) VALUES(1, 0, x'');
CREATE TABLE ledger_checkpoints(
  size INTEGER PRIMARY KEY,
  note TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL);
CREATE TABLE ledger_records(
  tenant_id TEXT NOT NULL,
  first_index INTEGER NOT NULL,
  last_index INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY(tenant_id, first_index));
)sql"},
    // A tenant's log resumes at an index: find its first group by last_index in O(log n).
    // Partial tiles are stored as one row per batch that extended them (store.h LedgerTile);
    // the partial tiles of version 2, stored whole, become one such row each.
    {3, R"sql(
CREATE INDEX ledger_records_by_last ON ledger_records(tenant_id, last_index);
CREATE TABLE ledger_tile_parts(
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  start INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY(level, idx, start)) WITHOUT ROWID;
INSERT INTO ledger_tile_parts(level, idx, start, data)
  SELECT level, idx, 0, data FROM ledger_tiles
  WHERE (level >= 0 AND length(data) < 8192)
     OR (level = -1 AND (idx + 1) * 256 > (SELECT size FROM ledger_state WHERE id = 1));
DELETE FROM ledger_tiles
  WHERE (level >= 0 AND length(data) < 8192)
     OR (level = -1 AND (idx + 1) * 256 > (SELECT size FROM ledger_state WHERE id = 1));
)sql"},
    {4, R"sql(
CREATE TABLE access_requests(
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  requester TEXT NOT NULL,
  state TEXT NOT NULL,
  grant_id TEXT,
  expires_at INTEGER,
  created_at INTEGER NOT NULL,
  body_json TEXT NOT NULL,
  version INTEGER NOT NULL);
CREATE UNIQUE INDEX access_requests_grant ON access_requests(grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX access_requests_tenant ON access_requests(tenant_id, created_at);
CREATE INDEX access_requests_due ON access_requests(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE principal_mfa(
  principal_id TEXT PRIMARY KEY,
  sealed_secret BLOB NOT NULL,
  last_step INTEGER NOT NULL,
  enrolled_at INTEGER NOT NULL);
CREATE TABLE consents(
  tenant_id TEXT NOT NULL,
  purpose TEXT NOT NULL,
  granted INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(tenant_id, purpose));
CREATE TABLE audit_verdicts(
  grant_id TEXT NOT NULL,
  period TEXT NOT NULL,
  auditor TEXT NOT NULL,
  verdict TEXT NOT NULL,
  note TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY(period, grant_id, auditor));
)sql"},
    {6, R"sql(
CREATE TABLE job_leases(
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  last_run_ms INTEGER NOT NULL DEFAULT 0);
)sql"},
    {7, R"sql(
ALTER TABLE principal_mfa ADD COLUMN failure_window_start INTEGER NOT NULL DEFAULT 0;
ALTER TABLE principal_mfa ADD COLUMN failure_count INTEGER NOT NULL DEFAULT 0;
)sql"},
}};

constexpr char kPrincipalColumns[] =
    "id, name, role, tenant_id, token_sha256, attributes_json, created_at, expires_at, disabled, "
    "sealed_name";

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
  p.sealed_name = s.Blob(9);
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

constexpr char kAccessRequestColumns[] =
    "id, tenant_id, requester, state, grant_id, expires_at, created_at, body_json, version";

AccessRequestRecord ReadAccessRequest(const internal::Statement& s) {
  AccessRequestRecord r;
  r.id = s.Text(0);
  r.tenant_id = s.Text(1);
  r.requester = s.Text(2);
  r.state = s.Text(3);
  if (!s.IsNull(4)) r.grant_id = s.Text(4);
  if (!s.IsNull(5)) r.expires_at = s.Int(5);
  r.created_at = s.Int(6);
  r.body_json = s.Text(7);
  r.version = s.Int(8);
  return r;
}

constexpr char kTenantColumns[] =
    "id, sealed_name, profile_json, geography, home_region, replica_region, state, created_at";

class SqliteControlStore final : public ControlStore {
 public:
  explicit SqliteControlStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}

  absl::Status InsertPrincipal(const PrincipalRecord& p) override {
    return db_->WriteTransaction([&](Connection& c) { return InsertPrincipalRow(c, p); });
  }

  absl::StatusOr<PrincipalRecord> GetPrincipal(std::string_view id) override {
    return QueryPrincipal("id", id);
  }

  absl::StatusOr<PrincipalRecord> FindPrincipalByTokenHash(std::string_view sha256_hex) override {
    return QueryPrincipal("token_sha256", sha256_hex);
  }

  absl::Status SetPrincipalCredential(std::string_view id, std::string_view token_sha256,
                                      bool disabled) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare("UPDATE principals SET token_sha256 = ?, disabled = ? WHERE id = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, token_sha256).Bind(2, int64_t{disabled ? 1 : 0}).Bind(3, id);
      if (auto r = s->Run(); !r.ok()) return r;
      if (sqlite3_changes(c.raw()) != 1) return absl::NotFoundError("no such principal");
      return absl::OkStatus();
    });
  }

  absl::Status InsertTenant(const TenantRecord& t, const PrincipalRecord& first_admin) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "INSERT INTO tenants(id, sealed_name, profile_json, geography, home_region, "
          "replica_region, state, created_at) VALUES(?,?,?,?,?,?,?,?)");
      if (!s.ok()) return s.status();
      if (auto r = s->Bind(1, t.id)
                       .BindBlob(2, t.sealed_name)
                       .Bind(3, t.profile_json)
                       .Bind(4, t.geography)
                       .Bind(5, t.home_region)
                       .Bind(6, t.replica_region)
                       .Bind(7, t.state)
                       .Bind(8, t.created_at)
                       .Run();
          !r.ok()) {
        return r;
      }
      return InsertPrincipalRow(c, first_admin);
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

  absl::Status CompareAndSwapSetting(std::string_view name,
                                     std::optional<std::string_view> expected,
                                     std::string_view value) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = expected ? c.Prepare("UPDATE settings SET value = ? WHERE name = ? AND value = ?")
                        : c.Prepare(
                              "INSERT INTO settings(name, value) VALUES(?2, ?1) "
                              "ON CONFLICT(name) DO NOTHING");
      if (!s.ok()) return s.status();
      s->BindBlob(1, value).Bind(2, name);
      if (expected) s->BindBlob(3, *expected);
      if (auto r = s->Run(); !r.ok()) return r;
      if (sqlite3_changes(c.raw()) != 1) {
        return absl::AbortedError(StrCat("setting ", name, " was changed by another writer"));
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<JobLease> AcquireJobLease(std::string_view name, std::string_view holder,
                                           int64_t now_ms, int64_t expires_at_ms) override {
    JobLease lease;
    absl::Status status = db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto take = c.Prepare(
          "INSERT INTO job_leases(name, holder, expires_at_ms) VALUES(?1, ?2, ?4) "
          "ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, "
          "expires_at_ms = excluded.expires_at_ms "
          "WHERE job_leases.holder = excluded.holder OR job_leases.expires_at_ms <= ?3 "
          "OR job_leases.expires_at_ms > ?4 + 3600000");
      if (!take.ok()) return take.status();
      take->Bind(1, name).Bind(2, holder).Bind(3, now_ms).Bind(4, expires_at_ms);
      if (auto s = take->Run(); !s.ok()) return s;
      auto read =
          c.Prepare("SELECT holder, expires_at_ms, last_run_ms FROM job_leases WHERE name = ?");
      if (!read.ok()) return read.status();
      read->Bind(1, name);
      auto row = read->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::InternalError("job lease row missing after upsert");
      lease = {read->Text(0), read->Int(1), read->Int(2)};
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return lease;
  }

  absl::Status RecordJobRun(std::string_view name, std::string_view holder,
                            int64_t ran_at_ms) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare("UPDATE job_leases SET last_run_ms = ? WHERE name = ? AND holder = ?");
      if (!s.ok()) return s.status();
      if (auto r = s->Bind(1, ran_at_ms).Bind(2, name).Bind(3, holder).Run(); !r.ok()) return r;
      if (sqlite3_changes(c.raw()) != 1) {
        return absl::AbortedError(StrCat("job lease ", name, " is held by another instance"));
      }
      return absl::OkStatus();
    });
  }

  absl::Status ReleaseJobLease(std::string_view name, std::string_view holder) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare("UPDATE job_leases SET expires_at_ms = 0 WHERE name = ? AND holder = ?");
      if (!s.ok()) return s.status();
      return s->Bind(1, name).Bind(2, holder).Run();
    });
  }

  absl::Status SequenceLedgerBatch(LedgerBatchBuilder build) override {
    // BEGIN IMMEDIATE takes the file's write lock: the state read here stays current until COMMIT.
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      LedgerState state;
      {
        auto st = c.Prepare("SELECT size, frontier FROM ledger_state WHERE id = 1");
        if (!st.ok()) return st.status();
        auto row = st->Step();
        if (!row.ok()) return row.status();
        if (!*row) return absl::DataLossError("ledger state row is missing");
        state = {static_cast<uint64_t>(st->Int(0)), st->Blob(1)};
      }
      auto built = build(state);
      if (!built.ok()) return built.status();
      const LedgerBatch& b = *built;
      if (b.old_size != state.size || b.new_size < b.old_size) {
        return absl::InternalError("ledger batch does not extend the stored size");
      }
      for (const LedgerTile& t : b.tiles) {
        if (auto r = WriteTilePart(c, t); !r.ok()) return r;
      }
      for (const LedgerRecordGroup& g : b.records) {
        auto s = c.Prepare(
            "INSERT INTO ledger_records(tenant_id, first_index, last_index, data) "
            "VALUES(?,?,?,?)");
        if (!s.ok()) return s.status();
        if (auto r = s->Bind(1, g.tenant_id)
                         .Bind(2, static_cast<int64_t>(g.first_index))
                         .Bind(3, static_cast<int64_t>(g.last_index))
                         .BindBlob(4, g.data)
                         .Run();
            !r.ok()) {
          return r;
        }
      }
      auto u = c.Prepare("UPDATE ledger_state SET size = ?, frontier = ? WHERE id = 1");
      if (!u.ok()) return u.status();
      return u->Bind(1, static_cast<int64_t>(b.new_size)).BindBlob(2, b.frontier).Run();
    });
  }

  absl::StatusOr<LedgerState> LoadLedgerState() override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<LedgerState> {
      auto s = c.Prepare("SELECT size, frontier FROM ledger_state WHERE id = 1");
      if (!s.ok()) return s.status();
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::DataLossError("ledger state row is missing");
      return LedgerState{static_cast<uint64_t>(s->Int(0)), s->Blob(1)};
    });
  }

  absl::StatusOr<std::string> ReadLedgerTile(int level, uint64_t index) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::string> {
      // One statement, one snapshot: the whole tile, or else its parts in order (a batch that
      // fills the tile replaces its parts in one transaction, so never a mix).
      auto s = c.Prepare(
          "SELECT 0, -1, data FROM ledger_tiles WHERE level = ?1 AND idx = ?2 "
          "UNION ALL SELECT 1, start, data FROM ledger_tile_parts WHERE level = ?1 AND idx = ?2 "
          "ORDER BY 1, 2");
      if (!s.ok()) return s.status();
      s->Bind(1, int64_t{level}).Bind(2, static_cast<int64_t>(index));
      std::string out;
      bool found = false;
      while (true) {
        auto row = s->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        out += s->Blob(2);
        found = true;
        if (s->Int(0) == 0) break;  // a whole tile
      }
      if (!found) return absl::NotFoundError("no such tile");
      return out;
    });
  }

  absl::Status PutCheckpoint(const LedgerCheckpoint& cp) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      {
        auto q = c.Prepare(
            "SELECT (SELECT size FROM ledger_state WHERE id = 1), "
            "(SELECT MAX(size) FROM ledger_checkpoints)");
        if (!q.ok()) return q.status();
        auto row = q->Step();
        if (!row.ok()) return row.status();
        if (!*row || q->IsNull(0)) return absl::DataLossError("ledger state row is missing");
        if (auto s = internal::CheckCheckpointOrder(
                cp.size, static_cast<uint64_t>(q->Int(0)),
                q->IsNull(1) ? std::optional<uint64_t>() : static_cast<uint64_t>(q->Int(1)));
            !s.ok()) {
          return s;
        }
      }
      auto s = c.Prepare("INSERT INTO ledger_checkpoints(size, note, created_at_ms) VALUES(?,?,?)");
      if (!s.ok()) return s.status();
      return s->Bind(1, static_cast<int64_t>(cp.size))
          .Bind(2, cp.note)
          .Bind(3, cp.created_at_ms)
          .Run();
    });
  }

  absl::StatusOr<LedgerCheckpoint> LatestCheckpoint() override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<LedgerCheckpoint> {
      auto s = c.Prepare(
          "SELECT size, note, created_at_ms FROM ledger_checkpoints ORDER BY size DESC LIMIT 1");
      if (!s.ok()) return s.status();
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::NotFoundError("no checkpoint");
      return LedgerCheckpoint{static_cast<uint64_t>(s->Int(0)), s->Text(1), s->Int(2)};
    });
  }

  // Appends one batch's part of a tile: a row of its own, or, if it fills the tile, the whole
  // tile as one row in place of the earlier parts.
  static absl::Status WriteTilePart(Connection& c, const LedgerTile& t) {
    const int64_t level = t.level, idx = static_cast<int64_t>(t.index);
    if (!t.fills) {
      auto s = c.Prepare("INSERT INTO ledger_tile_parts(level, idx, start, data) VALUES(?,?,?,?)");
      if (!s.ok()) return s.status();
      return s->Bind(1, level).Bind(2, idx).Bind(3, int64_t{t.start}).BindBlob(4, t.data).Run();
    }
    std::string whole;
    if (t.start > 0) {
      {
        auto s = c.Prepare(
            "SELECT data FROM ledger_tile_parts WHERE level = ? AND idx = ? ORDER BY start");
        if (!s.ok()) return s.status();
        s->Bind(1, level).Bind(2, idx);
        while (true) {
          auto row = s->Step();
          if (!row.ok()) return row.status();
          if (!*row) break;
          whole += s->Blob(0);
        }
      }
      auto d = c.Prepare("DELETE FROM ledger_tile_parts WHERE level = ? AND idx = ?");
      if (!d.ok()) return d.status();
      if (auto r = d->Bind(1, level).Bind(2, idx).Run(); !r.ok()) return r;
    }
    whole += t.data;
    auto s = c.Prepare("INSERT INTO ledger_tiles(level, idx, data) VALUES(?,?,?)");
    if (!s.ok()) return s.status();
    return s->Bind(1, level).Bind(2, idx).BindBlob(3, whole).Run();
  }

  absl::StatusOr<std::vector<LedgerRecordGroup>> ReadRecordGroups(std::string_view tenant_id,
                                                                  uint64_t from_index,
                                                                  int limit) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::vector<LedgerRecordGroup>> {
      auto s = c.Prepare(
          "SELECT first_index, last_index, data FROM ledger_records "
          "WHERE tenant_id = ? AND last_index >= ? ORDER BY last_index LIMIT ?");
      if (!s.ok()) return s.status();
      s->Bind(1, tenant_id).Bind(2, static_cast<int64_t>(from_index)).Bind(3, int64_t{limit});
      std::vector<LedgerRecordGroup> out;
      while (true) {
        auto row = s->Step();
        if (!row.ok()) return row.status();
        if (!*row) return out;
        out.push_back({std::string(tenant_id), static_cast<uint64_t>(s->Int(0)),
                       static_cast<uint64_t>(s->Int(1)), s->Blob(2)});
      }
    });
  }

  absl::Status InsertAccessRequest(const AccessRequestRecord& r) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(std::string("INSERT INTO access_requests(") + kAccessRequestColumns +
                         ") VALUES(?,?,?,?,?,?,?,?,?)");
      if (!s.ok()) return s.status();
      BindAccessRequest(*s, r);
      return s->Run();
    });
  }

  absl::Status UpdateAccessRequest(const AccessRequestRecord& r) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "UPDATE access_requests SET id = ?1, tenant_id = ?2, requester = ?3, state = ?4, "
          "grant_id = ?5, expires_at = ?6, created_at = ?7, body_json = ?8, version = ?9 "
          "WHERE id = ?1 AND version = ?9 - 1");
      if (!s.ok()) return s.status();
      BindAccessRequest(*s, r);
      if (auto run = s->Run(); !run.ok()) return run;
      if (sqlite3_changes(c.raw()) != 1) return Conflict("the access request changed meanwhile");
      return absl::OkStatus();
    });
  }

  absl::StatusOr<AccessRequestRecord> GetAccessRequest(std::string_view id) override {
    return QueryAccessRequest("id", id);
  }

  absl::StatusOr<AccessRequestRecord> FindAccessRequestByGrant(std::string_view grant_id) override {
    return QueryAccessRequest("grant_id", grant_id);
  }

  absl::StatusOr<std::vector<AccessRequestRecord>> ListAccessRequests(
      const AccessRequestFilter& f) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::vector<AccessRequestRecord>> {
      auto s = c.Prepare(std::string("SELECT ") + kAccessRequestColumns +
                         " FROM access_requests WHERE (?1 IS NULL OR tenant_id = ?1) AND "
                         "(?2 IS NULL OR state = ?2) AND (?3 IS NULL OR requester = ?3) "
                         "ORDER BY created_at, id");
      if (!s.ok()) return s.status();
      int i = 1;
      for (const auto* v : {&f.tenant_id, &f.state, &f.requester}) {
        if (*v)
          s->Bind(i, **v);
        else
          s->BindNull(i);
        ++i;
      }
      return CollectAccessRequests(*s);
    });
  }

  absl::StatusOr<std::vector<AccessRequestRecord>> ListDueAccessRequests(int64_t now) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::vector<AccessRequestRecord>> {
      auto s = c.Prepare(std::string("SELECT ") + kAccessRequestColumns +
                         " FROM access_requests WHERE expires_at IS NOT NULL AND expires_at <= ? "
                         "ORDER BY expires_at, id");
      if (!s.ok()) return s.status();
      s->Bind(1, now);
      return CollectAccessRequests(*s);
    });
  }

  absl::Status PutMfa(const MfaRecord& r) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "INSERT INTO principal_mfa(principal_id, sealed_secret, last_step, enrolled_at) "
          "VALUES(?,?,?,?) ON CONFLICT(principal_id) DO UPDATE SET "
          "sealed_secret = excluded.sealed_secret, enrolled_at = excluded.enrolled_at, "
          "last_step = MAX(last_step, excluded.last_step)");
      if (!s.ok()) return s.status();
      return s->Bind(1, r.principal_id)
          .BindBlob(2, r.sealed_secret)
          .Bind(3, r.last_step)
          .Bind(4, r.enrolled_at)
          .Run();
    });
  }

  absl::StatusOr<MfaRecord> GetMfa(std::string_view principal_id) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<MfaRecord> {
      auto s = c.Prepare(
          "SELECT sealed_secret, last_step, enrolled_at, failure_window_start, failure_count "
          "FROM principal_mfa WHERE principal_id = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, principal_id);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::NotFoundError("not enrolled");
      return MfaRecord{
          std::string(principal_id), s->Blob(0), s->Int(1), s->Int(2), s->Int(3), s->Int(4)};
    });
  }

  absl::Status TakeTotpAttempt(std::string_view principal_id, int64_t now, int64_t window_s,
                               int64_t max) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      // Both SET expressions read the row as it was before the update.
      auto s = c.Prepare(
          "UPDATE principal_mfa SET "
          "failure_count = CASE WHEN ?1 - failure_window_start < ?2 THEN failure_count + 1 "
          "ELSE 1 END, "
          "failure_window_start = CASE WHEN ?1 - failure_window_start < ?2 "
          "THEN failure_window_start ELSE ?1 END "
          "WHERE principal_id = ?3 AND NOT (?1 - failure_window_start < ?2 AND failure_count >= "
          "?4)");
      if (!s.ok()) return s.status();
      if (auto run = s->Bind(1, now).Bind(2, window_s).Bind(3, principal_id).Bind(4, max).Run();
          !run.ok()) {
        return run;
      }
      if (sqlite3_changes(c.raw()) == 1) return absl::OkStatus();
      auto q = c.Prepare("SELECT 1 FROM principal_mfa WHERE principal_id = ?");
      if (!q.ok()) return q.status();
      auto row = q->Bind(1, principal_id).Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::NotFoundError("not enrolled");
      return absl::ResourceExhaustedError("no code checks left in this window");
    });
  }

  absl::Status ReturnTotpAttempt(std::string_view principal_id) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "UPDATE principal_mfa SET failure_count = failure_count - 1 "
          "WHERE principal_id = ? AND failure_count > 0");
      if (!s.ok()) return s.status();
      return s->Bind(1, principal_id).Run();
    });
  }

  absl::Status ConsumeTotpStep(std::string_view principal_id, int64_t step) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "UPDATE principal_mfa SET last_step = ? WHERE principal_id = ? AND last_step < ?");
      if (!s.ok()) return s.status();
      if (auto run = s->Bind(1, step).Bind(2, principal_id).Bind(3, step).Run(); !run.ok()) {
        return run;
      }
      if (sqlite3_changes(c.raw()) != 1) {
        return absl::AlreadyExistsError("this or a later time step was used already");
      }
      return absl::OkStatus();
    });
  }

  absl::Status SetConsent(std::string_view tenant_id, std::string_view purpose, bool granted,
                          int64_t at) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "INSERT INTO consents(tenant_id, purpose, granted, updated_at) VALUES(?,?,?,?) "
          "ON CONFLICT(tenant_id, purpose) DO UPDATE SET granted = excluded.granted, "
          "updated_at = excluded.updated_at");
      if (!s.ok()) return s.status();
      return s->Bind(1, tenant_id)
          .Bind(2, purpose)
          .Bind(3, int64_t{granted ? 1 : 0})
          .Bind(4, at)
          .Run();
    });
  }

  absl::StatusOr<bool> HasConsent(std::string_view tenant_id, std::string_view purpose) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<bool> {
      auto s = c.Prepare("SELECT granted FROM consents WHERE tenant_id = ? AND purpose = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, tenant_id).Bind(2, purpose);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      return *row && s->Int(0) != 0;
    });
  }

  absl::Status InsertAuditVerdict(const AuditVerdictRecord& v) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "INSERT INTO audit_verdicts(grant_id, period, auditor, verdict, note, at) "
          "VALUES(?,?,?,?,?,?)");
      if (!s.ok()) return s.status();
      return s->Bind(1, v.grant_id)
          .Bind(2, v.period)
          .Bind(3, v.auditor)
          .Bind(4, v.verdict)
          .Bind(5, v.note)
          .Bind(6, v.at)
          .Run();
    });
  }

  absl::StatusOr<std::vector<AuditVerdictRecord>> ListAuditVerdicts(
      std::string_view period) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::vector<AuditVerdictRecord>> {
      auto s = c.Prepare(
          "SELECT grant_id, period, auditor, verdict, note, at FROM audit_verdicts "
          "WHERE period = ? ORDER BY at, grant_id, auditor");
      if (!s.ok()) return s.status();
      s->Bind(1, period);
      std::vector<AuditVerdictRecord> out;
      while (true) {
        auto row = s->Step();
        if (!row.ok()) return row.status();
        if (!*row) return out;
        out.push_back({s->Text(0), s->Text(1), s->Text(2), s->Text(3), s->Text(4), s->Int(5)});
      }
    });
  }

 private:
  static absl::Status InsertPrincipalRow(Connection& c, const PrincipalRecord& p) {
    auto s = c.Prepare(
        "INSERT INTO principals(id, name, role, tenant_id, token_sha256, attributes_json, "
        "created_at, expires_at, disabled, sealed_name) VALUES(?,?,?,?,?,?,?,?,?,?)");
    if (!s.ok()) return s.status();
    s->Bind(1, p.id).Bind(2, p.name).Bind(3, p.role).Bind(5, p.token_sha256);
    if (p.tenant_id.empty())
      s->BindNull(4);
    else
      s->Bind(4, p.tenant_id);
    s->Bind(6, p.attributes_json).Bind(7, p.created_at);
    if (p.expires_at)
      s->Bind(8, *p.expires_at);
    else
      s->BindNull(8);
    s->Bind(9, int64_t{p.disabled ? 1 : 0}).BindBlob(10, p.sealed_name);
    return s->Run();
  }

  static void BindAccessRequest(internal::Statement& s, const AccessRequestRecord& r) {
    s.Bind(1, r.id).Bind(2, r.tenant_id).Bind(3, r.requester).Bind(4, r.state);
    if (r.grant_id.empty())
      s.BindNull(5);
    else
      s.Bind(5, r.grant_id);
    if (r.expires_at)
      s.Bind(6, *r.expires_at);
    else
      s.BindNull(6);
    s.Bind(7, r.created_at).Bind(8, r.body_json).Bind(9, r.version);
  }

  static absl::StatusOr<std::vector<AccessRequestRecord>> CollectAccessRequests(
      internal::Statement& s) {
    std::vector<AccessRequestRecord> out;
    while (true) {
      auto row = s.Step();
      if (!row.ok()) return row.status();
      if (!*row) return out;
      out.push_back(ReadAccessRequest(s));
    }
  }

  absl::StatusOr<AccessRequestRecord> QueryAccessRequest(std::string_view column,
                                                         std::string_view value) {
    return db_->Read([&](Connection& c) -> absl::StatusOr<AccessRequestRecord> {
      auto s = c.Prepare(std::string("SELECT ") + kAccessRequestColumns +
                         " FROM access_requests WHERE " + std::string(column) + " = ?");
      if (!s.ok()) return s.status();
      s->Bind(1, value);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::NotFoundError("no such access request");
      return ReadAccessRequest(*s);
    });
  }

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
  // No secure_delete: the ledger replaces a tile's per-batch parts when it fills, and they are
  // public; what else the control store deletes is sealed under tenant keys or public.
  auto db = Database::Open(path, create, kMigrations, /*secure_delete=*/false);
  if (!db.ok()) return db.status();
  return std::make_unique<SqliteControlStore>(std::move(*db));
}

}  // namespace custos::store
