// Several Ledger instances (as in several `custos serve` processes) on one control store: each
// with its own store connection(s) and sequencer, appending concurrently. The log must not fork:
// every append gets a distinct index, every entry is stored once, the tree verifies, every
// checkpoint either instance signs is of that one tree, and either instance serves all of it.
// On PostgreSQL (CUSTOS_PG_DSN, skipped without) and on one SQLite file opened twice.
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/clock.h"
#include "crypto/crypto.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "ledger/tiles.h"
#include "store/store.h"
#include "testing/pg_test_db.h"
#include "testing/temp_dir.h"

namespace custos::ledger {
namespace {

constexpr char kOrigin[] = "test.example/ledger";

class LedgerMultiInstance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      auto dsn = custos::testing::PgServerDsn();
      if (!dsn) GTEST_SKIP() << "CUSTOS_PG_DSN is not set";
      pg_.emplace(*dsn);
    }
    seed_ = random_.Bytes(32);
  }

  std::unique_ptr<store::ControlStore> OpenStore() {
    if (pg_) return *store::OpenPostgresControlStore(pg_->dsn(), true);
    return *store::OpenSqliteControlStore(dir_.File("control.db"), true);
  }

  std::unique_ptr<Ledger> OpenLedger(store::ControlStore& store) {
    LedgerOptions options;
    options.checkpoint_interval = absl::Milliseconds(2);  // both sign all the time
    return *Ledger::Open(store, *crypto::Ed25519PrivateKey::FromSeed(seed_), kOrigin, clock_,
                         options);
  }

  custos::testing::TempDir dir_;
  std::optional<custos::testing::PgTestDatabase> pg_;
  crypto::OpenSslRandom random_;
  SystemClock clock_;
  std::string seed_;
};

