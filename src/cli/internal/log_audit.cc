// The verifier's pure checks. AuditTiles streams the log once, entry bundle by entry bundle,
// feeding the recomputed leaf hashes to ledger::AppendLeaves: the frontier it keeps gives the
// roots, and the complete subtrees it reports at levels 8, 16, ... are what the hash tiles above
// level 0 must hold. Memory stays O(size / 256) hashes.
#include "cli/internal/log_audit.h"

#include <algorithm>
#include <cassert>

#include "absl/strings/escaping.h"
#include "base/strings.h"
#include "boost/json.hpp"
#include "crypto/crypto.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"

namespace custos::cli::internal {
namespace {

namespace json = boost::json;
using ledger::kHashSize;
using ledger::kTileHeight;
using ledger::kTileWidth;
using ledger::Tile;

std::string B64(std::string_view bytes) { return absl::Base64Escape(AbslView(bytes)); }

bool IsLowerHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Dotted lowercase: segments of [a-z][a-z0-9_]* joined by '.'.
bool IsDottedLowercase(std::string_view s) {
  bool segment_start = true;
  for (char c : s) {
    if (c == '.') {
      if (segment_start) return false;
      segment_start = true;
    } else if (c >= 'a' && c <= 'z') {
      segment_start = false;
    } else if ((c >= '0' && c <= '9') || c == '_') {
      if (segment_start) return false;
    } else {
      return false;
    }
  }
  return !s.empty() && !segment_start;
}

absl::Status Bad(const std::string& message) { return absl::DataLossError(message); }

std::optional<std::string_view> StringField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string_view(v->get_string().data(), v->get_string().size());
}

std::optional<int64_t> IntField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->get_uint64());
  }
  return std::nullopt;
}

// Rebuilds the tree from the entries and checks the tiles against it.
class Auditor {
 public:
  Auditor(uint64_t size, TileSource& source, const AuditOptions& options)
      : size_(size), source_(source), options_(options), splits_(options.roots_at) {
    std::sort(splits_.begin(), splits_.end());
    splits_.erase(std::unique(splits_.begin(), splits_.end()), splits_.end());
  }

  absl::StatusOr<AuditResult> Run() {
    if (!splits_.empty() && splits_.back() > size_) {
      return absl::InvalidArgumentError(
          StrCat("cannot recompute the root at size ", splits_.back(), " from a log of ", size_));
    }
    if (!splits_.empty() && splits_.front() == 0) result_.roots_at[0] = ledger::EmptyRoot();
    for (uint64_t k = 0; k * kTileWidth < size_; ++k) {
      if (auto s = AuditBundle(k); !s.ok()) return s;
    }
    if (auto s = AuditHigherLevels(); !s.ok()) return s;
    result_.root = ledger::FrontierRoot(frontier_);
    return std::move(result_);
  }

 private:
  absl::StatusOr<std::string> Read(const Tile& tile) { return source_.ReadTile(tile); }

  absl::StatusOr<std::vector<std::string>> ReadEntries(const Tile& bundle) {
    auto bytes = Read(bundle);
    if (!bytes.ok()) return bytes.status();
    const std::string path = ledger::TilePath(bundle);
    auto entries = ledger::DecodeEntryBundle(*bytes);
    if (!entries.ok()) return Bad(StrCat(path, " is malformed: ", entries.status().message()));
    if (entries->size() != static_cast<size_t>(bundle.width)) {
      return Bad(StrCat(path, " holds ", entries->size(), " entries, expected ", bundle.width));
    }
    return entries;
  }

  absl::StatusOr<std::string> ReadHashTile(const Tile& tile) {
    auto bytes = Read(tile);
    if (!bytes.ok()) return bytes.status();
    const size_t want = static_cast<size_t>(tile.width) * kHashSize;
    if (bytes->size() != want) {
      return Bad(StrCat(ledger::TilePath(tile), " is ", bytes->size(), " bytes, expected ", want,
                        " (", tile.width, " hashes)"));
    }
    return bytes;
  }

  absl::Status AuditBundle(uint64_t k) {
    const int width = ledger::TileWidth(0, k, size_);
    const Tile bundle{true, 0, k, width};
    auto entries = ReadEntries(bundle);
    if (!entries.ok()) return entries.status();
    const Tile hashes{false, 0, k, width};
    auto tile = ReadHashTile(hashes);
    if (!tile.ok()) return tile.status();
    std::vector<std::string> leaves;
    leaves.reserve(width);
    for (int i = 0; i < width; ++i) {
      const uint64_t index = k * kTileWidth + i;
      const std::string& raw = (*entries)[i];
      auto entry = ParseLedgerEntry(raw);
      if (!entry.ok()) {
        return Bad(StrCat("entry ", index, " in ", ledger::TilePath(bundle),
                          " is not a valid ledger entry: ", entry.status().message()));
      }
      leaves.push_back(ledger::LeafHash(raw));
      if (std::string_view(*tile).substr(i * kHashSize, kHashSize) != leaves.back()) {
        return Bad(
            StrCat("entry ", index, " does not match its leaf hash in ", ledger::TilePath(hashes)));
      }
      if (options_.on_entry) options_.on_entry(index, *entry, raw);
    }
    return Append(leaves);
  }

