// The store contract (store/store.h), run on every backend: SQLite files in a temp dir, and a
// fresh PostgreSQL database when CUSTOS_PG_DSN names a server (skipped otherwise).
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "testing/pg_test_db.h"
#include "testing/store_records.h"
#include "testing/temp_dir.h"

namespace custos::store {
namespace {

using custos::testing::PgServerDsn;
using custos::testing::PgTestDatabase;
using custos::testing::TempDir;

enum class Backend { kSqlite, kPostgres };

using custos::testing::Del;
using custos::testing::Obj;
using custos::testing::Put;

std::vector<std::string> Keys(const absl::StatusOr<std::vector<StoredObject>>& page) {
  std::vector<std::string> out;
  if (!page.ok()) return {"error: " + std::string(page.status().message())};
  for (const auto& o : *page) out.push_back(o.key);
  return out;
}

class StoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kPostgres) {
      auto server = PgServerDsn();
      if (!server) GTEST_SKIP() << "CUSTOS_PG_DSN is not set (scripts/with-postgres sets it)";
      pg_ = std::make_unique<PgTestDatabase>(*server);
    }
  }

  absl::StatusOr<std::unique_ptr<ControlStore>> OpenControl(bool create = true) {
    if (pg_) return OpenPostgresControlStore(pg_->dsn(), create);
    return OpenSqliteControlStore(dir_.File("control.db"), create);
  }

  absl::StatusOr<std::unique_ptr<CellStore>> OpenCell(const std::string& region,
                                                      bool create = true) {
    if (pg_) return OpenPostgresCellStore(pg_->dsn(), region, create);
    return OpenSqliteCellStore(dir_.File(region + ".db"), region, create);
  }

  TempDir dir_;
  std::unique_ptr<PgTestDatabase> pg_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const auto& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

// --- cells ------------------------------------------------------------------------------------

TEST_P(StoreContract, CellAppliesABatchInOrderWithVersionsAndCountsSeals) {
  auto cell = OpenCell("eu-west");
  ASSERT_TRUE(cell.ok()) << cell.status();
  EXPECT_EQ((*cell)->region(), "eu-west");
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
  EXPECT_EQ((*r)[3].version, 0);
  EXPECT_TRUE((*r)[3].existed);
  EXPECT_FALSE((*r)[4].existed);
  auto keys = (*cell)->ListDataKeys("t");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ((*keys)[0].seals, 3);  // every put counted against its data key
  EXPECT_EQ((*cell)->GetObject("t", "b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*cell)->GetObject("t", "a")->version, 2);
  // A key deleted and written again starts over at version 1.
  r = (*cell)->Apply(std::vector<CellWrite>{Put(Obj("t", "b"))});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].version, 1);
  EXPECT_FALSE((*r)[0].existed);
}

// Long batches of distinct objects across tenants (PostgreSQL writes them several rows per
// statement), with objects already stored, an object written twice and a delete in between:
// each write gets its own version and content, in batch order.
TEST_P(StoreContract, CellAppliesLongBatchesWriteByWrite) {
  auto cell = OpenCell("eu-west");
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "wrapped", 0, 0}).ok());
  ASSERT_TRUE((*cell)->PutDataKey({"u", 1, "wrapped", 0, 0}).ok());
  // Stored before: two objects the batch writes again, and ("t","k003"), which it does not (it
  // writes ("u","k003")).
  ASSERT_TRUE((*cell)
                  ->Apply(std::vector<CellWrite>{Put(Obj("t", "k040")), Put(Obj("u", "k003")),
                                                 Put(Obj("t", "k003"))})
                  .ok());
  std::vector<CellWrite> batch;
  for (int i = 0; i < 75; ++i) {
    std::string key = absl::StrFormat("k%03d", i);
    batch.push_back(Put(Obj(i % 2 == 0 ? "t" : "u", key, "content of " + key)));
  }
  batch.push_back(Put(Obj("t", "k000", "second")));  // again, in the same batch
  batch.push_back(Del("u", "k001"));
  batch.push_back(Put(Obj("u", "k001", "back")));
  auto r = (*cell)->Apply(batch);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), batch.size());
  for (int i = 0; i < 75; ++i) {
    const bool stored_before = (i == 40 || i == 3);
    SCOPED_TRACE(i);
    EXPECT_EQ((*r)[i].version, stored_before ? 2 : 1);
    EXPECT_EQ((*r)[i].existed, stored_before);
  }
  EXPECT_EQ((*r)[75].version, 2);
  EXPECT_TRUE((*r)[75].existed);
  EXPECT_TRUE((*r)[76].existed);
  EXPECT_EQ((*r)[77].version, 1);
  EXPECT_FALSE((*r)[77].existed);
  EXPECT_EQ((*cell)->GetObject("t", "k000")->sealed, "second");
  EXPECT_EQ((*cell)->GetObject("u", "k001")->sealed, "back");
  EXPECT_EQ((*cell)->GetObject("t", "k074")->sealed, "content of k074");
  EXPECT_EQ((*cell)->GetObject("u", "k073")->sealed, "content of k073");
  EXPECT_EQ((*cell)->GetObject("t", "k003")->version, 1);
  EXPECT_EQ((*cell)->GetObject("t", "k001").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*cell)->Usage("t")->objects, 39);  // 38 even keys and k003
  EXPECT_EQ((*cell)->Usage("u")->objects, 37);
  // Every put counted against its tenant's data key: 2 + 38 + 1 for t, 1 + 37 + 1 for u.
  EXPECT_EQ((*cell)->ListDataKeys("t")->at(0).seals, 41);
  EXPECT_EQ((*cell)->ListDataKeys("u")->at(0).seals, 39);
}

TEST_P(StoreContract, CellKeepsBinaryContentExactly) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 3);
  ASSERT_TRUE(
      (*cell)
          ->Apply(std::vector<CellWrite>{Put(Obj("t", "all", all)), Put(Obj("t", "big", big)),
                                         Put(Obj("t", "empty", ""))})
          .ok());
  EXPECT_EQ((*cell)->GetObject("t", "all")->sealed, all);
  EXPECT_EQ((*cell)->GetObject("t", "big")->sealed, big);
  EXPECT_EQ((*cell)->GetObject("t", "empty")->sealed, "");
  auto usage = (*cell)->Usage("t");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->objects, 3);
  EXPECT_EQ(usage->bytes, static_cast<int64_t>(all.size() + big.size()));
  ASSERT_TRUE((*cell)->PutDataKey({"t", 7, all, 0, 42}).ok());
  EXPECT_EQ((*cell)->ListDataKeys("t")->at(0).wrapped, all);
}

