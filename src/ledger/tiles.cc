#include "ledger/tiles.h"

#include <bit>
#include <cassert>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ledger/internal/strings.h"

namespace custos::ledger {
namespace {

using internal::ConsumePrefix;

// No canonical path is longer ("tile/entries/" or "tile/63/", 7 index groups, ".p/255").
constexpr size_t kMaxTilePathLength = 64;
// A uint64 has at most 20 decimal digits: 7 groups of 3.
constexpr int kMaxIndexGroups = 7;
// Above this level a tile would start beyond 2^64 leaves.
constexpr int kMaxLiveTileLevel = 7;

absl::Status BadPath(std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("malformed tile path: ", internal::Av(why)));
}

// Parses a decimal with no sign and no leading zeros (except "0") from the front of `s`, at most
// `max_digits` digits, consuming it.
bool ConsumeSmallDecimal(std::string_view& s, size_t max_digits, int& out) {
  size_t n = 0;
  while (n < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[n]))) ++n;
  if (n == 0 || n > max_digits || (n > 1 && s[0] == '0')) return false;
  out = 0;
  for (size_t i = 0; i < n; ++i) out = out * 10 + (s[i] - '0');
  s.remove_prefix(n);
  return true;
}

// Parses N ("x001/x234/067") from the front of `s`, consuming it.
absl::Status ConsumeTileIndex(std::string_view& s, uint64_t& out) {
  out = 0;
  for (int groups = 1;; ++groups) {
    if (groups > kMaxIndexGroups) return BadPath("tile index too long");
    const bool last = !ConsumePrefix(s, "x");
    if (s.size() < 3 || !absl::ascii_isdigit(static_cast<unsigned char>(s[0])) ||
        !absl::ascii_isdigit(static_cast<unsigned char>(s[1])) ||
        !absl::ascii_isdigit(static_cast<unsigned char>(s[2]))) {
      return BadPath("tile index element is not 3 digits");
    }
    const uint64_t group = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    s.remove_prefix(3);
    if (groups == 1 && !last && group == 0) return BadPath("tile index has a leading zero group");
    if (out > (UINT64_MAX - group) / 1000) return BadPath("tile index overflows");
    out = out * 1000 + group;
    if (last) return absl::OkStatus();
    if (!ConsumePrefix(s, "/")) return BadPath("tile index element is not 3 digits");
  }
}

}  // namespace

std::string EncodeTileIndex(uint64_t index) {
  std::string digits = absl::StrCat(index);
  digits.insert(0, (3 - digits.size() % 3) % 3, '0');
  std::string out;
  for (size_t i = 0; i < digits.size(); i += 3) {
    if (i + 3 < digits.size()) {
      absl::StrAppend(&out, "x", digits.substr(i, 3), "/");
    } else {
      out.append(digits, i, 3);
    }
  }
  return out;
}

std::string TilePath(const Tile& tile) {
  assert(tile.width >= 1 && tile.width <= kTileWidth);
  assert(tile.level >= 0 && tile.level <= kMaxTileLevel && (!tile.entries || tile.level == 0));
  std::string out = tile.entries ? "tile/entries/" : absl::StrCat("tile/", tile.level, "/");
  out += EncodeTileIndex(tile.index);
  if (tile.width < kTileWidth) absl::StrAppend(&out, ".p/", tile.width);
  return out;
}

absl::StatusOr<Tile> ParseTilePath(std::string_view path) {
  if (path.size() > kMaxTilePathLength) return BadPath("too long");
  std::string_view rest = path;
  if (!ConsumePrefix(rest, "tile/")) return BadPath("does not start with tile/");
  Tile tile;
  if (ConsumePrefix(rest, "entries/")) {
    tile.entries = true;
  } else {
    if (!ConsumeSmallDecimal(rest, 2, tile.level) || tile.level > kMaxTileLevel) {
      return BadPath("level is not a decimal in 0..63");
    }
    if (!ConsumePrefix(rest, "/")) return BadPath("missing / after level");
  }
  if (absl::Status s = ConsumeTileIndex(rest, tile.index); !s.ok()) return s;
  if (ConsumePrefix(rest, ".p/")) {
    if (!ConsumeSmallDecimal(rest, 3, tile.width) || tile.width < 1 || tile.width >= kTileWidth) {
      return BadPath("partial width is not a decimal in 1..255");
    }
  }
  if (!rest.empty()) return BadPath("unexpected trailing characters");
  // Belt and braces: exactly one spelling names each tile, so caches and stores key on it.
  if (TilePath(tile) != path) return BadPath("not canonical");
  return tile;
}

int TileWidth(int level, uint64_t index, uint64_t tree_size) {
  if (level < 0 || level > kMaxLiveTileLevel) return 0;
  const uint64_t hashes = tree_size >> (kTileHeight * level);  // hashes at tree level 8*level
  const uint64_t full_tiles = hashes / kTileWidth;
  if (index < full_tiles) return kTileWidth;
  if (index == full_tiles) return static_cast<int>(hashes % kTileWidth);
  return 0;
}

