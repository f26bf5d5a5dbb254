// The verifier's pure core: tiles rebuilt from entries, and every kind of edit to an entry or a
// stored hash found and named; entries, saved checkpoints and access records checked.
#include "cli/internal/log_audit.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "ledger/ledger_test_util.h"
#include "ledger/merkle.h"

namespace custos::cli::internal {
namespace {

using ledger::Tile;
using ::testing::HasSubstr;

const std::string kPseudonym(64, 'a');

std::string Record(uint64_t i) { return StrCat(R"({"kind":"data.read","n":)", i, "}"); }

std::string EntryAt(uint64_t i) {
  return ledger::EventLog::EntryFor(Record(i), i % 3 == 0 ? "data.read" : "data.write", kPseudonym,
                                    1700000000000 + static_cast<int64_t>(i));
}

// A log as the server stores it: full-width tiles, keyed (level, index); level -1 = entries.
// Served at any width the way the server does: hash tiles truncated, bundles re-encoded.
class MemoryLog final : public TileSource {
 public:
  explicit MemoryLog(uint64_t size) : size_(size) {
    std::vector<std::string> leaves;
    std::map<uint64_t, std::vector<std::string>> bundles;
    for (uint64_t i = 0; i < size; ++i) {
      entries_.push_back(EntryAt(i));
      bundles[i / ledger::kTileWidth].push_back(entries_.back());
      leaves.push_back(ledger::LeafHash(entries_.back()));
    }
    for (auto& [k, b] : bundles) tiles_[{-1, k}] = *ledger::EncodeEntryBundle(b);
    auto appended = ledger::AppendLeaves({}, leaves);
    for (const auto& n : appended->new_nodes) {
      if (n.id.level % ledger::kTileHeight != 0) continue;
      tiles_[{n.id.level / ledger::kTileHeight, n.id.index / ledger::kTileWidth}] += n.hash;
    }
    root_ = ledger::RootOfLeafHashes(leaves);
  }

  absl::StatusOr<std::string> ReadTile(const Tile& tile) override {
    ++reads_;
    auto it = tiles_.find({tile.entries ? -1 : tile.level, tile.index});
    if (it == tiles_.end()) return absl::NotFoundError(ledger::TilePath(tile));
    if (!tile.entries) return it->second.substr(0, tile.width * ledger::kHashSize);
    auto entries = ledger::DecodeEntryBundle(it->second);
    if (!entries.ok()) return it->second;  // a torn bundle is served as it is
    entries->resize(std::min<size_t>(entries->size(), tile.width));
    return *ledger::EncodeEntryBundle(*entries);
  }

  // Replaces entry `i` in its bundle (the hashes are left alone).
  void SetEntry(uint64_t i, std::string entry) {
    std::string& bundle = tiles_[{-1, i / ledger::kTileWidth}];
    auto entries = *ledger::DecodeEntryBundle(bundle);
    entries[i % ledger::kTileWidth] = std::move(entry);
    bundle = *ledger::EncodeEntryBundle(entries);
  }
  // Overwrites hash `j` of hash tile (level, index).
  void SetHash(int level, uint64_t index, int j, std::string hash) {
    tiles_[{level, index}].replace(j * ledger::kHashSize, ledger::kHashSize, hash);
  }
  std::string& RawTile(int level, uint64_t index) { return tiles_[{level, index}]; }

  ledger::Checkpoint Checkpoint() const { return {"test/log", size_, root_, {}}; }
  const std::string& root() const { return root_; }
  const std::vector<std::string>& entries() const { return entries_; }
  int reads() const { return reads_; }

