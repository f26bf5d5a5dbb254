#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"
#include "data/data.h"

namespace custos::data {
namespace {

// Length of the valid UTF-8 sequence starting at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 if invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

absl::Status ValidateObjectKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("object key is empty");
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        StrCat("object key is ", key.size(), " bytes; the limit is ", kMaxKeyBytes));
  }
  for (size_t i = 0; i < key.size();) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("object key contains a control character");
    }
    size_t n = Utf8SequenceLength(key, i);
    if (n == 0) return absl::InvalidArgumentError("object key is not valid UTF-8");
    i += n;
  }
  for (absl::string_view segment : absl::StrSplit(AbslView(key), '/')) {
    if (segment.empty() || segment == "." || segment == "..") {
      return absl::InvalidArgumentError("object key has an empty, '.' or '..' segment");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateContentType(std::string_view content_type) {
  if (content_type.size() > kMaxContentTypeBytes) {
    return absl::InvalidArgumentError(StrCat("Content-Type is ", content_type.size(),
                                             " bytes; the limit is ", kMaxContentTypeBytes));
  }
  for (char ch : content_type) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c > 0x7e) {
      return absl::InvalidArgumentError("Content-Type must be printable ASCII");
    }
  }
  return absl::OkStatus();
}

}  // namespace custos::data
