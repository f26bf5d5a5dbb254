// CellStore on one SQLite file per region.
#include <array>
#include <map>

#include "store/internal/sqlite_db.h"
#include "store/store.h"

namespace custos::store {
namespace {

using internal::Connection;
using internal::Database;

constexpr std::array<Database::Migration, 2> kMigrations = {{
    {1, R"sql(
CREATE TABLE objects(
  tenant_id TEXT NOT NULL,
  key TEXT NOT NULL,
  version INTEGER NOT NULL,
  dek_version INTEGER NOT NULL,
  size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  content_type TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  PRIMARY KEY(tenant_id, key));
CREATE TABLE data_keys(
  tenant_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  wrapped BLOB NOT NULL,
  seals INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY(tenant_id, version));
)sql"},
    // Writes ordered by stamp (store.h, CellWrite); a deleted object stays as a tombstone row
    // (deleted = 1, no content) that holds its delete's stamp until PurgeTombstones.
    {2, R"sql(
ALTER TABLE objects ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN prev_stamp INTEGER NOT NULL DEFAULT 0;
CREATE INDEX objects_tombstones ON objects(updated_at) WHERE deleted = 1;
)sql"},
}};

// The smallest string greater than every string starting with `prefix`, or "" if none exists.
std::string PrefixUpperBound(std::string_view prefix) {
  std::string upper(prefix);
  while (!upper.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(upper.back());
    if (last != 0xff) {
      ++last;
      return upper;
    }
    upper.pop_back();
  }
  return upper;
}

class SqliteCellStore final : public CellStore {
 public:
  SqliteCellStore(std::unique_ptr<Database> db, std::string region)
      : db_(std::move(db)), region_(std::move(region)) {}

  const std::string& region() const override { return region_; }

  absl::StatusOr<std::vector<CellWriteResult>> Apply(std::span<const CellWrite> writes) override {
    std::vector<CellWriteResult> results;
    results.reserve(writes.size());
    absl::Status s = db_->WriteTransaction([&](Connection& c) -> absl::Status {
      std::map<std::pair<std::string, int64_t>, int64_t> seals;  // (tenant, dek) -> count
      for (const CellWrite& w : writes) {
        const StoredObject& o = w.object;
        absl::StatusOr<CellWriteResult> r = Write(c, w);
        if (!r.ok()) return r.status();
        results.push_back(*r);
        if (w.op == CellWrite::Op::kPut && r->applied) ++seals[{o.tenant_id, o.dek_version}];
      }
      for (const auto& [tenant_dek, n] : seals) {
        auto u =
            c.Prepare("UPDATE data_keys SET seals = seals + ? WHERE tenant_id = ? AND version = ?");
        if (!u.ok()) return u.status();
        if (auto s = u->Bind(1, n).Bind(2, tenant_dek.first).Bind(3, tenant_dek.second).Run();
            !s.ok()) {
          return s;
        }
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return results;
  }

  absl::StatusOr<StoredObject> GetObject(std::string_view tenant_id,
                                         std::string_view key) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<StoredObject> {
      auto s = c.Prepare(
          "SELECT key, version, dek_version, size, sha256, content_type, updated_at, sealed "
          "FROM objects WHERE tenant_id = ? AND key = ? AND deleted = 0");
      if (!s.ok()) return s.status();
      s->Bind(1, tenant_id).Bind(2, key);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::NotFoundError("no such object");
      StoredObject o = ReadMeta(*s, tenant_id);
      o.sealed = s->Blob(7);
      return o;
    });
  }

  absl::StatusOr<std::vector<StoredObject>> ListObjects(std::string_view tenant_id,
                                                        std::string_view prefix,
                                                        std::string_view start_after,
                                                        int limit) override {
    std::string upper = PrefixUpperBound(prefix);
    // Start at the later of the prefix and the cursor; the range keeps to the prefix.
    std::string lower(prefix);
    bool exclusive = false;
    if (start_after >= lower) {
      lower = std::string(start_after);
      exclusive = true;
    }
    std::string sql =
        "SELECT key, version, dek_version, size, sha256, content_type, updated_at FROM objects "
        "WHERE tenant_id = ?1 AND deleted = 0 AND key ";
    sql += exclusive ? "> ?2" : ">= ?2";
    if (!upper.empty()) sql += " AND key < ?3";
    sql += " ORDER BY key LIMIT ?4";
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::vector<StoredObject>> {
      auto s = c.Prepare(sql);
      if (!s.ok()) return s.status();
      s->Bind(1, tenant_id).Bind(2, lower).Bind(4, int64_t{limit});
      if (!upper.empty()) s->Bind(3, upper);
      std::vector<StoredObject> out;
      while (true) {
        auto row = s->Step();
        if (!row.ok()) return row.status();
        if (!*row) return out;
        out.push_back(ReadMeta(*s, tenant_id));
      }
    });
  }