 private:
  uint64_t size_;
  std::vector<std::string> entries_;
  std::map<std::pair<int, uint64_t>, std::string> tiles_;
  std::string root_;
  int reads_ = 0;
};

std::string Message(const absl::Status& s) { return std::string(StdView(s.message())); }

// --- AuditTiles ---------------------------------------------------------------------------

TEST(LogAudit, RecomputesRootsOfLogsOfManySizes) {
  for (uint64_t size : {0, 1, 2, 7, 255, 256, 257, 511, 512, 513, 1000}) {
    MemoryLog log(size);
    AuditOptions options;
    options.roots_at = {0, size / 2, size};
    auto audit = AuditCheckpoint(log.Checkpoint(), log, options);
    ASSERT_TRUE(audit.ok()) << size << ": " << audit.status();
    EXPECT_EQ(audit->root, log.root()) << size;
    std::vector<std::string> leaves;
    for (const auto& e : log.entries()) leaves.push_back(ledger::LeafHash(e));
    for (uint64_t at : options.roots_at) {
      EXPECT_EQ(audit->roots_at.at(at), ledger::RootOfLeafHashes(std::span(leaves).first(at)))
          << size << " at " << at;
    }
  }
}

TEST(LogAudit, ReadsEveryEntryBundleAndHashTile) {
  MemoryLog log(513);  // bundles 0..2, level-0 tiles 0..2, level-1 tile 0 (width 2)
  ASSERT_TRUE(AuditTiles(513, log).ok());
  EXPECT_EQ(log.reads(), 3 + 3 + 1);
}

TEST(LogAudit, ChecksTilesAboveLevelOneInALargeLog) {
  const uint64_t size = 65536 + 3 * 256 + 5;  // level-2 tile 0 of width 1
  MemoryLog log(size);
  auto audit = AuditCheckpoint(log.Checkpoint(), log);
  ASSERT_TRUE(audit.ok()) << audit.status();
  log.SetHash(2, 0, 0, std::string(32, 'x'));
  auto bad = AuditTiles(size, log);
  EXPECT_TRUE(absl::IsDataLoss(bad.status()));
  EXPECT_EQ(Message(bad.status()), "tile/2/000.p/1 hash 0 does not match the hash of tile/1/000");
}

TEST(LogAudit, CallsBackForEveryEntryInOrder) {
  MemoryLog log(300);
  std::vector<uint64_t> seen;
  AuditOptions options;
  options.on_entry = [&](uint64_t i, const LedgerEntry& e, std::string_view raw) {
    seen.push_back(i);
    EXPECT_EQ(raw, log.entries()[i]);
    EXPECT_EQ(e.tenant, kPseudonym);
    EXPECT_EQ(e.digest, crypto::Sha256Hex(Record(i)));
  };
  ASSERT_TRUE(AuditTiles(300, log, options).ok());
  ASSERT_EQ(seen.size(), 300u);
  for (uint64_t i = 0; i < 300; ++i) EXPECT_EQ(seen[i], i);
}

TEST(LogAudit, EditedEntryIsNamedWithItsLevelZeroTile) {
  MemoryLog log(300);
  std::string edited = log.entries()[17];
  edited[edited.find("\"digest\":\"") + 10] ^= 1;  // still a valid, canonical entry
  ASSERT_TRUE(ParseLedgerEntry(edited).ok());
  log.SetEntry(17, edited);
  auto audit = AuditTiles(300, log);
  EXPECT_TRUE(absl::IsDataLoss(audit.status()));
  EXPECT_EQ(Message(audit.status()), "entry 17 does not match its leaf hash in tile/0/000");

  MemoryLog tail(300);
  std::string other = tail.entries()[290];
  other[other.find("\"ts\":") + 5] = '2';
  tail.SetEntry(290, other);
  EXPECT_EQ(Message(AuditTiles(300, tail).status()),
            "entry 290 does not match its leaf hash in tile/0/001.p/44");
}

TEST(LogAudit, EditedLevelZeroHashIsNamed) {
  MemoryLog log(10);
  log.SetHash(0, 0, 5, std::string(32, '\0'));
  EXPECT_EQ(Message(AuditTiles(10, log).status()),
            "entry 5 does not match its leaf hash in tile/0/000.p/10");
}

TEST(LogAudit, EditedLevelOneHashIsNamedWithTheTileBelow) {
  MemoryLog log(3 * 256 + 1);
  std::string h = log.RawTile(1, 0).substr(32, 32);
  h[0] ^= 0x80;
  log.SetHash(1, 0, 1, h);
  EXPECT_EQ(Message(AuditTiles(3 * 256 + 1, log).status()),
            "tile/1/000.p/3 hash 1 does not match the hash of tile/0/001");
}

TEST(LogAudit, ConsistentlyRewrittenTilesDifferFromTheSignedRoot) {
  // An insider edits entry 3 and recomputes every tile: the tiles agree, the signature does not.
  MemoryLog log(300);
  const ledger::Checkpoint signed_before = log.Checkpoint();
  MemoryLog rewritten(300);
  std::string edited = rewritten.entries()[3];
  edited[edited.find("\"kind\":\"") + 8] = 'x';
  ASSERT_TRUE(ParseLedgerEntry(edited).ok());
  rewritten.SetEntry(3, edited);
  std::vector<std::string> leaves;
  for (uint64_t i = 0; i < 300; ++i) {
    leaves.push_back(ledger::LeafHash(i == 3 ? edited : rewritten.entries()[i]));
  }
  auto appended = ledger::AppendLeaves({}, leaves);
  rewritten.RawTile(0, 0).clear();
  rewritten.RawTile(0, 1).clear();
  rewritten.RawTile(1, 0).clear();
  for (const auto& n : appended->new_nodes) {
    if (n.id.level % 8 == 0) rewritten.RawTile(n.id.level / 8, n.id.index / 256) += n.hash;
  }
  ASSERT_TRUE(AuditTiles(300, rewritten).ok());
  auto audit = AuditCheckpoint(signed_before, rewritten);
  EXPECT_TRUE(absl::IsDataLoss(audit.status()));
  EXPECT_EQ(Message(audit.status()),
            "root of 300 entries recomputed from tiles differs from the signed checkpoint");
}

TEST(LogAudit, MalformedTilesAreNamed) {
  MemoryLog short_tile(10);
  short_tile.RawTile(0, 0).resize(9 * 32 + 5);
  EXPECT_EQ(Message(AuditTiles(10, short_tile).status()),
            "tile/0/000.p/10 is 293 bytes, expected 320 (10 hashes)");

  MemoryLog few(10);
  EXPECT_EQ(Message(AuditTiles(11, few).status()),  // the server has fewer than it signed
            "tile/entries/000.p/11 holds 10 entries, expected 11");

  MemoryLog torn(10);
  torn.RawTile(-1, 0).resize(5);
  EXPECT_THAT(Message(AuditTiles(10, torn).status()),
              HasSubstr("tile/entries/000.p/10 is malformed"));

  MemoryLog junk(10);
  junk.SetEntry(4, R"({"digest":"x"})");
  EXPECT_EQ(Message(AuditTiles(10, junk).status()),
            "entry 4 in tile/entries/000.p/10 is not a valid ledger entry: digest is not 64 "
            "lowercase hex");
}

TEST(LogAudit, MissingTileIsTheSourcesError) {
  MemoryLog log(10);
  auto audit = AuditTiles(300, log);
  EXPECT_FALSE(audit.ok());
  EXPECT_FALSE(AuditTiles(10, log, {.roots_at = {11}}).ok());
}

// --- ParseLedgerEntry -----------------------------------------------------------------------

TEST(LogAudit, ParsesOnlyCanonicalEntries) {
  const std::string d(64, '0'), t(64, 'f');
  const std::string good =
      StrCat(R"({"digest":")", d, R"(","kind":"data.read","tenant":")", t, R"(","ts":5,"v":1})");
  auto e = ParseLedgerEntry(good);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->digest, d);
  EXPECT_EQ(e->kind, "data.read");
  EXPECT_EQ(e->tenant, t);
  EXPECT_EQ(e->ts, 5);