TEST_P(StoreContract, CellListsByPrefixAndCursorPerTenant) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  std::vector<CellWrite> batch;
  for (const char* k : {"a/1", "a/2", "a/3", "b/1", "a"}) batch.push_back(Put(Obj("t", k)));
  batch.push_back(Put(Obj("other", "a/4")));
  ASSERT_TRUE((*cell)->Apply(batch).ok());
  auto page = (*cell)->ListObjects("t", "a/", "", 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(Keys(page), (std::vector<std::string>{"a/1", "a/2"}));
  EXPECT_TRUE((*page)[0].sealed.empty());  // listings carry no content
  EXPECT_EQ((*page)[0].version, 1);
  EXPECT_EQ((*page)[0].content_type, "text/plain");
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "a/", "a/2", 10)), std::vector<std::string>{"a/3"});
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "a/", "zzz", 10)), std::vector<std::string>{});
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "b", "a/9", 10)), std::vector<std::string>{"b/1"});
  EXPECT_EQ((*cell)->ListObjects("t", "", "", 100)->size(), 5u);
  EXPECT_EQ(Keys((*cell)->ListObjects("nobody", "", "", 100)), std::vector<std::string>{});
  auto usage = (*cell)->Usage("t");
  EXPECT_EQ(usage->objects, 5);
  EXPECT_EQ(usage->bytes, 5 * 6);
}

TEST_P(StoreContract, CellOrdersAndMatchesPrefixesBytewise) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  // Bytewise order: 'Z' < 'a' < '~' < U+00E9 (C3 A9) < U+00FF (C3 BF) < U+0100 (C4 80)
  // < U+FFFF (EF BF BF) < U+10000 (F0 90 80 80) < U+10FFFF (F4 8F BF BF).
  const std::vector<std::string> keys = {"p/Z",
                                         "p/a",
                                         "p/~",
                                         "p/\xc3\xa9",
                                         "p/\xc3\xbf",
                                         "p/\xc4\x80",
                                         "p/\xef\xbf\xbf",
                                         "p/\xf0\x90\x80\x80",
                                         "p/\xf4\x8f\xbf\xbf",
                                         "p/\xf4\x8f\xbf\xbf/x",
                                         "q"};
  std::vector<CellWrite> batch;
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) batch.push_back(Put(Obj("t", *it)));
  ASSERT_TRUE((*cell)->Apply(batch).ok());
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "", "", 100)), keys);
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "p/\xc3\xbf", "", 100)),
            std::vector<std::string>{"p/\xc3\xbf"});
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "p/\xef\xbf\xbf", "", 100)),
            std::vector<std::string>{"p/\xef\xbf\xbf"});
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "p/\xf4\x8f\xbf\xbf", "", 100)),
            (std::vector<std::string>{"p/\xf4\x8f\xbf\xbf", "p/\xf4\x8f\xbf\xbf/x"}));
  // A prefix that ends inside a character matches the keys whose bytes start with it.
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "p/\xc3", "", 100)),
            (std::vector<std::string>{"p/\xc3\xa9", "p/\xc3\xbf"}));
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "p/\xc3", "p/\xc3\xa9", 100)),
            std::vector<std::string>{"p/\xc3\xbf"});
  // Prefixes are literal, not patterns.
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "p/%", "", 100)), std::vector<std::string>{});
  EXPECT_EQ(Keys((*cell)->ListObjects("t", "p/_", "", 100)), std::vector<std::string>{});
}

TEST_P(StoreContract, CellDataKeysAreVersionedAndUnique) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 2, "w2", 5, 20}).ok());
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w1", 0, 10}).ok());
  ASSERT_TRUE((*cell)->PutDataKey({"u", 1, "u1", 0, 10}).ok());
  EXPECT_EQ((*cell)->PutDataKey({"t", 2, "again", 0, 30}).code(), absl::StatusCode::kAlreadyExists);
  auto keys = (*cell)->ListDataKeys("t");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].version, 1);
  EXPECT_EQ((*keys)[1].wrapped, "w2");
  EXPECT_EQ((*keys)[1].seals, 5);
  EXPECT_EQ((*keys)[1].created_at, 20);
}

TEST_P(StoreContract, CellReopensWithItsData) {
  {
    auto cell = OpenCell("r");
    ASSERT_TRUE(cell.ok()) << cell.status();
    ASSERT_TRUE((*cell)->Apply(std::vector<CellWrite>{Put(Obj("t", "k"))}).ok());
  }
  auto cell = OpenCell("r", /*create=*/false);
  ASSERT_TRUE(cell.ok()) << cell.status();
  EXPECT_TRUE((*cell)->GetObject("t", "k").ok());
  // Other regions are other stores.
  auto other = OpenCell("r2");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->GetObject("t", "k").status().code(), absl::StatusCode::kNotFound);
}

