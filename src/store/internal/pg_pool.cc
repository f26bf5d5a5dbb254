#include "store/internal/pg_pool.h"

#include <poll.h>

#include <algorithm>
#include <set>
#include <string>

#include "base/strings.h"
#include "spdlog/spdlog.h"

namespace custos::store::internal {
namespace {

// Session settings of every connection. synchronous_commit=on: a COMMIT returns only once its
// WAL is flushed (with the server's fsync=on, durable). Lock and statement timeouts bound every
// wait (a lock held elsewhere answers kUnavailable, as SQLite's busy timeout does) unless the
// DSN (options=-c …), the role or the database already set them.
std::string SessionSql(absl::Duration statement_timeout) {
  return StrCat(
      "SET synchronous_commit TO on; "
      "SET client_encoding TO 'UTF8'; "
      "SELECT set_config('lock_timeout', '5s', false) WHERE current_setting('lock_timeout') = "
      "'0'; "
      "SELECT set_config('statement_timeout', '",
      absl::ToInt64Milliseconds(statement_timeout),
      "ms', false) WHERE current_setting('statement_timeout') = '0'");
}

std::string Trimmed(const char* what) {
  std::string s(what);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

PgFailure FromSqlState(std::string_view what, const std::string& state, const std::string& msg) {
  std::string text = StrCat(what, ": ", msg, state.empty() ? "" : StrCat(" [", state, "]"));
  auto cls = std::string_view(state).substr(0, 2);
  if (state.empty()) return {absl::UnavailableError(text), true};  // libpq failed, no SQLSTATE
  if (state == "23505") return {absl::AlreadyExistsError(text), false};
  if (cls == "40") {
    if (state == "40003") return {absl::UnavailableError(text), true};  // completion unknown
    return {absl::AbortedError(text), false};  // serialization failure, deadlock
  }
  if (cls == "08") return {absl::UnavailableError(text), true};
  if (state.starts_with("57P")) return {absl::UnavailableError(text), true};  // shutdown
  if (cls == "57" || cls == "53" || cls == "58" || state == "55P03" || state == "55006" ||
      state == "25006") {
    return {absl::UnavailableError(text), false};
  }
  if (cls == "22") {
    // A data exception is answered 400; the server's own words (which quote the value and name
    // internals) stay in the log.
    spdlog::warn("{}", text);
    return {
        absl::InvalidArgumentError(StrCat(what, ": the database refused a value [", state, "]")),
        false};
  }
  if (state == "XX001" || state == "XX002") return {absl::DataLossError(text), false};
  return {absl::InternalError(text), false};
}

// An idle connection has nothing to read: if its socket is readable, the server sent an error
// (e.g. terminating the session on shutdown) or closed it. Dropping it before use spares the
// caller a failed first attempt.
bool LooksAlive(pqxx::connection& conn) {
  if (!conn.is_open()) return false;
  pollfd p{conn.sock(), POLLIN, 0};
  if (p.fd < 0) return false;
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

PgFailure PgErrorFromCurrentException(std::string_view what) {
  try {
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    return {absl::UnavailableError(
                StrCat(what, ": the commit's outcome is unknown: ", Trimmed(e.what()))),
            true};
  } catch (const pqxx::broken_connection& e) {
    return {absl::UnavailableError(StrCat(what, ": PostgreSQL unreachable: ", Trimmed(e.what()))),
            true};
  } catch (const pqxx::sql_error& e) {
    return FromSqlState(what, e.sqlstate(), Trimmed(e.what()));
  } catch (const pqxx::failure& e) {
    // libpq failed without a server error: the connection, in practice.
    return {absl::UnavailableError(StrCat(what, ": ", Trimmed(e.what()))), true};
  } catch (const pqxx::usage_error& e) {
    return {absl::InternalError(StrCat(what, ": ", Trimmed(e.what()))), true};
  } catch (const std::exception& e) {
    return {absl::InternalError(StrCat(what, ": ", Trimmed(e.what()))), false};
  } catch (...) {
    return {absl::InternalError(StrCat(what, ": unknown exception")), true};
  }
}

std::string DsnWithDefaults(const std::string& dsn) {
  const bool uri = dsn.starts_with("postgresql://") || dsn.starts_with("postgres://");
  std::string out = dsn;
  auto add = [&](std::string_view key, std::string_view value) {
    if (dsn.find(StrCat(key, "=")) != std::string::npos) return;
    if (uri) {
      out += out.find('?') == std::string::npos ? "?" : "&";
    } else if (!out.empty()) {
      out += " ";
    }
    out += StrCat(key, "=", value);
  };
  add("connect_timeout", "5");
  // A server that vanished without closing its connections (a network partition, a host that
  // lost power) is noticed within seconds, not after minutes of TCP retransmissions: a request
  // waiting on it is answered 503 instead of hanging (puts wait on a cell writer's connection).
  add("tcp_user_timeout", "10000");  // ms an unacknowledged send may wait
  add("keepalives_idle", "10");      // s of silence before probing an idle connection
  add("keepalives_interval", "5");
  add("keepalives_count", "2");
  add("application_name", "custos");
  return out;
}

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

PgPool::PgPool(Options options) : options_(std::move(options)) {}

PgPool::~PgPool() {
  std::lock_guard lock(mu_);
  idle_.clear();
}

absl::StatusOr<std::unique_ptr<PgPool>> PgPool::Open(Options options,
                                                     std::span<const PgMigration> migrations,
                                                     bool create) {
  if (options.schema.empty() || options.schema.size() > 63) {
    return absl::InvalidArgumentError(
        StrCat("schema name ", options.schema, " must be 1-63 bytes"));
  }
  if (options.max_connections < 1) options.max_connections = 1;
  options.dsn = DsnWithDefaults(options.dsn);
  auto pool = std::unique_ptr<PgPool>(new PgPool(std::move(options)));
  if (auto s = pool->Migrate(migrations, create); !s.ok()) return s;
  return pool;
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> PgPool::Connect(bool prepare) {
  const std::string what = StrCat("connect for schema ", options_.schema);
  try {
    auto conn = std::make_unique<pqxx::connection>(options_.dsn);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    // A broken connection stays broken (the pool replaces it): libpqxx must not reconnect
    // behind our back and lose the session settings.
    conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    {
      pqxx::nontransaction txn(*conn);
      txn.exec(StrCat("SET search_path TO ", QuoteIdentifier(options_.schema), "; ",
                      SessionSql(options_.statement_timeout)));
    }
    if (prepare) {
      for (const PgStatement& s : options_.statements) conn->prepare(s.name, s.sql);
    }
    return conn;
  } catch (...) {
    return PgErrorFromCurrentException(what).status;
  }
}

absl::Status PgPool::Migrate(std::span<const PgMigration> migrations, bool create) {
  auto conn = Connect(/*prepare=*/false);
  if (!conn.ok()) return conn.status();
  const std::string& schema = options_.schema;
  const std::string quoted = QuoteIdentifier(schema);
  // Every recorded version must be one this binary knows: otherwise a newer binary migrated it.
  auto check_known = [&](const std::set<int64_t>& applied) -> absl::Status {
    for (int64_t version : applied) {
      if (std::none_of(migrations.begin(), migrations.end(),
                       [&](const PgMigration& m) { return m.version == version; })) {
        return absl::FailedPreconditionError(StrCat("schema ", schema, " has version ", version,
                                                    ", unknown to this binary (a newer one?)"));
      }
    }
    return absl::OkStatus();
  };
  auto applied_versions = [](pqxx::transaction_base& txn, const std::string& quoted) {
    std::set<int64_t> applied;
    for (const auto& row : txn.exec(StrCat("SELECT version FROM ", quoted, ".schema_migrations"))) {
      applied.insert(row[0].as<int64_t>());
    }
    return applied;
  };
  try {
    {
      // Fast path: the schema is current (every start of a server after the first).
      pqxx::nontransaction txn(**conn);
      auto exists = txn.exec_params1("SELECT to_regclass($1) IS NOT NULL",
                                     StrCat(quoted, ".schema_migrations"));
      if (exists[0].as<bool>()) {
        auto applied = applied_versions(txn, quoted);
        if (auto s = check_known(applied); !s.ok()) return s;
        if (applied.size() == migrations.size()) return absl::OkStatus();
      }
    }
    pqxx::work txn(**conn);
    // Serialises concurrent migrations of this schema (several servers starting at once).
    txn.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))",
                    StrCat("custos schema migration ", schema));
    bool exists =
        txn.exec_params1("SELECT EXISTS(SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema)[0]
            .as<bool>();
    if (!exists && !create) {
      return absl::FailedPreconditionError(
          StrCat("schema ", schema, " does not exist: run `custos init` first"));
    }
    txn.exec(StrCat("CREATE SCHEMA IF NOT EXISTS ", quoted));
    txn.exec(StrCat("CREATE TABLE IF NOT EXISTS ", quoted,
                    ".schema_migrations(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"));
    // A migration is applied iff its version is not recorded (not "above the highest"):
    // features developed side by side may land their migrations in any order.
    auto applied = applied_versions(txn, quoted);
    if (auto s = check_known(applied); !s.ok()) return s;
    for (const PgMigration& m : migrations) {
      if (applied.contains(m.version)) continue;
      txn.exec(m.sql);
      txn.exec_params(StrCat("INSERT INTO ", quoted,
                             ".schema_migrations(version, applied_at) "
                             "VALUES($1, extract(epoch FROM now())::bigint)"),
                      m.version);
    }
    txn.commit();
    return absl::OkStatus();
  } catch (...) {
    return PgErrorFromCurrentException(StrCat("migrate schema ", schema)).status;
  }
}

absl::StatusOr<PgPool::Connection> PgPool::Acquire() {
  const auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options_.acquire_timeout);
  bool cold = false;
  while (true) {
    std::unique_ptr<pqxx::connection> idle;
    {
      std::unique_lock lock(mu_);
      if (!available_.wait_until(
              lock, deadline, [&] { return !idle_.empty() || open_ < options_.max_connections; })) {
        return absl::UnavailableError(StrCat("all ", options_.max_connections,
                                             " connections to schema ", options_.schema,
                                             " are busy"));
      }
      if (idle_.empty()) {
        cold = open_ == 0;
        ++open_;  // reserve the slot; connect outside the lock
        break;
      }
      idle = std::move(idle_.back());
      idle_.pop_back();
    }
    if (LooksAlive(*idle)) return Connection{std::move(idle), true};
    Release(std::move(idle), /*drop=*/true);  // the server closed it while it was idle
  }
  auto conn = Connect(/*prepare=*/true);
  if (!conn.ok()) {
    std::lock_guard lock(mu_);
    --open_;
    available_.notify_one();
    return conn.status();
  }
  return Connection{std::move(*conn), false, cold};
}

void PgPool::Release(std::unique_ptr<pqxx::connection> conn, bool drop) {
  {
    std::lock_guard lock(mu_);
    if (!drop && static_cast<int>(idle_.size()) < options_.max_idle) {
      idle_.push_back(std::move(conn));
    } else {
      --open_;
    }
    available_.notify_one();
  }
  conn.reset();  // closes outside the lock, if not kept
}

void PgPool::DropIdle() {
  std::vector<std::unique_ptr<pqxx::connection>> stale;
  {
    std::lock_guard lock(mu_);
    stale.swap(idle_);
    open_ -= static_cast<int>(stale.size());
    available_.notify_all();
  }
}

int PgPool::OpenConnectionsForTest() {
  std::lock_guard lock(mu_);
  return open_;
}

}  // namespace custos::store::internal
