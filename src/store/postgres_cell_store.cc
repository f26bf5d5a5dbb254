// CellStore on PostgreSQL: schema custos_cell_<region> ('-' read as '_') of the given server,
// which for a real deployment is a database in that region.
//
// Same tables and semantics as sqlite_cell_store.cc. Keys are TEXT COLLATE "C" so that order and
// ranges are bytewise, as in SQLite. Durability comes from the server (fsync=on,
// synchronous_commit=on: see internal/pg_pool.h).
#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>

#include "base/strings.h"
#include "base/utf8.h"
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

constexpr std::array<PgMigration, 2> kMigrations = {{
    {1, R"sql(
CREATE TABLE objects(
  tenant_id TEXT COLLATE "C" NOT NULL,
  key TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  dek_version BIGINT NOT NULL,
  size BIGINT NOT NULL,
  sha256 TEXT NOT NULL,
  content_type TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  sealed BYTEA NOT NULL,
  PRIMARY KEY(tenant_id, key));
-- Sealed content is random bytes: do not try to compress it.
ALTER TABLE objects ALTER COLUMN sealed SET STORAGE EXTERNAL;
CREATE TABLE data_keys(
  tenant_id TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  wrapped BYTEA NOT NULL,
  seals BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY(tenant_id, version));
)sql"},
    // As sqlite_cell_store.cc: writes ordered by stamp, deleted objects kept as tombstones.
    {2, R"sql(
ALTER TABLE objects ADD COLUMN stamp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE objects ADD COLUMN prev_stamp BIGINT NOT NULL DEFAULT 0;
CREATE INDEX objects_tombstones ON objects(updated_at) WHERE deleted;
)sql"},
}};

#define CUSTOS_OBJECT_META "key, version, dek_version, size, sha256, content_type, updated_at"

// Puts of distinct objects go to PostgreSQL as one statement of up to this many rows, which also
// counts the seals against each data key: one round trip for them all instead of one per object
// plus one per data key. A batch that is only that (the usual case) runs as that one statement,
// without BEGIN and COMMIT around it: one round trip per batch, which is what a replica cell in
// another region costs. The cell writer batches up to 256 writes; longer runs take several.
constexpr size_t kMaxRowsPerPut = 32;

std::string PutObjectsName(size_t rows) { return "put_objects_" + std::to_string(rows); }

// Puts `rows` objects and counts their seals. Parameters are column-major (libpqxx passes each
// column as one dynamic list): $1..$rows the tenants, then the keys, and so on for the 9 columns.
// A put applies only over a lower stamp (store.h, CellWrite); one that does not returns no row.
// The conflict takes the row's lock and re-checks the stamp on its latest version, so a put and
// a delete of one object from two instances are ordered by stamp under READ COMMITTED too.
std::string PutObjectsSql(size_t rows) {
  // The last column is the version of a new object.
  std::string sql = StrCat(
      "WITH put AS (INSERT INTO objects AS o(tenant_id, key, dek_version, size, sha256, "
      "content_type, updated_at, sealed, stamp, version) VALUES ",
      internal::ColumnMajorValues(rows, 9, 1, ",1"));
  sql +=
      " ON CONFLICT(tenant_id, key) DO UPDATE SET "
      "version = CASE WHEN o.deleted THEN 1 ELSE o.version + 1 END, "
      "dek_version = EXCLUDED.dek_version, size = EXCLUDED.size, sha256 = EXCLUDED.sha256, "
      "content_type = EXCLUDED.content_type, updated_at = EXCLUDED.updated_at, "
      "sealed = EXCLUDED.sealed, prev_stamp = o.stamp, stamp = EXCLUDED.stamp, deleted = false "
      "WHERE o.stamp < EXCLUDED.stamp RETURNING tenant_id, key, version, dek_version, "
      "prev_stamp), "
      // Runs to completion although the SELECT does not read it (PostgreSQL's rule for
      // data-modifying WITH).
      "counted AS (UPDATE data_keys d SET seals = d.seals + c.n FROM (SELECT tenant_id, "
      "dek_version, count(*) AS n FROM put GROUP BY tenant_id, dek_version) c "
      "WHERE d.tenant_id = c.tenant_id AND d.version = c.dek_version) "
      "SELECT tenant_id, key, version, prev_stamp FROM put";
  return sql;
}