  const std::pair<std::string, std::string> bad[] = {
      {"not json", "not JSON"},
      {"[1]", "not a JSON object"},
      {StrCat(R"({"digest":")", d, R"(","kind":"data.read","tenant":")", t,
              R"(","ts":5,"v":1,"x":1})"),
       "unexpected key \"x\""},
      {StrCat(R"({"digest":")", d, R"(","kind":"data.read","tenant":")", t, R"(","ts":5})"),
       "v is not 1"},
      {StrCat(R"({"digest":")", d, R"(","kind":"data.read","tenant":")", t, R"(","ts":5,"v":2})"),
       "v is not 1"},
      {StrCat(R"({"digest":")", std::string(64, 'A'), R"(","kind":"data.read","tenant":")", t,
              R"(","ts":5,"v":1})"),
       "digest is not 64 lowercase hex"},
      {StrCat(R"({"digest":")", d, R"(","kind":"data.read","tenant":")", t.substr(1),
              R"(","ts":5,"v":1})"),
       "tenant is not 64 lowercase hex"},
      {StrCat(R"({"digest":")", d, R"(","kind":"Data.read","tenant":")", t, R"(","ts":5,"v":1})"),
       "kind is not dotted lowercase"},
      {StrCat(R"({"digest":")", d, R"(","kind":"data..read","tenant":")", t, R"(","ts":5,"v":1})"),
       "kind is not dotted lowercase"},
      {StrCat(R"({"digest":")", d, R"(","kind":"data.read","tenant":")", t, R"(","ts":-5,"v":1})"),
       "ts is not a non-negative integer"},
      {StrCat(R"({"digest":")", d, R"(","kind":"data.read","tenant":")", t, R"(","ts":5.0,"v":1})"),
       "ts is not a non-negative integer"},
      {StrCat(R"({"kind":"data.read","digest":")", d, R"(","tenant":")", t, R"(","ts":5,"v":1})"),
       "not in canonical JSON form"},
      {StrCat(R"({"digest":")", d, R"(", "kind":"data.read","tenant":")", t, R"(","ts":5,"v":1})"),
       "not in canonical JSON form"},
      {StrCat(R"({"digest":")", d, R"(","kind":"data.read","tenant":")", t,
              R"(","ts":5,"v":1,"v":1})"),
       "not in canonical JSON form"},
  };
  for (const auto& [entry, why] : bad) {
    auto r = ParseLedgerEntry(entry);
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << entry;
    EXPECT_EQ(Message(r.status()), why) << entry;
  }
}

