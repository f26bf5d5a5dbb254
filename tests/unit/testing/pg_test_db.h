// A fresh PostgreSQL database for one test, on the server named by CUSTOS_PG_DSN (as set by
// scripts/with-postgres); dropped at the end. Tests that need one GTEST_SKIP() when the variable
// is unset, so the unit tests pass without a server.
#pragma once

#include <cstdlib>
#include <optional>
#include <random>
#include <string>

#include "pqxx/pqxx"

namespace custos::testing {

// The server DSN from the environment, if any.
inline std::optional<std::string> PgServerDsn() {
  const char* dsn = std::getenv("CUSTOS_PG_DSN");
  if (dsn == nullptr || *dsn == '\0') return std::nullopt;
  return std::string(dsn);
}

// `dsn` (URI or key=value) pointed at database `name` of the same server.
inline std::string PgDsnWithDatabase(const std::string& dsn, const std::string& name) {
  const size_t scheme = dsn.find("://");
  if (scheme == std::string::npos) return dsn + " dbname=" + name;
  const size_t query = dsn.find('?', scheme + 3);
  const size_t authority_end = dsn.find('/', scheme + 3);
  const size_t path_end = query == std::string::npos ? dsn.size() : query;
  if (authority_end == std::string::npos || authority_end > path_end) {
    return dsn.substr(0, path_end) + "/" + name + dsn.substr(path_end);
  }
  return dsn.substr(0, authority_end) + "/" + name + dsn.substr(path_end);
}

// Appends a libpq parameter (e.g. "options=-c%20lock_timeout%3D300" in URI form).
inline std::string PgDsnWithParam(const std::string& dsn, const std::string& uri_param,
                                  const std::string& keyword_param) {
  if (dsn.find("://") == std::string::npos) return dsn + " " + keyword_param;
  return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + uri_param;
}

class PgTestDatabase {
 public:
  explicit PgTestDatabase(const std::string& server_dsn) : server_dsn_(server_dsn) {
    std::random_device rd;
    name_ = "custos_unit_" + std::to_string(rd()) + "_" + std::to_string(rd());
    pqxx::connection admin(server_dsn_);
    pqxx::nontransaction txn(admin);
    txn.exec("CREATE DATABASE " + name_);
    dsn_ = PgDsnWithDatabase(server_dsn_, name_);
  }
  ~PgTestDatabase() {
    try {
      pqxx::connection admin(server_dsn_);
      pqxx::nontransaction txn(admin);
      txn.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
      // Left behind on a server that went away: it is a throwaway server.
    }
  }
  PgTestDatabase(const PgTestDatabase&) = delete;
  PgTestDatabase& operator=(const PgTestDatabase&) = delete;

  const std::string& dsn() const { return dsn_; }
  const std::string& name() const { return name_; }

  // Runs `sql` on this database in autocommit mode; returns the first column of each row.
  std::vector<std::string> Query(const std::string& sql) const {
    pqxx::connection c(dsn_);
    pqxx::nontransaction txn(c);
    std::vector<std::string> out;
    for (const auto& row : txn.exec(sql)) out.push_back(row[0].is_null() ? "" : row[0].c_str());
    return out;
  }

  // Terminates every other session on this database (a real fault: the server drops them) and
  // waits until they are gone.
  int KillConnections() const {
    auto killed = Query(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    return killed.empty() ? 0 : std::stoi(killed[0]);
  }

 private:
  std::string server_dsn_;
  std::string name_;
  std::string dsn_;
};

}  // namespace custos::testing
