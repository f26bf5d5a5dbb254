// The ledger over a real SQLite control store: tiles, entries, proofs and checkpoints at the
// sizes where tiles fill and levels appear, across restarts.
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "base/blocking.h"
#include "base/clock.h"
#include "base/strings.h"
#include "crypto/crypto.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "ledger/tiles.h"
#include "store/store.h"
#include "testing/forwarding_control_store.h"
#include "testing/sqlite_fault.h"
#include "testing/temp_dir.h"

namespace custos::ledger {
namespace {

using custos::testing::TempDir;

std::string EntryText(uint64_t i) { return "entry-" + std::to_string(i); }

class LedgerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *store::OpenSqliteControlStore(dir_.File("control.db"), true);
    seed_ = random_.Bytes(32);
    Reopen();
  }

  void Reopen(int answer_threads = 0) {
    ledger_.reset();
    LedgerOptions options;
    options.checkpoint_interval = absl::Hours(1);  // the test signs explicitly
    options.answer_threads = answer_threads;
    ledger_ = *Ledger::Open(*store_, *crypto::Ed25519PrivateKey::FromSeed(seed_),
                            "test.example/ledger", clock_, options);
  }

  // Appends entries until the log holds `size`, from many threads so batches form.
  void GrowTo(uint64_t size) {
    std::atomic<uint64_t> next{leaves_.size()};
    const uint64_t target = size;
    leaves_.resize(size);
    std::vector<std::thread> threads;
    for (int t = 0; t < 64; ++t) {
      threads.emplace_back([&] {
        while (true) {
          uint64_t i = next.fetch_add(1);
          if (i >= target) return;
          // Indexes are assigned by the sequencer; the entry names its own slot after the fact.
          auto index = ledger_->Append({EntryText(i), "", ""});
          ASSERT_TRUE(index.ok()) << index.status();
          std::lock_guard lock(appended_mu_);
          appended_[*index] = EntryText(i);
        }
      });
    }
    for (auto& th : threads) th.join();
    for (uint64_t i = 0; i < size; ++i) {
      if (leaves_[i].empty()) leaves_[i] = LeafHash(appended_.at(i));
    }
  }

  std::string BruteRoot(uint64_t size) {
    return RootOfLeafHashes(std::span<const std::string>(leaves_.data(), size));
  }

  TempDir dir_;
  crypto::OpenSslRandom random_;
  SystemClock clock_;
  std::string seed_;
  std::unique_ptr<store::ControlStore> store_;
  std::unique_ptr<Ledger> ledger_;
  std::vector<std::string> leaves_;
  std::mutex appended_mu_;
  std::map<uint64_t, std::string> appended_;  // index -> entry, filled from many threads
};

TEST_F(LedgerStoreTest, TilesProofsAndCheckpointsAtTileBoundaries) {
  std::vector<uint64_t> sizes = {0, 1, 255, 256, 257, 65535, 65536, 65537};
  auto vkey = *ParseVerifierKey(ledger_->verifier_key());
  uint64_t previous = 0;
  std::string previous_root = EmptyRoot();
  for (uint64_t size : sizes) {
    GrowTo(size);
    auto cp = ledger_->SignCheckpointNow();
    ASSERT_TRUE(cp.ok()) << cp.status();
    auto opened = OpenCheckpoint(cp->note, vkey, "test.example/ledger");
    ASSERT_TRUE(opened.ok()) << opened.status();
    ASSERT_EQ(opened->size, size);
    const std::string root = BruteRoot(size);
    ASSERT_EQ(opened->root_hash, root) << "size " << size;

    // Every tile at this size matches a recomputation from the leaves.
    for (const Tile& t : TilesChangedBy(0, size)) {
      auto data = ledger_->ReadTile(t);
      ASSERT_TRUE(data.ok()) << TilePath(t) << " " << data.status();
      if (t.entries) {
        auto entries = *DecodeEntryBundle(*data);
        ASSERT_EQ(entries.size(), static_cast<size_t>(t.width));
        for (int i = 0; i < t.width; ++i) {
          ASSERT_EQ(LeafHash(entries[i]), leaves_[t.index * kTileWidth + i]);
        }
      } else {
        ASSERT_EQ(data->size(), static_cast<size_t>(t.width) * kHashSize);
        for (int i = 0; i < t.width; ++i) {
          uint64_t first = (t.index * kTileWidth + i) << (kTileHeight * t.level);
          uint64_t count = uint64_t{1} << (kTileHeight * t.level);
          std::string expected =
              RootOfLeafHashes(std::span<const std::string>(leaves_.data() + first, count));
          ASSERT_EQ(data->substr(i * kHashSize, kHashSize), expected)
              << TilePath(t) << " hash " << i;
        }
      }
    }
    // A tile the log has not reached is not found, not invented.
    EXPECT_EQ(ledger_->ReadTile({false, 0, size / kTileWidth + 1, 1}).status().code(),
              absl::StatusCode::kNotFound);

    // Inclusion of the first, last and a middle entry; consistency with the previous size.
    for (uint64_t index : {uint64_t{0}, size / 2, size - 1}) {
      if (size == 0) break;
      auto proof = ledger_->InclusionProof(index, size);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_TRUE(VerifyInclusion(leaves_[index], index, size, *proof, root));
      EXPECT_EQ(*ledger_->ReadEntry(index), appended_.at(index));
    }
    auto consistency = ledger_->ConsistencyProof(previous, size);
    ASSERT_TRUE(consistency.ok()) << consistency.status();
    EXPECT_TRUE(VerifyConsistency(previous, size, *consistency, previous_root, root));
    // Beyond the checkpoint is refused.
    EXPECT_EQ(ledger_->InclusionProof(0, size + 1).status().code(),
              absl::StatusCode::kInvalidArgument);
    previous = size;
    previous_root = root;
  }
}

