// Helpers shared by the ledger unit tests: the published vectors, and a definitional
// (brute-force) RFC 9162 Merkle tree to compare the real code against.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "boost/json.hpp"
#include "crypto/crypto.h"

namespace custos::ledger::testing {

// The published vectors (../shared/testdata/vectors.json, or tests/testdata), parsed once.
inline const boost::json::value& Vectors() {
  static const boost::json::value* const vectors = [] {
    std::ifstream in(CUSTOS_SHARED_TESTDATA "/vectors.json");
    std::stringstream buf;
    buf << in.rdbuf();
    return new boost::json::value(boost::json::parse(buf.str()));
  }();
  return *vectors;
}

inline std::string Str(const boost::json::value& v) { return std::string(v.as_string()); }
inline std::string Unhex(const boost::json::value& v) {
  return absl::HexStringToBytes(std::string(v.as_string()));
}
inline std::vector<std::string> UnhexAll(const boost::json::value& v) {
  std::vector<std::string> out;
  for (const auto& h : v.as_array()) out.push_back(Unhex(h));
  return out;
}

// RFC 9162 2.1.1 MTH, 2.1.3.1 PATH and 2.1.4.1 PROOF written as the RFC defines them, over the
// leaf hashes, with MTH memoized so large trees stay fast. Hashes straight from crypto::Sha256,
// sharing no code with ledger/merkle.cc.
class BruteForceTree {
 public:
  explicit BruteForceTree(std::vector<std::string> leaf_hashes) : leaves_(std::move(leaf_hashes)) {}

  const std::vector<std::string>& leaves() const { return leaves_; }

  std::string Mth(uint64_t begin, uint64_t end) {
    const uint64_t n = end - begin;
    if (n == 0) return crypto::Sha256("");
    if (n == 1) return leaves_[begin];
    auto it = cache_.find({begin, end});
    if (it != cache_.end()) return it->second;
    const uint64_t k = Split(n);
    std::string h = crypto::Sha256("\x01" + Mth(begin, begin + k) + Mth(begin + k, end));
    cache_.emplace(std::make_pair(begin, end), h);
    return h;
  }

  std::vector<std::string> Path(uint64_t m, uint64_t begin, uint64_t end) {
    const uint64_t n = end - begin;
    if (n <= 1) return {};
    const uint64_t k = Split(n);
    std::vector<std::string> out;
    if (m < k) {
      out = Path(m, begin, begin + k);
      out.push_back(Mth(begin + k, end));
    } else {
      out = Path(m - k, begin + k, end);
      out.push_back(Mth(begin, begin + k));
    }
    return out;
  }

  std::vector<std::string> Proof(uint64_t m, uint64_t n) { return SubProof(m, 0, n, true); }

 private:
  static uint64_t Split(uint64_t n) {
    uint64_t k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  }

  std::vector<std::string> SubProof(uint64_t m, uint64_t begin, uint64_t end, bool b) {
    const uint64_t n = end - begin;
    if (m == n) {
      if (b) return {};
      return {Mth(begin, end)};
    }
    const uint64_t k = Split(n);
    std::vector<std::string> out;
    if (m <= k) {
      out = SubProof(m, begin, begin + k, b);
      out.push_back(Mth(begin + k, end));
    } else {
      out = SubProof(m - k, begin + k, end, false);
      out.push_back(Mth(begin, begin + k));
    }
    return out;
  }

  std::vector<std::string> leaves_;
  std::map<std::pair<uint64_t, uint64_t>, std::string> cache_;
};

}  // namespace custos::ledger::testing