// --- saved checkpoints ---------------------------------------------------------------------

TEST(LogAudit, ShorterLogAndSameSizeForkAreCaughtBeforeAnyTile) {
  MemoryLog big(20), small(10), other(20);
  other.SetEntry(0, EntryAt(99));
  ledger::Checkpoint forked = big.Checkpoint();
  forked.root_hash = std::string(32, 'z');
  EXPECT_TRUE(CheckNotRolledBack(small.Checkpoint(), big.Checkpoint()).ok());
  EXPECT_TRUE(CheckNotRolledBack(big.Checkpoint(), big.Checkpoint()).ok());
  EXPECT_EQ(Message(CheckNotRolledBack(big.Checkpoint(), small.Checkpoint())),
            "log is shorter than the saved checkpoint (10 < 20): rolled back or rebuilt");
  EXPECT_THAT(Message(CheckNotRolledBack(big.Checkpoint(), forked)),
              HasSubstr("fork: the log of 20 entries has root "));
}

TEST(LogAudit, ConsistencyNeedsTheRecomputedOldRootAndAValidProof) {
  std::vector<std::string> leaves;
  for (uint64_t i = 0; i < 20; ++i) leaves.push_back(ledger::LeafHash(EntryAt(i)));
  ledger::testing::BruteForceTree tree(leaves);
  const ledger::Checkpoint saved{"o", 13, tree.Mth(0, 13), {}};
  const ledger::Checkpoint now{"o", 20, tree.Mth(0, 20), {}};
  const std::vector<std::string> proof = tree.Proof(13, 20);
  EXPECT_TRUE(CheckConsistent(saved, now, saved.root_hash, proof).ok());

  EXPECT_THAT(Message(CheckConsistent(saved, now, tree.Mth(0, 12), proof)),
              HasSubstr("fork: the first 13 entries of the log (root "));
  std::vector<std::string> bad_proof = proof;
  bad_proof[0][0] ^= 1;
  EXPECT_EQ(Message(CheckConsistent(saved, now, saved.root_hash, bad_proof)),
            "inconsistent: the server's consistency proof from size 13 to 20 does not verify "
            "against the two checkpoints");
}

