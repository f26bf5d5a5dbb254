#include <condition_variable>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "base/clock.h"
#include "base/strings.h"
#include "crypto/crypto.h"
#include "data/data.h"
#include "gtest/gtest.h"
#include "testing/cell_store_wrappers.h"
#include "testing/sqlite_fault.h"
#include "testing/store_records.h"
#include "testing/temp_dir.h"

namespace custos::data {
namespace {

using custos::testing::TempDir;

class ObjectServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Open({}); }

  void Open(ObjectServiceOptions options) {
    service_.reset();
    cells_.clear();
    if (!keys_) {
      keys_ =
          *crypto::KeyringKeyProvider::Create(dir_.File("keyring"), std::string(32, 'k'), random_);
      ASSERT_TRUE(keys_->CreateKey(crypto::TenantKeyId("t1")).ok());
    }
    if (!control_) {
      control_ = *store::OpenSqliteControlStore(dir_.File("control.db"), true);
      ledger_ = *ledger::Ledger::Open(*control_, crypto::Ed25519PrivateKey::Generate(random_),
                                      "test.example/log", clock_);
      events_ = std::make_unique<ledger::EventLog>(*ledger_, *control_, *keys_,
                                                   std::string(32, 'p'), random_, clock_);
    }
    std::map<std::string, store::CellStore*> raw;
    for (const char* region : {"home", "replica", "elsewhere"}) {
      cells_[region] =
          *store::OpenSqliteCellStore(dir_.File(std::string(region) + ".db"), region, true);
      raw[region] = cells_[region].get();
    }
    service_ = std::make_unique<ObjectService>(raw, *keys_, *events_, random_, clock_, options);
  }

  // Stores a different data key under version 1 in each cell, as an earlier release's
  // half-done rotation could.
  void StoreDisagreeingFirstKeys() {
    const std::string aad(
        "custos dek v1\0t1\0"
        "1",
        18);
    for (const char* region : {"home", "replica"}) {
      auto wrapped = keys_->Wrap(crypto::TenantKeyId("t1"), random_.Bytes(32), aad);
      ASSERT_TRUE(wrapped.ok());
      ASSERT_TRUE(cells_[region]->PutDataKey({"t1", 1, *wrapped, 0, 0}).ok());
    }
  }

  // Another instance over the same cells (its own connections and cell writers), on `clock`.
  std::unique_ptr<ObjectService> OpenOther(const Clock& clock, ObjectServiceOptions options = {}) {
    std::map<std::string, store::CellStore*> raw;
    for (const char* region : {"home", "replica"}) {
      other_cells_[region] =
          *store::OpenSqliteCellStore(dir_.File(std::string(region) + ".db"), region, false);
      raw[region] = other_cells_[region].get();
    }
    return std::make_unique<ObjectService>(raw, *keys_, *events_, random_, clock, options);
  }

  // The tenant's object `key` as each of its cells holds it: sealed bytes, or "(none)".
  std::pair<std::string, std::string> InBothCells(const std::string& key) {
    std::pair<std::string, std::string> out;
    for (auto [region, slot] : {std::pair{"home", &out.first}, {"replica", &out.second}}) {
      auto o = cells_[region]->GetObject("t1", key);
      *slot = o.ok() ? o->sealed : "(none)";
    }
    return out;
  }

  TempDir dir_;
  crypto::OpenSslRandom random_;
  SystemClock clock_;
  std::unique_ptr<crypto::KeyProvider> keys_;
  std::unique_ptr<store::ControlStore> control_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<ledger::EventLog> events_;
  std::map<std::string, std::unique_ptr<store::CellStore>> cells_;
  std::map<std::string, std::unique_ptr<store::CellStore>> other_cells_;
  std::unique_ptr<ObjectService> service_;
  TenantCells tenant_{"t1", "home", "replica"};
};