TEST_F(LedgerStoreTest, ResumesAfterRestartAndCheckpointsNeverRunAhead) {
  GrowTo(300);
  ASSERT_TRUE(ledger_->SignCheckpointNow().ok());
  Reopen();
  GrowTo(700);
  auto cp = ledger_->SignCheckpointNow();
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->size, 700u);
  auto opened = ParseCheckpoint(*VerifyNote(cp->note, *ParseVerifierKey(ledger_->verifier_key())));
  EXPECT_EQ(opened->root_hash, BruteRoot(700));
  EXPECT_LE(store_->LatestCheckpoint()->size, store_->LoadLedgerState()->size);
}

// On a thread that must not block, a tenant whose record key is not cached yet is not recorded
// (its key would come from the store, unwrapped by the key provider): `done` hears so at once.
// Once the key is cached, the same thread records.
TEST_F(LedgerStoreTest, RecordAsyncWouldBlockUntilTheRecordKeyIsCached) {
  auto keys =
      *crypto::KeyringKeyProvider::Create(dir_.File("keyring"), std::string(32, 'm'), random_);
  ASSERT_TRUE(keys->CreateKey(crypto::TenantKeyId("a")).ok());
  EventLog events(*ledger_, *store_, *keys, std::string(32, 'p'), random_, clock_);
  const uint64_t size_before = store_->LoadLedgerState()->size;
  auto record_on_io_thread = [&] {
    std::promise<absl::StatusOr<LoggedEvent>> result;
    {
      NonBlockingScope io_thread;
      events.RecordAsync({"data.read", "a", {{"actor", "x"}}},
                         [&](absl::StatusOr<LoggedEvent> e) { result.set_value(std::move(e)); });
    }
    return result.get_future().get();
  };
  auto refused = record_on_io_thread();
  EXPECT_TRUE(IsWouldBlock(refused.status())) << refused.status();
  EXPECT_EQ(store_->LoadLedgerState()->size, size_before);
  ASSERT_TRUE(events.Record({"data.read", "a", {{"actor", "x"}}}).ok());  // caches the key
  auto recorded = record_on_io_thread();
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_EQ(recorded->ledger_index, size_before + 1);
}

// The ledger, with refused entries found in the log (PutBackRecordedAfterRefusal) whose outcomes
// are still to be recorded.
class RefusedEntriesAppender final : public EntryAppender {
 public:
  explicit RefusedEntriesAppender(Ledger& ledger) : ledger_(ledger) {}
  absl::StatusOr<uint64_t> Append(PendingAppend a) override { return ledger_.Append(std::move(a)); }
  void AppendAsync(PendingAppend a, AppendCallback done) override {
    ledger_.AppendAsync(std::move(a), std::move(done));
  }
  std::vector<RecordedAfterRefusal> TakeRecordedAfterRefusal() override {
    return std::exchange(found_, {});
  }
  void PutBackRecordedAfterRefusal(const RecordedAfterRefusal& r) override { found_.push_back(r); }
  bool HasRecordedAfterRefusal() const override { return !found_.empty(); }