const std::vector<PgStatement>& Statements() {
  static const auto* kStatements = [] {
    auto* statements = new std::vector<PgStatement>{
        // A tombstone keeps the version its object had (0: deleted already), and the stamp.
        {"delete_object",
         "INSERT INTO objects AS o(tenant_id, key, version, dek_version, size, sha256, "
         "content_type, updated_at, sealed, stamp, deleted) "
         "VALUES($1, $2, 0, 0, 0, '', '', $3, ''::bytea, $4, true) "
         "ON CONFLICT(tenant_id, key) DO UPDATE SET "
         "version = CASE WHEN o.deleted THEN 0 ELSE o.version END, dek_version = 0, size = 0, "
         "sha256 = '', content_type = '', updated_at = EXCLUDED.updated_at, sealed = ''::bytea, "
         "prev_stamp = o.stamp, stamp = EXCLUDED.stamp, deleted = true "
         "WHERE o.stamp < EXCLUDED.stamp RETURNING version, prev_stamp"},
        {"object_stamp", "SELECT stamp FROM objects WHERE tenant_id = $1 AND key = $2"},
        // The re-check of `deleted` on the row it deletes keeps a put that revived the object
        // since the sub-select read it (READ COMMITTED re-evaluates the outer conditions).
        {"purge_tombstones",
         "DELETE FROM objects WHERE deleted AND updated_at < $1 AND (tenant_id, key) IN "
         "(SELECT tenant_id, key FROM objects WHERE deleted AND updated_at < $1 LIMIT $2)"},
        {"get_object",
         "SELECT " CUSTOS_OBJECT_META ", sealed FROM objects WHERE tenant_id = $1 AND key = $2 "
         "AND NOT deleted"},
        // Listings: from the prefix (>=) or after the cursor (>), up to the prefix's bound or not.
        {"list_ge", "SELECT " CUSTOS_OBJECT_META
                    " FROM objects WHERE tenant_id = $1 AND NOT deleted AND key >= $2 "
                    "ORDER BY key LIMIT $3"},
        {"list_gt", "SELECT " CUSTOS_OBJECT_META
                    " FROM objects WHERE tenant_id = $1 AND NOT deleted AND key > $2 "
                    "ORDER BY key LIMIT $3"},
        {"list_ge_lt", "SELECT " CUSTOS_OBJECT_META
                       " FROM objects WHERE tenant_id = $1 AND NOT deleted AND key >= $2 "
                       "AND key < $4 ORDER BY key LIMIT $3"},
        {"list_gt_lt", "SELECT " CUSTOS_OBJECT_META
                       " FROM objects WHERE tenant_id = $1 AND NOT deleted AND key > $2 "
                       "AND key < $4 ORDER BY key LIMIT $3"},
        // A prefix that is not valid UTF-8 (e.g. a character cut in half) compared as bytes.
        {"list_bytes_prefix",
         "SELECT " CUSTOS_OBJECT_META
         " FROM objects WHERE tenant_id = $1 AND NOT deleted AND key > $2 "
         "AND substring(convert_to(key, 'UTF8') FROM 1 FOR $4) = $5 ORDER BY key LIMIT $3"},
        {"usage",
         "SELECT COUNT(*), COALESCE(SUM(octet_length(sealed)), 0) FROM objects "
         "WHERE tenant_id = $1 AND NOT deleted"},
        {"insert_data_key",
         "INSERT INTO data_keys(tenant_id, version, wrapped, seals, created_at) "
         "VALUES($1, $2, $3, $4, $5)"},
        {"list_data_keys",
         "SELECT version, wrapped, seals, created_at FROM data_keys WHERE tenant_id = $1 "
         "ORDER BY version"},
    };
    for (size_t rows = 1; rows <= kMaxRowsPerPut; ++rows) {
      statements->push_back({PutObjectsName(rows), PutObjectsSql(rows)});
    }
    return statements;
  }();
  return *kStatements;
}

std::string EncodeUtf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return out;
}