// Writes of one object are applied by stamp, not by arrival: a write that reaches the cell
// after a later-stamped one (a put's or a delete's) changes nothing and names the later stamp.
TEST_P(StoreContract, CellAppliesAWriteOnlyOverALowerStamp) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  auto one = [&](CellWrite w) {
    auto r = (*cell)->Apply(std::vector<CellWrite>{std::move(w)});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->at(0) : CellWriteResult{};
  };
  // A delete, then a put stamped before it arrives late: the object stays deleted.
  EXPECT_TRUE(one(Put(Obj("t", "a", "first"), 10)).applied);
  CellWriteResult r = one(Del("t", "a", 30));
  EXPECT_TRUE(r.applied);
  EXPECT_TRUE(r.existed);
  r = one(Put(Obj("t", "a", "late"), 20));
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(r.held_stamp, 30);
  EXPECT_EQ((*cell)->GetObject("t", "a").status().code(), absl::StatusCode::kNotFound);
  // A put, then a delete stamped before it: the object stays.
  EXPECT_TRUE(one(Put(Obj("t", "b", "kept"), 50)).applied);
  r = one(Del("t", "b", 40));
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(r.held_stamp, 50);
  EXPECT_EQ((*cell)->GetObject("t", "b")->sealed, "kept");
  // Two puts out of order: the later-stamped content stays, and the early one counts no seal.
  r = one(Put(Obj("t", "b", "older"), 45));
  EXPECT_FALSE(r.applied);
  EXPECT_EQ((*cell)->GetObject("t", "b")->sealed, "kept");
  EXPECT_EQ((*cell)->ListDataKeys("t")->at(0).seals, 2);
  // A delete of an object the cell never held still orders: an earlier put arriving later
  // does not create it.
  r = one(Del("t", "c", 70));
  EXPECT_TRUE(r.applied);
  EXPECT_FALSE(r.existed);
  EXPECT_FALSE(one(Put(Obj("t", "c"), 60)).applied);
  // Tombstones are not objects: not read, listed or counted; deleting one again finds nothing.
  EXPECT_EQ((*cell)->GetObject("t", "c").status().code(), absl::StatusCode::kNotFound);
  auto listed = (*cell)->ListObjects("t", "", "", 10);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, "b");
  EXPECT_EQ((*cell)->Usage("t")->objects, 1);
  EXPECT_EQ((*cell)->Usage("t")->bytes, 4);
  r = one(Del("t", "a", 80));
  EXPECT_TRUE(r.applied);
  EXPECT_FALSE(r.existed);
  // A later put revives the object at version 1.
  r = one(Put(Obj("t", "a", "again"), 90));
  EXPECT_TRUE(r.applied);
  EXPECT_EQ(r.version, 1);
  EXPECT_FALSE(r.existed);
  EXPECT_EQ((*cell)->GetObject("t", "a")->sealed, "again");
}

// Tombstones deleted before the cutoff are removed, at most `limit` per call; newer ones, and
// objects, stay. Once its tombstone is gone, an object no longer orders late writes.
TEST_P(StoreContract, CellPurgesTombstonesOlderThanTheCutoff) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  auto deleted_at = [](std::string key, int64_t ms, int64_t stamp) {
    CellWrite d = Del("t", std::move(key), stamp);
    d.object.updated_at_ms = ms;
    return d;
  };
  std::vector<CellWrite> batch = {Put(Obj("t", "live"), 5), deleted_at("old1", 1000, 10),
                                  deleted_at("old2", 1500, 11), deleted_at("old3", 1900, 12),
                                  deleted_at("new", 5000, 13)};
  ASSERT_TRUE((*cell)->Apply(batch).ok());
  auto purged = (*cell)->PurgeTombstones(2000, 2);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 2);
  purged = (*cell)->PurgeTombstones(2000, 100);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 1);
  EXPECT_EQ(*(*cell)->PurgeTombstones(2000, 100), 0);
  EXPECT_TRUE((*cell)->GetObject("t", "live").ok());
  auto one = [&](CellWrite w) { return (*cell)->Apply(std::vector<CellWrite>{std::move(w)}); };
  EXPECT_FALSE(one(Put(Obj("t", "new"), 1))->at(0).applied);  // its tombstone is kept
  auto revived = one(Put(Obj("t", "old1"), 1));               // its tombstone is gone
  ASSERT_TRUE(revived.ok());
  EXPECT_TRUE(revived->at(0).applied);
}

// Writes of one object from many threads, stamped before they race to the cell: each applies
// only over a lower stamp. The applied ones get distinct versions 1..n, each refused one names a
// later stamp the cell held, and the object ends as the highest stamp's write left it.
TEST_P(StoreContract, ConcurrentWritesToOneKeyAreOrderedByStamp) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  std::vector<std::thread> threads;
  std::vector<int64_t> stamps(8 * 5);
  std::vector<absl::StatusOr<std::vector<CellWriteResult>>> results(8 * 5);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        const int64_t stamp = custos::testing::LatestStamp();
        stamps[t * 5 + i] = stamp;
        results[t * 5 + i] =
            (*cell)->Apply(std::vector<CellWrite>{Put(Obj("t", "hot", StrCat("s", stamp)), stamp)});
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<int64_t> versions;
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    const CellWriteResult& r = results[i]->at(0);
    if (r.applied) {
      versions.push_back(r.version);
    } else {
      EXPECT_GT(r.held_stamp, stamps[i]);
    }
  }
  std::sort(versions.begin(), versions.end());
  for (size_t i = 0; i < versions.size(); ++i) EXPECT_EQ(versions[i], static_cast<int64_t>(i + 1));
  EXPECT_EQ((*cell)->GetObject("t", "hot")->sealed,
            StrCat("s", *std::max_element(stamps.begin(), stamps.end())));
  EXPECT_EQ((*cell)->ListDataKeys("t")->at(0).seals, static_cast<int64_t>(versions.size()));
}

// Puts and deletes of one object through two connections at once (two instances), each stamped
// before it races to the cell: the object ends as the highest stamp's write left it, and each
// refused write names a later stamp.
TEST_P(StoreContract, PutsAndDeletesRacingFromTwoConnectionsEndByTheHighestStamp) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  auto cell2 = OpenCell("r", false);
  ASSERT_TRUE(cell2.ok()) << cell2.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  for (int round = 0; round < 20; ++round) {
    const std::string key = StrCat("k", round);
    std::mutex mu;
    int64_t max_stamp = 0;  // guarded by mu
    bool max_is_delete = false;
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t) {
      threads.emplace_back([&, t] {
        CellStore& c = t % 2 == 0 ? **cell : **cell2;
        for (int i = 0; i < 6; ++i) {
          const bool del = (i + t) % 3 == 0;
          int64_t stamp;
          {
            std::lock_guard lock(mu);
            stamp = custos::testing::LatestStamp();
            max_stamp = stamp;
            max_is_delete = del;
          }
          auto r = c.Apply(std::vector<CellWrite>{
              del ? Del("t", key, stamp) : Put(Obj("t", key, StrCat("s", stamp)), stamp)});
          if (!r.ok() || (!r->at(0).applied && r->at(0).held_stamp <= stamp)) ++errors;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(errors.load(), 0);
    auto got = (*cell)->GetObject("t", key);
    if (max_is_delete) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound) << key;
    } else {
      ASSERT_TRUE(got.ok()) << key << " " << got.status();
      EXPECT_EQ(got->sealed, StrCat("s", max_stamp)) << key;
    }
  }
}