 private:
  Ledger& ledger_;
  std::vector<RecordedAfterRefusal> found_;
};

// Outcomes of refused entries wait for a thread that may block (the tenant of one may have no
// cached record key: a would-block would spend its attempts, and three would give it up): on
// one that must not, every RecordAsync would block while one waits, and it stays queued.
TEST_F(LedgerStoreTest, OutcomesOfRefusedEntriesWaitForAThreadThatMayBlock) {
  auto keys =
      *crypto::KeyringKeyProvider::Create(dir_.File("keyring"), std::string(32, 'm'), random_);
  ASSERT_TRUE(keys->CreateKey(crypto::TenantKeyId("a")).ok());
  ASSERT_TRUE(keys->CreateKey(crypto::TenantKeyId("b")).ok());
  RefusedEntriesAppender appender(*ledger_);
  EventLog events(appender, *store_, *keys, std::string(32, 'p'), random_, clock_);
  ASSERT_TRUE(events.Record({"data.read", "a", {{"actor", "x"}}}).ok());  // caches a's key
  appender.PutBackRecordedAfterRefusal({.index = 0, .tenant_id = "b"});
  for (int i = 0; i < 5; ++i) {
    std::promise<absl::StatusOr<LoggedEvent>> result;
    {
      NonBlockingScope io_thread;
      events.RecordAsync({"data.read", "a", {{"actor", "x"}}},
                         [&](absl::StatusOr<LoggedEvent> e) { result.set_value(std::move(e)); });
    }
    EXPECT_TRUE(IsWouldBlock(result.get_future().get().status()));
    EXPECT_TRUE(appender.HasRecordedAfterRefusal());
  }
  ASSERT_TRUE(events.Record({"data.read", "a", {{"actor", "x"}}}).ok());  // records the outcome
  EXPECT_FALSE(appender.HasRecordedAfterRefusal());
  auto page = events.ReadTenantLog("b", {.kind = "outcome"});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_NE(page->events[0].record.find(R"("of":0)"), std::string::npos);
}

TEST_F(LedgerStoreTest, RecordsAreReadBackPerTenantAndVerifyAgainstEntries) {
  auto keys =
      *crypto::KeyringKeyProvider::Create(dir_.File("keyring"), std::string(32, 'm'), random_);
  ASSERT_TRUE(keys->CreateKey(crypto::TenantKeyId("a")).ok());
  ASSERT_TRUE(keys->CreateKey(crypto::TenantKeyId("b")).ok());
  EventLog events(*ledger_, *store_, *keys, std::string(32, 'p'), random_, clock_);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        events.Record({"data.read", i % 2 ? "a" : "b", {{"actor", "x"}, {"role", "r"}}}).ok());
  }
  auto page = events.ReadTenantLog("a", {.limit = 3});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->events.size(), 3u);
  ASSERT_TRUE(page->next_index.has_value());
  auto rest = events.ReadTenantLog("a", {.start_index = *page->next_index});
  EXPECT_EQ(rest->events.size(), 2u);
  for (const auto& e : page->events) {
    auto entry = ledger_->ReadEntry(e.ledger_index);
    ASSERT_TRUE(entry.ok());
    // The public entry holds the record's digest and the pseudonym, never the tenant id.
    EXPECT_NE(entry->find(crypto::Sha256Hex(e.record)), std::string::npos);
    EXPECT_NE(entry->find(events.Pseudonym("a")), std::string::npos);
    EXPECT_EQ(entry->find("\"a\""), std::string::npos);
    EXPECT_EQ(*entry,
              EventLog::EntryFor(e.record, "data.read", events.Pseudonym("a"),
                                 std::stoll(e.record.substr(e.record.find("\"ts\":") + 5))));
  }
  // Another tenant's key cannot open these records.
  EXPECT_EQ(events.ReadTenantLog("b", {.kind = "data.read"})->events.size(), 5u);

  // A filter that matches little reads at most max_scanned records per call: the page ends
  // early (even empty) with the index to resume at, and paging on finds every match.
  ASSERT_TRUE(events.Record({"data.write", "a", {{"actor", "x"}, {"role", "r"}}}).ok());
  std::vector<uint64_t> found;
  int calls = 0;
  AccessLogFilter f{.kind = "data.write", .max_scanned = 2};
  while (true) {
    auto part = events.ReadTenantLog("a", f);
    ASSERT_TRUE(part.ok()) << part.status();
    ++calls;
    for (const auto& e : part->events) found.push_back(e.ledger_index);
    if (!part->next_index) break;
    EXPECT_GT(*part->next_index, f.start_index);
    f.start_index = *part->next_index;
  }
  EXPECT_EQ(found.size(), 1u);
  EXPECT_EQ(calls, 3) << "6 records of tenant a, 2 per call";
}

