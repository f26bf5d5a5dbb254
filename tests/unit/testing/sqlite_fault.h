// Makes a SQLite store refuse writes for real, the way a full disk or a corrupt page would look
// to Custos: another connection adds a trigger that aborts them with an error.
#pragma once

#include <sqlite3.h>

#include <string>

namespace custos::testing {

// Every `event` (INSERT, UPDATE or DELETE) on `table` in the database file `path` fails from
// now on — only rows for which the SQL condition `when` holds (e.g. "NEW.key = 'x'"), if given;
// true if the trigger was added. RefuseWrites(path, table, event, false) removes it.
inline bool RefuseWrites(const std::string& path, const std::string& table,
                         const std::string& event, bool refuse = true,
                         const std::string& when = "") {
  sqlite3* db = nullptr;
  bool ok = sqlite3_open(path.c_str(), &db) == SQLITE_OK;
  // The store may be writing (a batch, a checkpoint): wait for its lock as the store would.
  ok = ok && sqlite3_busy_timeout(db, 5000) == SQLITE_OK;
  const std::string name = "refuse_" + table + "_" + event;
  const std::string sql = refuse ? "CREATE TRIGGER " + name + " BEFORE " + event + " ON " + table +
                                       (when.empty() ? "" : " WHEN " + when) +
                                       " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                                 : "DROP TRIGGER " + name;
  ok = ok && sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
  sqlite3_close(db);
  return ok;
}

}  // namespace custos::testing
