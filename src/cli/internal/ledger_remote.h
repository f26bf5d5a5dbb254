// The public ledger routes of a Custos server (and the few tenant routes `ledger prove` reads),
// fetched over HTTP with every answer validated as outside input.
//
// Not thread-safe (one HttpClient). Errors: those of HttpClient; an HTTP error answer becomes
// kNotFound (404), kPermissionDenied (401, 403), kUnavailable (5xx) or kFailedPrecondition (any
// other), with a message naming the route, the status and the server's error message;
// kDataLoss for a 200 answer that is malformed (not JSON, a proof of the wrong shape).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "cli/internal/http_client.h"
#include "cli/internal/log_audit.h"
#include "ledger/tiles.h"

namespace custos::cli::internal {

class LedgerRemote final : public TileSource {
 public:
  // `http` outlives this object.
  explicit LedgerRemote(HttpClient& http) : http_(http) {}

  // GET /ledger/checkpoint: the signed note, unverified.
  absl::StatusOr<std::string> Checkpoint();
  // GET /ledger/<TilePath(tile)>.
  absl::StatusOr<std::string> ReadTile(const ledger::Tile& tile) override;
  // GET /v1/ledger/proof/inclusion and /consistency: the hashes, each checked to be 32 bytes,
  // at most ledger::kMaxProofHashes, and the answer's index/size (old/new) echoing the request.
  absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size);
  absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t old_size, uint64_t new_size);
  // GET `target` with the bearer token; the body must be a JSON object.
  absl::StatusOr<boost::json::object> GetJsonObject(std::string_view target,
                                                    std::string_view token);

 private:
  absl::StatusOr<std::string> GetOk(std::string_view target, std::string_view token = "");
  HttpClient& http_;
};

}  // namespace custos::cli::internal