// A control store whose ledger commits can be reported lost, as when a PostgreSQL connection
// drops around COMMIT: after the batch was written, or before.
class LosesCommitReplies final : public custos::testing::ForwardingControlStore {
 public:
  using ForwardingControlStore::ForwardingControlStore;
  enum class Next { kNormal, kWrittenButReportedLost, kLostBeforeWriting };
  std::atomic<Next> next{Next::kNormal};

  absl::Status SequenceLedgerBatch(LedgerBatchBuilder build) override {
    const Next n = next.exchange(Next::kNormal);
    const absl::Status lost = absl::UnavailableError("connection lost while committing");
    if (n == Next::kLostBeforeWriting) {
      auto state = inner_.LoadLedgerState();
      if (state.ok()) (void)build(*state);  // built, never written
      return lost;
    }
    absl::Status s = inner_.SequenceLedgerBatch(build);
    return s.ok() && n == Next::kWrittenButReportedLost ? lost : s;
  }
};

// A batch whose commit was reported lost although it was written: its callers were told "not
// recorded" (they do not act), so the log must not claim those accesses alone. Once a later
// batch settles it, the next event records an `outcome` for each of its entries; a batch that
// was never written gets none.
TEST_F(LedgerStoreTest, EntriesWrittenAfterTheirCallersWereRefusedGetAnOutcomeEvent) {
  LosesCommitReplies lossy(*store_);
  ledger_.reset();
  LedgerOptions options;
  options.checkpoint_interval = absl::Hours(1);  // nothing settles but batches
  auto ledger = *Ledger::Open(lossy, *crypto::Ed25519PrivateKey::FromSeed(seed_),
                              "test.example/ledger", clock_, options);
  auto keys =
      *crypto::KeyringKeyProvider::Create(dir_.File("keyring"), std::string(32, 'm'), random_);
  for (const char* t : {"a", "b"}) ASSERT_TRUE(keys->CreateKey(crypto::TenantKeyId(t)).ok());
  EventLog events(*ledger, lossy, *keys, std::string(32, 'p'), random_, clock_);
  const Event read_a{"data.read", "a", {{"actor", "x"}, {"role", "r"}}};
  const Event read_b{"data.read", "b", {{"actor", "y"}, {"role", "r"}}};
  auto outcomes_in = [&](std::string_view tenant) {
    std::vector<std::string> out;
    auto page = events.ReadTenantLog(tenant, {.kind = "outcome"});
    EXPECT_TRUE(page.ok()) << page.status();
    for (const LoggedEvent& e : page->events) out.push_back(e.record);
    return out;
  };

  ASSERT_EQ(events.Record(read_a)->ledger_index, 0u);
  // Reported lost before it was written: refused, not in the log, no outcome ever.
  lossy.next = LosesCommitReplies::Next::kLostBeforeWriting;
  EXPECT_EQ(events.Record(read_a).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->LoadLedgerState()->size, 1u);
  ASSERT_EQ(events.Record(read_b)->ledger_index,
            1u);  // takes the slot: settles the batch as not written
  ASSERT_EQ(events.Record(read_b)->ledger_index, 2u);
  EXPECT_TRUE(outcomes_in("a").empty());

  // Reported lost after it was written: refused, yet entry 3 is in the log.
  lossy.next = LosesCommitReplies::Next::kWrittenButReportedLost;
  EXPECT_EQ(events.Record(read_a).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->LoadLedgerState()->size, 4u);
  ASSERT_EQ(events.Record(read_b)->ledger_index, 4u);  // the next batch settles it: written
  // The next event records its outcome first; here the batch carrying it is lost too, so the
  // outcome is given back and recorded by a later event.
  lossy.next = LosesCommitReplies::Next::kLostBeforeWriting;
  (void)events.Record(read_b);
  for (int i = 0; i < 50 && outcomes_in("a").empty(); ++i) {
    ASSERT_TRUE(events.Record(read_b).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::vector<std::string> outcomes = outcomes_in("a");
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_NE(outcomes[0].find("\"of\":3"), std::string::npos) << outcomes[0];
  EXPECT_NE(outcomes[0].find("\"outcome\":\"unavailable\""), std::string::npos) << outcomes[0];
  EXPECT_TRUE(outcomes_in("b").empty());
  EXPECT_TRUE(ledger->TakeRecordedAfterRefusal().empty());  // recorded once
}

// Records are sealed with XAES-256-GCM under the tenant's record key, stored once wrapped under
// its KEK and adopted by every other EventLog on the store; records sealed under the KEK itself
// (before record keys) still open; with the KEK destroyed, none does.
TEST_F(LedgerStoreTest, RecordsAreSealedUnderARecordKeyThatTheKekWraps) {
  auto keys =
      *crypto::KeyringKeyProvider::Create(dir_.File("keyring"), std::string(32, 'm'), random_);
  const std::string kek = crypto::TenantKeyId("a");
  ASSERT_TRUE(keys->CreateKey(kek).ok());
  const Event read{"data.read", "a", {{"actor", "x"}, {"role", "r"}}};
  // A record as written before record keys: AES-256-GCM under the KEK, no magic.
  const std::string old_record = R"({"kind":"data.read","tenant":"a","ts":1,"v":1})";
  auto old_sealed = keys->Wrap(kek, old_record, std::string("custos event-record v1\0a", 24));
  ASSERT_TRUE(old_sealed.ok());
  ASSERT_EQ(*ledger_->Append({"old entry", "a", *old_sealed}), 0u);
  {
    EventLog events(*ledger_, *store_, *keys, std::string(32, 'p'), random_, clock_);
    ASSERT_TRUE(events.Record(read).ok());
  }
  auto wrapped = store_->GetSetting("record-key/a");
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  // Another EventLog (another instance, or after a restart) adopts the stored key.
  EventLog events(*ledger_, *store_, *keys, std::string(32, 'p'), random_, clock_);
  ASSERT_TRUE(events.Record(read).ok());
  EXPECT_EQ(*store_->GetSetting("record-key/a"), *wrapped);
  auto groups = store_->ReadRecordGroups("a", 0, 10);
  ASSERT_TRUE(groups.ok());
  size_t magic = 0;
  for (const auto& g : *groups) magic += g.data.find("cxr1") != std::string::npos ? 1 : 0;
  EXPECT_EQ(magic, 2u);
  auto page = events.ReadTenantLog("a", {});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->events.size(), 3u);
  EXPECT_EQ(page->events[0].record, old_record);
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_NE(page->events[i].record.find("\"actor\":\"x\""), std::string::npos);
  }
  // Crypto-shredding: without the KEK no EventLog can open the record key, so no record opens.
  ASSERT_TRUE(keys->DestroyKey(kek).ok());
  EventLog after(*ledger_, *store_, *keys, std::string(32, 'p'), random_, clock_);
  EXPECT_FALSE(after.ReadTenantLog("a", {}).ok());
}