TEST_F(ObjectServiceTest, RoundTripsAndStoresOnlyInTheTenantsCells) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  auto put = service_->Put(tenant_, "a/b", "secret bytes", "text/plain");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_TRUE(put->created);
  EXPECT_EQ(put->sha256_hex, crypto::Sha256Hex("secret bytes"));
  auto got = service_->Get(tenant_, "a/b");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->bytes, "secret bytes");
  EXPECT_EQ(got->content_type, "text/plain");
  for (const char* region : {"home", "replica"}) {
    auto o = cells_[region]->GetObject("t1", "a/b");
    ASSERT_TRUE(o.ok()) << region;
    EXPECT_EQ(o->sealed.size(), 12 + crypto::kAeadOverhead);
    EXPECT_EQ(o->sealed.find("secret"), std::string::npos);
  }
  EXPECT_EQ(cells_["elsewhere"]->Usage("t1")->objects, 0);
  auto replaced = service_->Put(tenant_, "a/b", "v2", "");
  EXPECT_FALSE(replaced->created);
  EXPECT_EQ(replaced->version, 2);
}

TEST_F(ObjectServiceTest, SealedBytesAreBoundToTenantAndKey) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  ASSERT_TRUE(service_->Put(tenant_, "k1", "one", "").ok());
  ASSERT_TRUE(service_->Put(tenant_, "k2", "two", "").ok());
  // Swap k1's sealed bytes into k2's row in both cells: the AAD binding must refuse it.
  for (const char* region : {"home", "replica"}) {
    auto k1 = *cells_[region]->GetObject("t1", "k1");
    k1.key = "k2";
    ASSERT_TRUE(cells_[region]->Apply(std::vector<store::CellWrite>{testing::Put(k1)}).ok());
  }
  EXPECT_EQ(service_->Get(tenant_, "k2").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ObjectServiceTest, RolledBackCiphertextUnderNewerMetadataDoesNotOpen) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  ASSERT_TRUE(service_->Put(tenant_, "terms", "old terms", "").ok());
  auto old_row = *cells_["home"]->GetObject("t1", "terms");
  ASSERT_TRUE(service_->Put(tenant_, "terms", "new terms", "").ok());
  for (const char* region : {"home", "replica"}) {
    auto row = *cells_[region]->GetObject("t1", "terms");
    row.sealed = old_row.sealed;  // same tenant, key and data key: only the content differs
    ASSERT_TRUE(cells_[region]->Apply(std::vector<store::CellWrite>{testing::Put(row)}).ok());
  }
  EXPECT_EQ(service_->Get(tenant_, "terms").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ObjectServiceTest, RotatesDataKeysAndReadsOldObjectsAfterRestart) {
  Open({.max_seals_per_dek = 3});
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(service_->Put(tenant_, "k" + std::to_string(i), "v" + std::to_string(i), "").ok());
  }
  EXPECT_GE(cells_["home"]->ListDataKeys("t1")->size(), 4u);
  // Each rotation after the first key was recorded in the tenant's log first.
  auto log = events_->ReadTenantLog("t1", {.kind = "key.rotate"});
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(log->events.size(), cells_["home"]->ListDataKeys("t1")->size() - 1);
  EXPECT_EQ(cells_["replica"]->ListDataKeys("t1")->size(),
            cells_["home"]->ListDataKeys("t1")->size());
  Open({.max_seals_per_dek = 3});  // a new process: keys are loaded from the cells
  for (int i = 0; i < 10; ++i) {
    auto got = service_->Get(tenant_, "k" + std::to_string(i));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->bytes, "v" + std::to_string(i));
  }
  ASSERT_TRUE(service_->Put(tenant_, "after", "x", "").ok());
}

TEST_F(ObjectServiceTest, ConcurrentWritesLandInTheSameOrderInBothCells) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        ASSERT_TRUE(service_->Put(tenant_, "same", "w" + std::to_string(t), "").ok());
        ASSERT_TRUE(service_->Put(tenant_, "k" + std::to_string(i), std::to_string(t), "").ok());
      }
    });
  }
  for (auto& w : writers) w.join();
  auto home = *cells_["home"]->GetObject("t1", "same");
  auto replica = *cells_["replica"]->GetObject("t1", "same");
  EXPECT_EQ(home.version, 200);
  EXPECT_EQ(home.version, replica.version);
  EXPECT_EQ(home.sha256_hex, replica.sha256_hex);
  for (int i = 0; i < 25; ++i) {
    std::string k = "k" + std::to_string(i);
    EXPECT_EQ(cells_["home"]->GetObject("t1", k)->sha256_hex,
              cells_["replica"]->GetObject("t1", k)->sha256_hex);
  }
}

