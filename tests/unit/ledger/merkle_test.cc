// RFC 9162 hashing, proofs and the frontier, against the published vectors and a brute-force
// tree.
#include "ledger/merkle.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "ledger_test_util.h"

namespace custos::ledger {
namespace {

using testing::BruteForceTree;
using testing::Unhex;
using testing::UnhexAll;
using testing::Vectors;

using Proof = std::vector<std::string>;

const boost::json::object& Rfc() { return Vectors().at("rfc6962").as_object(); }

std::vector<std::string> VectorLeafHashes() {
  std::vector<std::string> out;
  for (const auto& leaf : Rfc().at("leaves_hex").as_array()) out.push_back(LeafHash(Unhex(leaf)));
  return out;
}

// Answers every complete subtree straight from a brute-force tree.
class BruteForceReader final : public HashReader {
 public:
  explicit BruteForceReader(BruteForceTree& tree) : tree_(tree) {}
  absl::StatusOr<std::vector<std::string>> ReadHashes(std::span<const NodeId> nodes) override {
    ++calls;
    std::vector<std::string> out;
    for (const NodeId& n : nodes) {
      out.push_back(tree_.Mth(n.index << n.level, (n.index + 1) << n.level));
    }
    return out;
  }
  int calls = 0;

 private:
  BruteForceTree& tree_;
};

TEST(LedgerMerkle, EmptyRootIsSha256OfNothing) {
  EXPECT_EQ(absl::BytesToHexString(EmptyRoot()), Rfc().at("empty_root").as_string());
  EXPECT_EQ(RootOfLeafHashes({}), EmptyRoot());
}

TEST(LedgerMerkle, RootsBySizeMatchVectors) {
  const std::vector<std::string> leaves = VectorLeafHashes();
  ASSERT_EQ(leaves.size(), 8u);
  BruteForceTree tree(leaves);
  BruteForceReader reader(tree);
  for (const auto& [size, root_hex] : Rfc().at("roots_by_size").as_object()) {
    const size_t n = std::stoul(std::string(size));
    const std::string root = Unhex(root_hex);
    EXPECT_EQ(RootOfLeafHashes({leaves.data(), n}), root) << n;
    EXPECT_EQ(*TreeRoot(n, reader), root) << n;
  }
  EXPECT_EQ(*TreeRoot(0, reader), EmptyRoot());
}

TEST(LedgerMerkle, InclusionVectorsGenerateAndVerify) {
  const std::vector<std::string> leaves = VectorLeafHashes();
  BruteForceTree tree(leaves);
  BruteForceReader reader(tree);
  for (const auto& v : Rfc().at("inclusion").as_array()) {
    const uint64_t index = v.at("leaf_index").as_int64();
    const uint64_t size = v.at("tree_size").as_int64();
    const std::vector<std::string> want = UnhexAll(v.at("proof"));
    const std::string root = RootOfLeafHashes({leaves.data(), size});
    absl::StatusOr<std::vector<std::string>> got = InclusionProof(index, size, reader);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, want) << index << " in " << size;
    EXPECT_TRUE(VerifyInclusion(leaves[index], index, size, want, root)) << index << "/" << size;
  }
}

TEST(LedgerMerkle, ConsistencyVectorsGenerateAndVerify) {
  const std::vector<std::string> leaves = VectorLeafHashes();
  BruteForceTree tree(leaves);
  BruteForceReader reader(tree);
  for (const auto& v : Rfc().at("consistency").as_array()) {
    const uint64_t old_size = v.at("old_size").as_int64();
    const uint64_t new_size = v.at("new_size").as_int64();
    const std::vector<std::string> want = UnhexAll(v.at("proof"));
    absl::StatusOr<std::vector<std::string>> got = ConsistencyProof(old_size, new_size, reader);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, want) << old_size << " -> " << new_size;
    EXPECT_TRUE(
        VerifyConsistency(old_size, new_size, want, tree.Mth(0, old_size), tree.Mth(0, new_size)))
        << old_size << " -> " << new_size;
  }
}