// For a valid UTF-8 `prefix`: the smallest valid UTF-8 string greater than every string that
// starts with it (its last code point incremented; UTF-8 byte order is code point order), or ""
// if there is none. Keys must be valid UTF-8 in PostgreSQL, so the bytewise bound that SQLite
// uses (last byte + 1) could not be sent.
std::string Utf8PrefixUpperBound(std::string_view prefix) {
  std::string upper(prefix);
  while (!upper.empty()) {
    size_t start = upper.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(upper[start]) & 0xc0) == 0x80) --start;
    std::string_view last = std::string_view(upper).substr(start);
    uint32_t cp = static_cast<unsigned char>(last[0]);
    if (last.size() > 1) {
      cp &= 0xff >> (last.size() + 1);
      for (size_t k = 1; k < last.size(); ++k) cp = (cp << 6) | (last[k] & 0x3f);
    }
    upper.resize(start);
    if (cp < 0x10ffff) {
      uint32_t next = cp + 1 == 0xd800 ? 0xe000 : cp + 1;
      return upper + EncodeUtf8(next);
    }
  }
  return upper;
}

class PostgresCellStore final : public CellStore {
 public:
  PostgresCellStore(std::unique_ptr<PgPool> pool, std::string region)
      : pool_(std::move(pool)), region_(std::move(region)) {}

  const std::string& region() const override { return region_; }