TEST_F(ObjectServiceTest, ListsPagesAndReportsLocation) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(service_->Put(tenant_, "p/" + std::to_string(i), "x", "").ok());
  ASSERT_TRUE(service_->Put(tenant_, "q", "x", "").ok());
  auto page = service_->List(tenant_, "p/", "", 2);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->objects.size(), 2u);
  ASSERT_TRUE(page->next_start_after.has_value());
  auto rest = service_->List(tenant_, "p/", *page->next_start_after, 10);
  EXPECT_EQ(rest->objects.size(), 3u);
  EXPECT_FALSE(rest->next_start_after.has_value());
  EXPECT_FALSE(service_->List(tenant_, "", "", 0).ok());
  auto location = service_->Location(tenant_);
  ASSERT_EQ(location->size(), 2u);
  EXPECT_EQ((*location)[0].role, "home");
  EXPECT_EQ((*location)[0].objects, 6);
  EXPECT_EQ((*location)[1].role, "replica");
  EXPECT_EQ((*location)[1].bytes, 6 * (1 + 28));
}

TEST_F(ObjectServiceTest, RefusesOversizeObjectsAndBadKeysWithoutWriting) {
  Open({.max_object_bytes = 10});
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  EXPECT_EQ(service_->Put(tenant_, "k", std::string(11, 'x'), "").status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(service_->Put(tenant_, "a/../b", "x", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cells_["home"]->Usage("t1")->objects, 0);
  EXPECT_EQ(service_->Delete(tenant_, "nope").code(), absl::StatusCode::kNotFound);
}

TEST_F(ObjectServiceTest, RefusesContentTypesThatAreNotPrintableAsciiWithoutWriting) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  for (std::string bad : {std::string("text/\xff"), std::string("text/plain; charset=\xc3\xa9"),
                          std::string("text/\x01plain"), std::string("a\0b", 3),
                          std::string("text/x\x7f"), std::string(kMaxContentTypeBytes + 1, 'a')}) {
    auto r = service_->Put(tenant_, "k", "x", bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  }
  EXPECT_EQ(cells_["home"]->Usage("t1")->objects, 0);
  EXPECT_EQ(cells_["replica"]->Usage("t1")->objects, 0);

  ASSERT_TRUE(service_->Put(tenant_, "typed", "x", "text/plain;\tcharset=utf-8").ok());
  EXPECT_EQ(service_->Get(tenant_, "typed")->content_type, "text/plain;\tcharset=utf-8");
  ASSERT_TRUE(service_->Put(tenant_, "max", "x", std::string(kMaxContentTypeBytes, 'a')).ok());
  ASSERT_TRUE(service_->Put(tenant_, "untyped", "x", "").ok());
  EXPECT_EQ(service_->Get(tenant_, "untyped")->content_type, "application/octet-stream");
}

// Both cells hold the same key under each version, and every object reads back after a
// restart. `service` and `cells` are one process's view.
void ExpectOneKeyPerVersion(std::map<std::string, std::unique_ptr<store::CellStore>>& cells) {
  auto home = cells["home"]->ListDataKeys("t1");
  auto replica = cells["replica"]->ListDataKeys("t1");
  ASSERT_TRUE(home.ok() && replica.ok());
  ASSERT_EQ(home->size(), replica->size());
  for (size_t i = 0; i < home->size(); ++i) {
    EXPECT_EQ((*home)[i].version, (*replica)[i].version);
    EXPECT_EQ((*home)[i].wrapped, (*replica)[i].wrapped) << "version " << (*home)[i].version;
  }
}

// A rotation that stored the new key in the home cell and then failed on the replica is
// finished with that key, not redone with another under the same version (which left the cells
// disagreeing and objects unreadable after a restart).
TEST_F(ObjectServiceTest, ARotationThatFailedOnTheReplicaIsFinishedWithTheSameKey) {
  Open({.max_seals_per_dek = 2});
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  ASSERT_TRUE(service_->Put(tenant_, "k0", "v0", "").ok());
  ASSERT_TRUE(service_->Put(tenant_, "k1", "v1", "").ok());
  ASSERT_TRUE(custos::testing::RefuseWrites(dir_.File("replica.db"), "data_keys", "INSERT"));
  EXPECT_FALSE(service_->Put(tenant_, "k2", "v2", "").ok());  // rotation: home only, then refused
  EXPECT_EQ(cells_["home"]->ListDataKeys("t1")->size(), 2u);
  ASSERT_TRUE(custos::testing::RefuseWrites(dir_.File("replica.db"), "data_keys", "INSERT", false));
  ASSERT_TRUE(service_->Put(tenant_, "k2", "v2", "").ok());
  ASSERT_TRUE(service_->Put(tenant_, "k3", "v3", "").ok());
  ExpectOneKeyPerVersion(cells_);
  Open({.max_seals_per_dek = 2});  // a new process: keys are loaded from the cells
  for (int i = 0; i < 4; ++i) {
    auto got = service_->Get(tenant_, "k" + std::to_string(i));
    ASSERT_TRUE(got.ok()) << i << " " << got.status();
    EXPECT_EQ(got->bytes, "v" + std::to_string(i));
  }
}

// Cells left holding different keys under one version (by an earlier release's half-done
// rotation): writes go on under a new version instead of failing forever.
TEST_F(ObjectServiceTest, AVersionTheCellsDisagreeOnIsRotatedPast) {
  StoreDisagreeingFirstKeys();
  auto put = service_->Put(tenant_, "after", "bytes", "");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(cells_["home"]->GetObject("t1", "after")->dek_version, 2);
  Open({});
  EXPECT_EQ(service_->Get(tenant_, "after")->bytes, "bytes");
  auto home = *cells_["home"]->ListDataKeys("t1");
  auto replica = *cells_["replica"]->ListDataKeys("t1");
  ASSERT_EQ(home.size(), 2u);
  ASSERT_EQ(replica.size(), 2u);
  EXPECT_EQ(home[1].wrapped, replica[1].wrapped);
}

// The objects that release sealed under the replica's key of such a version are read with it:
// the home cell's key under that version does not open them.
TEST_F(ObjectServiceTest, ObjectsSealedUnderTheReplicasKeyOfADisagreeingVersionAreRead) {
  StoreDisagreeingFirstKeys();
  // Sealed under the replica's version-1 key (a tenant living in that cell alone sees only
  // it), then stored in both cells, as that release did.
  ASSERT_TRUE(service_->Put({"t1", "replica", ""}, "old", "old bytes", "").ok());
  auto row = *cells_["replica"]->GetObject("t1", "old");
  ASSERT_EQ(row.dek_version, 1);
  ASSERT_TRUE(cells_["home"]->Apply(std::vector<store::CellWrite>{testing::Put(row)}).ok());
  Open({});
  auto got = service_->Get(tenant_, "old");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bytes, "old bytes");
  // A row that opens under neither key is still refused.
  row.sealed[row.sealed.size() - 1] ^= 1;
  ASSERT_TRUE(cells_["home"]->Apply(std::vector<store::CellWrite>{testing::Put(row)}).ok());
  EXPECT_EQ(service_->Get(tenant_, "old").status().code(), absl::StatusCode::kDataLoss);
}

// Two instances over the same cells: the one that reaches the seal limit second adopts the key
// the first stored, instead of sealing under a key of its own that no cell holds.
TEST_F(ObjectServiceTest, TwoInstancesRotateToOneKey) {
  Open({.max_seals_per_dek = 2});
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  auto other_instance = OpenOther(clock_, {.max_seals_per_dek = 2});
  ObjectService& other = *other_instance;
  std::map<std::string, std::string> written;
  auto put = [&](ObjectService& by, const std::string& key) {
    auto r = by.Put(tenant_, key, "bytes of " + key, "");
    ASSERT_TRUE(r.ok()) << key << " " << r.status();
    written[key] = "bytes of " + key;
  };
  // Interleaved so that each instance rotates while the other has already rotated.
  for (int round = 0; round < 4; ++round) {
    put(*service_, "a" + std::to_string(round));
    put(other, "b" + std::to_string(round));
    put(*service_, "c" + std::to_string(round));
  }
  ExpectOneKeyPerVersion(cells_);
  for (ObjectService* by : {service_.get(), &other}) {
    for (const auto& [key, bytes] : written) {
      auto got = by->Get(tenant_, key);
      ASSERT_TRUE(got.ok()) << key << " " << got.status();
      EXPECT_EQ(got->bytes, bytes);
    }
  }
}

// One tenant's write that a cell refuses must not take down the writes batched with it (other
// tenants' among them): the cell writer applies a refused batch again one write at a time.
TEST_F(ObjectServiceTest, AWriteACellRefusesFailsAloneNotItsWholeBatch) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  ASSERT_TRUE(service_->Put(tenant_, "warm", "x", "").ok());  // keys loaded, cells open
  ASSERT_TRUE(custos::testing::RefuseWrites(dir_.File("replica.db"), "objects", "INSERT", true,
                                            "NEW.key = 'poison'"));
  // Another connection holds the replica's write lock, so everything below queues behind the
  // write the cell writer is blocked on and is applied in one or two batches with the poison.
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("replica.db").c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, absl::Status> answers;
  auto put = [&](const std::string& key) {
    service_->PutAsync(tenant_, key, "v-" + key, "", [&, key](absl::StatusOr<PutResult> r) {
      std::lock_guard lock(mu);
      answers[key] = r.status();
      cv.notify_all();
    });
  };
  std::vector<std::string> good;
  for (int i = 0; i < 20; ++i) {
    good.push_back("good" + std::to_string(i));
    put(good.back());
    if (i == 9) put("poison");
  }
  ASSERT_EQ(sqlite3_exec(holder, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(holder);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return answers.size() == 21; }));
  }
  EXPECT_FALSE(answers["poison"].ok());
  for (const std::string& key : good) {
    EXPECT_TRUE(answers[key].ok()) << key << ": " << answers[key];
    for (const char* region : {"home", "replica"}) {
      auto o = cells_[region]->GetObject("t1", key);
      EXPECT_TRUE(o.ok() && o->version == 1) << key << " in " << region;
    }
  }
  EXPECT_EQ(cells_["replica"]->GetObject("t1", "poison").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ObjectServiceTest, AsyncPutsAnswerOnceBothCellsCommittedInTheSameOrder) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  constexpr int kPuts = 200;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  std::vector<absl::Status> errors;
  for (int i = 0; i < kPuts; ++i) {
    // Half to one key (its versions must agree across cells), half to keys of their own.
    std::string key = i % 2 ? "same" : "k" + std::to_string(i);
    service_->PutAsync(tenant_, key, "v" + std::to_string(i), "",
                       [&, key](absl::StatusOr<PutResult> r) {
                         // Answered only once both cells hold the write.
                         if (r.ok()) {
                           for (const char* region : {"home", "replica"}) {
                             auto o = cells_[region]->GetObject("t1", key);
                             if (!o.ok() || o->version < r->version) {
                               r = absl::InternalError(StrCat("not yet in ", region));
                             }
                           }
                         }
                         std::lock_guard lock(mu);
                         if (!r.ok()) errors.push_back(r.status());
                         ++answered;
                         cv.notify_all();
                       });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return answered == kPuts; }));
  }
  EXPECT_TRUE(errors.empty()) << errors.front();
  auto home = *cells_["home"]->GetObject("t1", "same");
  auto replica = *cells_["replica"]->GetObject("t1", "same");
  EXPECT_EQ(home.version, kPuts / 2);
  EXPECT_EQ(home.sha256_hex, replica.sha256_hex);
  EXPECT_EQ(cells_["home"]->Usage("t1")->objects, 1 + kPuts / 2);
  EXPECT_EQ(cells_["replica"]->Usage("t1")->objects, 1 + kPuts / 2);
}

