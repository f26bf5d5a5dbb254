// Ledger entries as `custos ledger verify` reads them from a server's entry bundles:
// DecodeEntryBundle, then cli::internal::ParseLedgerEntry on each entry. An entry it accepts is
// canonical JSON by contract, so re-encoding its fields with ledger::CanonicalJson must give the
// same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "boost/json.hpp"
#include "cli/internal/log_audit.h"
#include "ledger/ledger.h"
#include "ledger/tiles.h"

namespace {

void Check(std::string_view entry) {
  auto e = custos::cli::internal::ParseLedgerEntry(entry);
  if (!e.ok()) {
    if (e.status().code() != absl::StatusCode::kDataLoss) __builtin_trap();
    return;
  }
  if (e->digest.size() != 64 || e->tenant.size() != 64 || e->ts < 0) __builtin_trap();
  boost::json::object o{
      {"digest", e->digest}, {"kind", e->kind}, {"tenant", e->tenant}, {"ts", e->ts}, {"v", 1}};
  auto canonical = custos::ledger::CanonicalJson(o);
  if (!canonical.ok() || *canonical != entry) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Check(in);
  if (auto entries = custos::ledger::DecodeEntryBundle(in); entries.ok()) {
    for (const std::string& entry : *entries) Check(entry);
  }
  return 0;
}
