// Raw SQLite baselines (sqlite3 C API, nothing of Custos): the same rows as a cell's objects
// table (same DDL; 1 KiB objects sealed = 1052-byte blobs) at the same durability (WAL,
// synchronous=FULL).
//   sqlite-insert: one connection inserts new rows, B per transaction (B = the batch size Custos's
//                  group commit reached in the matching PUT run), after N preloaded rows;
//                  prints rows/s. --files 2: two such writers at once on two files, as a
//                  Custos PUT writes two cells; prints rows/s per file.
//   sqlite-select: T threads, one connection each, point selects by primary key of N rows.
#include <sqlite3.h>
#include <unistd.h>
#include <algorithm>

#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench.h"
#include "store/internal/sqlite_db.h"

namespace custos::bench {
namespace {

constexpr const char* kTenant = "benchtenant00000000000";  // 22 chars, like a Custos id
constexpr const char* kSha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS objects(
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
)sql";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

void Check(int rc, sqlite3* db, const char* what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return;
  std::cerr << "sqlite " << what << ": " << (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)) << "\n";
  std::exit(1);
}

Db OpenDb(const std::string& path) {
  store::internal::ConfigureSqliteOnce();  // the process-wide settings of a Custos store
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);
  Check(rc, raw, "open");
  sqlite3_busy_timeout(raw, 5000);
  // The durability of a Custos store (store/internal/sqlite_db.cc).
  Check(sqlite3_exec(raw, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", nullptr, nullptr,
                     nullptr),
        raw, "pragma");
  Check(sqlite3_exec(raw, kSchema, nullptr, nullptr, nullptr), raw, "schema");
  return db;
}

Stmt Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  Check(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr), db, "prepare");
  return Stmt(raw);
}

constexpr const char* kInsert =
    "INSERT INTO objects(tenant_id, key, version, dek_version, size, sha256, content_type, "
    "updated_at, sealed) VALUES(?,?,1,1,?,?,?,?,?)";

void InsertRow(sqlite3* db, sqlite3_stmt* s, const std::string& key, const std::string& blob) {
  sqlite3_bind_text(s, 1, kTenant, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 3, kObjectBytes);
  sqlite3_bind_text(s, 4, kSha256, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 5, kContentType, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 6, 1767225600000);
  sqlite3_bind_blob(s, 7, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  Check(sqlite3_step(s), db, "insert");
  sqlite3_reset(s);
}

std::string RandomBlob(std::mt19937_64& rng, size_t bytes) {
  std::string b(std::max(bytes, sizeof(uint64_t)), 0);
  for (char& c : b) c = static_cast<char>(rng());
  return b;
}

void RemoveDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((path + suffix).c_str());
}

}  // namespace

int SqliteInsert(const Flags& f) {
  // One writer thread per file; with --files 2 the pair is what one Custos PUT needs (a row in
  // the home cell and one in the replica cell, two files on the same disk).
  struct Writer {
    std::string path;
    Db db;
    Stmt insert;
    std::string blob;
    uint64_t row = 0;
  };
  std::vector<Writer> writers;
  std::mt19937_64 rng(std::random_device{}());
  for (int i = 0; i < f.files; ++i) {
    Writer w;
    w.path = f.files == 1 ? f.file : f.file + "." + std::to_string(i);
    RemoveDb(w.path);
    w.db = OpenDb(w.path);
    w.insert = Prepare(w.db.get(), kInsert);
    w.blob = RandomBlob(rng, f.row_bytes > 0 ? f.row_bytes : kSealedBytes);
    // Start from the state of a Custos cell after `custos_bench prepare --objects N`: N rows,
    // and a WAL file already grown to its steady size (so that commits overwrite it instead of
    // growing it, which costs a metadata sync on ext4).
    sqlite3* db = w.db.get();
    Check(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr), db, "begin");
    for (uint64_t k = 0; k < f.objects; ++k) {
      std::memcpy(w.blob.data(), &k, sizeof k);
      InsertRow(db, w.insert.get(), GetKey(k), w.blob);
    }
    Check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
    writers.push_back(std::move(w));
  }
  // One op = one transaction of `batch` rows; keys spread over 16 "threads" like inproc-put's.
  TimedResult r = RunTimed(f.files, f.warmup, f.seconds, [&](int t, uint64_t) {
    Writer& w = writers[t];
    sqlite3* db = w.db.get();
    Check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db, "begin");
    for (int i = 0; i < f.batch; ++i, ++w.row) {
      std::memcpy(w.blob.data(), &w.row, sizeof w.row);
      InsertRow(db, w.insert.get(), PutKey(static_cast<int>(w.row % 16), w.row / 16), w.blob);
    }
    Check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
    return true;
  });
  // Rows per second per file (with one file: rows per second).
  double tps = r.ops_per_sec() / f.files;
  std::cout << absl::StrFormat("ops_per_sec=%.1f batch=%d transactions_per_sec=%.1f files=%d\n",
                               tps * f.batch, f.batch, tps, f.files);
  for (Writer& w : writers) {
    w.insert.reset();
    w.db.reset();
    RemoveDb(w.path);
  }
  return 0;
}

int SqliteSelect(const Flags& f) {
  if (f.objects == 0) {
    std::cerr << "sqlite-select: --objects must be positive\n";
    return 2;
  }
  {
    // (Re)create the file with N rows GetKey(0..N-1), as `custos_bench prepare` does for Custos.
    RemoveDb(f.file);
    Db db = OpenDb(f.file);
    Stmt insert = Prepare(db.get(), kInsert);
    std::mt19937_64 rng(1);
    std::string blob = RandomBlob(rng, kSealedBytes);
    Check(sqlite3_exec(db.get(), "BEGIN", nullptr, nullptr, nullptr), db.get(), "begin");
    for (uint64_t i = 0; i < f.objects; ++i) {
      std::memcpy(blob.data(), &i, sizeof i);
      InsertRow(db.get(), insert.get(), GetKey(i), blob);
    }
    Check(sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr), db.get(), "commit");
  }
  struct Reader {
    Db db;
    Stmt select;
    std::mt19937_64 rng;
  };
  std::vector<Reader> readers;
  for (int t = 0; t < f.threads; ++t) {
    Db db = OpenDb(f.file);
    Stmt s = Prepare(db.get(),
                     "SELECT key, version, dek_version, size, sha256, content_type, updated_at, "
                     "sealed FROM objects WHERE tenant_id = ? AND key = ?");
    readers.push_back({std::move(db), std::move(s), std::mt19937_64(std::random_device{}() + t)});
  }
  TimedResult r = RunTimed(f.threads, f.warmup, f.seconds, [&](int t, uint64_t) {
    Reader& rd = readers[t];
    sqlite3_stmt* s = rd.select.get();
    std::string key = GetKey(rd.rng() % f.objects);
    sqlite3_bind_text(s, 1, kTenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    bool ok = sqlite3_step(s) == SQLITE_ROW &&
              sqlite3_column_bytes(s, 7) == static_cast<int>(kSealedBytes) &&
              sqlite3_column_blob(s, 7) != nullptr && sqlite3_column_text(s, 4) != nullptr;
    sqlite3_reset(s);
    return ok;
  });
  std::cout << absl::StrFormat("ops_per_sec=%.1f threads=%d errors=%d\n", r.ops_per_sec(),
                               f.threads, r.errors);
  readers.clear();
  RemoveDb(f.file);
  return r.errors == 0 ? 0 : 1;
}

}  // namespace custos::bench