TEST_F(ObjectServiceTest, AsyncPutsAreRefusedWithoutWritingOrWhenACellRefuses) {
  Open({.max_object_bytes = 10});
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  // Refused before any cell has it: answered on the caller, nothing written.
  std::promise<absl::Status> too_large;
  service_->PutAsync(tenant_, "k", std::string(11, 'x'), "",
                     [&](const absl::StatusOr<PutResult>& r) { too_large.set_value(r.status()); });
  auto f = too_large.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(f.get().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(cells_["home"]->Usage("t1")->objects, 0);

  // The replica refuses (a trigger): the put is answered with its error, not as written.
  ASSERT_TRUE(custos::testing::RefuseWrites(dir_.File("replica.db"), "objects", "INSERT"));
  std::promise<absl::Status> refused;
  service_->PutAsync(tenant_, "k", "x", "",
                     [&](const absl::StatusOr<PutResult>& r) { refused.set_value(r.status()); });
  auto g = refused.get_future();
  ASSERT_EQ(g.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_FALSE(g.get().ok());
  EXPECT_EQ(cells_["replica"]->Usage("t1")->objects, 0);
}

TEST_F(ObjectServiceTest, PutsAreRefusedWhenACellRefusesOrIsLate) {
  Open({.write_deadline = absl::Milliseconds(200)});
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  ASSERT_TRUE(service_->Put(tenant_, "before", "x", "").ok());

  // The replica refuses: the put fails although home committed it.
  ASSERT_TRUE(custos::testing::RefuseWrites(dir_.File("replica.db"), "objects", "INSERT"));
  EXPECT_FALSE(service_->Put(tenant_, "refused", "x", "").ok());
  EXPECT_EQ(cells_["replica"]->Usage("t1")->objects, 1);
  ASSERT_TRUE(custos::testing::RefuseWrites(dir_.File("replica.db"), "objects", "INSERT", false));

  // Another connection holds the replica's write lock past the deadline: the caller is answered
  // kUnavailable, and the write that commits once the lock is released finds nobody waiting.
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("replica.db").c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto late = service_->Put(tenant_, "late", "x", "");
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable) << late.status();
  ASSERT_EQ(sqlite3_exec(holder, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(holder);
  // The cells stay in step: the next put commits after the late one in both.
  ASSERT_TRUE(service_->Put(tenant_, "after", "x", "").ok());
  EXPECT_EQ(cells_["replica"]->Usage("t1")->objects, cells_["home"]->Usage("t1")->objects - 1);
}

// An instance whose clock is behind another's stamps its write below the other's earlier one:
// the cells refuse it, and it is sent again above the stamp they hold, so that the write
// answered last is the one both cells keep.
TEST_F(ObjectServiceTest, AWriteStampedBelowAnotherInstancesIsSentAgainAboveIt) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  OffsetClock ahead;
  ahead.Advance(3600);
  auto other = OpenOther(ahead);
  ASSERT_TRUE(other->Put(tenant_, "doc", "from the instance an hour ahead", "").ok());
  auto put = service_->Put(tenant_, "doc", "written last", "");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_FALSE(put->created);
  EXPECT_EQ(put->version, 2);
  auto got = service_->Get(tenant_, "doc");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bytes, "written last");
  auto [home, replica] = InBothCells("doc");
  EXPECT_EQ(home, replica);
  // A delete likewise: it finds the object and removes it from both cells.
  ASSERT_TRUE(other->Put(tenant_, "doc", "again from ahead", "").ok());
  EXPECT_TRUE(service_->Delete(tenant_, "doc").ok());
  EXPECT_EQ(InBothCells("doc"), (std::pair<std::string, std::string>("(none)", "(none)")));
  EXPECT_EQ(other->Get(tenant_, "doc").status().code(), absl::StatusCode::kNotFound);
}

// Two instances write one object at about the same time, and their writes reach the replica
// cell in the other order than the home cell: one instance's put is applied at home, then held
// on its way to the replica while the other instance deletes the object in both cells. The late
// put is refused by the replica (its stamp is below the delete's) and sent again above it, so
// both cells end with that put, the write answered last.
TEST_F(ObjectServiceTest, WritesThatReachTheCellsInOppositeOrdersLeaveThemAlike) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  ASSERT_TRUE(service_->Put(tenant_, "doc", "first", "").ok());
  auto other = OpenOther(clock_);
  testing::GatedCellStore slow_replica(*other_cells_["replica"]);
  ObjectService gated({{"home", other_cells_["home"].get()}, {"replica", &slow_replica}}, *keys_,
                      *events_, random_, clock_);
  std::promise<absl::StatusOr<PutResult>> put;
  gated.PutAsync(tenant_, "doc", "late at the replica", "",
                 [&](absl::StatusOr<PutResult> r) { put.set_value(std::move(r)); });
  ASSERT_TRUE(slow_replica.WaitForWriter());
  // Once the put has committed at home (version 2 there), the delete.
  for (int i = 0; i < 1000 && cells_["home"]->GetObject("t1", "doc")->version < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(cells_["home"]->GetObject("t1", "doc")->version, 2);
  ASSERT_TRUE(service_->Delete(tenant_, "doc").ok());
  EXPECT_EQ(InBothCells("doc"), (std::pair<std::string, std::string>("(none)", "(none)")));
  slow_replica.Open();
  auto r = put.get_future().get();
  ASSERT_TRUE(r.ok()) << r.status();
  auto [home, replica] = InBothCells("doc");
  EXPECT_EQ(home, replica);
  auto got = service_->Get(tenant_, "doc");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bytes, "late at the replica");
}

