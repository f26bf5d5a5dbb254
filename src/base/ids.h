// Identifiers for tenants, principals, requests, grants and demands: 128-bit random, URL-safe
// (unpadded base64url, 22 characters), so that nobody can enumerate or guess them.
#pragma once

#include <string>

#include "absl/strings/escaping.h"
#include "base/random.h"

namespace custos {

inline std::string NewId(Random& random) { return absl::WebSafeBase64Escape(random.Bytes(16)); }

}  // namespace custos