// The purge removes only rows still deleted when it deletes them: a put that revives a key
// between the purge's choice of rows and its delete survives.
TEST_P(StoreContract, PurgeNeverRemovesAnObjectRevivedMeanwhile) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  auto cell2 = OpenCell("r", false);
  ASSERT_TRUE(cell2.ok()) << cell2.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  std::atomic<bool> stop{false};
  std::thread purger([&] {
    while (!stop) (void)(*cell2)->PurgeTombstones(int64_t{1} << 60, 1000);
  });
  int lost = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string key = StrCat("k", i % 10);
    CellWrite d = Del("t", key);
    d.object.updated_at_ms = 0;
    ASSERT_TRUE((*cell)->Apply(std::vector<CellWrite>{d}).ok());
    auto r = (*cell)->Apply(std::vector<CellWrite>{Put(Obj("t", key, "live"))});
    ASSERT_TRUE(r.ok()) << r.status();
    if (!(*cell)->GetObject("t", key).ok()) ++lost;
  }
  stop = true;
  purger.join();
  EXPECT_EQ(lost, 0);
}

// A batch with a refused write among applied ones (PostgreSQL: one multi-row statement for the
// puts; with a delete, a transaction): each write gets its own result, and only applied puts
// count seals. Tombstones stay out of listings by prefix, by cursor and by a prefix that ends
// inside a character.
TEST_P(StoreContract, BatchesWithRefusedWritesAndListingsSkipTombstones) {
  auto cell = OpenCell("r");
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  ASSERT_TRUE((*cell)->Apply(std::vector<CellWrite>{Put(Obj("t", "b", "held"), 100)}).ok());
  auto r = (*cell)->Apply(std::vector<CellWrite>{
      Put(Obj("t", "a", "x"), 50), Put(Obj("t", "b", "old"), 60), Put(Obj("t", "c", "y"), 70)});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->at(0).applied);
  EXPECT_FALSE(r->at(1).applied);
  EXPECT_EQ(r->at(1).held_stamp, 100);
  EXPECT_TRUE(r->at(2).applied);
  EXPECT_EQ((*cell)->GetObject("t", "b")->sealed, "held");
  EXPECT_EQ((*cell)->ListDataKeys("t")->at(0).seals, 3);
  r = (*cell)->Apply(std::vector<CellWrite>{Del("t", "c", 80), Put(Obj("t", "a", "z"), 40),
                                            Put(Obj("t", "d", "w"), 90), Del("t", "b", 95)});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->at(0).applied);
  EXPECT_FALSE(r->at(1).applied);
  EXPECT_EQ(r->at(1).held_stamp, 50);
  EXPECT_TRUE(r->at(2).applied);
  EXPECT_FALSE(r->at(3).applied);  // b's put at 100 is later
  EXPECT_EQ((*cell)->ListDataKeys("t")->at(0).seals, 4);
  // Listings: x/1, x/3 and "\xc3\xa9" (é) live; x/2 and "\xc3\xa8" (è) deleted.
  ASSERT_TRUE((*cell)
                  ->Apply(std::vector<CellWrite>{Put(Obj("t", "x/1")), Put(Obj("t", "x/2")),
                                                 Put(Obj("t", "x/3")), Put(Obj("t", "\xc3\xa9")),
                                                 Put(Obj("t", "\xc3\xa8")), Del("t", "x/2"),
                                                 Del("t", "\xc3\xa8")})
                  .ok());
  auto keys = [&](std::string_view prefix, std::string_view after) {
    std::vector<std::string> out;
    auto page = (*cell)->ListObjects("t", prefix, after, 10);
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const auto& o : *page) out.push_back(o.key);
    }
    return out;
  };
  EXPECT_EQ(keys("x/", ""), (std::vector<std::string>{"x/1", "x/3"}));
  EXPECT_EQ(keys("x/", "x/1"), (std::vector<std::string>{"x/3"}));
  EXPECT_EQ(keys("\xc3", ""), (std::vector<std::string>{"\xc3\xa9"}));
  EXPECT_EQ(keys("", "x/"), (std::vector<std::string>{"x/1", "x/3", "\xc3\xa9"}));
}

// --- control ----------------------------------------------------------------------------------

