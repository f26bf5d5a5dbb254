// Outside input never crashes the ledger parsers: valid inputs mutated at random (a poor man's
// fuzzer, deterministic so failures reproduce) are refused or parsed into something that
// formats back to the same bytes.
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "ledger/tiles.h"
#include "ledger_test_util.h"

namespace custos::ledger {
namespace {

using testing::Str;
using testing::Vectors;

std::string Mutate(std::string s, std::mt19937& rng) {
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    const size_t at = s.empty() ? 0 : rng() % s.size();
    switch (rng() % 5) {
      case 0:
        if (!s.empty()) s[at] = static_cast<char>(rng());
        break;
      case 1:
        if (!s.empty()) s[at] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 2: s.insert(at, 1, "/x.p0129\n \xE2\x80\x94+="[rng() % 16]); break;
      case 3:
        if (!s.empty()) s.erase(at, 1 + rng() % 3);
        break;
      default: s.resize(at); break;
    }
  }
  return s;
}

TEST(LedgerRobustness, MutatedTilePathsNeverCrash) {
  std::mt19937 rng(1);
  const std::string seeds[] = {"tile/0/x001/x234/067.p/12", "tile/entries/x018/000", "tile/63/000",
                               "tile/2/x001/000.p/255"};
  for (int i = 0; i < 20000; ++i) {
    const std::string path = Mutate(seeds[i % 4], rng);
    absl::StatusOr<Tile> tile = ParseTilePath(path);
    if (tile.ok()) {
      EXPECT_EQ(TilePath(*tile), path);
      TileCoveredBy(*tile, rng());
    } else {
      EXPECT_EQ(tile.status().code(), absl::StatusCode::kInvalidArgument) << path;
    }
  }
}

TEST(LedgerRobustness, MutatedBundlesNeverCrash) {
  std::mt19937 rng(2);
  const std::string seed = *EncodeEntryBundle(std::vector<std::string>{"a", "", "abc", "xy"});
  for (int i = 0; i < 20000; ++i) {
    const std::string bundle = Mutate(seed, rng);
    absl::StatusOr<std::vector<std::string>> entries = DecodeEntryBundle(bundle);
    if (entries.ok()) {
      EXPECT_EQ(*EncodeEntryBundle(*entries), bundle);
    }
  }
}

TEST(LedgerRobustness, MutatedNotesAndKeysNeverCrash) {
  std::mt19937 rng(3);
  const boost::json::object& v = Vectors().at("signed_note").as_object();
  const std::string note = Str(v.at("signed"));
  const std::string vkey = Str(v.at("verifier_key"));
  const VerifierKey key = *ParseVerifierKey(vkey);
  for (int i = 0; i < 5000; ++i) {
    const std::string mutated = Mutate(note, rng);
    absl::StatusOr<std::string> text = VerifyNote(mutated, key);
    // Only a change that keeps the signed bytes (e.g. a cosignature line added) can verify.
    if (text.ok()) {
      EXPECT_EQ(*text, Str(v.at("text"))) << absl::CEscape(mutated);
    }
    const std::string mutated_key = Mutate(vkey, rng);
    absl::StatusOr<VerifierKey> parsed = ParseVerifierKey(mutated_key);
    if (parsed.ok()) {
      EXPECT_EQ(*FormatVerifierKey(parsed->name, parsed->public_key), mutated_key);
    }
  }
}

TEST(LedgerRobustness, MutatedCheckpointsNeverCrash) {
  std::mt19937 rng(4);
  const std::string seed = *FormatCheckpoint({"custos.example/ab", 1234, EmptyRoot(), {"e"}});
  for (int i = 0; i < 20000; ++i) {
    const std::string text = Mutate(seed, rng);
    absl::StatusOr<Checkpoint> cp = ParseCheckpoint(text);
    if (cp.ok()) {
      EXPECT_EQ(*FormatCheckpoint(*cp), text) << absl::CEscape(text);
    }
  }
}

TEST(LedgerRobustness, RandomProofsNeverCrashOrVerify) {
  std::mt19937_64 rng(5);
  const std::string leaf = LeafHash("leaf");
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::string> proof(rng() % 70, leaf);
    const uint64_t a = rng() >> (rng() % 64), b = rng() >> (rng() % 64);
    EXPECT_FALSE(VerifyInclusion(leaf, a, b, proof, EmptyRoot()));
    if (!proof.empty()) {
      EXPECT_FALSE(VerifyConsistency(a, b, proof, leaf, EmptyRoot()));
    }
  }
}

}  // namespace
}  // namespace custos::ledger