TEST(LedgerMerkle, TamperedInclusionProofsFail) {
  const std::vector<std::string> leaves = VectorLeafHashes();
  const std::string root = RootOfLeafHashes(leaves);
  BruteForceTree tree(leaves);
  BruteForceReader reader(tree);
  for (uint64_t index = 0; index < 8; ++index) {
    const std::vector<std::string> proof = *InclusionProof(index, 8, reader);
    ASSERT_TRUE(VerifyInclusion(leaves[index], index, 8, proof, root));
    for (size_t i = 0; i < proof.size(); ++i) {
      std::vector<std::string> bad = proof;
      bad[i][0] ^= 1;
      EXPECT_FALSE(VerifyInclusion(leaves[index], index, 8, bad, root));
    }
    // A wrong size fails when it changes the proof's shape (depth or the right edge). The
    // size itself is bound by the signed checkpoint, not by the proof: RFC 9162 verification
    // of leaf 0..5 against size 7 takes the same path as against size 8.
    EXPECT_FALSE(VerifyInclusion(leaves[index], index, 4, proof, root));
    EXPECT_FALSE(VerifyInclusion(leaves[index], index, 9, proof, root));
    EXPECT_FALSE(VerifyInclusion(leaves[index], index, 16, proof, root));
    if (index >= 6) {
      EXPECT_FALSE(VerifyInclusion(leaves[index], index, 7, proof, root));
    }
    EXPECT_FALSE(VerifyInclusion(leaves[index], index ^ 1, 8, proof, root));
    EXPECT_FALSE(VerifyInclusion(leaves[index], 8, 8, proof, root));
    EXPECT_FALSE(VerifyInclusion(leaves[(index + 1) % 8], index, 8, proof, root));
    EXPECT_FALSE(VerifyInclusion(leaves[index], index, 8, proof, leaves[0]));
    std::vector<std::string> shorter(proof.begin(), proof.end() - 1);
    EXPECT_FALSE(VerifyInclusion(leaves[index], index, 8, shorter, root));
    std::vector<std::string> longer = proof;
    longer.push_back(root);
    EXPECT_FALSE(VerifyInclusion(leaves[index], index, 8, longer, root));
    std::vector<std::string> short_hash = proof;
    short_hash[0].pop_back();
    EXPECT_FALSE(VerifyInclusion(leaves[index], index, 8, short_hash, root));
  }
  EXPECT_FALSE(VerifyInclusion(leaves[0], 0, 0, {}, EmptyRoot()));
  EXPECT_FALSE(VerifyInclusion("short", 0, 1, {}, leaves[0]));
  EXPECT_TRUE(VerifyInclusion(leaves[0], 0, 1, {}, leaves[0]));
  const std::vector<std::string> huge(1000, leaves[0]);
  EXPECT_FALSE(VerifyInclusion(leaves[0], 0, UINT64_MAX, huge, root));
}

TEST(LedgerMerkle, TamperedConsistencyProofsFail) {
  const std::vector<std::string> leaves = VectorLeafHashes();
  BruteForceTree tree(leaves);
  BruteForceReader reader(tree);
  for (uint64_t m = 1; m <= 8; ++m) {
    for (uint64_t n = m; n <= 8; ++n) {
      const std::string old_root = tree.Mth(0, m), new_root = tree.Mth(0, n);
      const std::vector<std::string> proof = *ConsistencyProof(m, n, reader);
      ASSERT_TRUE(VerifyConsistency(m, n, proof, old_root, new_root)) << m << " -> " << n;
      for (size_t i = 0; i < proof.size(); ++i) {
        std::vector<std::string> bad = proof;
        bad[i][31] ^= 0x80;
        EXPECT_FALSE(VerifyConsistency(m, n, bad, old_root, new_root)) << m << " " << n << i;
      }
      if (m == n) {
        EXPECT_FALSE(VerifyConsistency(m, n, Proof{old_root}, old_root, new_root));
        continue;
      }
      EXPECT_FALSE(VerifyConsistency(m, n, proof, new_root, old_root));
      EXPECT_FALSE(VerifyConsistency(m, n, proof, old_root, old_root));
      EXPECT_FALSE(VerifyConsistency(m, n, {}, old_root, new_root));
      EXPECT_FALSE(VerifyConsistency(n, m, proof, old_root, new_root));
      // As for inclusion, a wrong size is caught when it changes the proof's shape.
      EXPECT_FALSE(VerifyConsistency(m, n + 8, proof, old_root, new_root)) << m << " " << n;
      EXPECT_FALSE(VerifyConsistency(m, 2 * n, proof, old_root, new_root)) << m << " " << n;
      if (m > 1) {
        EXPECT_FALSE(VerifyConsistency(m - 1, n, proof, old_root, new_root));
      }
      std::vector<std::string> longer = proof;
      longer.push_back(new_root);
      EXPECT_FALSE(VerifyConsistency(m, n, longer, old_root, new_root));
    }
  }
  // From the empty tree: only the empty proof, whatever the new root.
  EXPECT_TRUE(VerifyConsistency(0, 5, {}, EmptyRoot(), tree.Mth(0, 5)));
  EXPECT_FALSE(VerifyConsistency(0, 5, Proof{leaves[0]}, EmptyRoot(), tree.Mth(0, 5)));
  EXPECT_TRUE(ConsistencyProof(0, 5, reader)->empty());
  EXPECT_FALSE(VerifyConsistency(1, 2, Proof{"x"}, leaves[0], tree.Mth(0, 2)));
  EXPECT_EQ(reader.calls > 0, true);
}

