// The reader connections of store::internal::Database: exclusive to one reader at a time, and
// kept by one thread while there are no more reading threads than connections.
#include "store/internal/sqlite_db.h"

#include <array>
#include <atomic>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "base/blocking.h"
#include "gtest/gtest.h"
#include "testing/temp_dir.h"

namespace custos::store::internal {
namespace {

using custos::testing::TempDir;

constexpr std::array<Database::Migration, 1> kSchema = {{
    {1,
     "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT NOT NULL);"
     "INSERT INTO t VALUES(1, 'one');"},
}};

std::unique_ptr<Database> OpenTestDatabase(const TempDir& dir, int readers) {
  auto db = Database::Open(dir.path() + "/t.db", /*create=*/true, kSchema,
                           /*secure_delete=*/false, readers);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? std::move(*db) : nullptr;
}

absl::StatusOr<std::string> ReadOne(Connection& c) {
  auto s = c.Prepare("SELECT v FROM t WHERE k = 1");
  if (!s.ok()) return s.status();
  auto row = s->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError("no row");
  return s->Text(0);
}

// On a thread that must not block (an I/O thread running a route's start), neither a read nor
// a write touches the file: both say they would block, and the write leaves the row as it was.
TEST(SqliteDatabase, ReadsAndWritesRefuseToBlockInANonBlockingScope) {
  TempDir dir;
  auto db = OpenTestDatabase(dir, /*readers=*/2);
  ASSERT_NE(db, nullptr);
  {
    NonBlockingScope io_thread;
    EXPECT_TRUE(IsWouldBlock(db->Read(ReadOne).status()));
    EXPECT_TRUE(IsWouldBlock(db->WriteTransaction(
        [](Connection& c) { return c.Exec("UPDATE t SET v = 'changed' WHERE k = 1"); })));
  }
  auto v = db->Read(ReadOne);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "one");
  EXPECT_FALSE(IsWouldBlock(absl::UnavailableError("an outage")));
}

// Connections are opened without SQLite's own mutex: two threads on one at once would corrupt
// it. More threads than connections must queue for them, never share one, and all get answers.
TEST(SqliteDatabase, NoTwoReadersShareAConnectionAtOnce) {
  TempDir dir;
  auto db = OpenTestDatabase(dir, /*readers=*/2);
  ASSERT_NE(db, nullptr);
  std::mutex mu;
  std::map<Connection*, int> users;  // guarded by mu
  std::atomic<int> shared{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        auto v = db->Read([&](Connection& c) -> absl::StatusOr<std::string> {
          {
            std::lock_guard lock(mu);
            if (++users[&c] > 1) shared.fetch_add(1);
          }
          std::this_thread::yield();
          auto r = ReadOne(c);
          std::lock_guard lock(mu);
          --users[&c];
          return r;
        });
        if (!v.ok() || *v != "one") failed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  std::lock_guard lock(mu);
  EXPECT_LE(users.size(), 2u) << "more connections than reader slots";
}

// The point of the slots: with no more reading threads than connections, a thread reads on the
// same connection every time (its page cache stays warm and no lock is contended), where a
// shared pool handed connections from thread to thread.
TEST(SqliteDatabase, EachReadingThreadKeepsItsOwnConnection) {
  TempDir dir;
  auto db = OpenTestDatabase(dir, /*readers=*/4);
  ASSERT_NE(db, nullptr);
  std::array<std::set<Connection*>, 4> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        auto v = db->Read([&](Connection& c) -> absl::StatusOr<std::string> {
          seen[t].insert(&c);
          return ReadOne(c);
        });
        ASSERT_TRUE(v.ok()) << v.status();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<Connection*> all;
  for (const auto& s : seen) {
    EXPECT_EQ(s.size(), 1u);
    all.insert(s.begin(), s.end());
  }
  EXPECT_EQ(all.size(), 4u);
}

// When every connection is taken, a reader takes whichever is freed first, not only the one its
// thread starts at: one freed connection serves all the waiting readers in turn.
TEST(SqliteDatabase, WaitingReadersTakeWhicheverConnectionIsFreedFirst) {
  TempDir dir;
  auto db = OpenTestDatabase(dir, /*readers=*/4);
  ASSERT_NE(db, nullptr);
  std::vector<std::promise<void>> release(4);
  std::atomic<int> holding{0};
  std::vector<std::thread> holders;
  for (int h = 0; h < 4; ++h) {
    holders.emplace_back([&, done = release[h].get_future()] {
      auto v = db->Read([&](Connection& c) -> absl::StatusOr<std::string> {
        holding.fetch_add(1);
        done.wait();
        return ReadOne(c);
      });
      EXPECT_TRUE(v.ok()) << v.status();
    });
  }
  while (holding.load() < 4) std::this_thread::yield();
  std::atomic<int> answered{0};
  std::vector<std::thread> waiters;
  for (int w = 0; w < 8; ++w) {
    waiters.emplace_back([&] {
      auto v = db->Read([](Connection& c) { return ReadOne(c); });
      EXPECT_TRUE(v.ok() && *v == "one") << v.status();
      answered.fetch_add(1);
    });
  }
  release[0].set_value();  // one connection freed; three stay held
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  while (answered.load() < 8 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(answered.load(), 8) << "readers waited for a connection other than the freed one";
  for (size_t h = 1; h < release.size(); ++h) release[h].set_value();
  for (auto& t : holders) t.join();
  for (auto& t : waiters) t.join();
}

}  // namespace
}  // namespace custos::store::internal
