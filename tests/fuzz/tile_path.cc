// Tile and entry-bundle paths of GET /ledger/tile/{rest...} (ledger::ParseTilePath, canonical
// form only, so it must round-trip through TilePath), and the tile bytes a verifier reads from
// a server (DecodeEntryBundle must round-trip; NodeHashFromTile must not read past the data).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ledger/tiles.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // As the API calls it: the route parameter after "tile/".
  auto tile = custos::ledger::ParseTilePath(std::string("tile/").append(in));
  if (tile.ok()) {
    if (custos::ledger::TilePath(*tile) != std::string("tile/").append(in)) __builtin_trap();
    (void)custos::ledger::TileWidth(tile->level, tile->index, tile->index * 256 + 1);
  }
  (void)custos::ledger::ParseTilePath(in);
  auto entries = custos::ledger::DecodeEntryBundle(in);
  if (entries.ok()) {
    auto again = custos::ledger::EncodeEntryBundle(*entries);
    if (!again.ok() || *again != in) __builtin_trap();
  }
  if (size >= 2) {
    int first = data[0], count = 1 << (data[1] % 9);
    (void)custos::ledger::NodeHashFromTile(in.substr(2), first, count);
  }
  return 0;
}
