#include "store/internal/sqlite_db.h"

#include <algorithm>
#include <atomic>
#include <set>

#include "base/errors.h"
#include "base/strings.h"

namespace custos::store::internal {

absl::Status SqliteError(int rc, sqlite3* db, std::string_view what) {
  std::string msg = StrCat(what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL: return absl::UnavailableError(msg);
    case SQLITE_CONSTRAINT: return absl::AlreadyExistsError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return absl::DataLossError(msg);
    case SQLITE_TOOBIG: return TooLarge(msg);  // a value over SQLite's length limit (1e9 bytes)
    default: return absl::InternalError(msg);
  }
}

Statement& Statement::Bind(int i, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, db_, "bind");
  return *this;
}

Statement& Statement::BindBlob(int i, std::string_view bytes) {
  // A zero-length blob must still bind as a blob, not NULL: pass a non-null pointer.
  static const char kEmpty = 0;
  int rc = sqlite3_bind_blob64(stmt_, i, bytes.empty() ? &kEmpty : bytes.data(), bytes.size(),
                               SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, db_, "bind");
  return *this;
}

Statement& Statement::Bind(int i, int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, i, v);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, db_, "bind");
  return *this;
}

Statement& Statement::BindNull(int i) {
  int rc = sqlite3_bind_null(stmt_, i);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, db_, "bind");
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, db_, "step");
}

absl::Status Statement::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

std::string Statement::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, col)) : std::string();
}

std::string Statement::Blob(int col) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, col)) : std::string();
}

void ConfigureSqliteOnce() {
  static const bool configured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);  // SQLITE_MISUSE if already initialised: harmless
    return sqlite3_initialize() == SQLITE_OK;
  }();
  (void)configured;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path, bool create,
                                                             bool secure_delete) {
  ConfigureSqliteOnce();
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  SqliteHandle db(raw);
  if (rc != SQLITE_OK) return SqliteError(rc, raw, StrCat("open ", path));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, static_cast<int>(Database::kLockWait.count()));
  auto conn = std::unique_ptr<Connection>(new Connection(std::move(db)));
  // Durable: WAL with synchronous=FULL fsyncs the WAL on every commit.
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON",
        secure_delete ? "PRAGMA secure_delete=ON" : "PRAGMA secure_delete=OFF"}) {
    if (auto s = conn->Exec(pragma); !s.ok()) return s;
  }
  return conn;
}

void Connection::SetBusyTimeout(std::chrono::milliseconds wait) {
  sqlite3_busy_timeout(db_.get(), static_cast<int>(std::max<int64_t>(wait.count(), 1)));
}

absl::Status Connection::Exec(std::string_view sql) {
  char* err = nullptr;
  std::string owned(sql);
  int rc = sqlite3_exec(db_.get(), owned.c_str(), nullptr, nullptr, &err);
  if (err) sqlite3_free(err);
  if (rc != SQLITE_OK) return SqliteError(rc, db_.get(), "exec");
  return absl::OkStatus();
}

absl::Status Connection::RunCached(std::string_view sql) {
  auto s = Prepare(sql);
  if (!s.ok()) return s.status();
  return s->Run();
}

