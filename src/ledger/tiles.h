// C2SP tlog-tiles (https://c2sp.org/tlog-tiles) path math and entry bundles. Pure.
//
// A hash tile at level L, index N holds up to 256 consecutive Merkle hashes at tree level 8*L:
// the complete subtrees NodeId{8*L, N*256 + i}. Entry bundle N holds entries [N*256, N*256 + W).
// A tile is full at width 256 (path without suffix) or partial at width 1..255 (".p/<W>"). At a
// given tree size the width of every tile is fixed (TileWidth), so a path names immutable bytes.
// Hash tiles are kept for levels 0, 8, 16, ...; any other complete subtree is recomputed from
// at most 128 hashes of one tile (LocateNode, NodeHashFromTile).
//
// All functions are thread-safe. Paths and bundles are outside input: they are validated and
// refused with kInvalidArgument, never trusted.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/merkle.h"

namespace custos::ledger {

inline constexpr int kTileHeight = 8;
inline constexpr int kTileWidth = 256;  // hashes (or entries) in a full tile
// The spec allows levels 0..63 in paths; above level 7 no tile can exist for a uint64 size, and
// such paths parse but TileWidth reports them absent.
inline constexpr int kMaxTileLevel = 63;
inline constexpr size_t kMaxEntryBytes = 65535;  // entry bundles use uint16 lengths

struct Tile {
  bool entries = false;    // an entry bundle (tile/entries/...) rather than a hash tile
  int level = 0;           // hash tiles: 0..kMaxTileLevel; always 0 for entry bundles
  uint64_t index = 0;      // N
  int width = kTileWidth;  // 1..256; 256 is a full tile
  friend bool operator==(const Tile&, const Tile&) = default;
};

// "x001/x234/067" for 1234067, "000" for 0: zero-padded 3-digit groups, all but the last
// prefixed with 'x'.
std::string EncodeTileIndex(uint64_t index);

// "tile/<L>/<N>[.p/<W>]" or "tile/entries/<N>[.p/<W>]" (no leading slash; callers add their
// prefix). `tile` must be valid (asserted).
std::string TilePath(const Tile& tile);

// Inverse of TilePath, accepting only the canonical form: no extra leading zeros in L or W, N in
// exactly 3-digit groups with no leading all-zero group, W in 1..255, L <= kMaxTileLevel, N a
// uint64. Errors: kInvalidArgument naming what is wrong.
absl::StatusOr<Tile> ParseTilePath(std::string_view path);

// Width of hash tile (level, index) in the tree of `tree_size` leaves: 256 if full, 1..255 if
// partial, 0 if it does not exist (no hash of it yet). Entry bundle N has the width of hash tile
// (0, N).
int TileWidth(int level, uint64_t index, uint64_t tree_size);

// True iff every hash (or entry) of `tile` is fixed by the tree of `tree_size` leaves, i.e.
// tile.width <= TileWidth(...) (for a full tile: the tile is full at that size). Such a tile's
// bytes are the first width hashes (entries) of whatever version storage holds, so a partial
// tile of an older checkpoint can be served by truncating a wider one.
bool TileCoveredBy(const Tile& tile, uint64_t tree_size);

// The tiles and entry bundles that appear or grow when the tree grows from `old_size` to
// `new_size` (old_size <= new_size, asserted): what a sequencer writes after a batch, at their
// widths at new_size. Entry bundles first, then hash tiles by level then index.
std::vector<Tile> TilesChangedBy(uint64_t old_size, uint64_t new_size);

// Where the hash of a complete subtree is kept: hashes [first, first + count) of `tile` (level
// node.level / 8) combine into it, count = 2^(node.level % 8). `tile.width` is its width at
// `tree_size`; a wider version of the same tile serves as well (its prefix is the same).
struct NodeLocation {
  Tile tile;
  int first = 0;
  int count = 1;
};
// Errors: kInvalidArgument if node is not a complete subtree of the tree of `tree_size` leaves.
absl::StatusOr<NodeLocation> LocateNode(NodeId node, uint64_t tree_size);

// Hash of the complete subtree over hashes [first, first + count) of a hash tile's bytes
// (`count` a power of two). Errors: kInvalidArgument if `tile_data` is not a whole number of
// hashes or does not reach first + count, or count is not a power of two in 1..256; storage
// reading its own tiles may map that to kDataLoss.
absl::StatusOr<std::string> NodeHashFromTile(std::string_view tile_data, int first, int count);

// An entry bundle: each entry as a big-endian uint16 length and its bytes.
// Errors: kInvalidArgument if there are no entries, more than kTileWidth, or one is longer than
// kMaxEntryBytes.
absl::StatusOr<std::string> EncodeEntryBundle(std::span<const std::string> entries);
// Inverse of EncodeEntryBundle. Errors: kInvalidArgument if the bundle is empty, truncated (a
// length prefix or entry runs past the end) or holds more than kTileWidth entries.
absl::StatusOr<std::vector<std::string>> DecodeEntryBundle(std::string_view bundle);

}  // namespace custos::ledger