// Runs `sql` on the control store's file from another connection: what someone with write
// access to the database (not the server) can do.
void Tamper(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// The log key never signs a tree that does not extend what it signed before: a log replaced in
// the database by another of the same length plus more (every hash consistent with its
// entries, as a careful forger would leave it) is refused, and so is a frontier changed alone.
TEST_F(LedgerStoreTest, NeverSignsALogRewrittenInTheDatabase) {
  GrowTo(300);
  auto signed_before = ledger_->SignCheckpointNow();
  ASSERT_TRUE(signed_before.ok()) << signed_before.status();
  ASSERT_EQ(signed_before->size, 300u);

  // A forged log, built by the same code in another file: other entries, 310 of them.
  {
    auto forged_store = *store::OpenSqliteControlStore(dir_.File("forged.db"), true);
    auto forged = *Ledger::Open(*forged_store, *crypto::Ed25519PrivateKey::FromSeed(seed_),
                                "test.example/ledger", clock_);
    for (int i = 0; i < 310; ++i)
      ASSERT_TRUE(forged->Append({"forged-" + std::to_string(i), "", ""}).ok());
  }
  const std::string control = dir_.File("control.db");
  Tamper(control, "ATTACH '" + dir_.File("forged.db") +
                      "' AS f; DELETE FROM ledger_tiles; DELETE FROM ledger_tile_parts; "
                      "INSERT INTO ledger_tiles SELECT * FROM f.ledger_tiles; "
                      "INSERT INTO ledger_tile_parts SELECT * FROM f.ledger_tile_parts; "
                      "UPDATE ledger_state SET size = (SELECT size FROM f.ledger_state), "
                      "frontier = (SELECT frontier FROM f.ledger_state);");
  Reopen();  // a restarted server meets it
  auto refused = ledger_->SignCheckpointNow();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss) << refused.status();
  EXPECT_EQ(ledger_->LatestCheckpoint()->size, 300u);  // nothing signed on top

  // A frontier changed alone (the tiles say otherwise) is refused too.
  Tamper(control, "UPDATE ledger_state SET frontier = zeroblob(length(frontier))");
  Reopen();
  EXPECT_EQ(ledger_->SignCheckpointNow().status().code(), absl::StatusCode::kDataLoss);
}