absl::StatusOr<Statement> Connection::Prepare(std::string_view sql) {
  for (auto& [text, stmt] : cache_) {
    if (text == sql) return Statement(db_.get(), stmt.get());
  }
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_.get(), "prepare");
  cache_.emplace_back(std::string(sql), StmtHandle(raw));
  return Statement(db_.get(), raw);
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path, bool create,
                                                         std::span<const Migration> migrations,
                                                         bool secure_delete, int readers) {
  auto db = std::unique_ptr<Database>(new Database());
  db->path_ = path;
  db->secure_delete_ = secure_delete;
  auto writer = Connection::Open(path, create, secure_delete);
  if (!writer.ok()) return writer.status();
  db->writer_ = std::move(*writer);
  absl::Status s = db->WriteTransaction([&](Connection& c) -> absl::Status {
    if (auto s = c.Exec("CREATE TABLE IF NOT EXISTS schema_migrations("
                        "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
        !s.ok()) {
      return s;
    }
    // A migration is applied iff its version is not recorded (not "above the highest"): features
    // developed side by side may land their migrations in any order.
    auto stmt = c.Prepare("SELECT version FROM schema_migrations");
    if (!stmt.ok()) return stmt.status();
    std::set<int64_t> applied;
    for (;;) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      applied.insert(stmt->Int(0));
    }
    for (int64_t version : applied) {
      if (std::none_of(migrations.begin(), migrations.end(),
                       [&](const Migration& m) { return m.version == version; })) {
        return absl::FailedPreconditionError(StrCat(path, " has schema version ", version,
                                                    ", unknown to this binary (a newer one?)"));
      }
    }
    for (const Migration& m : migrations) {
      if (applied.contains(m.version)) continue;
      if (auto s = c.Exec(m.sql); !s.ok()) return s;
      auto ins =
          c.Prepare("INSERT INTO schema_migrations(version, applied_at) VALUES(?, unixepoch())");
      if (!ins.ok()) return ins.status();
      if (auto s = ins->Bind(1, int64_t{m.version}).Run(); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  db->readers_ = std::vector<ReaderSlot>(std::max(readers, 1));
  // Open one reader now: a file that a writer can open but a reader cannot fails here, at start.
  auto first = db->OpenReader();
  if (!first.ok()) return first.status();
  db->readers_.front().conn = std::move(*first);
  return db;
}

bool Database::AcquireWriter(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(writer_mu_);
  if (!writer_released_.wait_until(lock, deadline, [&] { return !writer_busy_; })) return false;
  writer_busy_ = true;
  return true;
}

void Database::ReleaseWriter() {
  {
    std::lock_guard lock(writer_mu_);
    writer_busy_ = false;
  }
  writer_released_.notify_one();
}

absl::StatusOr<std::unique_ptr<Connection>> Database::OpenReader() const {
  return Connection::Open(path_, /*create=*/false, secure_delete_);
}

Database::ReaderSlot* Database::TryAcquireReader(size_t first) {
  for (size_t i = 0; i < readers_.size(); ++i) {
    ReaderSlot& slot = readers_[(first + i) % readers_.size()];
    bool free = false;
    if (slot.busy.compare_exchange_strong(free, true)) return &slot;
  }
  return nullptr;
}

Database::ReaderSlot* Database::AcquireReader() {
  // Threads number themselves in the order they first read (any database), so that threads
  // started together start at different slots.
  static std::atomic<size_t> next_thread{0};
  thread_local const size_t thread_number = next_thread.fetch_add(1, std::memory_order_relaxed);
  const size_t own = thread_number % readers_.size();
  if (ReaderSlot* slot = TryAcquireReader(own)) return slot;
  // All taken: wait for whichever is freed first. The waiter count is raised before looking
  // again and read by ReleaseReader after freeing (both sequentially consistent), so either
  // the look finds the freed slot or the release sees the waiter and wakes it.
  const auto deadline = std::chrono::steady_clock::now() + kLockWait;
  std::unique_lock lock(reader_wait_mu_);
  reader_waiters_.fetch_add(1);
  absl::Cleanup done = [this] { reader_waiters_.fetch_sub(1); };
  while (true) {
    if (ReaderSlot* slot = TryAcquireReader(own)) return slot;
    if (reader_freed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return TryAcquireReader(own);
    }
  }
}

void Database::ReleaseReader(ReaderSlot& slot) {
  slot.busy.store(false);
  if (reader_waiters_.load() > 0) {
    std::lock_guard lock(reader_wait_mu_);
    reader_freed_.notify_one();
  }
}

}  // namespace custos::store::internal