TEST_P(StoreContract, ControlPrincipalsTenantsAndSettings) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  PrincipalRecord p{"p1", "Ann", "", "operator", "", "hash1", "{}", 10, 20, false};
  ASSERT_TRUE((*s)->InsertPrincipal(p).ok());
  EXPECT_EQ((*s)->InsertPrincipal(p).code(), absl::StatusCode::kAlreadyExists);
  PrincipalRecord same_token = p;
  same_token.id = "p2";
  EXPECT_EQ((*s)->InsertPrincipal(same_token).code(), absl::StatusCode::kAlreadyExists);
  auto found = (*s)->FindPrincipalByTokenHash("hash1");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->id, "p1");
  EXPECT_EQ(found->name, "Ann");
  EXPECT_EQ(found->tenant_id, "");
  EXPECT_EQ(found->sealed_name, "");
  EXPECT_FALSE(found->disabled);
  EXPECT_EQ((*s)->GetPrincipal("p1")->expires_at, 20);
  EXPECT_EQ((*s)->GetPrincipal("nope").status().code(), absl::StatusCode::kNotFound);
  // Rotation and disabling: the old hash finds nobody, the new one finds the principal.
  ASSERT_TRUE((*s)->SetPrincipalCredential("p1", "hash1b", false).ok());
  EXPECT_EQ((*s)->FindPrincipalByTokenHash("hash1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*s)->FindPrincipalByTokenHash("hash1b")->id, "p1");
  ASSERT_TRUE((*s)->SetPrincipalCredential("p1", "hash1b", true).ok());
  EXPECT_TRUE((*s)->GetPrincipal("p1")->disabled);
  ASSERT_TRUE((*s)->SetPrincipalCredential("p1", "hash1", false).ok());
  EXPECT_FALSE((*s)->FindPrincipalByTokenHash("hash1")->disabled);
  EXPECT_EQ((*s)->SetPrincipalCredential("nope", "hash9", false).code(),
            absl::StatusCode::kNotFound);
  PrincipalRecord tenant_user{"p3",         "",      std::string("\0\xffname", 6), "tenant_user",
                              "t1",         "hash3", R"({"screened":true})",       11,
                              std::nullopt, true};
  ASSERT_TRUE((*s)->InsertPrincipal(tenant_user).ok());
  auto p3 = (*s)->GetPrincipal("p3");
  ASSERT_TRUE(p3.ok());
  EXPECT_EQ(p3->sealed_name, tenant_user.sealed_name);
  EXPECT_EQ(p3->tenant_id, "t1");
  EXPECT_EQ(p3->attributes_json, tenant_user.attributes_json);
  EXPECT_FALSE(p3->expires_at.has_value());
  EXPECT_TRUE(p3->disabled);

  // A tenant is stored with its first admin, or neither is.
  auto admin_of = [](const std::string& tenant_id, const std::string& id, std::string hash) {
    return PrincipalRecord{id,   "", "sealed",     "tenant_admin", tenant_id, std::move(hash),
                           "{}", 12, std::nullopt, false};
  };
  TenantRecord t{"t1", std::string("\0sealed", 7), "{}", "EU", "eu-west", "", "active", 5};
  ASSERT_TRUE((*s)->InsertTenant(t, admin_of("t1", "a1", "hash-a1")).ok());
  EXPECT_EQ((*s)->GetPrincipal("a1")->tenant_id, "t1");
  EXPECT_EQ((*s)->FindPrincipalByTokenHash("hash-a1")->role, "tenant_admin");
  EXPECT_EQ((*s)->InsertTenant(t, admin_of("t1", "a9", "hash-a9")).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*s)->GetPrincipal("a9").status().code(), absl::StatusCode::kNotFound);
  TenantRecord t0{"t0", "x", "{}", "US", "us-east", "us-west", "active", 5};
  // An admin that cannot be stored (its token hash is taken) leaves no tenant behind.
  EXPECT_EQ((*s)->InsertTenant(t0, admin_of("t0", "a0", "hash-a1")).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*s)->GetTenant("t0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*s)->GetPrincipal("a0").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE((*s)->InsertTenant(t0, admin_of("t0", "a0", "hash-a0")).ok());
  EXPECT_EQ((*s)->GetTenant("t1")->sealed_name, t.sealed_name);
  EXPECT_EQ((*s)->GetTenant("t0")->replica_region, "us-west");
  EXPECT_EQ((*s)->GetTenant("t9").status().code(), absl::StatusCode::kNotFound);
  auto all = (*s)->ListTenants();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "t0");  // by creation time, then id

  EXPECT_EQ((*s)->GetSetting("origin").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE((*s)->PutSetting("origin", "a").ok());
  ASSERT_TRUE((*s)->PutSetting("origin", "b").ok());
  EXPECT_EQ(*(*s)->GetSetting("origin"), "b");
  const std::string sealed("\0\x01\xfe\xff", 4);
  ASSERT_TRUE((*s)->PutSetting("key", sealed).ok());
  EXPECT_EQ(*(*s)->GetSetting("key"), sealed);
}

LedgerBatch Batch(uint64_t old_size, uint64_t new_size) {
  LedgerBatch b;
  b.old_size = old_size;
  b.new_size = new_size;
  b.frontier = "frontier@" + std::to_string(new_size);
  const auto start = static_cast<uint32_t>(old_size);
  b.tiles.push_back({-1, 0, "bundle@" + std::to_string(new_size), start});
  b.tiles.push_back({0, 0, std::string(32 * (new_size - old_size), '\x01'), start});
  return b;
}

TEST_P(StoreContract, LedgerBatchesExtendTheStoredSizeOnly) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  auto state = (*s)->LoadLedgerState();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->size, 0u);
  EXPECT_EQ(state->frontier, "");
  EXPECT_EQ((*s)->ReadLedgerTile(-1, 0).status().code(), absl::StatusCode::kNotFound);

  LedgerBatch b1 = Batch(0, 2);
  b1.records.push_back({"tenant-a", 0, 1, std::string("\0rec", 4)});
  ASSERT_TRUE((*s)->CommitLedgerBatch(b1).ok());
  // A second sequencer that did not see b1 is refused, and nothing of its batch lands.
  LedgerBatch stale = Batch(0, 1);
  stale.tiles.push_back({1, 0, "stale"});
  EXPECT_EQ((*s)->CommitLedgerBatch(stale).code(), absl::StatusCode::kAborted);
  EXPECT_EQ((*s)->ReadLedgerTile(1, 0).status().code(), absl::StatusCode::kNotFound);

  LedgerBatch b2 = Batch(2, 3);
  b2.records.push_back({"tenant-a", 2, 2, "r2"});
  b2.records.push_back({"tenant-b", 2, 2, "rb"});
  ASSERT_TRUE((*s)->CommitLedgerBatch(b2).ok());
  state = (*s)->LoadLedgerState();
  EXPECT_EQ(state->size, 3u);
  EXPECT_EQ(state->frontier, "frontier@3");
  // A batch appends to the tiles it extends.
  EXPECT_EQ(*(*s)->ReadLedgerTile(-1, 0), "bundle@2bundle@3");
  EXPECT_EQ((*s)->ReadLedgerTile(0, 0)->size(), 96u);

  auto groups = (*s)->ReadRecordGroups("tenant-a", 0, 10);
  ASSERT_TRUE(groups.ok()) << groups.status();
  ASSERT_EQ(groups->size(), 2u);
  EXPECT_EQ((*groups)[0].data, std::string("\0rec", 4));
  EXPECT_EQ((*groups)[0].last_index, 1u);
  EXPECT_EQ((*groups)[1].first_index, 2u);
  EXPECT_EQ((*s)->ReadRecordGroups("tenant-a", 2, 10)->size(), 1u);
  EXPECT_EQ((*s)->ReadRecordGroups("tenant-a", 0, 1)->size(), 1u);
  EXPECT_EQ((*s)->ReadRecordGroups("tenant-b", 0, 10)->at(0).data, "rb");
  EXPECT_TRUE((*s)->ReadRecordGroups("tenant-c", 0, 10)->empty());
}

