#include <sqlite3.h>

#include <thread>

#include "gtest/gtest.h"
#include "store/store.h"
#include "testing/store_records.h"
#include "testing/temp_dir.h"

namespace custos::store {
namespace {

using custos::testing::TempDir;

using custos::testing::Del;
using custos::testing::Obj;
using custos::testing::Put;

TEST(SqliteCellStore, AppliesABatchInOrderWithVersions) {
  TempDir dir;
  auto cell = OpenSqliteCellStore(dir.File("c.db"), "eu-west", true);
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "wrapped", 0, 0}).ok());
  std::vector<CellWrite> batch = {Put(Obj("t", "a")), Put(Obj("t", "a")), Put(Obj("t", "b")),
                                  Del("t", "b"), Del("t", "zz")};
  auto r = (*cell)->Apply(batch);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[0].version, 1);
  EXPECT_FALSE((*r)[0].existed);
  EXPECT_EQ((*r)[1].version, 2);
  EXPECT_TRUE((*r)[1].existed);
  EXPECT_TRUE((*r)[3].existed);
  EXPECT_FALSE((*r)[4].existed);
  auto keys = (*cell)->ListDataKeys("t");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ((*keys)[0].seals, 3);  // every put counted against its data key
  EXPECT_EQ((*cell)->GetObject("t", "b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*cell)->GetObject("t", "a")->version, 2);
}

TEST(SqliteCellStore, ListsByPrefixAndCursorPerTenant) {
  TempDir dir;
  auto cell = OpenSqliteCellStore(dir.File("c.db"), "r", true);
  ASSERT_TRUE(cell.ok());
  std::vector<CellWrite> batch;
  for (const char* k : {"a/1", "a/2", "a/3", "b/1", "a"}) batch.push_back(Put(Obj("t", k)));
  batch.push_back(Put(Obj("other", "a/4")));
  ASSERT_TRUE((*cell)->Apply(batch).ok());
  auto page = (*cell)->ListObjects("t", "a/", "", 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].key, "a/1");
  EXPECT_TRUE((*page)[0].sealed.empty());  // listings carry no content
  page = (*cell)->ListObjects("t", "a/", "a/2", 10);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].key, "a/3");
  EXPECT_EQ((*cell)->ListObjects("t", "", "", 100)->size(), 5u);
  auto usage = (*cell)->Usage("t");
  EXPECT_EQ(usage->objects, 5);
  EXPECT_EQ(usage->bytes, 5 * 6);
}

TEST(SqliteCellStore, ReopensWithDataAndRefusesNewerSchema) {
  TempDir dir;
  {
    auto cell = OpenSqliteCellStore(dir.File("c.db"), "r", true);
    ASSERT_TRUE((*cell)->Apply(std::vector<CellWrite>{Put(Obj("t", "k"))}).ok());
  }
  {
    auto cell = OpenSqliteCellStore(dir.File("c.db"), "r", false);
    ASSERT_TRUE(cell.ok());
    EXPECT_TRUE((*cell)->GetObject("t", "k").ok());
  }
  // A data file from a newer Custos must not be opened by this one.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("c.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "INSERT INTO schema_migrations VALUES(99, 0)", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(OpenSqliteCellStore(dir.File("c.db"), "r", false).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(OpenSqliteCellStore(dir.File("missing.db"), "r", false).ok());
}

TEST(SqliteCellStore, BusyDatabaseIsUnavailable) {
  TempDir dir;
  auto cell = OpenSqliteCellStore(dir.File("c.db"), "r", true);
  ASSERT_TRUE(cell.ok());
  // Another connection holding the write lock: a real fault, not a mock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("c.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto r = (*cell)->Apply(std::vector<CellWrite>{Put(Obj("t", "k"))});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_TRUE((*cell)->Apply(std::vector<CellWrite>{Put(Obj("t", "k"))}).ok());
}

