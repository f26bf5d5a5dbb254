// Object keys: the raw `{key...}` route parameter is percent-decoded once by the router, then
// checked by data::ValidateObjectKey. Both are fed the fuzzer's bytes: as decoded key, and as
// the still-encoded path tail.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "data/data.h"
#include "http/http.h"

namespace {

// An independent strict UTF-8 check (RFC 3629: shortest form, no surrogates, <= U+10FFFF).
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    int n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else
      return false;
    if (s.size() - i <= static_cast<size_t>(n)) return false;
    for (int k = 1; k <= n; ++k) {
      unsigned char d = s[i + k];
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

void Check(std::string_view key) {
  absl::Status s = custos::data::ValidateObjectKey(key);
  if (!s.ok()) {
    if (s.code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return;
  }
  // What the validator promises (data.h): 1..kMaxKeyBytes bytes of valid UTF-8, no empty,
  // "." or ".." segment, no control character.
  if (!IsUtf8(key)) __builtin_trap();
  if (key.empty() || key.size() > custos::data::kMaxKeyBytes) __builtin_trap();
  for (char c : key) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) __builtin_trap();
  }
  if (key.front() == '/' || key.back() == '/' || key.find("//") != std::string_view::npos) {
    __builtin_trap();
  }
  std::string wrapped = "/" + std::string(key) + "/";
  if (wrapped.find("/./") != std::string::npos || wrapped.find("/../") != std::string::npos) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  Check(raw);
  auto decoded = custos::http::PercentDecode(raw);
  if (decoded.ok()) Check(*decoded);
  return 0;
}
