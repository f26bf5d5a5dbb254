// Small builders of store records for the store tests (SQLite-only and contract tests alike).
#pragma once

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

inline store::CellWrite Put(store::StoredObject o) {
  return {store::CellWrite::Op::kPut, std::move(o)};
}
inline store::CellWrite Del(std::string tenant, std::string key) {
  return {store::CellWrite::Op::kDelete, Obj(std::move(tenant), std::move(key))};
}

}  // namespace custos::testing
