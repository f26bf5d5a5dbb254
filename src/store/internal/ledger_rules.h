// Rules on stored ledger data that both backends enforce the same way (not for other folders).
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "base/errors.h"
#include "base/strings.h"

namespace custos::store::internal {

// A checkpoint of `size` may be stored only for a committed size (it must not commit to entries
// that are not stored) and never below the latest stored one (checkpoints only move forward, so
// a reader never sees the latest checkpoint go back, whichever instance signed it).
inline absl::Status CheckCheckpointOrder(uint64_t size, uint64_t committed_size,
                                         std::optional<uint64_t> latest_checkpoint) {
  if (size > committed_size) {
    return absl::FailedPreconditionError(StrCat(
        "checkpoint of size ", size, " is beyond the committed ledger (", committed_size, ")"));
  }
  if (latest_checkpoint && *latest_checkpoint > size) {
    return Conflict(StrCat("a checkpoint of size ", *latest_checkpoint, " is stored already"));
  }
  return absl::OkStatus();
}

}  // namespace custos::store::internal