  // Adds the leaves to the frontier, stopping at each requested size to note its root.
  absl::Status Append(std::span<const std::string> leaves) {
    while (!leaves.empty()) {
      const uint64_t end = frontier_.size + leaves.size();
      auto split = std::upper_bound(splits_.begin(), splits_.end(), frontier_.size);
      const size_t take = split != splits_.end() && *split <= end
                              ? static_cast<size_t>(*split - frontier_.size)
                              : leaves.size();
      auto appended = ledger::AppendLeaves(frontier_, leaves.first(take));
      if (!appended.ok()) return appended.status();  // our own hashes: cannot happen
      frontier_ = std::move(appended->frontier);
      for (auto& node : appended->new_nodes) Remember(node);
      if (split != splits_.end() && *split == frontier_.size) {
        result_.roots_at[frontier_.size] = ledger::FrontierRoot(frontier_);
      }
      leaves = leaves.subspan(take);
    }
    return absl::OkStatus();
  }

  // Keeps the recomputed nodes that hash tiles above level 0 hold.
  void Remember(ledger::CompletedNode& node) {
    if (node.id.level == 0 || node.id.level % kTileHeight != 0) return;
    const size_t tile_level = node.id.level / kTileHeight;
    if (expected_.size() <= tile_level) expected_.resize(tile_level + 1);
    assert(expected_[tile_level].size() == node.id.index);  // AppendLeaves completes in order
    expected_[tile_level].push_back(std::move(node.hash));
  }

  absl::Status AuditHigherLevels() {
    for (int level = 1; (size_ >> (kTileHeight * level)) > 0; ++level) {
      const uint64_t nodes = size_ >> (kTileHeight * level);
      assert(expected_.size() > static_cast<size_t>(level) && expected_[level].size() == nodes);
      for (uint64_t m = 0; m * kTileWidth < nodes; ++m) {
        const Tile tile{false, level, m, ledger::TileWidth(level, m, size_)};
        auto bytes = ReadHashTile(tile);
        if (!bytes.ok()) return bytes.status();
        for (int j = 0; j < tile.width; ++j) {
          const uint64_t below = m * kTileWidth + j;
          if (std::string_view(*bytes).substr(j * kHashSize, kHashSize) !=
              expected_[level][below]) {
            return Bad(StrCat(ledger::TilePath(tile), " hash ", j, " does not match the hash of ",
                              ledger::TilePath(Tile{false, level - 1, below, kTileWidth})));
          }
        }
      }
    }
    return absl::OkStatus();
  }

  const uint64_t size_;
  TileSource& source_;
  const AuditOptions& options_;
  std::vector<uint64_t> splits_;  // roots_at, sorted, unique
  ledger::Frontier frontier_;
  std::vector<std::vector<std::string>> expected_;  // [tile level][index]: hashes of level 8*L
  AuditResult result_;
};

}  // namespace

absl::StatusOr<LedgerEntry> ParseLedgerEntry(std::string_view entry) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(entry.data(), entry.size()), ec);
  if (ec) return Bad("not JSON");
  if (!v.is_object()) return Bad("not a JSON object");
  const json::object& o = v.get_object();
  for (const auto& kv : o) {
    std::string_view k = kv.key();
    if (k != "digest" && k != "kind" && k != "tenant" && k != "ts" && k != "v") {
      return Bad(StrCat("unexpected key \"", k, "\""));
    }
  }
  LedgerEntry out;
  auto digest = StringField(o, "digest");
  if (!digest || !IsLowerHex64(*digest)) return Bad("digest is not 64 lowercase hex");
  out.digest = std::string(*digest);
  auto kind = StringField(o, "kind");
  if (!kind || !IsDottedLowercase(*kind)) return Bad("kind is not dotted lowercase");
  out.kind = std::string(*kind);
  auto tenant = StringField(o, "tenant");
  if (!tenant || !IsLowerHex64(*tenant)) return Bad("tenant is not 64 lowercase hex");
  out.tenant = std::string(*tenant);
  std::optional<int64_t> ts = IntField(o, "ts");
  if (!ts || *ts < 0) return Bad("ts is not a non-negative integer");
  out.ts = *ts;
  std::optional<int64_t> version = IntField(o, "v");
  if (!version || *version != 1) return Bad("v is not 1");
  auto canonical = ledger::CanonicalJson(v);
  if (!canonical.ok() || *canonical != entry) return Bad("not in canonical JSON form");
  return out;
}

