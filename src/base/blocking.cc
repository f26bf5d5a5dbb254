#include "base/blocking.h"

#include "absl/strings/cord.h"

namespace custos {
namespace {

thread_local bool non_blocking = false;
constexpr char kWouldBlockPayload[] = "custos/would-block";

}  // namespace

NonBlockingScope::NonBlockingScope() : outer_(non_blocking) { non_blocking = true; }
NonBlockingScope::~NonBlockingScope() { non_blocking = outer_; }

bool MayBlock() { return !non_blocking; }

absl::Status WouldBlockError() {
  absl::Status s = absl::UnavailableError("this thread must not wait on a store");
  s.SetPayload(kWouldBlockPayload, absl::Cord("1"));
  return s;
}

bool IsWouldBlock(const absl::Status& status) {
  return status.GetPayload(kWouldBlockPayload).has_value();
}

}  // namespace custos