// Two processes' sequencers on one store: each batch is built on the state as committed, never
// on one another instance moved past (PostgreSQL: a sequencer that appends alone skips the row
// lock; its batch built on a stale state must write nothing and be built again).
TEST_P(StoreContract, SequencersSharingAStoreNeverFork) {
  auto a = OpenControl();
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = OpenControl(/*create=*/false);
  ASSERT_TRUE(b.ok()) << b.status();
  std::vector<uint64_t> built_on;
  auto append_one = [&](ControlStore& store, const std::string& tenant) {
    return store.SequenceLedgerBatch([&](const LedgerState& state) -> absl::StatusOr<LedgerBatch> {
      built_on.push_back(state.size);
      LedgerBatch batch = Batch(state.size, state.size + 1);
      batch.records.push_back({tenant, state.size, state.size, tenant});
      return batch;
    });
  };
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(append_one(**a, "a").ok());  // `a` alone: 0..3
  ASSERT_TRUE(append_one(**b, "b").ok());                              // 4, behind a's back
  built_on.clear();
  ASSERT_TRUE(append_one(**a, "a").ok());  // 5, built on the state `b` left
  if (GetParam() == Backend::kPostgres) {
    // Tried without the lock on the state `a` knew, refused, built again under the lock.
    EXPECT_EQ(built_on, (std::vector<uint64_t>{4, 5}));
  }
  EXPECT_EQ(built_on.back(), 5u);
  ASSERT_TRUE(append_one(**a, "a").ok());  // 6
  EXPECT_EQ(built_on.back(), 6u);
  ASSERT_TRUE(append_one(**b, "b").ok());  // 7
  // A batch that fits only the stored state (not the one `a` last wrote) still lands.
  ASSERT_TRUE((*a)->CommitLedgerBatch(Batch(8, 9)).ok());

  auto state = (*a)->LoadLedgerState();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->size, 9u);
  EXPECT_EQ(state->frontier, "frontier@9");
  // One bundle part per index, in order: nothing of an attempt built on a stale state landed.
  EXPECT_EQ(*(*a)->ReadLedgerTile(-1, 0),
            "bundle@1bundle@2bundle@3bundle@4bundle@5bundle@6bundle@7bundle@8bundle@9");
  EXPECT_EQ((*a)->ReadLedgerTile(0, 0)->size(), 9 * 32u);
  auto of_a = (*b)->ReadRecordGroups("a", 0, 10);
  ASSERT_TRUE(of_a.ok()) << of_a.status();
  ASSERT_EQ(of_a->size(), 6u);
  EXPECT_EQ((*of_a)[4].first_index, 5u);
  EXPECT_EQ((*b)->ReadRecordGroups("b", 0, 10)->at(0).first_index, 4u);
}

// Batches of every shape land whole: no tenant records, a tile filled beside parts, and more
// record groups and tile parts than PostgreSQL writes in one statement.
TEST_P(StoreContract, LedgerBatchesOfEveryShapeLandWhole) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  LedgerBatch first = Batch(0, 255);  // no records (entries without a tenant)
  ASSERT_TRUE((*s)->CommitLedgerBatch(first).ok());
  LedgerBatch second = Batch(255, 300);
  second.tiles[0].fills = true;  // the entry bundle 0 is full with this batch…
  second.tiles.push_back({-1, 1, "next-bundle", 0});  // …and bundle 1 begins
  for (int t = 0; t < 12; ++t) {
    second.records.push_back({absl::StrFormat("tenant-%02d", t), 255, 299, std::to_string(t)});
  }
  for (int level = 1; level <= 4; ++level) second.tiles.push_back({level, 0, "h", 0});
  ASSERT_TRUE((*s)->CommitLedgerBatch(second).ok());
  LedgerBatch third = Batch(300, 301);
  third.tiles[0] = {-1, 1, "+1", 45};
  third.records.push_back({"tenant-00", 300, 300, "late"});
  ASSERT_TRUE((*s)->CommitLedgerBatch(third).ok());
  LedgerBatch fourth = Batch(301, 302);  // a small batch that also fills a tile
  fourth.tiles[0] = {-1, 1, "+2", 46};
  fourth.tiles.push_back({5, 0, "whole", 0, true});
  fourth.records.push_back({"tenant-01", 301, 301, "fourth"});
  ASSERT_TRUE((*s)->CommitLedgerBatch(fourth).ok());

  auto state = (*s)->LoadLedgerState();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->size, 302u);
  EXPECT_EQ(state->frontier, "frontier@302");
  EXPECT_EQ(*(*s)->ReadLedgerTile(-1, 0), "bundle@255bundle@300");
  EXPECT_EQ(*(*s)->ReadLedgerTile(-1, 1), "next-bundle+1+2");
  EXPECT_EQ((*s)->ReadLedgerTile(0, 0)->size(), 32u * 302);
  EXPECT_EQ(*(*s)->ReadLedgerTile(5, 0), "whole");
  for (int level = 1; level <= 4; ++level) EXPECT_EQ(*(*s)->ReadLedgerTile(level, 0), "h");
  for (int t = 0; t < 12; ++t) {
    auto groups = (*s)->ReadRecordGroups(absl::StrFormat("tenant-%02d", t), 0, 10);
    ASSERT_TRUE(groups.ok()) << groups.status();
    ASSERT_EQ(groups->size(), t <= 1 ? 2u : 1u);
    EXPECT_EQ((*groups)[0].data, std::to_string(t));
  }
  EXPECT_EQ((*s)->ReadRecordGroups("tenant-00", 0, 10)->at(1).data, "late");
  EXPECT_EQ((*s)->ReadRecordGroups("tenant-01", 0, 10)->at(1).data, "fourth");
}