absl::StatusOr<AuditResult> AuditTiles(uint64_t size, TileSource& source,
                                       const AuditOptions& options) {
  return Auditor(size, source, options).Run();
}

absl::StatusOr<AuditResult> AuditCheckpoint(const ledger::Checkpoint& checkpoint,
                                            TileSource& source, const AuditOptions& options) {
  auto audit = AuditTiles(checkpoint.size, source, options);
  if (!audit.ok()) return audit.status();
  if (audit->root != checkpoint.root_hash) {
    return Bad(StrCat("root of ", checkpoint.size,
                      " entries recomputed from tiles differs from the signed checkpoint"));
  }
  return audit;
}

absl::Status CheckNotRolledBack(const ledger::Checkpoint& saved, const ledger::Checkpoint& now) {
  if (now.size < saved.size) {
    return Bad(StrCat("log is shorter than the saved checkpoint (", now.size, " < ", saved.size,
                      "): rolled back or rebuilt"));
  }
  if (now.size == saved.size && now.root_hash != saved.root_hash) {
    return Bad(StrCat("fork: the log of ", now.size, " entries has root ", B64(now.root_hash),
                      " but the saved checkpoint of the same size has root ",
                      B64(saved.root_hash)));
  }
  return absl::OkStatus();
}

absl::Status CheckConsistent(const ledger::Checkpoint& saved, const ledger::Checkpoint& now,
                             std::string_view recomputed_saved_root,
                             std::span<const std::string> consistency_proof) {
  if (recomputed_saved_root != saved.root_hash) {
    return Bad(StrCat(
        "fork: the first ", saved.size, " entries of the log (root ", B64(recomputed_saved_root),
        ") differ from those of the saved checkpoint (root ", B64(saved.root_hash), ")"));
  }
  if (!ledger::VerifyConsistency(saved.size, now.size, consistency_proof, saved.root_hash,
                                 now.root_hash)) {
    return Bad(StrCat("inconsistent: the server's consistency proof from size ", saved.size, " to ",
                      now.size, " does not verify against the two checkpoints"));
  }
  return absl::OkStatus();
}

absl::Status CheckRecordAgainstEntry(const AccessRecord& record, const LedgerEntry& entry,
                                     std::string_view tenant_id, std::string_view pseudonym) {
  const uint64_t i = record.ledger_index;
  const std::string digest = crypto::Sha256Hex(record.record);
  if (digest != entry.digest) {
    return Bad(StrCat("record at ledger index ", i, " does not match entry ", i,
                      ": its SHA-256 is ", digest, ", the entry's digest is ", entry.digest));
  }
  if (entry.tenant != pseudonym) {
    return Bad(StrCat("entry ", i, " names tenant pseudonym ", entry.tenant,
                      ", not this tenant's (", pseudonym, ")"));
  }
  auto head = CheckRecordShape(record, tenant_id);
  if (!head.ok()) return head.status();
  if (head->kind != entry.kind) {
    return Bad(
        StrCat("entry ", i, " has kind ", entry.kind, " but its record has kind ", head->kind));
  }
  if (head->ts != entry.ts) {
    return Bad(StrCat("entry ", i, " has ts ", entry.ts, " but its record has ts ", head->ts));
  }
  return absl::OkStatus();
}

absl::StatusOr<RecordHead> CheckRecordShape(const AccessRecord& record,
                                            std::string_view tenant_id) {
  const uint64_t i = record.ledger_index;
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(record.record.data(), record.record.size()), ec);
  if (ec || !v.is_object())
    return Bad(StrCat("record at ledger index ", i, " is not a JSON object"));
  const json::object& o = v.get_object();
  auto tenant = StringField(o, "tenant");
  if (!tenant || *tenant != tenant_id) {
    return Bad(StrCat("record at ledger index ", i, " is not about tenant ", tenant_id));
  }
  auto kind = StringField(o, "kind");
  if (!kind) return Bad(StrCat("record at ledger index ", i, " has no kind"));
  std::optional<int64_t> ts = IntField(o, "ts");
  if (!ts) return Bad(StrCat("record at ledger index ", i, " has no ts"));
  return RecordHead{std::string(*kind), *ts};
}

}  // namespace custos::cli::internal