// A write that failed in one cell after the other applied it (a dropped connection) is sent
// again to that cell with the same stamp: the put is answered OK and both cells hold it, once
// even when the lost answer hid a commit.
TEST_F(ObjectServiceTest, AWriteThatFailedInOneCellAfterTheOtherAppliedItIsRepaired) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  for (bool after_applying : {false, true}) {
    SCOPED_TRACE(after_applying ? "answer lost after the commit" : "failed before applying");
    testing::FlakyCellStore replica(*cells_["replica"], 1, after_applying);
    ObjectService flaky({{"home", cells_["home"].get()}, {"replica", &replica}}, *keys_, *events_,
                        random_, clock_);
    const std::string key = after_applying ? "lost-answer" : "dropped";
    auto put = flaky.Put(tenant_, key, "bytes", "");
    ASSERT_TRUE(put.ok()) << put.status();
    EXPECT_EQ(put->version, 1);
    auto [home, in_replica] = InBothCells(key);
    EXPECT_EQ(home, in_replica);
    EXPECT_EQ(cells_["replica"]->GetObject("t1", key)->version, 1);  // applied once
    // A delete likewise.
    testing::FlakyCellStore replica2(*cells_["replica"], 1, after_applying);
    ObjectService flaky2({{"home", cells_["home"].get()}, {"replica", &replica2}}, *keys_, *events_,
                         random_, clock_);
    EXPECT_TRUE(flaky2.Delete(tenant_, key).ok());
    EXPECT_EQ(InBothCells(key), (std::pair<std::string, std::string>("(none)", "(none)")));
  }
  // A cell that keeps failing is retried twice, then the write answers its error, logged as
  // applied in one cell only.
  testing::FlakyCellStore down(*cells_["replica"], 3, false);
  ObjectService broken({{"home", cells_["home"].get()}, {"replica", &down}}, *keys_, *events_,
                       random_, clock_);
  EXPECT_EQ(broken.Put(tenant_, "stuck", "bytes", "").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(cells_["home"]->GetObject("t1", "stuck").ok());
  EXPECT_EQ(cells_["replica"]->GetObject("t1", "stuck").status().code(),
            absl::StatusCode::kNotFound);
}