  absl::StatusOr<CellUsage> Usage(std::string_view tenant_id) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<CellUsage> {
      auto s = c.Prepare(
          "SELECT COUNT(*), COALESCE(SUM(length(sealed)), 0) FROM objects WHERE tenant_id = ? "
          "AND deleted = 0");
      if (!s.ok()) return s.status();
      s->Bind(1, tenant_id);
      auto row = s->Step();
      if (!row.ok()) return row.status();
      return CellUsage{s->Int(0), s->Int(1)};
    });
  }

  absl::StatusOr<int64_t> PurgeTombstones(int64_t deleted_before_ms, int limit) override {
    int64_t purged = 0;
    absl::Status s = db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto d = c.Prepare(
          "DELETE FROM objects WHERE rowid IN (SELECT rowid FROM objects "
          "WHERE deleted = 1 AND updated_at < ? LIMIT ?)");
      if (!d.ok()) return d.status();
      if (auto s = d->Bind(1, deleted_before_ms).Bind(2, int64_t{limit}).Run(); !s.ok()) return s;
      purged = sqlite3_changes(c.raw());
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return purged;
  }

  absl::Status PutDataKey(const DataKeyRecord& k) override {
    return db_->WriteTransaction([&](Connection& c) -> absl::Status {
      auto s = c.Prepare(
          "INSERT INTO data_keys(tenant_id, version, wrapped, seals, created_at) "
          "VALUES(?,?,?,?,?)");
      if (!s.ok()) return s.status();
      return s->Bind(1, k.tenant_id)
          .Bind(2, k.version)
          .BindBlob(3, k.wrapped)
          .Bind(4, k.seals)
          .Bind(5, k.created_at)
          .Run();
    });
  }

  absl::StatusOr<std::vector<DataKeyRecord>> ListDataKeys(std::string_view tenant_id) override {
    return db_->Read([&](Connection& c) -> absl::StatusOr<std::vector<DataKeyRecord>> {
      auto s = c.Prepare(
          "SELECT version, wrapped, seals, created_at FROM data_keys WHERE tenant_id = ? "
          "ORDER BY version");
      if (!s.ok()) return s.status();
      s->Bind(1, tenant_id);
      std::vector<DataKeyRecord> out;
      while (true) {
        auto row = s->Step();
        if (!row.ok()) return row.status();
        if (!*row) return out;
        out.push_back({std::string(tenant_id), s->Int(0), s->Blob(1), s->Int(2), s->Int(3)});
      }
    });
  }

 private:
  static StoredObject ReadMeta(const internal::Statement& s, std::string_view tenant_id) {
    StoredObject o;
    o.tenant_id = std::string(tenant_id);
    o.key = s.Text(0);
    o.version = s.Int(1);
    o.dek_version = s.Int(2);
    o.size = s.Int(3);
    o.sha256_hex = s.Text(4);
    o.content_type = s.Text(5);
    o.updated_at_ms = s.Int(6);
    return o;
  }