TEST(LedgerMerkle, ProofArgumentsOutsideTheTreeAreRefused) {
  BruteForceTree tree({});
  BruteForceReader reader(tree);
  EXPECT_EQ(InclusionProof(0, 0, reader).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InclusionProof(5, 5, reader).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConsistencyProof(6, 5, reader).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ConsistencyProof(0, 0, reader)->empty());
  EXPECT_EQ(reader.calls, 0);
}

class FailingReader final : public HashReader {
 public:
  explicit FailingReader(absl::StatusOr<std::vector<std::string>> answer) : answer_(answer) {}
  absl::StatusOr<std::vector<std::string>> ReadHashes(std::span<const NodeId>) override {
    return answer_;
  }

 private:
  absl::StatusOr<std::vector<std::string>> answer_;
};

TEST(LedgerMerkle, ReaderErrorsAndShortAnswersAreReported) {
  FailingReader down(absl::UnavailableError("store down"));
  EXPECT_EQ(InclusionProof(1, 5, down).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(TreeRoot(5, down).status().code(), absl::StatusCode::kUnavailable);
  FailingReader too_few(std::vector<std::string>{});
  EXPECT_EQ(ConsistencyProof(3, 5, too_few).status().code(), absl::StatusCode::kInternal);
  FailingReader bad_size(std::vector<std::string>(3, "short"));
  EXPECT_EQ(InclusionProof(1, 5, bad_size).status().code(), absl::StatusCode::kInternal);
}

TEST(LedgerMerkle, FrontierMatchesBruteForceForEverySizeUpTo600) {
  std::vector<std::string> leaves;
  for (int i = 0; i < 600; ++i) leaves.push_back(LeafHash("leaf " + std::to_string(i)));
  BruteForceTree tree(leaves);
  // Append in uneven batches so that carries cross batch boundaries.
  Frontier frontier;
  size_t next = 0;
  int batch = 1;
  std::vector<int> emitted_per_level(64, 0);
  while (next < leaves.size()) {
    const size_t n = std::min<size_t>(batch, leaves.size() - next);
    absl::StatusOr<AppendResult> r = AppendLeaves(frontier, {leaves.data() + next, n});
    ASSERT_TRUE(r.ok()) << r.status();
    for (const CompletedNode& node : r->new_nodes) {
      ASSERT_EQ(node.hash,
                tree.Mth(node.id.index << node.id.level, (node.id.index + 1) << node.id.level));
      ++emitted_per_level[node.id.level];
    }
    frontier = std::move(r->frontier);
    next += n;
    ASSERT_EQ(frontier.size, next);
    ASSERT_EQ(FrontierRoot(frontier), tree.Mth(0, next)) << next;
    batch = batch % 7 + 1;
  }
  // Every complete subtree was emitted exactly once.
  for (int level = 0; level < 64; ++level) {
    EXPECT_EQ(emitted_per_level[level], static_cast<int>(uint64_t{600} >> level)) << level;
  }
  // One leaf at a time, and the root of every prefix.
  Frontier one;
  for (size_t size = 1; size <= leaves.size(); ++size) {
    absl::StatusOr<AppendResult> r = AppendLeaves(one, {&leaves[size - 1], 1});
    ASSERT_TRUE(r.ok());
    one = std::move(r->frontier);
    ASSERT_EQ(FrontierRoot(one), tree.Mth(0, size)) << size;
    ASSERT_EQ(RootOfLeafHashes({leaves.data(), size}), tree.Mth(0, size)) << size;
    const std::vector<NodeId> nodes = FrontierNodes(size);
    ASSERT_EQ(nodes.size(), one.hashes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      ASSERT_EQ(one.hashes[i],
                tree.Mth(nodes[i].index << nodes[i].level, (nodes[i].index + 1) << nodes[i].level));
    }
  }
}

TEST(LedgerMerkle, AppendRefusesInconsistentInput) {
  const std::string h = LeafHash("x");
  EXPECT_EQ(AppendLeaves(Frontier{3, {h}}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendLeaves(Frontier{1, {"short"}}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string bad_leaf = "not a hash";
  EXPECT_EQ(AppendLeaves(Frontier{}, {&bad_leaf, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const Frontier full{UINT64_MAX, std::vector<std::string>(64, h)};
  EXPECT_EQ(AppendLeaves(full, {&h, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(AppendLeaves(full, {}).ok());
}

}  // namespace
}  // namespace custos::ledger
