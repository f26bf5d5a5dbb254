// RFC 9162 (Certificate Transparency v2, section 2.1) Merkle tree hashing, proofs and the
// right-edge "frontier" of an append-only log. Pure: no I/O, no clock, no globals.
//
// Hashes are 32 raw bytes carried in std::string (as crypto.h carries bytes). Sizes and indexes
// are uint64_t leaf counts. A "complete subtree" (NodeId) at `level` with `index` is the perfect
// subtree over leaves [index * 2^level, (index + 1) * 2^level); level 0 is the leaf hashes.
// Storage answers reads of complete subtrees (from tlog tiles, see tiles.h); everything that is
// not a complete subtree (the non-power-of-two right edge) is combined here.
//
// All functions are thread-safe (they share no state). Proof generation reads through the caller's
// HashReader, whose own thread-safety is the caller's business.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace custos::ledger {

inline constexpr size_t kHashSize = 32;
// No honest proof for a tree of fewer than 2^64 leaves is longer than this; longer ones are
// refused before any hashing.
inline constexpr size_t kMaxProofHashes = 65;

// The perfect subtree over leaves [index << level, (index + 1) << level). level is 0..63.
struct NodeId {
  int level = 0;
  uint64_t index = 0;
  friend bool operator==(const NodeId&, const NodeId&) = default;
};

struct CompletedNode {  // a complete subtree and its hash
  NodeId id;
  std::string hash;
};

// SHA-256(0x00 || entry).
std::string LeafHash(std::string_view entry);
// SHA-256(0x01 || left || right). Both are kHashSize bytes (asserted: callers pass our hashes).
std::string NodeHash(std::string_view left, std::string_view right);
// SHA-256 of the empty string: the root of the tree of size 0.
std::string EmptyRoot();

// Root of the tree whose leaf hashes are `leaf_hashes` (each kHashSize bytes, asserted). O(n)
// time, O(log n) memory. Empty input gives EmptyRoot().
std::string RootOfLeafHashes(std::span<const std::string> leaf_hashes);

// Where proof generation reads complete-subtree hashes from. Storage implements it over tiles,
// bound to the tree size of the proof at hand (tiles.h LocateNode needs it to pick tile widths).
class HashReader {
 public:
  virtual ~HashReader() = default;
  // Returns the hashes of `nodes` in the same order, one kHashSize string per node. Every node
  // asked for lies wholly inside the tree size the proof is for (callers guarantee it), so a
  // missing one means storage lost data. Called at most once per proof, with O(log n) nodes, so
  // an implementation can fetch all the tiles it needs in one round trip. Errors are passed
  // through unchanged to the caller of the proof function.
  virtual absl::StatusOr<std::vector<std::string>> ReadHashes(std::span<const NodeId> nodes) = 0;
};

// Inclusion proof (RFC 9162 2.1.3.1, PATH) for leaf `index` in the tree of `size` leaves, lowest
// sibling first. Errors: kInvalidArgument if index >= size (both come from outside callers);
// the reader's error; kInternal if the reader returns the wrong number or size of hashes.
absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size,
                                                        HashReader& reader);

// Consistency proof (RFC 9162 2.1.4.1, PROOF) from the tree of `old_size` to the tree of
// `new_size` leaves. Empty when old_size == new_size or old_size == 0 (every tree extends the
// empty tree; RFC 9162 leaves that case undefined, we follow transparency-dev/merkle).
// Errors: kInvalidArgument if old_size > new_size; the reader's error; kInternal as above.
absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t old_size, uint64_t new_size,
                                                          HashReader& reader);

// Root hash of the tree of `size` leaves, read as its frontier (at most 64 nodes).
// Errors: the reader's error; kInternal as above.
absl::StatusOr<std::string> TreeRoot(uint64_t size, HashReader& reader);

// True iff `proof` proves that `leaf_hash` is leaf `index` of the tree of `size` leaves with root
// `root` (RFC 9162 2.1.3.2). Any malformed input (wrong hash sizes, index >= size, too long a
// proof) verifies false; never crashes.
bool VerifyInclusion(std::string_view leaf_hash, uint64_t index, uint64_t size,
                     std::span<const std::string> proof, std::string_view root);

// True iff `proof` proves that the tree of `old_size` leaves with root `old_root` is a prefix of
// the tree of `new_size` leaves with root `new_root` (RFC 9162 2.1.4.2). When old_size ==
// new_size the proof must be empty and the roots equal; when old_size == 0 the proof must be
// empty (the empty tree is a prefix of every tree). Malformed input verifies false.
bool VerifyConsistency(uint64_t old_size, uint64_t new_size, std::span<const std::string> proof,
                       std::string_view old_root, std::string_view new_root);

// The right edge of a tree: for each set bit of `size`, from the highest, the hash of the
// complete subtree it stands for. It is all a sequencer needs to keep to append and to compute
// the root.
struct Frontier {
  uint64_t size = 0;
  std::vector<std::string> hashes;  // popcount(size) entries, largest subtree first
};

// The complete subtrees making up the frontier of a tree of `size` leaves, largest first (what
// storage reads to rebuild a Frontier on start-up).
std::vector<NodeId> FrontierNodes(uint64_t size);

// Root of the tree the frontier describes (EmptyRoot() for size 0). The frontier must be valid
// (asserted; validate outside data with AppendLeaves or by construction from FrontierNodes).
std::string FrontierRoot(const Frontier& frontier);

struct AppendResult {
  Frontier frontier;  // the frontier after the append
  // Every complete subtree that the append completed, leaves (level 0) included, each exactly
  // once, in the order they were completed. Storage keeps those at levels 0, 8, 16, ... as tiles.
  std::vector<CompletedNode> new_nodes;
};

// Appends `leaf_hashes` to the tree `frontier` describes. Pure.
// Errors: kInvalidArgument if the frontier is inconsistent (hash count != popcount(size), a hash
// not kHashSize bytes), a leaf hash is not kHashSize bytes, or the size would overflow.
absl::StatusOr<AppendResult> AppendLeaves(const Frontier& frontier,
                                          std::span<const std::string> leaf_hashes);

}  // namespace custos::ledger
