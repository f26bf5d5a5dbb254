#include <charconv>
#include <string>

#include "data/data.h"
#include "data/internal/write_stamps.h"

namespace custos::data {

absl::StatusOr<uint32_t> ClaimWriteInstance(store::ControlStore& control) {
  constexpr const char* kSetting = "write_instance_last";
  constexpr uint32_t kNumbers = 1u << internal::WriteStamps::kInstanceBits;
  // Each lost race means another instance claimed a number meanwhile; a few dozen instances
  // starting at once settle within as many tries.
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::optional<std::string> last;
    if (auto stored = control.GetSetting(kSetting); stored.ok()) {
      last = *stored;
    } else if (!absl::IsNotFound(stored.status())) {
      return stored.status();
    }
    uint32_t next = 0;
    if (last) {
      uint32_t n = 0;
      auto [end, ec] = std::from_chars(last->data(), last->data() + last->size(), n);
      if (ec != std::errc() || end != last->data() + last->size()) {
        return absl::DataLossError("setting " + std::string(kSetting) + " is not a number");
      }
      next = (n + 1) % kNumbers;
    }
    absl::Status s = control.CompareAndSwapSetting(
        kSetting, last ? std::optional<std::string_view>(*last) : std::nullopt,
        std::to_string(next));
    if (s.ok()) return next;
    if (!absl::IsAborted(s)) return s;
  }
  return absl::UnavailableError("could not claim a write-instance number: the store is contended");
}

}  // namespace custos::data