// A delete applied at home over nothing, held on its way to the replica while another instance
// creates the object, is refused by the replica and sent again: it deletes what the other put
// created, so it answers OK (the object existed), not 404.
TEST_F(ObjectServiceTest, AResentDeleteReportsWhatItDeletedNotItsFirstTry) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  auto other = OpenOther(clock_);
  testing::WatchedCellStore home(*other_cells_["home"]);
  testing::GatedCellStore slow_replica(*other_cells_["replica"]);
  ObjectService gated({{"home", &home}, {"replica", &slow_replica}}, *keys_, *events_, random_,
                      clock_);
  std::promise<absl::Status> deleted;
  std::thread t([&] { deleted.set_value(gated.Delete(tenant_, "doc")); });
  ASSERT_TRUE(slow_replica.WaitForWriter());
  ASSERT_TRUE(home.WaitForApplies(1));  // the tombstone, over nothing
  auto put = service_->Put(tenant_, "doc", "created meanwhile", "");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_TRUE(put->created);
  slow_replica.Open();
  EXPECT_TRUE(deleted.get_future().get().ok());
  t.join();
  EXPECT_EQ(InBothCells("doc"), (std::pair<std::string, std::string>("(none)", "(none)")));
}

// Tombstones stay a week (kTombstoneLifetime) in both cells, then PurgeTombstones removes them.
TEST_F(ObjectServiceTest, PurgeTombstonesRemovesOnlyThoseOverAWeekOld) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  ASSERT_TRUE(service_->Put(tenant_, "gone", "bytes", "").ok());
  ASSERT_TRUE(service_->Delete(tenant_, "gone").ok());
  ASSERT_TRUE(service_->Put(tenant_, "kept", "bytes", "").ok());
  OffsetClock later;
  later.Advance(absl::ToInt64Seconds(kTombstoneLifetime) - 60);
  auto purger = OpenOther(later);
  auto purged = purger->PurgeTombstones();
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 0);  // a minute short of a week
  later.Advance(120);
  purged = purger->PurgeTombstones();
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 2);  // the home and the replica cell's tombstone
  for (const char* region : {"home", "replica"}) {
    EXPECT_EQ(*cells_[region]->PurgeTombstones(std::numeric_limits<int64_t>::max(), 10), 0);
  }
  EXPECT_TRUE(service_->Get(tenant_, "kept").ok());
}