// A log cut back in the database below what was signed is refused as well.
TEST_F(LedgerStoreTest, NeverSignsALogCutShorterThanItsLatestCheckpoint) {
  GrowTo(40);
  ASSERT_TRUE(ledger_->SignCheckpointNow().ok());
  {
    auto short_store = *store::OpenSqliteControlStore(dir_.File("short.db"), true);
    auto short_log = *Ledger::Open(*short_store, *crypto::Ed25519PrivateKey::FromSeed(seed_),
                                   "test.example/ledger", clock_);
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(short_log->Append({"short-" + std::to_string(i), "", ""}).ok());
    }
  }
  Tamper(dir_.File("control.db"),
         "ATTACH '" + dir_.File("short.db") +
             "' AS f; DELETE FROM ledger_tiles; DELETE FROM ledger_tile_parts; "
             "INSERT INTO ledger_tiles SELECT * FROM f.ledger_tiles; "
             "INSERT INTO ledger_tile_parts SELECT * FROM f.ledger_tile_parts; "
             "UPDATE ledger_state SET size = (SELECT size FROM f.ledger_state), "
             "frontier = (SELECT frontier FROM f.ledger_state);");
  Reopen();
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(ledger_->Append({"after-cut", "", ""}).ok());  // 45
  EXPECT_EQ(ledger_->SignCheckpointNow().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ledger_->LatestCheckpoint()->size, 40u);
}

// A checkpoint row whose size column is not its note's (written behind the server's back) is
// not believed: proofs are bounded by the signed size, and nothing is signed on top of it.
TEST_F(LedgerStoreTest, ACheckpointRowThatLiesAboutItsSizeIsNotBelieved) {
  GrowTo(20);
  auto cp = ledger_->SignCheckpointNow();
  ASSERT_TRUE(cp.ok()) << cp.status();
  std::string note = cp->note;
  for (size_t at = 0; (at = note.find('\'', at)) != std::string::npos; at += 2) {
    note.insert(at, "'");
  }
  Tamper(dir_.File("control.db"),
         "INSERT INTO ledger_checkpoints(size, note, created_at_ms) "
         "VALUES(999999, '" +
             note + "', 0)");
  GrowTo(25);
  EXPECT_EQ(ledger_->InclusionProof(0, 21).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ledger_->SignCheckpointNow().status().code(), absl::StatusCode::kDataLoss);
}

// What AppendAsync callbacks saw, gathered from the answer threads.
struct AsyncOutcomes {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::string> committed;  // index -> entry
  std::vector<absl::Status> errors;
  std::set<std::thread::id> threads;
  int answered = 0;

  void WaitFor(int n) {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return answered >= n; }));
  }
};