bool TileCoveredBy(const Tile& tile, uint64_t tree_size) {
  if (tile.entries && tile.level != 0) return false;
  return tile.width >= 1 && tile.width <= TileWidth(tile.level, tile.index, tree_size);
}

std::vector<Tile> TilesChangedBy(uint64_t old_size, uint64_t new_size) {
  assert(old_size <= new_size);
  std::vector<Tile> tiles;
  // Entry bundles follow level-0 tiles exactly; they are listed first.
  for (const bool entries : {true, false}) {
    for (int level = 0; level <= kMaxLiveTileLevel; ++level) {
      const uint64_t old_hashes = old_size >> (kTileHeight * level);
      const uint64_t new_hashes = new_size >> (kTileHeight * level);
      if (new_hashes == old_hashes) break;  // nothing new here, so nothing above either
      for (uint64_t n = old_hashes / kTileWidth; n <= (new_hashes - 1) / kTileWidth; ++n) {
        tiles.push_back({entries, level, n, TileWidth(level, n, new_size)});
      }
      if (entries) break;
    }
  }
  return tiles;
}

absl::StatusOr<NodeLocation> LocateNode(NodeId node, uint64_t tree_size) {
  if (node.level < 0 || node.level > 63 || node.index >= (tree_size >> node.level)) {
    return absl::InvalidArgumentError(absl::StrCat("node (", node.level, ", ", node.index,
                                                   ") is not in a tree of size ", tree_size));
  }
  const int tile_level = node.level / kTileHeight;
  const int height_in_tile = node.level % kTileHeight;
  // Cannot overflow: it is below tree_size >> (8 * tile_level).
  const uint64_t first_hash = node.index << height_in_tile;
  NodeLocation loc;
  loc.tile.level = tile_level;
  loc.tile.index = first_hash / kTileWidth;
  loc.tile.width = TileWidth(tile_level, loc.tile.index, tree_size);
  loc.first = static_cast<int>(first_hash % kTileWidth);
  loc.count = 1 << height_in_tile;
  assert(loc.first + loc.count <= loc.tile.width);
  return loc;
}

absl::StatusOr<std::string> NodeHashFromTile(std::string_view tile_data, int first, int count) {
  if (tile_data.size() % kHashSize != 0 || tile_data.size() > kTileWidth * kHashSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("tile of ", tile_data.size(), " bytes is not a whole number of hashes"));
  }
  if (count < 1 || count > kTileWidth || !std::has_single_bit(static_cast<unsigned>(count)) ||
      first < 0 || static_cast<size_t>(first + count) * kHashSize > tile_data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("hashes [", first, ", ", first + count,
                                                   ") are not in a tile of ",
                                                   tile_data.size() / kHashSize));
  }
  std::vector<std::string> level;
  level.reserve(count);
  for (int i = 0; i < count; ++i) {
    level.emplace_back(tile_data.substr((first + i) * kHashSize, kHashSize));
  }
  while (level.size() > 1) {
    for (size_t i = 0; i < level.size() / 2; ++i) {
      level[i] = NodeHash(level[2 * i], level[2 * i + 1]);
    }
    level.resize(level.size() / 2);
  }
  return std::move(level.front());
}

absl::StatusOr<std::string> EncodeEntryBundle(std::span<const std::string> entries) {
  if (entries.empty() || entries.size() > kTileWidth) {
    return absl::InvalidArgumentError(
        absl::StrCat("an entry bundle holds 1 to 256 entries, not ", entries.size()));
  }
  size_t total = 0;
  for (const std::string& e : entries) {
    if (e.size() > kMaxEntryBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry of ", e.size(), " bytes exceeds ", kMaxEntryBytes));
    }
    total += 2 + e.size();
  }
  std::string out;
  out.reserve(total);
  for (const std::string& e : entries) {
    out.push_back(static_cast<char>(e.size() >> 8));
    out.push_back(static_cast<char>(e.size() & 0xff));
    out.append(e);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeEntryBundle(std::string_view bundle) {
  if (bundle.empty()) return absl::InvalidArgumentError("empty entry bundle");
  std::vector<std::string> entries;
  while (!bundle.empty()) {
    if (entries.size() == kTileWidth) {
      return absl::InvalidArgumentError("entry bundle holds more than 256 entries");
    }
    if (bundle.size() < 2) return absl::InvalidArgumentError("entry bundle: truncated length");
    const size_t len = (static_cast<size_t>(static_cast<unsigned char>(bundle[0])) << 8) |
                       static_cast<unsigned char>(bundle[1]);
    bundle.remove_prefix(2);
    if (bundle.size() < len) return absl::InvalidArgumentError("entry bundle: truncated entry");
    entries.emplace_back(bundle.substr(0, len));
    bundle.remove_prefix(len);
  }
  return entries;
}

}  // namespace custos::ledger
