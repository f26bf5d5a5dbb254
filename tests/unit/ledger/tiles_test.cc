// tlog-tiles path math, entry bundles, and proofs served from tiles built by the frontier.
#include "ledger/tiles.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ledger/merkle.h"
#include "ledger_test_util.h"

namespace custos::ledger {
namespace {

using testing::BruteForceTree;

TEST(LedgerTiles, EncodesIndexInThreeDigitGroups) {
  const std::pair<uint64_t, std::string> cases[] = {
      {0, "000"},
      {7, "007"},
      {999, "999"},
      {1000, "x001/000"},
      {1234067, "x001/x234/067"},
      {UINT64_MAX, "x018/x446/x744/x073/x709/x551/615"},
  };
  for (const auto& [index, want] : cases) EXPECT_EQ(EncodeTileIndex(index), want) << index;
}

TEST(LedgerTiles, PathsRoundTrip) {
  const std::pair<Tile, std::string> cases[] = {
      {{false, 0, 1234067, 256}, "tile/0/x001/x234/067"},
      {{false, 0, 1234067, 12}, "tile/0/x001/x234/067.p/12"},
      {{false, 1, 0, 1}, "tile/1/000.p/1"},
      {{false, 63, 0, 256}, "tile/63/000"},
      {{false, 2, 1000, 255}, "tile/2/x001/000.p/255"},
      {{true, 0, 5, 256}, "tile/entries/005"},
      {{true, 0, 1234067, 100}, "tile/entries/x001/x234/067.p/100"},
      {{false, 7, UINT64_MAX, 256}, "tile/7/x018/x446/x744/x073/x709/x551/615"},
  };
  for (const auto& [tile, path] : cases) {
    EXPECT_EQ(TilePath(tile), path);
    absl::StatusOr<Tile> parsed = ParseTilePath(path);
    ASSERT_TRUE(parsed.ok()) << path << ": " << parsed.status();
    EXPECT_EQ(*parsed, tile) << path;
  }
}

TEST(LedgerTiles, MalformedPathsAreRefused) {
  const char* const cases[] = {
      "",
      "tile",
      "tile/",
      "tile/0",
      "tile/0/",
      "/tile/0/000",
      "TILE/0/000",
      "tiles/0/000",
      "tile/00/000",  // leading zero in L
      "tile/01/000",
      "tile/64/000",  // L out of range
      "tile/100/000",
      "tile/-1/000",
      "tile/+1/000",
      "tile/a/000",
      "tile/0/00",  // N groups are exactly 3 digits
      "tile/0/0000",
      "tile/0/1",
      "tile/0/a01",
      "tile/0/0x1",
      "tile/0/x001",      // the last group has no x
      "tile/0/001/002",   // only the last group lacks the x
      "tile/0/x000/001",  // leading zero group
      "tile/0/x000/x000/001",
      "tile/entries/x000/000",
      "tile/0/x001/x234/067/",
      "tile/0/x001//067",
      "tile/0/x018/x446/x744/x073/x709/x551/616",       // > UINT64_MAX
      "tile/0/x001/x001/x001/x001/x001/x001/x001/001",  // 8 groups
      "tile/0/001.p",
      "tile/0/001.p/",
      "tile/0/001.p/0",  // W out of 1..255
      "tile/0/001.p/256",
      "tile/0/001.p/1000",
      "tile/0/001.p/012",  // leading zero in W
      "tile/0/001.p/1x",
      "tile/0/001.p/1/",
      "tile/0/001.q/1",
      "tile/0/001 ",
      "tile/0/001\n",
      "tile/entries/1/000",
      "tile/entries/",
      "tile/entries/000.p/256",
      "tile/0/000/../../etc/passwd",
  };
  for (const char* path : cases) {
    absl::StatusOr<Tile> parsed = ParseTilePath(path);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << "'" << path << "'";
  }
  EXPECT_FALSE(ParseTilePath("tile/0/" + std::string(1000, '0')).ok());
  // A NUL inside the path is not the end of it.
  EXPECT_FALSE(ParseTilePath(std::string_view("tile/0/000\0", 11)).ok());
}

TEST(LedgerTiles, WidthsFollowTheSpecExamples) {
  // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
  // tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
  // partial level 2 tile of width 1."
  EXPECT_EQ(TileWidth(0, 0, 70000), 256);
  EXPECT_EQ(TileWidth(0, 272, 70000), 256);
  EXPECT_EQ(TileWidth(0, 273, 70000), 112);
  EXPECT_EQ(TileWidth(0, 274, 70000), 0);
  EXPECT_EQ(TileWidth(1, 0, 70000), 256);
  EXPECT_EQ(TileWidth(1, 1, 70000), 17);
  EXPECT_EQ(TileWidth(1, 2, 70000), 0);
  EXPECT_EQ(TileWidth(2, 0, 70000), 1);
  EXPECT_EQ(TileWidth(3, 0, 70000), 0);
  // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
  // of width 1."
  EXPECT_EQ(TileWidth(0, 0, 256), 256);
  EXPECT_EQ(TileWidth(0, 1, 256), 0);
  EXPECT_EQ(TileWidth(1, 0, 256), 1);
  EXPECT_EQ(TileWidth(0, 0, 0), 0);
  EXPECT_EQ(TileWidth(7, 0, UINT64_MAX), 255);
  EXPECT_EQ(TileWidth(8, 0, UINT64_MAX), 0);
  EXPECT_EQ(TileWidth(63, 0, UINT64_MAX), 0);
  EXPECT_EQ(TileWidth(-1, 0, 100), 0);

  EXPECT_TRUE(TileCoveredBy({false, 1, 1, 17}, 70000));
  EXPECT_TRUE(TileCoveredBy({false, 1, 1, 3}, 70000));  // an older checkpoint's partial tile
  EXPECT_FALSE(TileCoveredBy({false, 1, 1, 18}, 70000));
  EXPECT_FALSE(TileCoveredBy({false, 1, 1, 256}, 70000));
  EXPECT_TRUE(TileCoveredBy({true, 0, 273, 112}, 70000));
  EXPECT_FALSE(TileCoveredBy({true, 0, 274, 1}, 70000));
  EXPECT_FALSE(TileCoveredBy({false, 9, 0, 1}, UINT64_MAX));
}

TEST(LedgerTiles, TilesChangedByABatch) {
  EXPECT_TRUE(TilesChangedBy(0, 0).empty());
  EXPECT_TRUE(TilesChangedBy(256, 256).empty());
  EXPECT_EQ(TilesChangedBy(0, 1), (std::vector<Tile>{{true, 0, 0, 1}, {false, 0, 0, 1}}));
  EXPECT_EQ(TilesChangedBy(255, 257), (std::vector<Tile>{{true, 0, 0, 256},
                                                         {true, 0, 1, 1},
                                                         {false, 0, 0, 256},
                                                         {false, 0, 1, 1},
                                                         {false, 1, 0, 1}}));
  EXPECT_EQ(TilesChangedBy(256, 300), (std::vector<Tile>{{true, 0, 1, 44}, {false, 0, 1, 44}}));
  const std::vector<Tile> all = TilesChangedBy(0, 70000);
  int entries = 0, level0 = 0, level1 = 0, level2 = 0;
  for (const Tile& t : all) {
    EXPECT_EQ(t.width, TileWidth(t.level, t.index, 70000));
    (t.entries ? entries : t.level == 0 ? level0 : t.level == 1 ? level1 : level2)++;
  }
  EXPECT_EQ(entries, 274);
  EXPECT_EQ(level0, 274);
  EXPECT_EQ(level1, 2);
  EXPECT_EQ(level2, 1);
  EXPECT_EQ(all.size(), 274u + 274u + 2u + 1u);
}

TEST(LedgerTiles, LocatesNodesInTiles) {
  struct Case {
    NodeId node;
    uint64_t tree_size;
    Tile tile;
    int first, count;
  };
  const Case cases[] = {
      {{0, 5}, 10, {false, 0, 0, 10}, 5, 1},           {{3, 1}, 16, {false, 0, 0, 16}, 8, 8},
      {{7, 1}, 300, {false, 0, 0, 256}, 128, 128},     {{0, 300}, 301, {false, 0, 1, 45}, 44, 1},
      {{8, 0}, 256, {false, 1, 0, 1}, 0, 1},           {{9, 0}, 512, {false, 1, 0, 2}, 0, 2},
      {{8, 300}, 301 * 256, {false, 1, 1, 45}, 44, 1}, {{16, 0}, 65536, {false, 2, 0, 1}, 0, 1},
  };
  for (const Case& c : cases) {
    absl::StatusOr<NodeLocation> loc = LocateNode(c.node, c.tree_size);
    ASSERT_TRUE(loc.ok()) << loc.status();
    EXPECT_EQ(loc->tile, c.tile) << c.node.level << "/" << c.node.index;
    EXPECT_EQ(loc->first, c.first);
    EXPECT_EQ(loc->count, c.count);
  }
  EXPECT_FALSE(LocateNode({0, 10}, 10).ok());
  EXPECT_FALSE(LocateNode({4, 0}, 15).ok());
  EXPECT_FALSE(LocateNode({64, 0}, UINT64_MAX).ok());
  EXPECT_FALSE(LocateNode({-1, 0}, 10).ok());
  EXPECT_TRUE(LocateNode({63, 0}, UINT64_MAX).ok());
}

TEST(LedgerTiles, NodeHashFromTileValidatesItsInput) {
  std::vector<std::string> hashes;
  std::string tile;
  for (int i = 0; i < 8; ++i) {
    hashes.push_back(LeafHash(std::to_string(i)));
    tile += hashes.back();
  }
  EXPECT_EQ(*NodeHashFromTile(tile, 0, 8), RootOfLeafHashes(hashes));
  EXPECT_EQ(*NodeHashFromTile(tile, 4, 4), RootOfLeafHashes({hashes.data() + 4, 4}));
  EXPECT_EQ(*NodeHashFromTile(tile, 3, 1), hashes[3]);
  EXPECT_FALSE(NodeHashFromTile(tile, 4, 8).ok());
  EXPECT_FALSE(NodeHashFromTile(tile, 0, 3).ok());
  EXPECT_FALSE(NodeHashFromTile(tile, -1, 1).ok());
  EXPECT_FALSE(NodeHashFromTile(tile, 0, 0).ok());
  EXPECT_FALSE(NodeHashFromTile(tile.substr(1), 0, 1).ok());
  EXPECT_FALSE(NodeHashFromTile("", 0, 1).ok());
}

TEST(LedgerTiles, EntryBundlesRoundTrip) {
  const std::vector<std::string> two = {"ab", ""};
  EXPECT_EQ(*EncodeEntryBundle(two), std::string("\x00\x02"
                                                 "ab"
                                                 "\x00\x00",
                                                 6));
  std::vector<std::string> many;
  for (int i = 0; i < 256; ++i) many.push_back(std::string(i * 13 % 300, static_cast<char>(i)));
  many[7] = std::string(kMaxEntryBytes, 'z');
  absl::StatusOr<std::string> bundle = EncodeEntryBundle(many);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(*DecodeEntryBundle(*bundle), many);
  EXPECT_EQ(*DecodeEntryBundle(std::string("\0\0", 2)), std::vector<std::string>{""});
}

TEST(LedgerTiles, MalformedEntryBundlesAreRefused) {
  EXPECT_FALSE(EncodeEntryBundle({}).ok());
  EXPECT_FALSE(EncodeEntryBundle(std::vector<std::string>(257, "x")).ok());
  EXPECT_FALSE(EncodeEntryBundle(std::vector<std::string>{std::string(65536, 'x')}).ok());

  const std::string cases[] = {
      "",
      std::string("\x00", 1),  // truncated length
      std::string("\x00\x05"
                  "abc",
                  5),  // truncated entry
      std::string("\x00\x01"
                  "a\x00",
                  4),  // trailing half length
      std::string("\xff\xff", 2),
      std::string(257 * 2, '\0'),  // 257 empty entries
  };
  for (const std::string& bundle : cases) {
    EXPECT_EQ(DecodeEntryBundle(bundle).status().code(), absl::StatusCode::kInvalidArgument)
        << absl::CEscape(bundle);
  }
}

// Stores hash tiles the way a sequencer would: the newest version of each tile, grown from the
// level 0, 8, 16... nodes that AppendLeaves emits.
class TileStore {
 public:
  void Apply(uint64_t old_size, const AppendResult& r) {
    for (const CompletedNode& n : r.new_nodes) {
      if (n.id.level % kTileHeight != 0) continue;
      std::string& tile = tiles_[{n.id.level / kTileHeight, n.id.index / kTileWidth}];
      ASSERT_EQ(tile.size(), (n.id.index % kTileWidth) * kHashSize) << "hashes out of order";
      tile += n.hash;
    }
    // Every tile the path math says changed now has exactly its new width.
    for (const Tile& t : TilesChangedBy(old_size, r.frontier.size)) {
      if (t.entries) continue;
      ASSERT_EQ(tiles_[std::make_pair(t.level, t.index)].size(), t.width * kHashSize)
          << TilePath(t);
    }
  }
  const std::string* Find(int level, uint64_t index) const {
    auto it = tiles_.find({level, index});
    return it == tiles_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::pair<int, uint64_t>, std::string> tiles_;
};

// A HashReader for one tree size that serves every node from tiles, as storage will.
class TileHashReader final : public HashReader {
 public:
  TileHashReader(const TileStore& store, uint64_t tree_size)
      : store_(store), tree_size_(tree_size) {}
  absl::StatusOr<std::vector<std::string>> ReadHashes(std::span<const NodeId> nodes) override {
    std::vector<std::string> out;
    for (const NodeId& n : nodes) {
      absl::StatusOr<NodeLocation> loc = LocateNode(n, tree_size_);
      if (!loc.ok()) return loc.status();
      const std::string* tile = store_.Find(loc->tile.level, loc->tile.index);
      if (tile == nullptr) return absl::NotFoundError(TilePath(loc->tile));
      // Serve the tile as it was at tree_size_: a prefix of the newest version.
      const std::string_view at_size =
          std::string_view(*tile).substr(0, loc->tile.width * kHashSize);
      if (at_size.size() != loc->tile.width * kHashSize) return absl::DataLossError("short tile");
      absl::StatusOr<std::string> h = NodeHashFromTile(at_size, loc->first, loc->count);
      if (!h.ok()) return h.status();
      out.push_back(*std::move(h));
    }
    return out;
  }