  absl::StatusOr<std::vector<CellWriteResult>> Apply(std::span<const CellWrite> writes) override {
    for (const CellWrite& w : writes) {
      const StoredObject& o = w.object;
      if (auto s = internal::CheckText({o.tenant_id, o.key, o.sha256_hex, o.content_type});
          !s.ok()) {
        return s;
      }
    }
    if (writes.empty()) return std::vector<CellWriteResult>{};
    std::vector<CellWriteResult> results(writes.size());
    const size_t first_run = PutRunLength(writes);
    if (first_run == writes.size()) {
      // One statement, atomic by itself.
      absl::Status s = pool_->WriteStatement("apply cell writes",
                                             [&](pqxx::transaction_base& txn) -> absl::Status {
                                               return PutRun(txn, writes, results);
                                             });
      if (!s.ok()) return s;
      return results;
    }
    absl::Status s = pool_->Write("apply cell writes", [&](pqxx::work& txn) -> absl::Status {
      for (size_t i = 0; i < writes.size();) {
        const StoredObject& o = writes[i].object;
        if (writes[i].op == CellWrite::Op::kDelete) {
          auto r = txn.exec_prepared("delete_object", o.tenant_id, o.key, o.updated_at_ms,
                                     writes[i].stamp);
          if (r.empty()) {
            results[i] = Superseded(txn, o);
          } else {
            results[i] = {0, r[0][0].as<int64_t>() > 0};
            results[i].replaced_stamp = r[0][1].as<int64_t>();
          }
          ++i;
          continue;
        }
        const size_t end = i + PutRunLength(writes.subspan(i));
        absl::Status put =
            PutRun(txn, writes.subspan(i, end - i), std::span(results).subspan(i, end - i));
        if (!put.ok()) return put;
        i = end;
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return results;
  }

  absl::StatusOr<StoredObject> GetObject(std::string_view tenant_id,
                                         std::string_view key) override {
    if (internal::CannotBeText(tenant_id) || internal::CannotBeText(key)) {
      return absl::NotFoundError("no such object");
    }
    return pool_->Read(
        "get object", [&](pqxx::nontransaction& txn) -> absl::StatusOr<StoredObject> {
          auto r = txn.exec_prepared("get_object", std::string(tenant_id), std::string(key));
          if (r.empty()) return absl::NotFoundError("no such object");
          StoredObject o = ReadMeta(r[0], tenant_id);
          o.sealed = ReadBytes(r[0][7]);
          return o;
        });
  }

  absl::StatusOr<std::vector<StoredObject>> ListObjects(std::string_view tenant_id,
                                                        std::string_view prefix,
                                                        std::string_view start_after,
                                                        int limit) override {
    // No stored key or tenant id holds a NUL or bytes that are not UTF-8: nothing matches. (A
    // prefix may end inside a character: it is compared as bytes below.)
    if (internal::CannotBeText(tenant_id) || prefix.find('\0') != std::string_view::npos ||
        internal::CannotBeText(start_after)) {
      return std::vector<StoredObject>{};
    }
    const std::string tenant(tenant_id);
    const int64_t n = limit;
    return pool_->Read(
        "list objects",
        [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::vector<StoredObject>> {
          pqxx::result rows;
          if (!IsValidUtf8(prefix)) {
            // Rare (the API validates keys, not prefixes): a bytewise prefix test.
            rows = txn.exec_prepared("list_bytes_prefix", tenant, std::string(start_after), n,
                                     static_cast<int64_t>(prefix.size()), Bytes(prefix));
          } else {
            // Start at the later of the prefix and the cursor; the range keeps to the prefix.
            const bool after_cursor = start_after >= prefix;
            const std::string lower(after_cursor ? start_after : prefix);
            const std::string upper = Utf8PrefixUpperBound(prefix);
            if (upper.empty()) {
              rows = txn.exec_prepared(after_cursor ? "list_gt" : "list_ge", tenant, lower, n);
            } else {
              rows = txn.exec_prepared(after_cursor ? "list_gt_lt" : "list_ge_lt", tenant, lower, n,
                                       upper);
            }
          }
          std::vector<StoredObject> out;
          out.reserve(rows.size());
          for (const auto& row : rows) out.push_back(ReadMeta(row, tenant_id));
          return out;
        });
  }

  absl::StatusOr<CellUsage> Usage(std::string_view tenant_id) override {
    if (internal::CannotBeText(tenant_id)) return CellUsage{};
    return pool_->Read("cell usage", [&](pqxx::nontransaction& txn) -> absl::StatusOr<CellUsage> {
      auto r = txn.exec_prepared1("usage", std::string(tenant_id));
      return CellUsage{r[0].as<int64_t>(), r[1].as<int64_t>()};
    });
  }

  absl::StatusOr<int64_t> PurgeTombstones(int64_t deleted_before_ms, int limit) override {
    return pool_->MaintenanceStatement(
        "purge tombstones", [&](pqxx::nontransaction& txn) -> absl::StatusOr<int64_t> {
          auto r = txn.exec_prepared0("purge_tombstones", deleted_before_ms, int64_t{limit});
          return static_cast<int64_t>(r.affected_rows());
        });
  }

  absl::Status PutDataKey(const DataKeyRecord& k) override {
    if (auto s = internal::CheckText({k.tenant_id}); !s.ok()) return s;
    return pool_->Write("put data key", [&](pqxx::work& txn) -> absl::Status {
      txn.exec_prepared0("insert_data_key", k.tenant_id, k.version, Bytes(k.wrapped), k.seals,
                         k.created_at);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<DataKeyRecord>> ListDataKeys(std::string_view tenant_id) override {
    if (internal::CannotBeText(tenant_id)) return std::vector<DataKeyRecord>{};
    return pool_->Read(
        "list data keys",
        [&](pqxx::nontransaction& txn) -> absl::StatusOr<std::vector<DataKeyRecord>> {
          std::vector<DataKeyRecord> out;
          for (const auto& row : txn.exec_prepared("list_data_keys", std::string(tenant_id))) {
            out.push_back({std::string(tenant_id), row[0].as<int64_t>(), ReadBytes(row[1]),
                           row[2].as<int64_t>(), row[3].as<int64_t>()});
          }
          return out;
        });
  }

 private:
  static StoredObject ReadMeta(const pqxx::row& r, std::string_view tenant_id) {
    StoredObject o;
    o.tenant_id = std::string(tenant_id);
    o.key = r[0].as<std::string>();
    o.version = r[1].as<int64_t>();
    o.dek_version = r[2].as<int64_t>();
    o.size = r[3].as<int64_t>();
    o.sha256_hex = r[4].as<std::string>();
    o.content_type = r[5].as<std::string>();
    o.updated_at_ms = r[6].as<int64_t>();
    return o;
  }

  // How many writes from the start of `writes` one put statement can take: puts, at most
  // kMaxRowsPerPut, of distinct objects (ON CONFLICT may touch a row only once per statement, so
  // a second put of an object starts the next run, and so sees the first one's version).
  static size_t PutRunLength(std::span<const CellWrite> writes) {
    std::set<std::pair<std::string_view, std::string_view>> objects;
    size_t n = 0;
    while (n < writes.size() && n < kMaxRowsPerPut && writes[n].op == CellWrite::Op::kPut &&
           objects.emplace(writes[n].object.tenant_id, writes[n].object.key).second) {
      ++n;
    }
    return n;
  }

  // Puts `writes` (a run, see PutRunLength) in one statement; fills `results`.
  static absl::Status PutRun(pqxx::transaction_base& txn, std::span<const CellWrite> writes,
                             std::span<CellWriteResult> results) {
    std::vector<std::string> tenants, keys, sha256s, content_types;
    std::vector<int64_t> dek_versions, sizes, updated, stamps;
    std::vector<pqxx::binarystring> sealed;
    for (const CellWrite& w : writes) {
      const StoredObject& o = w.object;
      tenants.push_back(o.tenant_id);
      keys.push_back(o.key);
      dek_versions.push_back(o.dek_version);
      sizes.push_back(o.size);
      sha256s.push_back(o.sha256_hex);
      content_types.push_back(o.content_type);
      updated.push_back(o.updated_at_ms);
      sealed.push_back(Bytes(o.sealed));
      stamps.push_back(w.stamp);
    }
    using pqxx::prepare::make_dynamic_params;
    pqxx::result rows = txn.exec_prepared(
        PutObjectsName(writes.size()), make_dynamic_params(tenants), make_dynamic_params(keys),
        make_dynamic_params(dek_versions), make_dynamic_params(sizes), make_dynamic_params(sha256s),
        make_dynamic_params(content_types), make_dynamic_params(updated),
        make_dynamic_params(sealed), make_dynamic_params(stamps));
    // RETURNING gives no promise of order: match rows to writes by object.
    std::map<std::pair<std::string, std::string>, CellWriteResult> result_of;
    for (const auto& row : rows) {
      CellWriteResult& r = result_of[{row[0].as<std::string>(), row[1].as<std::string>()}];
      r.version = row[2].as<int64_t>();
      r.existed = r.version > 1;
      r.replaced_stamp = row[3].as<int64_t>();
    }
    for (size_t k = 0; k < writes.size(); ++k) {
      auto it = result_of.find({writes[k].object.tenant_id, writes[k].object.key});
      if (it != result_of.end()) {
        results[k] = it->second;
        continue;
      }
      results[k] = Superseded(txn, writes[k].object);
      // Possibly after the statement committed: an unknown outcome (store.h, Apply).
      if (results[k].held_stamp < writes[k].stamp) {
        return absl::DataLossError("a put was neither applied nor superseded");
      }
    }
    return absl::OkStatus();
  }

  // The result of a write that found a later one of its object (the stamp it holds now, which
  // may be later still).
  static CellWriteResult Superseded(pqxx::transaction_base& txn, const StoredObject& o) {
    CellWriteResult r;
    r.applied = false;
    auto row = txn.exec_prepared("object_stamp", o.tenant_id, o.key);
    if (!row.empty()) r.held_stamp = row[0][0].as<int64_t>();
    return r;
  }

  std::unique_ptr<PgPool> pool_;
  std::string region_;
};

}  // namespace

std::string PostgresCellSchema(std::string_view region) {
  std::string schema = StrCat("custos_cell_", region);
  std::replace(schema.begin(), schema.end(), '-', '_');
  return schema;
}

absl::StatusOr<std::unique_ptr<CellStore>> OpenPostgresCellStore(const std::string& dsn,
                                                                 std::string region, bool create) {
  if (region.empty() || internal::CannotBeText(region)) {
    return absl::InvalidArgumentError("a cell needs a region id");
  }
  PgPool::Options options;
  options.dsn = dsn;
  options.schema = PostgresCellSchema(region);
  options.statements = Statements();
  options.max_connections = 8;
  // Kept open: a PostgreSQL connection costs a server process fork and its warm-up, which under
  // load (connections closed on release and opened again) was most of the server's CPU.
  options.max_idle = options.max_connections;
  auto pool = PgPool::Open(std::move(options), kMigrations, create);
  if (!pool.ok()) return pool.status();
  return std::make_unique<PostgresCellStore>(std::move(*pool), std::move(region));
}

}  // namespace custos::store