TEST_F(LedgerStoreTest, AsyncAppendsAreAnsweredOffTheCallerOnceDurable) {
  constexpr int kAppends = 500;
  AsyncOutcomes out;
  for (int i = 0; i < kAppends; ++i) {
    ledger_->AppendAsync({EntryText(i), "", ""}, [&, i](absl::StatusOr<uint64_t> index) {
      // Committed before the callback runs: the entry reads back from the store already.
      absl::StatusOr<std::string> entry =
          index.ok() ? ledger_->ReadEntry(*index) : absl::StatusOr<std::string>(index.status());
      std::lock_guard lock(out.mu);
      out.threads.insert(std::this_thread::get_id());
      if (!entry.ok()) {
        out.errors.push_back(entry.status());
      } else {
        EXPECT_EQ(*entry, EntryText(i));
        out.committed[*index] = *entry;
      }
      ++out.answered;
      out.cv.notify_all();
    });
  }
  out.WaitFor(kAppends);
  EXPECT_TRUE(out.errors.empty()) << out.errors.front();
  ASSERT_EQ(out.committed.size(), static_cast<size_t>(kAppends));
  EXPECT_EQ(out.committed.begin()->first, 0u);
  EXPECT_EQ(out.committed.rbegin()->first, static_cast<uint64_t>(kAppends - 1));
  EXPECT_FALSE(out.threads.contains(std::this_thread::get_id()));
  EXPECT_EQ(store_->LoadLedgerState()->size, static_cast<uint64_t>(kAppends));
}

TEST_F(LedgerStoreTest, AsyncCallbacksMayAppendAgainWithoutDeadlock) {
  // One answer thread, and every callback appends synchronously (as a read that failed records
  // its outcome): the inner appends are answered by the sequencer, not by the busy thread.
  Reopen(/*answer_threads=*/1);
  constexpr int kAppends = 50;
  AsyncOutcomes out;
  for (int i = 0; i < kAppends; ++i) {
    ledger_->AppendAsync({EntryText(i), "", ""}, [&](absl::StatusOr<uint64_t> index) {
      absl::StatusOr<uint64_t> outcome = ledger_->Append({"outcome", "", ""});
      std::lock_guard lock(out.mu);
      if (!index.ok()) out.errors.push_back(index.status());
      if (!outcome.ok()) out.errors.push_back(outcome.status());
      ++out.answered;
      out.cv.notify_all();
    });
  }
  out.WaitFor(kAppends);
  EXPECT_TRUE(out.errors.empty()) << out.errors.front();
  EXPECT_EQ(store_->LoadLedgerState()->size, static_cast<uint64_t>(2 * kAppends));
}

TEST_F(LedgerStoreTest, AsyncAppendsTheStoreRefusesAreAnsweredUnavailableAndNotStored) {
  GrowTo(3);
  // A real refusal from the store: a trigger aborts every update of the ledger's state row.
  ASSERT_TRUE(custos::testing::RefuseWrites(dir_.File("control.db"), "ledger_state", "UPDATE"));
  AsyncOutcomes out;
  for (int i = 0; i < 20; ++i) {
    ledger_->AppendAsync({EntryText(100 + i), "", ""}, [&](absl::StatusOr<uint64_t> index) {
      std::lock_guard lock(out.mu);
      if (index.ok()) out.committed[*index] = "";
      if (!index.ok()) out.errors.push_back(index.status());
      ++out.answered;
      out.cv.notify_all();
    });
  }
  out.WaitFor(20);
  EXPECT_TRUE(out.committed.empty());
  ASSERT_EQ(out.errors.size(), 20u);
  for (const absl::Status& s : out.errors) EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(
      custos::testing::RefuseWrites(dir_.File("control.db"), "ledger_state", "UPDATE", false));
  EXPECT_EQ(store_->LoadLedgerState()->size, 3u);
  EXPECT_EQ(*ledger_->Append({"after", "", ""}), 3u);  // the log goes on where it was
}

