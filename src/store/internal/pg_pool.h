// A small pool of libpqxx connections shared by the PostgreSQL stores (not for other folders).
//
// One PgPool serves one store: every connection has the store's schema as its search_path and
// the store's statements prepared. The pool is bounded; a connection found broken is dropped
// (with every idle one, which an outage broke as well) and a new one is opened on the next use,
// so the stores recover by themselves when PostgreSQL comes back. Every libpqxx exception is
// caught here and mapped to an absl::Status in one place (PgErrorFromCurrentException); none
// escapes.
//
// Durability: a commit returns once PostgreSQL reports it durable, which needs the server's
// fsync=on and synchronous_commit=on (the server defaults; every session sets
// synchronous_commit=on itself, so a server or role default of off cannot weaken it, but fsync
// is the server's setting alone: scripts/start-postgres runs with it on).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pqxx/pqxx"

namespace custos::store::internal {

// The outcome of a failed database call: the status for the caller and whether the connection
// that failed must be dropped rather than reused.
struct PgFailure {
  absl::Status status;
  bool drop_connection = false;
};

// Maps the exception being handled (call only inside a catch block) to a status:
//   broken connection, connection-class SQLSTATEs (08), server shutdown (57P0x), query
//   cancelled or timed out (57014), lock timeout (55P03), insufficient resources (53),
//   read-only transaction (25006), system I/O errors (58), an unknown commit outcome
//   → kUnavailable (retry later);
//   unique violation (23505) → kAlreadyExists;
//   serialization failure (40001), deadlock (40P01) and other rollbacks (40) → kAborted;
//   data exceptions (22: e.g. text that is not valid UTF-8) → kInvalidArgument;
//   data corruption (XX001, XX002) → kDataLoss;
//   anything else → kInternal.
// Messages say what failed (`what`) and PostgreSQL's reason, never the connection string.
PgFailure PgErrorFromCurrentException(std::string_view what);

// A prepared statement of a store: `name` is used with exec_prepared.
struct PgStatement {
  std::string name;
  std::string sql;
};

// A schema migration; `sql` runs with the store's schema first on the search_path.
struct PgMigration {
  int version;
  const char* sql;
};

// Appends libpq defaults that Custos needs unless the DSN sets them: connect_timeout (5 s), TCP
// timeouts that notice a vanished server within about 20 s (tcp_user_timeout, keepalives_*),
// and application_name. Works for URIs (postgresql://…) and key=value strings.
std::string DsnWithDefaults(const std::string& dsn);

// Quotes a PostgreSQL identifier ("…" with embedded quotes doubled).
std::string QuoteIdentifier(std::string_view name);

class PgPool {
 public:
  struct Options {
    std::string dsn;
    std::string schema;  // unquoted; must be 1-63 bytes
    std::vector<PgStatement> statements;
    int max_connections = 8;  // open at once, busy or idle
    int max_idle = 2;         // kept open when unused
    absl::Duration acquire_timeout = absl::Seconds(5);
    // The longest one statement may run (unless the DSN, role or database set one).
    absl::Duration statement_timeout = absl::Seconds(60);
  };

  // Connects, creates the schema when `create` and applies, in order, the migrations whose
  // version is not recorded as applied, all in one transaction serialised with other processes
  // by an advisory lock. kUnavailable if the server cannot be reached; kFailedPrecondition if
  // the schema is missing and !create, or if it records a version not among `migrations`.
  static absl::StatusOr<std::unique_ptr<PgPool>> Open(Options options,
                                                      std::span<const PgMigration> migrations,
                                                      bool create);
  ~PgPool();

  // Runs `fn(pqxx::work&)` in one read-committed transaction, committed iff fn returns OK; fn
  // returns absl::Status or absl::StatusOr<T>. Use SELECT … FOR UPDATE where an operation must
  // see and keep a row unchanged until commit.
  template <typename Fn>
  auto Write(std::string_view what, Fn&& fn) -> std::invoke_result_t<Fn, pqxx::work&> {
    using R = std::invoke_result_t<Fn, pqxx::work&>;
    return Run<R>(what, [&](pqxx::connection& c, bool& started) -> R {
      pqxx::work txn(c);  // BEGIN: a stale connection fails here, before anything ran
      started = true;
      R r = fn(txn);
      if (r.ok()) txn.commit();
      return r;
    });
  }