// --- access records -----------------------------------------------------------------------

TEST(LogAudit, RecordsMustMatchTheirEntries) {
  const std::string tenant_id = "T1";
  const std::string record = R"({"kind":"data.read","salt":"00","tenant":"T1","ts":1234,"v":1})";
  auto entry = ParseLedgerEntry(ledger::EventLog::EntryFor(record, "data.read", kPseudonym, 1234));
  ASSERT_TRUE(entry.ok());
  EXPECT_TRUE(CheckRecordAgainstEntry({7, record}, *entry, tenant_id, kPseudonym).ok());

  EXPECT_THAT(Message(CheckRecordAgainstEntry({7, record + " "}, *entry, tenant_id, kPseudonym)),
              HasSubstr("record at ledger index 7 does not match entry 7: its SHA-256 is "));
  EXPECT_EQ(Message(CheckRecordAgainstEntry({7, record}, *entry, tenant_id, std::string(64, 'b'))),
            StrCat("entry 7 names tenant pseudonym ", kPseudonym, ", not this tenant's (",
                   std::string(64, 'b'), ")"));
  EXPECT_EQ(Message(CheckRecordAgainstEntry({7, record}, *entry, "T2", kPseudonym)),
            "record at ledger index 7 is not about tenant T2");

  LedgerEntry other_kind = *entry;
  other_kind.kind = "data.write";
  EXPECT_EQ(Message(CheckRecordAgainstEntry({7, record}, other_kind, tenant_id, kPseudonym)),
            "entry 7 has kind data.write but its record has kind data.read");
  LedgerEntry other_ts = *entry;
  other_ts.ts = 1;
  EXPECT_EQ(Message(CheckRecordAgainstEntry({7, record}, other_ts, tenant_id, kPseudonym)),
            "entry 7 has ts 1 but its record has ts 1234");
}

// A record past the checkpoint has no entry to be checked against yet; it must still be a
// record of this tenant (prove refuses a server padding the log with anything else).
TEST(LogAudit, RecordsPastTheCheckpointMustStillBeTheTenants) {
  const std::string record = R"({"kind":"data.read","salt":"00","tenant":"T1","ts":1234,"v":1})";
  auto head = CheckRecordShape({9, record}, "T1");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->kind, "data.read");
  EXPECT_EQ(head->ts, 1234);
  EXPECT_EQ(Message(CheckRecordShape({9, R"({"garbage":1})"}, "T1").status()),
            "record at ledger index 9 is not about tenant T1");
  EXPECT_EQ(Message(CheckRecordShape({9, record}, "T2").status()),
            "record at ledger index 9 is not about tenant T2");
  EXPECT_EQ(Message(CheckRecordShape({9, R"({"tenant":"T1","ts":1})"}, "T1").status()),
            "record at ledger index 9 has no kind");
  EXPECT_EQ(Message(CheckRecordShape({9, R"({"kind":"x","tenant":"T1"})"}, "T1").status()),
            "record at ledger index 9 has no ts");
  EXPECT_EQ(Message(CheckRecordShape({9, "not json"}, "T1").status()),
            "record at ledger index 9 is not a JSON object");
}

}  // namespace
}  // namespace custos::cli::internal
