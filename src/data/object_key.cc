#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"
#include "base/utf8.h"
#include "data/data.h"

namespace custos::data {

absl::Status ValidateObjectKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("object key is empty");
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        StrCat("object key is ", key.size(), " bytes; the limit is ", kMaxKeyBytes));
  }
  if (HasControlCharacter(key)) {
    return absl::InvalidArgumentError("object key contains a control character");
  }
  if (!IsValidUtf8(key)) return absl::InvalidArgumentError("object key is not valid UTF-8");
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