TEST_P(StoreContract, LedgerCheckpointsAreUniquePerSizeAndAppendOnly) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->LatestCheckpoint().status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE((*s)->PutCheckpoint({0, "note0\n", 100}).ok());
  // Not beyond the committed log: it would commit to entries that are not stored.
  EXPECT_EQ((*s)->PutCheckpoint({5, "note5\n", 200}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*s)->CommitLedgerBatch(Batch(0, 12)).ok());
  ASSERT_TRUE((*s)->PutCheckpoint({5, "note5\n", 200}).ok());
  EXPECT_EQ((*s)->PutCheckpoint({5, "other\n", 400}).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE((*s)->PutCheckpoint({12, "note12\n", 300}).ok());
  // Never below the latest one.
  EXPECT_EQ((*s)->PutCheckpoint({7, "note7\n", 500}).code(), absl::StatusCode::kAborted);
  auto latest = (*s)->LatestCheckpoint();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->size, 12u);
  EXPECT_EQ(latest->note, "note12\n");
  EXPECT_EQ(latest->created_at_ms, 300);
}

TEST_P(StoreContract, LedgerTilesGrowByPartsAndAreStoredWholeOnceFull) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  // Three batches extend tile 0/5 of level 2; the third fills it.
  LedgerBatch b;
  b.tiles = {{2, 5, "aa", 0}};
  b.new_size = 1;
  ASSERT_TRUE((*s)->CommitLedgerBatch(b).ok());
  b = {};
  b.old_size = 1;
  b.new_size = 2;
  b.tiles = {{2, 5, "bbb", 1}, {-1, 7, std::string("\0x", 2), 3}};
  ASSERT_TRUE((*s)->CommitLedgerBatch(b).ok());
  EXPECT_EQ(*(*s)->ReadLedgerTile(2, 5), "aabbb");
  EXPECT_EQ(*(*s)->ReadLedgerTile(-1, 7), std::string("\0x", 2));
  b = {};
  b.old_size = 2;
  b.new_size = 3;
  b.tiles = {{2, 5, "c", 4, /*fills=*/true}, {2, 6, "d", 0, /*fills=*/true}};
  ASSERT_TRUE((*s)->CommitLedgerBatch(b).ok());
  EXPECT_EQ(*(*s)->ReadLedgerTile(2, 5), "aabbbc");
  EXPECT_EQ(*(*s)->ReadLedgerTile(2, 6), "d");
  EXPECT_EQ((*s)->ReadLedgerTile(2, 7).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreContract, SequencedBatchesBuildOnTheLockedState) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->CommitLedgerBatch(Batch(0, 2)).ok());
  // The builder sees the committed state and its batch lands on it.
  LedgerState seen;
  ASSERT_TRUE((*s)->SequenceLedgerBatch([&](const LedgerState& st) -> absl::StatusOr<LedgerBatch> {
                    seen = st;
                    return Batch(st.size, st.size + 3);
                  })
                  .ok());
  EXPECT_EQ(seen.size, 2u);
  EXPECT_EQ(seen.frontier, "frontier@2");
  EXPECT_EQ((*s)->LoadLedgerState()->size, 5u);
  // A builder that fails writes nothing.
  EXPECT_EQ((*s)->SequenceLedgerBatch([&](const LedgerState&) -> absl::StatusOr<LedgerBatch> {
                  return absl::UnavailableError("no");
                })
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ((*s)->LoadLedgerState()->size, 5u);
  EXPECT_EQ((*s)->ReadLedgerTile(0, 0)->size(), 5 * 32u);
}

TEST_P(StoreContract, RacingSequencersNeverForkTheLedger) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  // Each thread believes the log has the size it last loaded and tries to extend it by one.
  std::atomic<int> committed{0}, aborted{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto state = (*s)->LoadLedgerState();
        if (!state.ok()) {
          ++other;
          continue;
        }
        absl::Status r = (*s)->CommitLedgerBatch(Batch(state->size, state->size + 1));
        if (r.ok()) {
          ++committed;
        } else if (absl::IsAborted(r)) {
          ++aborted;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(committed.load() + aborted.load(), 40);
  EXPECT_EQ((*s)->LoadLedgerState()->size, static_cast<uint64_t>(committed.load()));
}

TEST_P(StoreContract, ControlReopensWithItsData) {
  {
    auto s = OpenControl();
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE((*s)->PutSetting("origin", "o").ok());
    ASSERT_TRUE((*s)->CommitLedgerBatch(Batch(0, 1)).ok());
  }
  auto s = OpenControl(/*create=*/false);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*(*s)->GetSetting("origin"), "o");
  EXPECT_EQ((*s)->LoadLedgerState()->size, 1u);
}

// --- access requests, MFA, consents, audit verdicts (issue 6) ---------------------------------

TEST_P(StoreContract, AccessRequestsUpdateByVersionAndNeverVanish) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  AccessRequestRecord r;
  r.id = "r1";
  r.tenant_id = "t1";
  r.requester = "op";
  r.state = "pending_manager";
  r.expires_at = 100;
  r.created_at = 10;
  r.body_json = "{}";
  r.version = 1;
  ASSERT_TRUE((*s)->InsertAccessRequest(r).ok());
  EXPECT_TRUE(absl::IsAlreadyExists((*s)->InsertAccessRequest(r)));
  AccessRequestRecord r2 = r;
  r2.id = "r2";
  r2.tenant_id = "t2";
  r2.created_at = 11;
  r2.expires_at = 50;
  ASSERT_TRUE((*s)->InsertAccessRequest(r2).ok());

  r.state = "active";
  r.grant_id = "g1";
  r.expires_at = 200;
  r.version = 2;
  ASSERT_TRUE((*s)->UpdateAccessRequest(r).ok());
  EXPECT_TRUE(absl::IsAborted((*s)->UpdateAccessRequest(r)));  // stale version
  auto got = (*s)->GetAccessRequest("r1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, "active");
  EXPECT_EQ(got->version, 2);
  EXPECT_EQ(got->expires_at, 200);
  EXPECT_EQ((*s)->FindAccessRequestByGrant("g1")->id, "r1");
  EXPECT_TRUE(absl::IsNotFound((*s)->FindAccessRequestByGrant("g2").status()));
  EXPECT_TRUE(absl::IsNotFound((*s)->GetAccessRequest("nope").status()));

  EXPECT_EQ((*s)->ListAccessRequests({})->size(), 2u);
  AccessRequestFilter by_tenant;
  by_tenant.tenant_id = "t2";
  ASSERT_EQ((*s)->ListAccessRequests(by_tenant)->size(), 1u);
  AccessRequestFilter by_state;
  by_state.state = "active";
  by_state.requester = "op";
  auto active = (*s)->ListAccessRequests(by_state);
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].id, "r1");

  auto due = (*s)->ListDueAccessRequests(60);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].id, "r2");
  EXPECT_EQ((*s)->ListDueAccessRequests(1000)->size(), 2u);
  r2.expires_at.reset();
  r2.state = "expired";
  r2.version = 2;
  ASSERT_TRUE((*s)->UpdateAccessRequest(r2).ok());
  EXPECT_EQ((*s)->ListDueAccessRequests(1000)->size(), 1u);
}

