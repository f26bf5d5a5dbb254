// UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing above U+10FFFF.
// PostgreSQL refuses text that is not valid UTF-8 and JSON parsers refuse it too, so client
// bytes are checked (or replaced) here before they reach a store or a signed record.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace custos {

// Length of the valid UTF-8 sequence starting at s[i] (i < s.size()), or 0 if there is none.
size_t Utf8SequenceLength(std::string_view s, size_t i);

bool IsValidUtf8(std::string_view s);

// `s` with every byte that does not start a valid sequence replaced by U+FFFD.
std::string Utf8OrReplaced(std::string_view s);

// True if `s` holds a control character (Unicode category Cc): C0 (U+0000-U+001F), DEL, or C1
// (U+0080-U+009F, in UTF-8 the pairs C2 80-C2 9F). Checks bytes only, so it also works on a
// prefix that ends inside a sequence.
bool HasControlCharacter(std::string_view s);

}  // namespace custos