TEST(SqliteControlStore, PrincipalsTenantsAndSettings) {
  TempDir dir;
  auto s = OpenSqliteControlStore(dir.File("control.db"), true);
  ASSERT_TRUE(s.ok());
  PrincipalRecord p{"p1", "Ann", "", "operator", "", "hash1", "{}", 10, 20, false};
  ASSERT_TRUE((*s)->InsertPrincipal(p).ok());
  EXPECT_EQ((*s)->InsertPrincipal(p).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*s)->FindPrincipalByTokenHash("hash1")->id, "p1");
  EXPECT_EQ((*s)->GetPrincipal("p1")->expires_at, 20);
  EXPECT_EQ((*s)->GetPrincipal("nope").status().code(), absl::StatusCode::kNotFound);
  TenantRecord t{"t1", std::string("\0sealed", 7), "{}", "EU", "eu-west", "", "active", 5};
  PrincipalRecord admin{"p2", "", "sealed", "tenant_admin", "t1", "hash2", "{}", 10, 20, false};
  ASSERT_TRUE((*s)->InsertTenant(t, admin).ok());
  EXPECT_EQ((*s)->GetTenant("t1")->sealed_name, t.sealed_name);
  EXPECT_EQ((*s)->ListTenants()->size(), 1u);
  EXPECT_EQ((*s)->GetSetting("origin").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE((*s)->PutSetting("origin", "a").ok());
  ASSERT_TRUE((*s)->PutSetting("origin", "b").ok());
  EXPECT_EQ(*(*s)->GetSetting("origin"), "b");
}

}  // namespace
}  // namespace custos::store

namespace custos::store {
namespace {

// A control store of schema version 2 kept partial tiles whole in ledger_tiles; migration 3
// moves them into ledger_tile_parts, leaves full tiles alone, and later batches extend them.
TEST(SqliteControlStore, RefusesASchemaMigratedByANewerBinary) {
  custos::testing::TempDir dir;
  const std::string path = dir.File("control.db");
  ASSERT_TRUE(OpenSqliteControlStore(path, true).ok());
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db, "INSERT INTO schema_migrations VALUES(999, 0)", nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
  }
  auto reopened = OpenSqliteControlStore(path, false);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reopened.status().message().find("999"), absl::string_view::npos);
}

TEST(SqliteControlStore, MigrationThreeMovesPartialTilesIntoParts) {
  custos::testing::TempDir dir;
  const std::string path = dir.File("control.db");
  {
    auto s = OpenSqliteControlStore(path, true);
    ASSERT_TRUE(s.ok()) << s.status();
  }
  {
    // Back to version 2's layout: a full entry bundle, a partial one, a full and a partial
    // hash tile, stored whole; size 300.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string sql =
        "DROP INDEX ledger_records_by_last; DROP TABLE ledger_tile_parts;"
        "DELETE FROM schema_migrations WHERE version = 3;"
        "UPDATE ledger_state SET size = 300;"
        "INSERT INTO ledger_tiles VALUES(-1, 0, x'aa'), (-1, 1, x'bb'),"
        "(0, 0, zeroblob(8192)), (0, 1, zeroblob(1408)), (1, 0, x'cc');";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto s = OpenSqliteControlStore(path, false);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*(*s)->ReadLedgerTile(-1, 0), "\xaa");
  EXPECT_EQ(*(*s)->ReadLedgerTile(-1, 1), "\xbb");
  EXPECT_EQ((*s)->ReadLedgerTile(0, 0)->size(), 8192u);
  EXPECT_EQ((*s)->ReadLedgerTile(0, 1)->size(), 1408u);
  // The partial tiles grow by parts from where they were.
  LedgerBatch b;
  b.old_size = 300;
  b.new_size = 301;
  b.tiles = {{-1, 1, "\xdd", 44}, {0, 1, std::string(32, 'x'), 44}};
  ASSERT_TRUE((*s)->CommitLedgerBatch(b).ok());
  EXPECT_EQ(*(*s)->ReadLedgerTile(-1, 1), "\xbb\xdd");
  EXPECT_EQ((*s)->ReadLedgerTile(0, 1)->size(), 1440u);
  EXPECT_EQ(*(*s)->ReadLedgerTile(-1, 0), "\xaa");
}

}  // namespace
}  // namespace custos::store