TEST_P(LedgerMultiInstance, ConcurrentInstancesAppendToOneLog) {
  std::vector<std::unique_ptr<store::ControlStore>> stores;
  std::vector<std::unique_ptr<Ledger>> ledgers;
  for (int i = 0; i < 3; ++i) stores.push_back(OpenStore());
  for (auto& s : stores) ledgers.push_back(OpenLedger(*s));
  const auto vkey = *ParseVerifierKey(ledgers[0]->verifier_key());

  constexpr int kThreads = 12, kPerThread = 40;
  std::mutex mu;
  std::map<uint64_t, std::string> by_index;     // guarded by mu
  std::vector<std::string> duplicates;          // guarded by mu
  std::map<uint64_t, std::string> checkpoints;  // size -> note, guarded by mu
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};

  // Watches the latest checkpoint through every instance while they append: it must never go
  // back, whichever instance is asked.
  std::thread watcher([&] {
    uint64_t seen = 0;
    int k = 0;
    while (!done.load()) {
      auto cp = ledgers[k++ % ledgers.size()]->LatestCheckpoint();
      if (cp.ok()) {
        EXPECT_GE(cp->size, seen) << "the latest checkpoint went back";
        seen = cp->size;
        std::lock_guard lock(mu);
        checkpoints.emplace(cp->size, cp->note);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string entry = "entry-" + std::to_string(t) + "-" + std::to_string(i);
        auto index = ledgers[(t + i) % ledgers.size()]->Append({entry, "", ""});
        if (!index.ok()) {
          ++failures;
          ADD_FAILURE() << index.status();
          continue;
        }
        std::lock_guard lock(mu);
        if (!by_index.emplace(*index, entry).second) duplicates.push_back(entry);
      }
    });
  }
  for (auto& th : threads) th.join();
  done = true;
  watcher.join();

  constexpr uint64_t kTotal = kThreads * kPerThread;
  ASSERT_EQ(failures.load(), 0);
  EXPECT_TRUE(duplicates.empty()) << duplicates.size() << " indexes handed out twice";
  ASSERT_EQ(by_index.size(), kTotal);
  EXPECT_EQ(by_index.rbegin()->first, kTotal - 1) << "indexes are not 0..n-1";
  EXPECT_EQ(stores[0]->LoadLedgerState()->size, kTotal);

  std::vector<std::string> leaves;
  for (const auto& [i, e] : by_index) leaves.push_back(LeafHash(e));
  auto root_at = [&](uint64_t size) {
    return RootOfLeafHashes(std::span<const std::string>(leaves.data(), size));
  };

  // Every instance serves every entry (whoever appended it) and every tile of the whole log.
  for (auto& l : ledgers) {
    for (const auto& [i, e] : by_index) ASSERT_EQ(*l->ReadEntry(i), e) << "index " << i;
    for (const Tile& t : TilesChangedBy(0, kTotal)) {
      auto data = l->ReadTile(t);
      ASSERT_TRUE(data.ok()) << TilePath(t) << " " << data.status();
      if (t.entries) {
        auto entries = *DecodeEntryBundle(*data);
        ASSERT_EQ(entries.size(), static_cast<size_t>(t.width));
        for (int i = 0; i < t.width; ++i) {
          EXPECT_EQ(entries[i], by_index.at(t.index * kTileWidth + i));
        }
      } else if (t.level == 0) {
        for (int i = 0; i < t.width; ++i) {
          EXPECT_EQ(data->substr(i * kHashSize, kHashSize), leaves[t.index * kTileWidth + i]);
        }
      }
    }
  }

  // A final checkpoint from each instance: the whole log, the same tree.
  for (auto& l : ledgers) {
    auto cp = l->SignCheckpointNow();
    ASSERT_TRUE(cp.ok()) << cp.status();
    auto opened = OpenCheckpoint(cp->note, vkey, kOrigin);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->size, kTotal);
    EXPECT_EQ(opened->root_hash, root_at(kTotal));
  }
  // Every checkpoint seen while appending commits to a prefix of this one log (no fork), and
  // proofs from any instance verify against it.
  ASSERT_GT(checkpoints.size(), 1u);
  uint64_t previous = 0;
  std::string previous_root = EmptyRoot();
  int k = 0;
  for (const auto& [size, note] : checkpoints) {
    auto opened = OpenCheckpoint(note, vkey, kOrigin);
    ASSERT_TRUE(opened.ok()) << opened.status();
    ASSERT_EQ(opened->root_hash, root_at(size)) << "checkpoint of size " << size << " forks";
    Ledger& l = *ledgers[k++ % ledgers.size()];
    auto consistency = l.ConsistencyProof(previous, size);
    ASSERT_TRUE(consistency.ok()) << consistency.status();
    EXPECT_TRUE(VerifyConsistency(previous, size, *consistency, previous_root, opened->root_hash));
    if (size > 0) {
      auto inclusion = l.InclusionProof(size - 1, size);
      ASSERT_TRUE(inclusion.ok()) << inclusion.status();
      EXPECT_TRUE(VerifyInclusion(leaves[size - 1], size - 1, size, *inclusion, root_at(size)));
    }
    previous = size;
    previous_root = opened->root_hash;
  }
}

TEST_P(LedgerMultiInstance, CheckpointsAreRefusedBeyondTheLogOrBehindTheLatest) {
  auto store = OpenStore();
  auto ledger = OpenLedger(*store);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(ledger->Append({"e" + std::to_string(i), "", ""}).ok());
  auto cp = ledger->SignCheckpointNow();
  ASSERT_TRUE(cp.ok()) << cp.status();
  ASSERT_EQ(cp->size, 5u);
  // A note for entries that were never stored, or one behind the latest: never stored.
  EXPECT_EQ(store->PutCheckpoint({6, "ahead\n", 0}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->PutCheckpoint({4, "behind\n", 0}).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store->LatestCheckpoint()->note, cp->note);
}

INSTANTIATE_TEST_SUITE_P(Backends, LedgerMultiInstance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace custos::ledger
