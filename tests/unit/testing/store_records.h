// Small builders of store records for the store tests (SQLite-only and contract tests alike).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include "store/store.h"

namespace custos::testing {

// A stored object with fixed metadata; only the tenant, key and sealed bytes vary.
inline store::StoredObject Obj(std::string tenant, std::string key, std::string sealed = "sealed") {
  store::StoredObject o;
  o.tenant_id = std::move(tenant);
  o.key = std::move(key);
  o.dek_version = 1;
  o.size = 3;
  o.sha256_hex = "ab";
  o.content_type = "text/plain";
  o.updated_at_ms = 1;
  o.sealed = std::move(sealed);
  return o;
}

// A stamp above every earlier one, and above any data::ObjectService makes (those are
// microseconds << 10, below 2^62 until the 2100s): a write stamped with it always applies.
inline int64_t LatestStamp() {
  static std::atomic<int64_t> next{int64_t{1} << 62};
  return next.fetch_add(1);
}

inline store::CellWrite Put(store::StoredObject o, int64_t stamp = LatestStamp()) {
  return {store::CellWrite::Op::kPut, std::move(o), stamp};
}
inline store::CellWrite Del(std::string tenant, std::string key, int64_t stamp = LatestStamp()) {
  return {store::CellWrite::Op::kDelete, Obj(std::move(tenant), std::move(key)), stamp};
}

}  // namespace custos::testing