  // Applies `w` if its stamp is above the object's (a tombstone's included). The row's version
  // counts puts since the object was (re)created; a tombstone keeps the version the object had
  // when deleted (0 if it was deleted already), which tells a delete whether it existed.
  static absl::StatusOr<CellWriteResult> Write(Connection& c, const CellWrite& w) {
    const StoredObject& o = w.object;
    const bool put = w.op == CellWrite::Op::kPut;
    auto s = c.Prepare(
        put ? "INSERT INTO objects(tenant_id, key, version, dek_version, size, sha256, "
              "content_type, updated_at, sealed, stamp) VALUES(?,?,1,?,?,?,?,?,?,?) "
              "ON CONFLICT(tenant_id, key) DO UPDATE SET "
              "version = CASE WHEN deleted THEN 1 ELSE version + 1 END, "
              "dek_version = excluded.dek_version, size = excluded.size, sha256 = excluded.sha256, "
              "content_type = excluded.content_type, updated_at = excluded.updated_at, "
              "sealed = excluded.sealed, prev_stamp = stamp, stamp = excluded.stamp, deleted = 0 "
              "WHERE stamp < excluded.stamp RETURNING version, prev_stamp"
            : "INSERT INTO objects(tenant_id, key, version, dek_version, size, sha256, "
              "content_type, updated_at, sealed, stamp, deleted) "
              "VALUES(?,?,0,0,0,'','',?,X'',?,1) "
              "ON CONFLICT(tenant_id, key) DO UPDATE SET "
              "version = CASE WHEN deleted THEN 0 ELSE version END, dek_version = 0, size = 0, "
              "sha256 = '', content_type = '', updated_at = excluded.updated_at, sealed = X'', "
              "prev_stamp = stamp, stamp = excluded.stamp, deleted = 1 "
              "WHERE stamp < excluded.stamp RETURNING version, prev_stamp");
    if (!s.ok()) return s.status();
    s->Bind(1, o.tenant_id).Bind(2, o.key);
    if (put) {
      s->Bind(3, o.dek_version)
          .Bind(4, o.size)
          .Bind(5, o.sha256_hex)
          .Bind(6, o.content_type)
          .Bind(7, o.updated_at_ms)
          .BindBlob(8, o.sealed)
          .Bind(9, w.stamp);
    } else {
      s->Bind(3, o.updated_at_ms).Bind(4, w.stamp);
    }
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) return Superseded(c, o);
    const int64_t version = s->Int(0);
    CellWriteResult r =
        put ? CellWriteResult{version, version > 1} : CellWriteResult{0, version > 0};
    r.replaced_stamp = s->Int(1);
    if (auto done = s->Run(); !done.ok()) return done;
    return r;
  }

  // The result of a write that found a later one of its object.
  static absl::StatusOr<CellWriteResult> Superseded(Connection& c, const StoredObject& o) {
    auto s = c.Prepare("SELECT stamp FROM objects WHERE tenant_id = ? AND key = ?");
    if (!s.ok()) return s.status();
    s->Bind(1, o.tenant_id).Bind(2, o.key);
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::InternalError("a write was refused, yet its object has no row");
    CellWriteResult r;
    r.applied = false;
    r.held_stamp = s->Int(0);
    if (auto done = s->Run(); !done.ok()) return done;
    return r;
  }

  std::unique_ptr<Database> db_;
  std::string region_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CellStore>> OpenSqliteCellStore(const std::string& path,
                                                               std::string region, bool create) {
  // Deleted objects are overwritten in the database file. Earlier images of their pages may stay
  // in the WAL file until a checkpoint wraps over them (a clean stop removes it); those bytes
  // are sealed under the tenant's data keys, so destroying the tenant's KEK shreds them too.
  auto db = Database::Open(path, create, kMigrations, /*secure_delete=*/true);
  if (!db.ok()) return db.status();
  return std::make_unique<SqliteCellStore>(std::move(*db), std::move(region));
}

}  // namespace custos::store