TEST_P(StoreContract, TotpStepsAreConsumedOnceAndOnlyForward) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(absl::IsNotFound((*s)->GetMfa("p").status()));
  ASSERT_TRUE((*s)->PutMfa({"p", std::string("sec\0ret", 7), -1, 5}).ok());
  ASSERT_TRUE((*s)->ConsumeTotpStep("p", 10).ok());
  EXPECT_TRUE(absl::IsAlreadyExists((*s)->ConsumeTotpStep("p", 10)));
  EXPECT_TRUE(absl::IsAlreadyExists((*s)->ConsumeTotpStep("p", 9)));
  ASSERT_TRUE((*s)->ConsumeTotpStep("p", 11).ok());
  // Re-enrolment replaces the secret but never rewinds the last step.
  ASSERT_TRUE((*s)->PutMfa({"p", "new", -1, 6}).ok());
  auto m = (*s)->GetMfa("p");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->sealed_secret, "new");
  EXPECT_EQ(m->last_step, 11);
  EXPECT_TRUE(absl::IsAlreadyExists((*s)->ConsumeTotpStep("p", 11)));
  EXPECT_FALSE((*s)->ConsumeTotpStep("unknown", 1).ok());
}

TEST_P(StoreContract, TotpAttemptsAreTakenPerWindowUpToTheLimit) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(absl::IsNotFound((*s)->TakeTotpAttempt("p", 1000, 300, 3)));
  ASSERT_TRUE((*s)->PutMfa({"p", "secret", -1, 5}).ok());
  auto m = (*s)->GetMfa("p");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->failure_count, 0);
  // The first attempt opens a window at its time; later ones inside it add to it, up to 3.
  ASSERT_TRUE((*s)->TakeTotpAttempt("p", 1000, 300, 3).ok());
  ASSERT_TRUE((*s)->TakeTotpAttempt("p", 1100, 300, 3).ok());
  ASSERT_TRUE((*s)->TakeTotpAttempt("p", 1299, 300, 3).ok());
  EXPECT_TRUE(absl::IsResourceExhausted((*s)->TakeTotpAttempt("p", 1299, 300, 3)));
  m = (*s)->GetMfa("p");
  EXPECT_EQ(m->failure_window_start, 1000);
  EXPECT_EQ(m->failure_count, 3);
  // An attempt given back (a right code) frees a check in the same window.
  ASSERT_TRUE((*s)->ReturnTotpAttempt("p").ok());
  EXPECT_EQ((*s)->GetMfa("p")->failure_count, 2);
  ASSERT_TRUE((*s)->TakeTotpAttempt("p", 1299, 300, 3).ok());
  // Once the window is over, the next attempt opens a new one.
  ASSERT_TRUE((*s)->TakeTotpAttempt("p", 1300, 300, 3).ok());
  m = (*s)->GetMfa("p");
  EXPECT_EQ(m->failure_window_start, 1300);
  EXPECT_EQ(m->failure_count, 1);
  // Re-enrolment keeps the count (it must not be a way around the limit).
  ASSERT_TRUE((*s)->PutMfa({"p", "new", -1, 6}).ok());
  EXPECT_EQ((*s)->GetMfa("p")->failure_count, 1);
}

// Guesses sent at once (to one instance or many) get no more checks between them than the limit.
TEST_P(StoreContract, ConcurrentTotpAttemptsNeverExceedTheLimit) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->PutMfa({"p", "secret", -1, 5}).ok());
  std::atomic<int> taken{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 4; ++k) {
        absl::Status t = (*s)->TakeTotpAttempt("p", 1000, 300, 5);
        if (t.ok()) {
          ++taken;
        } else {
          EXPECT_TRUE(absl::IsResourceExhausted(t)) << t;
          ++refused;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(taken.load(), 5);
  EXPECT_EQ(refused.load(), 59);
  EXPECT_EQ((*s)->GetMfa("p")->failure_count, 5);
}

TEST_P(StoreContract, ConsentsAndAuditVerdicts) {
  auto s = OpenControl();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(*(*s)->HasConsent("t1", "marketing"));
  ASSERT_TRUE((*s)->SetConsent("t1", "marketing", true, 1).ok());
  EXPECT_TRUE(*(*s)->HasConsent("t1", "marketing"));
  EXPECT_FALSE(*(*s)->HasConsent("t2", "marketing"));
  ASSERT_TRUE((*s)->SetConsent("t1", "marketing", false, 2).ok());
  EXPECT_FALSE(*(*s)->HasConsent("t1", "marketing"));

  AuditVerdictRecord v{"g1", "2026-01", "aud1", "compliant", "ok", 3};
  ASSERT_TRUE((*s)->InsertAuditVerdict(v).ok());
  EXPECT_TRUE(absl::IsAlreadyExists((*s)->InsertAuditVerdict(v)));
  v.auditor = "aud2";
  ASSERT_TRUE((*s)->InsertAuditVerdict(v).ok());
  EXPECT_EQ((*s)->ListAuditVerdicts("2026-01")->size(), 2u);
  EXPECT_EQ((*s)->ListAuditVerdicts("2026-02")->size(), 0u);
}

}  // namespace
}  // namespace custos::store