 private:
  const TileStore& store_;
  uint64_t tree_size_;
};

TEST(LedgerTiles, ProofsFromTilesMatchBruteForce) {
  constexpr uint64_t kLargest = 65537;
  std::vector<std::string> leaves;
  leaves.reserve(kLargest);
  for (uint64_t i = 0; i < kLargest; ++i) leaves.push_back(LeafHash(absl::StrCat("entry ", i)));
  BruteForceTree tree(leaves);

  // Grow the tree in uneven batches, through every size the test looks at.
  TileStore store;
  Frontier frontier;
  const uint64_t stops[] = {1, 100, 255, 256, 257, 1000, 65535, 65536, 65537};
  for (uint64_t stop : stops) {
    while (frontier.size < stop) {
      const uint64_t n = std::min<uint64_t>(stop - frontier.size, 777);
      const uint64_t old_size = frontier.size;
      absl::StatusOr<AppendResult> r = AppendLeaves(frontier, {leaves.data() + old_size, n});
      ASSERT_TRUE(r.ok()) << r.status();
      store.Apply(old_size, *r);
      frontier = std::move(r->frontier);
    }
  }

  const uint64_t sizes[] = {0, 1, 255, 256, 257, 65535, 65536, 65537};
  for (uint64_t size : sizes) {
    SCOPED_TRACE(absl::StrCat("tree size ", size));
    TileHashReader reader(store, size);
    const std::string root = tree.Mth(0, size);
    ASSERT_EQ(*TreeRoot(size, reader), root);
    if (size == 0) {
      EXPECT_FALSE(InclusionProof(0, 0, reader).ok());
      continue;
    }
    std::vector<uint64_t> indexes;
    if (size <= 257) {
      for (uint64_t i = 0; i < size; ++i) indexes.push_back(i);
    } else {
      indexes = {0, 1, 255, 256, 257, size / 2, size - 257, size - 2, size - 1};
    }
    for (uint64_t i : indexes) {
      absl::StatusOr<std::vector<std::string>> proof = InclusionProof(i, size, reader);
      ASSERT_TRUE(proof.ok()) << proof.status();
      ASSERT_EQ(*proof, tree.Path(i, 0, size)) << "inclusion of " << i;
      ASSERT_TRUE(VerifyInclusion(leaves[i], i, size, *proof, root)) << i;
      // The same index as a consistency old size.
      const uint64_t old_size = i + 1;
      absl::StatusOr<std::vector<std::string>> cons = ConsistencyProof(old_size, size, reader);
      ASSERT_TRUE(cons.ok()) << cons.status();
      ASSERT_EQ(*cons, tree.Proof(old_size, size)) << "consistency from " << old_size;
      ASSERT_TRUE(VerifyConsistency(old_size, size, *cons, tree.Mth(0, old_size), root));
    }
  }

  // The stored tiles hold the hashes the spec defines: level 1 hash i = MTH of 256^1 leaves.
  const std::string* level1 = store.Find(1, 0);
  ASSERT_NE(level1, nullptr);
  ASSERT_EQ(level1->size(), 256 * kHashSize);
  for (uint64_t i : {0, 17, 255}) {
    EXPECT_EQ(level1->substr(i * kHashSize, kHashSize), tree.Mth(i * 256, (i + 1) * 256));
  }
  const std::string* level2 = store.Find(2, 0);
  ASSERT_NE(level2, nullptr);
  EXPECT_EQ(*level2, tree.Mth(0, 65536));
}

}  // namespace
}  // namespace custos::ledger
