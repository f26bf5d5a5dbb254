// What only the PostgreSQL backend has: schemas on a shared server, migrations across
// processes, the connection pool, and real faults (killed connections, a held lock, a server
// that is not there). The store contract itself runs on both backends in
// store_contract_test.cc. Every test skips when CUSTOS_PG_DSN is unset.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include "base/strings.h"
#include "gtest/gtest.h"
#include "store/internal/pg_pool.h"
#include "store/internal/pg_values.h"
#include "store/store.h"
#include "testing/pg_test_db.h"
#include "testing/store_records.h"

namespace custos::store {
namespace {

// Multi-row statements take one dynamic parameter list per column (libpqxx 6.4): parameter
// numbers run down each column, not along each row.
TEST(ColumnMajorValues, NumbersParametersDownEachColumn) {
  EXPECT_EQ(internal::ColumnMajorValues(2, 2, 1), "($1,$3),($2,$4)");
  EXPECT_EQ(internal::ColumnMajorValues(1, 3, 5, ",1"), "($5,$6,$7,1)");
  EXPECT_EQ(internal::ColumnMajorValues(3, 1, 2), "($2),($3),($4)");
  EXPECT_EQ(internal::ColumnMajorValues(0, 4, 1), "");
  EXPECT_EQ(internal::ColumnMajorValues(2, 2, 1, "", {"::int", "::bytea"}),
            "($1::int,$3::bytea),($2::int,$4::bytea)");
}

using custos::testing::PgDsnWithParam;
using custos::testing::PgServerDsn;
using custos::testing::PgTestDatabase;
using custos::testing::Put;

StoredObject Obj(std::string tenant, std::string key) {
  StoredObject o;
  o.tenant_id = std::move(tenant);
  o.key = std::move(key);
  o.dek_version = 1;
  o.size = 1;
  o.sha256_hex = "ab";
  o.content_type = "text/plain";
  o.sealed = "s";
  return o;
}

std::vector<CellWrite> PutOne(std::string key) { return {Put(Obj("t", std::move(key)))}; }

class PostgresStore : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = PgServerDsn();
    if (!server) GTEST_SKIP() << "CUSTOS_PG_DSN is not set (scripts/with-postgres sets it)";
    db_ = std::make_unique<PgTestDatabase>(*server);
  }
  std::unique_ptr<PgTestDatabase> db_;
};