  // Runs `fn(pqxx::nontransaction&)` for a write that is a single statement, atomic by itself,
  // in autocommit: one round trip instead of BEGIN, the statement and COMMIT. Not retried: once
  // the statement is sent, a failed connection leaves its outcome unknown (kUnavailable). Idle
  // connections that the server closed are still replaced before use (Acquire).
  template <typename Fn>
  auto WriteStatement(std::string_view what, Fn&& fn)
      -> std::invoke_result_t<Fn, pqxx::nontransaction&> {
    using R = std::invoke_result_t<Fn, pqxx::nontransaction&>;
    return Run<R>(what, [&](pqxx::connection& c, bool& started) -> R {
      pqxx::nontransaction txn(c);
      started = true;  // the statement is the first round trip
      return fn(txn);
    });
  }

  // WriteStatement for occasional maintenance, such as the tombstone purge that visits every
  // cell every few minutes: if the pool had no connection open, the one opened for it is closed
  // afterwards. Otherwise such a job would leave one connection (a server process) standing in
  // every quiet cell's pool of every instance that ran it.
  template <typename Fn>
  auto MaintenanceStatement(std::string_view what, Fn&& fn)
      -> std::invoke_result_t<Fn, pqxx::nontransaction&> {
    using R = std::invoke_result_t<Fn, pqxx::nontransaction&>;
    return Run<R>(
        what,
        [&](pqxx::connection& c, bool& started) -> R {
          pqxx::nontransaction txn(c);
          started = true;
          return fn(txn);
        },
        /*leave_cold=*/true);
  }

  // Runs `fn(pqxx::nontransaction&)` for reads: each statement is its own snapshot. A read that
  // meets a connection broken while idle is retried once on a fresh one.
  template <typename Fn>
  auto Read(std::string_view what, Fn&& fn) -> std::invoke_result_t<Fn, pqxx::nontransaction&> {
    using R = std::invoke_result_t<Fn, pqxx::nontransaction&>;
    return Run<R>(what, [&](pqxx::connection& c, bool& started) -> R {
      (void)started;  // reads are idempotent: a broken idle connection is always retried
      pqxx::nontransaction txn(c);
      return fn(txn);
    });
  }

  const std::string& schema() const { return options_.schema; }

  // Open connections (busy or idle); for tests.
  int OpenConnectionsForTest();

 private:
  struct Connection {
    std::unique_ptr<pqxx::connection> conn;
    bool reused = false;  // came from the idle list (may have broken while idle)
    bool cold = false;    // opened when the pool had no connection open
  };

  explicit PgPool(Options options);

  absl::StatusOr<Connection> Acquire();
  void Release(std::unique_ptr<pqxx::connection> conn, bool drop);
  // Opens a connection with the session settings and, if `prepare`, the store's statements.
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect(bool prepare);
  absl::Status Migrate(std::span<const PgMigration> migrations, bool create);

  // fn(conn, started) runs the operation; `started` is set once the operation's first round
  // trip succeeded. A failure before that on a reused connection is retried once. With
  // `leave_cold`, a connection opened when the pool had none is closed after the operation.
  template <typename R, typename Fn>
  R Run(std::string_view what, Fn&& fn, bool leave_cold = false) {
    for (int attempt = 0;; ++attempt) {
      auto lease = Acquire();
      if (!lease.ok()) return R(lease.status());
      bool started = false;
      PgFailure failure;
      try {
        R r = fn(*lease->conn, started);
        Release(std::move(lease->conn), /*drop=*/leave_cold && lease->cold);
        return r;
      } catch (...) {
        failure = PgErrorFromCurrentException(what);
      }
      const bool drop = failure.drop_connection || !lease->conn->is_open();
      Release(std::move(lease->conn), drop);
      if (drop) DropIdle();
      if (!(drop && lease->reused && !started && attempt == 0)) return R(failure.status);
    }
  }

  void DropIdle();

  const Options options_;
  std::mutex mu_;
  std::condition_variable available_;  // signalled when a slot or idle connection frees
  int open_ = 0;                       // guarded by mu_
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
};

}  // namespace custos::store::internal
