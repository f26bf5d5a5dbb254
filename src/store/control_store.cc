// Backend-independent parts of ControlStore.
#include "base/errors.h"
#include "store/store.h"

namespace custos::store {

absl::Status ControlStore::CommitLedgerBatch(const LedgerBatch& batch) {
  return SequenceLedgerBatch([&](const LedgerState& state) -> absl::StatusOr<LedgerBatch> {
    if (state.size != batch.old_size) {
      return Conflict("the ledger was extended by another sequencer");
    }
    return batch;
  });
}

}  // namespace custos::store