TEST_F(PostgresStore, SchemasAreNamedAfterTheStoreAndRegion) {
  EXPECT_EQ(PostgresCellSchema("eu-west"), "custos_cell_eu_west");
  EXPECT_EQ(PostgresCellSchema("us-gov-virginia"), "custos_cell_us_gov_virginia");
  ASSERT_TRUE(OpenPostgresControlStore(db_->dsn(), true).ok());
  ASSERT_TRUE(OpenPostgresCellStore(db_->dsn(), "eu-west", true).ok());
  // A region id that is not a plain identifier is quoted, not interpolated.
  ASSERT_TRUE(OpenPostgresCellStore(db_->dsn(), "Odd\"Region; DROP", true).ok());
  auto schemas =
      db_->Query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'custos%' ORDER BY nspname");
  EXPECT_EQ(schemas, (std::vector<std::string>{"custos_cell_Odd\"Region; DROP",
                                               "custos_cell_eu_west", "custos_control"}));
  auto tables = db_->Query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = "
      "'custos_cell_eu_west' ORDER BY 1");
  EXPECT_EQ(tables, (std::vector<std::string>{"data_keys", "objects", "schema_migrations"}));
  // Every migration applied: 1, 2, 3 (ledger tile parts), 4 (access requests, MFA, consents,
  // audit verdicts) and 6 (job leases).
  EXPECT_EQ(db_->Query("SELECT count(*) FROM custos_control.schema_migrations "
                       "WHERE version IN (1, 2, 3, 4, 6)"),
            std::vector<std::string>{"5"});
  // Too long for a PostgreSQL identifier (63 bytes): refused rather than silently truncated.
  EXPECT_EQ(OpenPostgresCellStore(db_->dsn(), std::string(60, 'r'), true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PostgresStore, RefusesANewerSchema) {
  ASSERT_TRUE(OpenPostgresCellStore(db_->dsn(), "r", true).ok());
  ASSERT_TRUE(OpenPostgresControlStore(db_->dsn(), true).ok());
  db_->Query("INSERT INTO custos_cell_r.schema_migrations VALUES(99, 0) RETURNING version");
  db_->Query("INSERT INTO custos_control.schema_migrations VALUES(99, 0) RETURNING version");
  EXPECT_EQ(OpenPostgresCellStore(db_->dsn(), "r", true).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(OpenPostgresControlStore(db_->dsn(), false).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PostgresStore, MissingSchemaIsNotCreatedUnlessAsked) {
  auto s = OpenPostgresControlStore(db_->dsn(), /*create=*/false);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_TRUE(db_->Query("SELECT 1 FROM pg_namespace WHERE nspname = 'custos_control'").empty());
}

TEST_F(PostgresStore, ConcurrentOpensMigrateOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      if (OpenPostgresCellStore(db_->dsn(), "r", true).ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
  // Each of the cell's two migrations recorded once.
  EXPECT_EQ(db_->Query("SELECT version FROM custos_cell_r.schema_migrations ORDER BY version"),
            (std::vector<std::string>{"1", "2"}));
}

TEST_F(PostgresStore, UnreachableServerIsUnavailable) {
  // A port where nothing listens (bound, never listening).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string dsn =
      "postgresql://postgres@127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/custos";
  auto control = OpenPostgresControlStore(dsn, true);
  auto cell = OpenPostgresCellStore(dsn, "r", true);
  ::close(fd);
  EXPECT_EQ(control.status().code(), absl::StatusCode::kUnavailable) << control.status();
  EXPECT_EQ(cell.status().code(), absl::StatusCode::kUnavailable) << cell.status();
  EXPECT_EQ(control.status().message().find("postgres@"), std::string::npos)
      << "errors must not repeat the connection string";
}

TEST_F(PostgresStore, RecoversByItselfWhenConnectionsAreKilled) {
  auto cell = OpenPostgresCellStore(db_->dsn(), "r", true);
  auto control = OpenPostgresControlStore(db_->dsn(), true);
  ASSERT_TRUE(cell.ok() && control.ok());
  ASSERT_TRUE((*cell)->Apply(PutOne("before")).ok());
  ASSERT_TRUE((*control)->PutSetting("s", "v").ok());
  for (int round = 0; round < 3; ++round) {
    // The server drops every pooled connection (as on a restart): the next calls open new ones.
    EXPECT_GT(db_->KillConnections(), 0);
    EXPECT_TRUE((*cell)->GetObject("t", "before").ok());
    EXPECT_TRUE((*cell)->Apply(PutOne("after" + std::to_string(round))).ok());
    EXPECT_TRUE((*control)->PutSetting("s", "w").ok());
    EXPECT_EQ(*(*control)->GetSetting("s"), "w");
    EXPECT_TRUE(
        (*control)
            ->CommitLedgerBatch(
                {static_cast<uint64_t>(round), static_cast<uint64_t>(round + 1), "f", {}, {}})
            .ok());
  }
  EXPECT_EQ((*cell)->Usage("t")->objects, 4);
}

TEST_F(PostgresStore, HeldLockIsUnavailableThenClears) {
  // A short lock timeout from the DSN (the default is 5 s).
  const std::string dsn = PgDsnWithParam(db_->dsn(), "options=-c%20lock_timeout%3D300",
                                         "options='-c lock_timeout=300'");
  auto cell = OpenPostgresCellStore(dsn, "r", true);
  auto control = OpenPostgresControlStore(dsn, true);
  ASSERT_TRUE(cell.ok() && control.ok()) << cell.status() << control.status();
  pqxx::connection locker(db_->dsn());
  {
    pqxx::work txn(locker);
    txn.exec("LOCK TABLE custos_cell_r.objects, custos_control.ledger_state IN EXCLUSIVE MODE");
    auto r = (*cell)->Apply(PutOne("k"));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
    auto c = (*control)->CommitLedgerBatch({0, 1, "f", {}, {}});
    EXPECT_EQ(c.code(), absl::StatusCode::kUnavailable) << c;
    txn.abort();
  }
  EXPECT_TRUE((*cell)->Apply(PutOne("k")).ok());
  EXPECT_TRUE((*control)->CommitLedgerBatch({0, 1, "f", {}, {}}).ok());
}

// A purge that selected a tombstone and then waits for its row while a put revives the object
// must re-check the row it then finds (READ COMMITTED re-evaluates only the DELETE's own WHERE
// on the newer version): the revived object stays. The put holds its row lock here until the
// purge waits on it, which a race of two loops only rarely hits.
TEST_F(PostgresStore, APurgeWaitingOnARevivedObjectLeavesIt) {
  auto cell = OpenPostgresCellStore(db_->dsn(), "r", true);
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  CellWrite del = custos::testing::Del("t", "k");
  del.object.updated_at_ms = 0;  // a tombstone long past its lifetime
  ASSERT_TRUE((*cell)->Apply(std::vector<CellWrite>{del}).ok());
  pqxx::connection reviver(db_->dsn());
  pqxx::work revive(reviver);
  revive.exec(
      "UPDATE custos_cell_r.objects SET deleted = false, sealed = 'live', updated_at = 1, "
      "stamp = stamp + 1 WHERE tenant_id = 't' AND key = 'k'");
  std::future<absl::StatusOr<int64_t>> purged = std::async(
      std::launch::async, [&] { return (*cell)->PurgeTombstones(int64_t{1} << 60, 100); });
  // Commit only once the purge waits for the row (its snapshot saw the tombstone).
  pqxx::connection watcher(db_->dsn());
  bool waiting = false;
  for (int i = 0; i < 1000 && !waiting; ++i) {
    pqxx::nontransaction q(watcher);
    waiting = q.exec1(
                   "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND query LIKE 'DELETE FROM objects%'")[0]
                  .as<int>() > 0;
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(waiting) << "the purge never waited for the revived row";
  revive.commit();
  auto n = purged.get();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0);
  auto got = (*cell)->GetObject("t", "k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sealed, "live");
}

TEST_F(PostgresStore, ABatchIsAllOrNothing) {
  auto cell = OpenPostgresCellStore(db_->dsn(), "r", true);
  ASSERT_TRUE(cell.ok());
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  // The third write cannot be stored (not valid UTF-8), so the first two must not be either.
  std::vector<CellWrite> batch = PutOne("a");
  batch.push_back(Put(Obj("t", "b")));
  batch.push_back(Put(Obj("t", "bad\xff")));
  auto r = (*cell)->Apply(batch);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_EQ((*cell)->Usage("t")->objects, 0);
  EXPECT_EQ((*cell)->ListDataKeys("t")->at(0).seals, 0);
}

TEST_F(PostgresStore, TextWithNulIsRefusedNotTruncated) {
  auto control = OpenPostgresControlStore(db_->dsn(), true);
  ASSERT_TRUE(control.ok());
  PrincipalRecord p{"p1", std::string("An\0n", 4), "", "operator", "", "h", "{}", 1, {}, false};
  EXPECT_EQ((*control)->InsertPrincipal(p).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*control)->GetPrincipal(std::string("p1\0", 3)).status().code(),
            absl::StatusCode::kNotFound);
}

// A pool of schema pool_test in the test's database.
internal::PgPool::Options TestPoolOptions(const PgTestDatabase& db) {
  internal::PgPool::Options options;
  options.dsn = db.dsn();
  options.schema = "pool_test";
  return options;
}

// Maintenance (the tombstone purge visits every cell) leaves a pool that had no connection open
// without one, and a pool in use as it was.
TEST(PgPool, MaintenanceLeavesAColdPoolCold) {
  auto server = PgServerDsn();
  if (!server) GTEST_SKIP() << "CUSTOS_PG_DSN is not set";
  PgTestDatabase db(*server);
  internal::PgPool::Options options = TestPoolOptions(db);
  options.max_idle = 4;
  auto pool = internal::PgPool::Open(options, {}, /*create=*/true);
  ASSERT_TRUE(pool.ok()) << pool.status();
  ASSERT_EQ((*pool)->OpenConnectionsForTest(), 0);
  auto one = [](pqxx::nontransaction& txn) -> absl::Status {
    txn.exec("SELECT 1");
    return absl::OkStatus();
  };
  ASSERT_TRUE((*pool)->MaintenanceStatement("maintain", one).ok());
  EXPECT_EQ((*pool)->OpenConnectionsForTest(), 0);
  ASSERT_TRUE((*pool)->Read("read", one).ok());
  EXPECT_EQ((*pool)->OpenConnectionsForTest(), 1);  // kept for the next request
  ASSERT_TRUE((*pool)->MaintenanceStatement("maintain", one).ok());
  EXPECT_EQ((*pool)->OpenConnectionsForTest(), 1);
  ASSERT_TRUE((*pool)->Read("read", one).ok());
  EXPECT_EQ((*pool)->OpenConnectionsForTest(), 1);
}

TEST(PgPool, IsBoundedAndAnswersUnavailableWhenExhausted) {
  auto server = PgServerDsn();
  if (!server) GTEST_SKIP() << "CUSTOS_PG_DSN is not set";
  PgTestDatabase db(*server);
  internal::PgPool::Options options = TestPoolOptions(db);
  options.max_connections = 2;
  options.acquire_timeout = absl::Milliseconds(200);
  auto pool = internal::PgPool::Open(options, {}, /*create=*/true);
  ASSERT_TRUE(pool.ok()) << pool.status();
  // A shared_future rather than absl::Notification: Debian's abseil is not TSan-instrumented.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> holding{0};
  std::vector<std::thread> holders;
  for (int i = 0; i < 2; ++i) {
    holders.emplace_back([&] {
      auto s = (*pool)->Read("hold", [&](pqxx::nontransaction& txn) -> absl::Status {
        txn.exec("SELECT 1");
        ++holding;
        released.wait();
        return absl::OkStatus();
      });
      EXPECT_TRUE(s.ok()) << s;
    });
  }
  while (holding.load() < 2) std::this_thread::yield();
  auto busy = (*pool)->Read("third", [](pqxx::nontransaction&) { return absl::OkStatus(); });
  EXPECT_EQ(busy.code(), absl::StatusCode::kUnavailable) << busy;
  EXPECT_EQ((*pool)->OpenConnectionsForTest(), 2);
  release.set_value();
  for (auto& t : holders) t.join();
  EXPECT_TRUE((*pool)->Read("after", [](pqxx::nontransaction&) { return absl::OkStatus(); }).ok());
  // An exception inside an operation becomes a status; the pool stays usable.
  auto bad = (*pool)->Write("bad sql", [](pqxx::work& txn) -> absl::Status {
    txn.exec("SELECT * FROM no_such_table");
    return absl::OkStatus();
  });
  EXPECT_EQ(bad.code(), absl::StatusCode::kInternal) << bad;
  auto dup = (*pool)->Write("duplicate", [](pqxx::work& txn) -> absl::Status {
    txn.exec(
        "CREATE TABLE u(x INT PRIMARY KEY); INSERT INTO u VALUES (1); INSERT INTO u VALUES (1)");
    return absl::OkStatus();
  });
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists) << dup;
}

TEST(PgPool, BoundsEveryStatementByItsTimeout) {
  auto server = PgServerDsn();
  if (!server) GTEST_SKIP() << "CUSTOS_PG_DSN is not set";
  PgTestDatabase db(*server);
  internal::PgPool::Options options;
  options.dsn = db.dsn();
  options.schema = "timeout_test";
  options.statement_timeout = absl::Milliseconds(300);
  auto pool = internal::PgPool::Open(options, {}, /*create=*/true);
  ASSERT_TRUE(pool.ok()) << pool.status();
  std::string shown;
  auto show = (*pool)->Read("show", [&](pqxx::nontransaction& txn) -> absl::Status {
    shown = txn.exec("SHOW statement_timeout")[0][0].as<std::string>();
    return absl::OkStatus();
  });
  ASSERT_TRUE(show.ok()) << show;
  EXPECT_EQ(shown, "300ms");
  auto slow = (*pool)->Read("slow", [](pqxx::nontransaction& txn) -> absl::Status {
    txn.exec("SELECT pg_sleep(3)");
    return absl::OkStatus();
  });
  EXPECT_EQ(slow.code(), absl::StatusCode::kUnavailable) << slow;
}

TEST(PgDsn, DefaultsAreAddedUnlessGiven) {
  using internal::DsnWithDefaults;
  constexpr std::string_view kTcp =
      "tcp_user_timeout=10000&keepalives_idle=10&keepalives_interval=5&keepalives_count=2";
  EXPECT_EQ(DsnWithDefaults("postgresql://u@h:5/db"),
            StrCat("postgresql://u@h:5/db?connect_timeout=5&", kTcp, "&application_name=custos"));
  EXPECT_EQ(DsnWithDefaults("postgresql://u@h/db?sslmode=disable&connect_timeout=2"),
            StrCat("postgresql://u@h/db?sslmode=disable&connect_timeout=2&", kTcp,
                   "&application_name=custos"));
  EXPECT_EQ(DsnWithDefaults("host=h dbname=db keepalives_idle=60"),
            "host=h dbname=db keepalives_idle=60 connect_timeout=5 tcp_user_timeout=10000 "
            "keepalives_interval=5 keepalives_count=2 application_name=custos");
  EXPECT_EQ(internal::QuoteIdentifier("a\"b"), "\"a\"\"b\"");
}

}  // namespace
}  // namespace custos::store