TEST_F(LedgerStoreTest, AsyncAppendsRefusedAtOnceAnswerOnTheCaller) {
  std::promise<absl::Status> refused;
  ledger_->AppendAsync({std::string(kMaxEntryBytes + 1, 'x'), "", ""},
                       [&](absl::StatusOr<uint64_t> index) { refused.set_value(index.status()); });
  // Called before AppendAsync returned: the future is ready without waiting.
  auto done = refused.get_future();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(done.get().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LedgerStoreTest, ClosingTheLedgerAnswersEveryAsyncAppend) {
  constexpr int kAppends = 300;
  std::atomic<int> answered{0};
  for (int i = 0; i < kAppends; ++i) {
    ledger_->AppendAsync({EntryText(i), "", ""},
                         [&](absl::StatusOr<uint64_t>) { answered.fetch_add(1); });
  }
  ledger_.reset();  // drains: commits what was pending and runs the last callbacks
  EXPECT_EQ(answered.load(), kAppends);
  Reopen();
  EXPECT_EQ(store_->LoadLedgerState()->size, static_cast<uint64_t>(kAppends));
}

// A refused request's bytes are recorded; those that are not UTF-8 must not make the record
// something no JSON parser reads back (the tenant's access log would fail from then on).
TEST(CanonicalJson, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  boost::json::object o{{"resource", boost::json::string("a\xff\xfe"
                                                         "b\xc3\xa9\xed\xa0\x80")}};
  auto canonical = CanonicalJson(o);
  ASSERT_TRUE(canonical.ok());
  EXPECT_EQ(*canonical,
            "{\"resource\":\"a\xef\xbf\xbd\xef\xbf\xbd"
            "b\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}");
  boost::system::error_code ec;
  boost::json::parse(*canonical, ec);  // strict: valid UTF-8
  EXPECT_FALSE(ec) << ec.message();
}

// RFC 8785's escapes (Boost's): the two-character ones, \u00XX for the other controls, and
// everything else as it is, including "/" and U+007F; integers in full; strings longer than
// the serializer's buffer; non-ASCII keys refused.
TEST(CanonicalJson, EscapesAndNumbersAsRfc8785) {
  boost::json::object o{{"s", "q\"b\\n\nt\tr\rf\fb\bz\x1f/\x7f\xc3\xa9"},
                        {"min", INT64_MIN},
                        {"max", UINT64_MAX},
                        {"neg", -7},
                        {"t", true},
                        {"long", std::string(1000, 'x') + "\"" + std::string(300, 'y')}};
  auto canonical = CanonicalJson(o);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  EXPECT_EQ(*canonical,
            "{\"long\":\"" + std::string(1000, 'x') + "\\\"" + std::string(300, 'y') +
                "\",\"max\":18446744073709551615,\"min\":-9223372036854775808,"
                "\"neg\":-7,\"s\":\"q\\\"b\\\\n\\nt\\tr\\rf\\fb\\bz\\u001f/\x7f\xc3\xa9\","
                "\"t\":true}");
  EXPECT_EQ(boost::json::parse(*canonical), boost::json::value(o));
  EXPECT_FALSE(CanonicalJson(boost::json::object{{"\xc3\xa9", 1}}).ok());
}

// An entry is written out directly; it must be what canonicalizing its object gives.
TEST(EventLogEntry, IsTheCanonicalJsonOfItsFields) {
  const std::string record = R"({"a":1})";
  EXPECT_EQ(EventLog::EntryFor(record, "data.read", "0123abcd", 1764000000123),
            StrCat(R"({"digest":")", crypto::Sha256Hex(record),
                   R"(","kind":"data.read","tenant":"0123abcd","ts":1764000000123,"v":1})"));
  for (std::string_view kind : {"data.read", "data.refused", "we\"ird\\kind\n"}) {
    boost::json::object entry{{"v", 1},
                              {"ts", int64_t{1764000000123}},
                              {"tenant", "0123abcd"},
                              {"kind", kind},
                              {"digest", crypto::Sha256Hex(record)}};
    EXPECT_EQ(EventLog::EntryFor(record, kind, "0123abcd", 1764000000123), *CanonicalJson(entry));
  }
}

TEST(CanonicalJson, SortsKeysAndRefusesFloats) {
  boost::json::value v = boost::json::parse(R"({"b":1,"a":{"z":"\u0001é","y":[true,null]}})");
  EXPECT_EQ(*CanonicalJson(v), "{\"a\":{\"y\":[true,null],\"z\":\"\\u0001é\"},\"b\":1}");
  EXPECT_FALSE(CanonicalJson(boost::json::parse("{\"a\":1.5}")).ok());
}

}  // namespace
}  // namespace custos::ledger