// Every stamp this instance makes ends in the number it was given (ObjectServiceOptions::
// write_instance), puts and deletes alike.
TEST_F(ObjectServiceTest, StampsEndInTheInstanceNumberItWasGiven) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  testing::WatchedCellStore home(*cells_["home"]);
  ObjectService numbered({{"home", &home}, {"replica", cells_["replica"].get()}}, *keys_, *events_,
                         random_, clock_, ObjectServiceOptions{.write_instance = 517});
  ASSERT_TRUE(numbered.Put(tenant_, "a", "1", "").ok());
  ASSERT_TRUE(numbered.Put(tenant_, "a", "2", "").ok());
  ASSERT_TRUE(numbered.Delete(tenant_, "a").ok());
  const std::vector<int64_t> stamps = home.Stamps();
  ASSERT_EQ(stamps.size(), 3u);
  for (int64_t stamp : stamps) EXPECT_EQ(stamp % 1024, 517) << stamp;
}

// A write whose caller stopped waiting (answered 503) is not sent again when a cell refuses it
// as superseded: a write answered since must stay.
TEST_F(ObjectServiceTest, AWriteAnswered503IsNotResentOverALaterOne) {
  ASSERT_TRUE(service_->InitTenant(tenant_).ok());
  ASSERT_TRUE(service_->Put(tenant_, "doc", "v1", "").ok());
  auto other = OpenOther(clock_);
  testing::GatedCellStore slow_replica(*other_cells_["replica"]);
  auto gated = std::make_unique<ObjectService>(
      std::map<std::string, store::CellStore*>{{"home", other_cells_["home"].get()},
                                               {"replica", &slow_replica}},
      *keys_, *events_, random_, clock_,
      ObjectServiceOptions{.write_deadline = absl::Milliseconds(300)});
  auto a = gated->Put(tenant_, "doc", "A, answered 503", "");
  ASSERT_EQ(a.status().code(), absl::StatusCode::kUnavailable) << a.status();
  auto b = service_->Put(tenant_, "doc", "B, answered 200 after A's 503", "");
  ASSERT_TRUE(b.ok()) << b.status();
  slow_replica.Open();
  gated.reset();  // drains its writers: A's last answer has come in
  auto got = service_->Get(tenant_, "doc");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bytes, "B, answered 200 after A's 503");
  auto [home, replica] = InBothCells("doc");
  EXPECT_EQ(home, replica);
}

}  // namespace
}  // namespace custos::data
