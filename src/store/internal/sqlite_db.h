// Thin RAII layer over the SQLite C API shared by the SQLite stores (not for other folders).
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/blocking.h"

namespace custos::store::internal {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using SqliteHandle = std::unique_ptr<sqlite3, SqliteCloser>;
using StmtHandle = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Maps an SQLite result code to a Status: BUSY/LOCKED/READONLY/IOERR/FULL/CANTOPEN → kUnavailable
// (the caller retries later), CONSTRAINT → kAlreadyExists, CORRUPT/NOTADB → kDataLoss.
absl::Status SqliteError(int rc, sqlite3* db, std::string_view what);

// A prepared statement bound and stepped in place; reset on destruction so it can be reused.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(Statement&& o) noexcept
      : db_(o.db_),
        stmt_(std::exchange(o.stmt_, nullptr)),
        bind_status_(std::move(o.bind_status_)) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int i, std::string_view text);
  Statement& BindBlob(int i, std::string_view bytes);
  Statement& Bind(int i, int64_t v);
  Statement& BindNull(int i);

  // Steps once: true if a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, expecting no rows.
  absl::Status Run();

  std::string Text(int col) const;
  std::string Blob(int col) const;
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  absl::Status bind_status_;
};

// The process-wide SQLite settings of Custos, applied once before the first connection opens
// (Connection::Open calls it): no allocation statistics (SQLITE_CONFIG_MEMSTATUS off). SQLite
// counts every allocation under one process-wide mutex otherwise; with dozens of threads reading
// and the ledger writing, that mutex showed in profiles as futex wake-ups, and nothing here reads
// those statistics. The benchmark's raw SQLite baselines call it too, to compare like for like.
void ConfigureSqliteOnce();

// One SQLite connection with a cache of prepared statements. Not thread-safe: the owner
// serialises access (Database below).
class Connection {
 public:
  // Opens `path` (creating it if `create`), WAL, synchronous=FULL, foreign keys on, busy timeout.
  // `secure_delete` overwrites deleted content (cells: purged objects leave no trace in the file).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, bool create,
                                                          bool secure_delete);

  absl::Status Exec(std::string_view sql);
  // Runs one statement without parameters through the statement cache (Exec compiles `sql`
  // every time: BEGIN and COMMIT of every write transaction showed in profiles doing that).
  absl::Status RunCached(std::string_view sql);
  // How long SQLite waits for another connection's lock before answering SQLITE_BUSY (at least
  // 1 ms: zero would mean "never wait").
  void SetBusyTimeout(std::chrono::milliseconds wait);
  // Returns a cached prepared statement for `sql` (compiled on first use).
  absl::StatusOr<Statement> Prepare(std::string_view sql);
  sqlite3* raw() const { return db_.get(); }

 private:
  explicit Connection(SqliteHandle db) : db_(std::move(db)) {}
  SqliteHandle db_;
  std::vector<std::pair<std::string, StmtHandle>> cache_;
};

// A database file: one writer connection (serialised) and a fixed number of reader connections
// (WAL lets readers proceed while the writer commits). Thread-safe.
class Database {
 public:
  struct Migration {
    int version;
    const char* sql;
  };
  // Opens or creates `path` and applies, in order, the migrations whose version is not recorded
  // as applied, in one transaction. kFailedPrecondition if the file records a version this
  // binary does not know (a newer binary migrated it). `readers` (at least 1) reader
  // connections are opened as first used.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path, bool create,
                                                        std::span<const Migration> migrations,
                                                        bool secure_delete, int readers = 16);

  // Longest a write waits for the database, counting both the wait for this process's writer
  // connection and SQLite's wait for another process's lock: a held lock costs each write at
  // most this (then kUnavailable), however many writers of this process queue behind it.
  static constexpr std::chrono::milliseconds kLockWait{5000};

  // Runs `fn(conn)` on the writer inside BEGIN IMMEDIATE … COMMIT; rolls back if fn fails.
  // On a thread that must not block (base/blocking.h): WouldBlockError(), nothing done.
  template <typename Fn>
  absl::Status WriteTransaction(Fn&& fn) {
    if (!MayBlock()) return WouldBlockError();
    const auto deadline = std::chrono::steady_clock::now() + kLockWait;
    if (!AcquireWriter(deadline)) {
      return absl::UnavailableError("the database is busy (another write holds it)");
    }
    absl::Cleanup release = [this] { ReleaseWriter(); };
    writer_->SetBusyTimeout(
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (auto s = writer_->RunCached("BEGIN IMMEDIATE"); !s.ok()) return s;
    absl::Status s = fn(*writer_);
    if (s.ok()) s = writer_->RunCached("COMMIT");
    if (!s.ok()) (void)writer_->Exec("ROLLBACK");
    return s;
  }

  // Runs `fn(conn)` on a reader connection (autocommit: one consistent snapshot per statement).
  // kUnavailable if every reader connection stays busy for kLockWait. `fn` must not call Read
  // (on any Database): it holds its connection meanwhile, and a nested wait could deadlock.
  // On a thread that must not block: WouldBlockError() (a page may have to come from the disk).
  template <typename Fn>
  auto Read(Fn&& fn) -> decltype(fn(std::declval<Connection&>())) {
    if (!MayBlock()) return WouldBlockError();
    ReaderSlot* slot = AcquireReader();
    if (slot == nullptr) {
      return absl::UnavailableError("the database is busy (every reader connection is in use)");
    }
    absl::Cleanup release = [this, slot] { ReleaseReader(*slot); };
    if (!slot->conn) {
      auto conn = OpenReader();
      if (!conn.ok()) return conn.status();
      slot->conn = std::move(*conn);
    }
    return fn(*slot->conn);
  }

 private:
  Database() = default;
  // The writer connection is held by one transaction at a time. A flag under a mutex and a
  // condition variable, not std::timed_mutex: GCC's try_lock_for calls pthread_mutex_clocklock,
  // which ThreadSanitizer does not see, so every timed lock was reported as a bad unlock.
  bool AcquireWriter(std::chrono::steady_clock::time_point deadline);
  void ReleaseWriter();
  // A reader connection and whether a reader holds it. A thread looks first at its own slot,
  // so with no more reading threads than slots each keeps one connection (and its page cache)
  // to itself: a shared pool under one mutex handed connections from thread to thread, and
  // in-process GETs ran at 0.6x the rate they reach with a connection per thread.
  struct ReaderSlot {
    std::atomic<bool> busy{false};
    std::unique_ptr<Connection> conn;  // opened on first use; used by whoever set busy
  };
  // Returns a slot the caller now holds: the first free one from the calling thread's own, or,
  // when all are taken, the first freed within kLockWait; nullptr if none was.
  ReaderSlot* AcquireReader();
  ReaderSlot* TryAcquireReader(size_t first);
  void ReleaseReader(ReaderSlot& slot);
  absl::StatusOr<std::unique_ptr<Connection>> OpenReader() const;

  std::string path_;
  bool secure_delete_ = true;
  std::mutex writer_mu_;
  std::condition_variable writer_released_;
  bool writer_busy_ = false;            // guarded by writer_mu_
  std::unique_ptr<Connection> writer_;  // used by whoever set writer_busy_
  std::vector<ReaderSlot> readers_;     // sized once by Open
  // Readers waiting for any slot to be freed (all were taken when they looked).
  std::mutex reader_wait_mu_;
  std::condition_variable reader_freed_;
  std::atomic<int> reader_waiters_{0};
};

}  // namespace custos::store::internal
