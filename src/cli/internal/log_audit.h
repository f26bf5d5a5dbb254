// The independent verifier's pure core: rebuilds a C2SP tlog-tiles log from its entries up and
// checks every tile served against the rebuild, checks ledger entries and a tenant's private
// records against the public log, and compares a checkpoint with a saved one. No sockets, no
// files: tiles come through a TileSource, which the CLI backs with HTTP and tests with memory.
//
// Every check fails with kDataLoss and a message for a person that names what is wrong (which
// entry, which tile, which hash), e.g. "entry 17 does not match its leaf hash in tile/0/000".
// Errors of the TileSource are passed through. Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/checkpoint.h"
#include "ledger/tiles.h"

namespace custos::cli::internal {

// Where an audit reads tiles: the bytes of `tile` at exactly tile.width (as served at
// /ledger/<TilePath(tile)>).
class TileSource {
 public:
  virtual ~TileSource() = default;
  virtual absl::StatusOr<std::string> ReadTile(const ledger::Tile& tile) = 0;
};

// A public ledger entry (DESIGN.md, Contract details: Ledger entry).
struct LedgerEntry {
  std::string digest;  // lowercase hex SHA-256 of the private record
  std::string kind;    // dotted lowercase, e.g. "data.read"
  std::string tenant;  // lowercase hex pseudonym
  int64_t ts = 0;      // unix milliseconds
};

// Parses `entry`, which must be canonical JSON (RFC 8785, byte for byte as
// ledger::CanonicalJson writes it) of an object with exactly the keys digest, kind, tenant, ts
// and v = 1, with digest and tenant 64 lowercase hex digits, kind dotted lowercase and ts a
// non-negative integer. Errors: kDataLoss saying which rule is broken.
absl::StatusOr<LedgerEntry> ParseLedgerEntry(std::string_view entry);

struct AuditOptions {
  // Also report the root of the tree at each of these sizes (each <= the audited size): the
  // roots a saved checkpoint is compared with.
  std::vector<uint64_t> roots_at;
  // Called for every entry, in order, after it was checked against its leaf hash.
  std::function<void(uint64_t index, const LedgerEntry& entry, std::string_view raw)> on_entry;
};

struct AuditResult {
  std::string root;                          // of the whole audited tree
  std::map<uint64_t, std::string> roots_at;  // one per AuditOptions::roots_at
};

// Reads every entry bundle and every hash tile of the tree of `size` leaves from `source` and
// checks that each entry is a valid ledger entry (ParseLedgerEntry), that the level-0 tiles hold
// exactly the entries' leaf hashes, and that every hash of a tile at level L >= 1 is the hash of
// the lower tile it stands for. Returns the roots recomputed from the entries (which the tiles
// were found to match). Errors: kDataLoss naming the first entry or tile found wrong;
// kInvalidArgument if a roots_at size exceeds `size`; the source's errors.
absl::StatusOr<AuditResult> AuditTiles(uint64_t size, TileSource& source,
                                       const AuditOptions& options = {});

// AuditTiles over the checkpoint's size, then a check that the recomputed root is the
// checkpoint's ("root of N entries recomputed from tiles differs from the signed checkpoint").
absl::StatusOr<AuditResult> AuditCheckpoint(const ledger::Checkpoint& checkpoint,
                                            TileSource& source, const AuditOptions& options = {});

// Compares the current checkpoint with a saved one before any tile is read: a smaller size is
// a rolled-back or rebuilt log; an equal size with another root a fork. kDataLoss with the story.
absl::Status CheckNotRolledBack(const ledger::Checkpoint& saved, const ledger::Checkpoint& now);

// Checks that the saved checkpoint is a prefix of the current one: the root at the saved size,
// recomputed from the current log's tiles, must equal the saved root (else "fork: …"), and the
// server's consistency proof must verify. saved.size <= now.size (checked by
// CheckNotRolledBack first). kDataLoss with the story.
absl::Status CheckConsistent(const ledger::Checkpoint& saved, const ledger::Checkpoint& now,
                             std::string_view recomputed_saved_root,
                             std::span<const std::string> consistency_proof);

// One record of a tenant's access log (GET /v1/tenants/{id}/access-log).
struct AccessRecord {
  uint64_t ledger_index = 0;
  std::string record;  // canonical JSON; SHA-256 = the digest of entry ledger_index
};

// What every record of `tenant_id` holds, checked without its entry (a record newer than the
// checkpoint has none to check against yet): a JSON object naming `tenant_id`, with a string
// kind and an integer ts. kDataLoss naming the index otherwise.
struct RecordHead {
  std::string kind;
  int64_t ts = 0;
};
absl::StatusOr<RecordHead> CheckRecordShape(const AccessRecord& record, std::string_view tenant_id);

// Checks `record` against the public entry at its index: SHA-256(record) is the entry's digest;
// the entry names the tenant's `pseudonym`; the record is JSON naming `tenant_id` with the
// entry's kind and ts. kDataLoss naming the index and the mismatch.
absl::Status CheckRecordAgainstEntry(const AccessRecord& record, const LedgerEntry& entry,
                                     std::string_view tenant_id, std::string_view pseudonym);

}  // namespace custos::cli::internal
