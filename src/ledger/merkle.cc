#include "ledger/merkle.h"

#include <bit>
#include <cassert>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"

namespace custos::ledger {
namespace {

// A contiguous run of leaves [begin, end) whose Merkle Tree Hash is one proof element.
struct Range {
  uint64_t begin;
  uint64_t end;
};

// Largest power of two strictly below n (n >= 2): the RFC 9162 split point k.
uint64_t SplitPoint(uint64_t n) {
  assert(n >= 2);
  return std::bit_floor(n - 1);
}

// PATH(m, D[lo:hi]) of RFC 9162 2.1.3.1 as ranges, lowest first. m is absolute.
void InclusionRanges(uint64_t m, uint64_t lo, uint64_t hi, std::vector<Range>& out) {
  if (hi - lo <= 1) return;
  const uint64_t k = SplitPoint(hi - lo);
  if (m < lo + k) {
    InclusionRanges(m, lo, lo + k, out);
    out.push_back({lo + k, hi});
  } else {
    InclusionRanges(m, lo + k, hi, out);
    out.push_back({lo, lo + k});
  }
}

// SUBPROOF(m, D[lo:hi], b) of RFC 9162 2.1.4.1 as ranges. m is the absolute old size,
// lo < m <= hi.
void ConsistencyRanges(uint64_t m, uint64_t lo, uint64_t hi, bool b, std::vector<Range>& out) {
  if (m == hi) {
    if (!b) out.push_back({lo, hi});
    return;
  }
  const uint64_t k = SplitPoint(hi - lo);
  if (m <= lo + k) {
    ConsistencyRanges(m, lo, lo + k, b, out);
    out.push_back({lo + k, hi});
  } else {
    ConsistencyRanges(m, lo + k, hi, false, out);
    out.push_back({lo, lo + k});
  }
}

// Splits [begin, end) into complete subtrees, largest first, as MTH splits it. Holds for the
// ranges RFC 9162 recursion produces: begin is a multiple of a power of two >= end - begin.
void AppendRangeNodes(Range range, std::vector<NodeId>& out) {
  uint64_t pos = range.begin;
  const uint64_t len = range.end - range.begin;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((len & width) == 0) continue;
    assert(pos % width == 0);
    out.push_back({level, pos >> level});
    pos += width;
  }
  assert(pos == range.end);
}

// MTH of a range from its complete subtrees (largest first): the right edge folds leftwards.
std::string FoldRight(std::span<const std::string> hashes) {
  assert(!hashes.empty());
  std::string acc = hashes.back();
  for (size_t i = hashes.size() - 1; i-- > 0;) acc = NodeHash(hashes[i], acc);
  return acc;
}

// Reads every range's complete subtrees in one batch and folds each into one hash.
absl::StatusOr<std::vector<std::string>> HashRanges(std::span<const Range> ranges,
                                                    HashReader& reader) {
  std::vector<NodeId> nodes;
  std::vector<size_t> first_node;  // ranges[i]'s nodes start at nodes[first_node[i]]
  for (const Range& r : ranges) {
    first_node.push_back(nodes.size());
    AppendRangeNodes(r, nodes);
  }
  first_node.push_back(nodes.size());
  if (nodes.empty()) return std::vector<std::string>{};

  absl::StatusOr<std::vector<std::string>> read = reader.ReadHashes(nodes);
  if (!read.ok()) return read.status();
  if (read->size() != nodes.size()) {
    return absl::InternalError(absl::StrCat("hash reader returned ", read->size(), " hashes for ",
                                            nodes.size(), " nodes"));
  }
  for (const std::string& h : *read) {
    if (h.size() != kHashSize) {
      return absl::InternalError(absl::StrCat("hash reader returned a ", h.size(), "-byte hash"));
    }
  }
  std::vector<std::string> out;
  out.reserve(ranges.size());
  const std::span<const std::string> all(*read);
  for (size_t i = 0; i < ranges.size(); ++i) {
    out.push_back(FoldRight(all.subspan(first_node[i], first_node[i + 1] - first_node[i])));
  }
  return out;
}

bool AllHashSized(std::span<const std::string> hashes) {
  for (const std::string& h : hashes) {
    if (h.size() != kHashSize) return false;
  }
  return true;
}

}  // namespace

std::string LeafHash(std::string_view entry) {
  return crypto::Sha256(std::string_view("\x00", 1), entry);
}

std::string NodeHash(std::string_view left, std::string_view right) {
  assert(left.size() == kHashSize && right.size() == kHashSize);
  return crypto::Sha256("\x01", left, right);
}

std::string EmptyRoot() { return crypto::Sha256(""); }

std::string RootOfLeafHashes(std::span<const std::string> leaf_hashes) {
  absl::StatusOr<AppendResult> appended = AppendLeaves(Frontier{}, leaf_hashes);
  assert(appended.ok());  // only fails on malformed hashes, which the contract excludes
  return FrontierRoot(appended->frontier);
}

absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size,
                                                        HashReader& reader) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf index ", index, " is not below tree size ", size));
  }
  std::vector<Range> ranges;
  InclusionRanges(index, 0, size, ranges);
  return HashRanges(ranges, reader);
}

absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t old_size, uint64_t new_size,
                                                          HashReader& reader) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("old size ", old_size, " is larger than new size ", new_size));
  }
  if (old_size == 0 || old_size == new_size) return std::vector<std::string>{};
  std::vector<Range> ranges;
  ConsistencyRanges(old_size, 0, new_size, /*b=*/true, ranges);
  return HashRanges(ranges, reader);
}

absl::StatusOr<std::string> TreeRoot(uint64_t size, HashReader& reader) {
  if (size == 0) return EmptyRoot();
  const Range whole{0, size};
  absl::StatusOr<std::vector<std::string>> root = HashRanges({&whole, 1}, reader);
  if (!root.ok()) return root.status();
  return std::move(root->front());
}

bool VerifyInclusion(std::string_view leaf_hash, uint64_t index, uint64_t size,
                     std::span<const std::string> proof, std::string_view root) {
  if (index >= size || leaf_hash.size() != kHashSize || root.size() != kHashSize) return false;
  if (proof.size() > kMaxProofHashes || !AllHashSized(proof)) return false;
  uint64_t fn = index;
  uint64_t sn = size - 1;
  std::string r(leaf_hash);
  for (const std::string& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

bool VerifyConsistency(uint64_t old_size, uint64_t new_size, std::span<const std::string> proof,
                       std::string_view old_root, std::string_view new_root) {
  if (old_root.size() != kHashSize || new_root.size() != kHashSize) return false;
  if (old_size > new_size) return false;
  if (old_size == new_size) return proof.empty() && old_root == new_root;
  if (old_size == 0) return proof.empty();
  if (proof.empty() || proof.size() > kMaxProofHashes || !AllHashSized(proof)) return false;

  // RFC 9162 2.1.4.2. When the old tree is a complete subtree its root is the first element.
  std::vector<std::string> path;
  path.reserve(proof.size() + 1);
  if (std::has_single_bit(old_size)) path.emplace_back(old_root);
  path.insert(path.end(), proof.begin(), proof.end());

  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  std::string fr = path.front();
  std::string sr = path.front();
  for (size_t i = 1; i < path.size(); ++i) {
    const std::string& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && fr == old_root && sr == new_root;
}

std::vector<NodeId> FrontierNodes(uint64_t size) {
  std::vector<NodeId> nodes;
  if (size > 0) AppendRangeNodes({0, size}, nodes);
  return nodes;
}

std::string FrontierRoot(const Frontier& frontier) {
  assert(frontier.hashes.size() == static_cast<size_t>(std::popcount(frontier.size)));
  if (frontier.size == 0) return EmptyRoot();
  return FoldRight(frontier.hashes);
}

absl::StatusOr<AppendResult> AppendLeaves(const Frontier& frontier,
                                          std::span<const std::string> leaf_hashes) {
  if (frontier.hashes.size() != static_cast<size_t>(std::popcount(frontier.size))) {
    return absl::InvalidArgumentError(absl::StrCat("frontier of size ", frontier.size, " has ",
                                                   frontier.hashes.size(), " hashes"));
  }
  if (!AllHashSized(frontier.hashes) || !AllHashSized(leaf_hashes)) {
    return absl::InvalidArgumentError("hash is not 32 bytes");
  }
  if (leaf_hashes.size() > UINT64_MAX - frontier.size) {
    return absl::InvalidArgumentError("tree size would overflow");
  }

  // A stack of (level, hash), largest subtree at the bottom; levels strictly decrease upwards,
  // so it is the frontier at every step. Appending a leaf merges equal levels like a carry.
  struct Entry {
    int level;
    std::string hash;
  };
  std::vector<Entry> stack;
  stack.reserve(64);
  {
    const std::vector<NodeId> nodes = FrontierNodes(frontier.size);
    for (size_t i = 0; i < nodes.size(); ++i) stack.push_back({nodes[i].level, frontier.hashes[i]});
  }

  AppendResult result;
  result.new_nodes.reserve(2 * leaf_hashes.size());
  uint64_t size = frontier.size;
  for (const std::string& leaf : leaf_hashes) {
    result.new_nodes.push_back({{0, size}, leaf});
    stack.push_back({0, leaf});
    ++size;
    while (stack.size() >= 2 && stack[stack.size() - 2].level == stack.back().level) {
      Entry right = std::move(stack.back());
      stack.pop_back();
      Entry& left = stack.back();
      left.hash = NodeHash(left.hash, right.hash);
      ++left.level;
      // The merged subtree ends at leaf `size`, so it is the (size >> level)-th, minus one.
      result.new_nodes.push_back({{left.level, (size >> left.level) - 1}, left.hash});
    }
  }
  result.frontier.size = size;
  result.frontier.hashes.reserve(stack.size());
  for (Entry& e : stack) result.frontier.hashes.push_back(std::move(e.hash));
  return result;
}

}  // namespace custos::ledger
