#pragma once

#include <weir/detail/utf8.hpp>

#include <string_view>

namespace weir {

/// True if `text` is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points past U+10FFFF).
inline bool is_valid_utf8(std::string_view text) noexcept { return detail::is_valid_utf8(text); }

} // namespace weir
